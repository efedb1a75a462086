package cache

// Errors of a cold cache keep their cause: a certificate that does not verify
// is returned at once (it is not retryable), and a caller whose deadline ends
// while the fetch retries learns why the last attempt failed. Real SDK
// (package kms) over real TLS to the emulator or a closed loopback port.

import (
	"context"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/kmsdb/kmsdb/secretsource"
	"github.com/kmsdb/kmsdb/secretsource/kms"
	"github.com/kmsdb/kmsdb/secretsource/kmstest"
)

func kmsSource(t *testing.T, endpoint string, cfg kms.Config) *kms.Source {
	t.Helper()
	cred, err := kms.NewCredential(kms.CredentialOptions{Type: kms.CredentialAccessKey, AccessKeyID: emuAK, AccessKeySecret: emuSecret})
	if err != nil {
		t.Fatal(err)
	}
	cfg.Region, cfg.Credential = kms.Region{ID: "cn-hangzhou", Endpoint: endpoint}, cred
	src, err := kms.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = src.Close() })
	return src
}

// TestColdUntrustedEndpointFailsAtOnce: the emulator's certificate is not
// trusted (no RootCAs). A cold GetSecret returns the TLS error, not the
// caller's deadline after retrying it.
func TestColdUntrustedEndpointFailsAtOnce(t *testing.T) {
	srv := kmstest.Start(t, kmstest.WithAccessKey(emuAK, emuSecret),
		kmstest.WithSecret(kmstest.SecretSpec{Name: emuName, Type: "Rds", Data: emuValue,
			ExtendedConfig: map[string]any{"SecretSubType": "SingleUser"}}))
	c := newTestCache(t, kmsSource(t, srv.KMSTLSAddr(), kms.Config{Timeout: 10 * time.Second}))

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err := c.GetSecret(ctx, emuName)
	if !errors.Is(err, secretsource.ErrTLS) || errors.Is(err, context.DeadlineExceeded) || secretsource.IsRetryable(err) {
		t.Fatalf("want the TLS verification error at once, got %v", err)
	}
	if !strings.Contains(err.Error(), "certificate") || !strings.Contains(err.Error(), "caFilePath") {
		t.Errorf("the error does not say what is wrong and what to set: %v", err)
	}
	t.Log(err)
	if n := srv.Calls(getAction, ""); n != 0 {
		t.Errorf("%d requests reached the untrusted server", n)
	}
}

// TestColdRefusedDeadlineKeepsCause: a refused connection stays retryable;
// when the caller's deadline ends during the retries, the error is the
// deadline and wraps the last attempt's cause.
func TestColdRefusedDeadlineKeepsCause(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	c := newTestCache(t, kmsSource(t, addr, kms.Config{Timeout: 10 * time.Second}))

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_, err = c.GetSecret(ctx, emuName)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("want the deadline, got %v", err)
	}
	if !strings.Contains(err.Error(), "context deadline exceeded (last attempt: ") || !strings.Contains(err.Error(), "connection refused") {
		t.Errorf("the deadline error does not carry the last attempt's cause: %v", err)
	}
	var oe *net.OpError
	if !errors.As(err, &oe) || !errors.Is(err, secretsource.ErrNetwork) {
		t.Errorf("the cause is not reachable with errors.As / errors.Is: %v", err)
	}
	t.Log(err)
	if secretsource.KindOf(err) != secretsource.KindTimeout {
		t.Errorf("kind %v, want timeout", secretsource.KindOf(err))
	}
}
