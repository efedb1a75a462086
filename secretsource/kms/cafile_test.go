package kms_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kmsdb/kmsdb/internal/credtest"
	"github.com/kmsdb/kmsdb/secretsource"
	"github.com/kmsdb/kmsdb/secretsource/kms"
	"github.com/kmsdb/kmsdb/secretsource/kmstest"
)

// TestRegionCAFile: each region's CAFile verifies that region only. Two
// emulators have two CAs; a region trusts the other's endpoint only with the
// other's CA file.
func TestRegionCAFile(t *testing.T) {
	credtest.Hermetic(t)
	a, b := startEmulator(t), startEmulator(t)
	regionA := kms.Region{ID: "cn-a", Endpoint: a.KMSTLSAddr(), CAFile: a.CAFile()}
	regionB := kms.Region{ID: "cn-b", Endpoint: b.KMSTLSAddr(), CAFile: b.CAFile()}

	src, _ := regions(t, kms.Config{Credential: accessKey(t)}, regionA, regionB)
	if _, err := src.GetSecret(context.Background(), secretName); err != nil {
		t.Fatal(err)
	}
	a.InjectFault(kmstest.Fault{Action: "GetSecretValue", Code: "ServiceUnavailableTemporary"})
	if _, err := src.GetSecret(context.Background(), secretName); err != nil {
		t.Fatalf("failover to the second region and its CA: %v", err)
	}
	if b.Calls("GetSecretValue", secretName) != 1 {
		t.Errorf("region b answered %d times, want 1", b.Calls("GetSecretValue", secretName))
	}

	crossed := kms.Region{ID: "cn-b", Endpoint: b.KMSTLSAddr(), CAFile: a.CAFile()}
	src2, _ := newSource(t, kms.Config{Region: crossed, Credential: accessKey(t)})
	_, err := src2.GetSecret(context.Background(), secretName)
	if !errors.Is(err, secretsource.ErrNetwork) || !strings.Contains(err.Error(), "TLS") || !strings.Contains(err.Error(), "caFilePath") {
		t.Fatalf("region b verified with a's CA: want a TLS error naming caFilePath, got %v", err)
	}

	notPEM := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(notPEM, []byte("no certificate here"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{notPEM, filepath.Join(t.TempDir(), "missing.pem")} {
		_, err := kms.New(kms.Config{Region: kms.Region{ID: "cn-a", Endpoint: a.KMSTLSAddr(), CAFile: path}, Credential: accessKey(t)})
		if !errors.Is(err, secretsource.ErrConfig) || !strings.Contains(err.Error(), path) {
			t.Errorf("CA file %s: want a config error naming it, got %v", path, err)
		}
	}
}
