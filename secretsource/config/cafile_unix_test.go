//go:build unix

package config

import (
	"context"
	"encoding/pem"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/kmsdb/kmsdb/secretsource"
	"github.com/kmsdb/kmsdb/secretsource/dkms"
	"github.com/kmsdb/kmsdb/secretsource/kms"
)

// TestCAFileOneRule: the configuration, the kms source and the dkms source
// accept and refuse the same CA files, with errors naming their setting and
// the file and never its content. Before they shared wire.ReadCAFile, kms and
// dkms read a FIFO forever, kms skipped a broken certificate in a bundle, and
// dkms refused a bundle whose first block was not a certificate.
func TestCAFileOneRule(t *testing.T) {
	fx := newFixtures(t)
	dir := t.TempDir()
	good, err := os.ReadFile(fx.ca)
	if err != nil {
		t.Fatal(err)
	}
	brokenCert := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: []byte("hunter2 junk")})
	privateKey := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: []byte("hunter2 key")})
	params := pem.EncodeToMemory(&pem.Block{Type: "EC PARAMETERS", Bytes: []byte{6, 5}})
	fifo := filepath.Join(dir, "ca.fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name, path, problem string // problem "" means accepted
	}{
		{"a certificate", fx.ca, ""},
		{"another block first", writeFile(t, dir, "params.pem", string(params)+string(good)), ""},
		{"not PEM", fx.notPEM, "holds no PEM certificate"},
		{"a broken certificate in a bundle", writeFile(t, dir, "broken.pem", string(good)+string(brokenCert)), "holds a certificate that cannot be parsed"},
		{"a private key", writeFile(t, dir, "key.pem", string(good)+string(privateKey)), "holds a private key"},
		{"FIFO", fifo, "is a FIFO, not a regular file"},
		{"missing", filepath.Join(dir, "none.pem"), "does not exist"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			check := func(who string, err error, setting string) {
				t.Helper()
				if tt.problem == "" {
					if err != nil {
						t.Errorf("%s refused a good CA file: %v", who, err)
					}
					return
				}
				if !errors.Is(err, secretsource.ErrConfig) || !strings.Contains(err.Error(), setting) ||
					!strings.Contains(err.Error(), `CA file "`+tt.path+`"`) || !strings.Contains(err.Error(), tt.problem) {
					t.Errorf("%s: want a config error naming %s, the file and %q, got %v", who, setting, tt.problem, err)
				}
				if err != nil && strings.Contains(err.Error(), "hunter2") {
					t.Errorf("%s: the error quotes the file: %v", who, err)
				}
			}
			t.Setenv("cache_client_region_id", `[{"regionId":"cn-hangzhou","caFilePath":"`+tt.path+`"}]`)
			_, err := LoadSettings(context.Background(), WithoutPropertiesFile())
			check("config", err, "cache_client_region_id[0].caFilePath")

			src, err := kms.New(kms.Config{Region: kms.Region{ID: "cn-hangzhou", CAFile: tt.path}})
			check("kms", err, `region "cn-hangzhou": caFilePath`)
			if src != nil {
				src.Close()
			}
			ds, err := dkms.New(dkms.Config{Endpoint: dkms.Endpoint{RegionID: "cn-hangzhou", Endpoint: "kst-1.example:8443",
				ClientKeyFile: fx.clientKey, Password: fx.clientKeyPassword, CAFile: tt.path}})
			check("dkms", err, "caFile")
			if ds != nil {
				ds.Close()
			}
		})
	}
}
