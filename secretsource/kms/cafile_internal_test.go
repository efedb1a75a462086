package kms

import (
	"crypto/x509"
	"encoding/pem"
	"os"
	"testing"
	"time"

	"github.com/kmsdb/kmsdb/secretsource/kmstest"
)

// TestRootsWithCAFileKeepsSystemRoots: a region's CA file adds to a copy of the
// system roots (a public endpoint in the same process still verifies) and
// leaves the system pool itself alone.
func TestRootsWithCAFileKeepsSystemRoots(t *testing.T) {
	sysRoot := aSystemRoot(t)
	srv := kmstest.Start(t)
	pool, err := rootsWithCAFile(nil, "cn-test", srv.CAFile())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sysRoot.Verify(x509.VerifyOptions{Roots: pool}); err != nil {
		t.Errorf("a system root is not trusted by the region's pool: %v", err)
	}
	block, _ := pem.Decode(srv.CACertPEM())
	ca, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ca.Verify(x509.VerifyOptions{Roots: pool}); err != nil {
		t.Errorf("the CA file's certificate is not trusted: %v", err)
	}
	sys, err := x509.SystemCertPool()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ca.Verify(x509.VerifyOptions{Roots: sys}); err == nil {
		t.Error("the system pool trusts the emulator's CA")
	}
}

// aSystemRoot returns a valid self-signed certificate of the system bundle.
func aSystemRoot(t *testing.T) *x509.Certificate {
	t.Helper()
	b, err := os.ReadFile("/etc/ssl/certs/ca-certificates.crt")
	if err != nil {
		t.Skipf("no system CA bundle: %v", err)
	}
	for rest := b; ; {
		var block *pem.Block
		if block, rest = pem.Decode(rest); block == nil {
			t.Skip("no valid root in the system bundle")
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err == nil && c.IsCA && time.Now().Before(c.NotAfter) && time.Now().After(c.NotBefore) &&
			c.CheckSignatureFrom(c) == nil {
			return c
		}
	}
}
