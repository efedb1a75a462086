package config_test

import (
	"context"
	"crypto/x509"
	"errors"
	"log/slog"
	"strings"
	"testing"

	"github.com/kmsdb/kmsdb/internal/syncbuf"
	"github.com/kmsdb/kmsdb/secretsource"
	"github.com/kmsdb/kmsdb/secretsource/config"
	"github.com/kmsdb/kmsdb/secretsource/kms"
	"github.com/kmsdb/kmsdb/secretsource/kmstest"
)

// loadRegions loads a source over the KMS regions a then b (one kms.Source
// each, composed by secretsource.Failover), logging at Debug into the buffer
// returned.
func loadRegions(t *testing.T, a, b *kmstest.Server) (*config.Source, *syncbuf.Buffer) {
	t.Helper()
	logs := &syncbuf.Buffer{}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(a.CACertPEM())
	roots.AppendCertsFromPEM(b.CACertPEM())
	src, err := config.Load(context.Background(),
		config.WithRegions(kms.Region{ID: "cn-a", Endpoint: a.KMSTLSAddr()}, kms.Region{ID: "cn-b", Endpoint: b.KMSTLSAddr()}),
		config.WithAccessKey(testAK, testSecret), config.WithRootCAs(roots),
		config.WithLogger(slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = src.Close() })
	return src, logs
}

// TestRegionsFailOver: Load builds one source per region; a retryable
// failure of the first moves on to the second (logged at Debug, naming the
// region), a permanent one does not, and when both fail the error names both.
func TestRegionsFailOver(t *testing.T) {
	hermetic(t)
	a, b := startEmulator(t), startEmulator(t)
	src, logs := loadRegions(t, a, b)
	if s := src.String(); s != "config.Source(kms(cn-a), kms(cn-b))" {
		t.Errorf("String() = %s", s)
	}

	a.InjectFault(kmstest.Fault{Action: "GetSecretValue", Code: "ServiceUnavailableTemporary"})
	s, err := src.GetSecret(context.Background(), secretName)
	if err != nil || s.Text() != rdsValue {
		t.Fatalf("failover to cn-b: %v", err)
	}
	if a.Calls("GetSecretValue", secretName) != 1 || b.Calls("GetSecretValue", secretName) != 1 {
		t.Errorf("calls: a=%d b=%d, want 1 and 1", a.Calls("GetSecretValue", secretName), b.Calls("GetSecretValue", secretName))
	}
	if line := logs.String(); !strings.Contains(line, "trying the next one") || !strings.Contains(line, `"source":"kms(cn-a)"`) ||
		!strings.Contains(line, `"kind":"unavailable"`) {
		t.Errorf("no debug line naming the failed region: %s", line)
	}
	prev, err := src.GetSecretVersion(context.Background(), secretName, secretsource.VersionRef{Stage: secretsource.StageCurrent})
	if err != nil || prev.Text() != rdsValue {
		t.Errorf("a version through the failover: %v", err)
	}

	b.InjectFault(kmstest.Fault{Action: "GetSecretValue", Code: "Rejected.Throttling"})
	_, err = src.GetSecret(context.Background(), secretName)
	var e *secretsource.Error
	if !errors.As(err, &e) || e.Kind != secretsource.KindThrottled || e.Region != "cn-b" ||
		!errors.Is(err, secretsource.ErrUnavailable) || !strings.Contains(err.Error(), "2 of 2 sources tried (cn-a ("+a.KMSTLSAddr()+"), cn-b ("+b.KMSTLSAddr()+"))") {
		t.Errorf("both regions failing: %v", err)
	}

	a.ClearFaults()
	b.ClearFaults()
	b.ResetCalls()
	if _, err := src.GetSecret(context.Background(), "no/such/secret"); !errors.Is(err, secretsource.ErrNotFound) {
		t.Fatalf("want not found, got %v", err)
	}
	if n := b.Calls("", ""); n != 0 {
		t.Errorf("cn-b was asked %d times after a permanent error in cn-a", n)
	}
	if strings.Contains(logs.String(), dbPassword) || strings.Contains(logs.String(), testSecret) {
		t.Errorf("the logs leak a secret")
	}
}
