package kms_test

import (
	"context"
	"errors"
	"log/slog"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/kmsdb/kmsdb/internal/credtest"
	"github.com/kmsdb/kmsdb/internal/syncbuf"
	"github.com/kmsdb/kmsdb/secretsource"
	"github.com/kmsdb/kmsdb/secretsource/kms"
	"github.com/kmsdb/kmsdb/secretsource/kmstest"
)

// regions composes one Source per region with secretsource.Failover, as
// config.Load does; every member logs into the one buffer returned.
func regions(t *testing.T, cfg kms.Config, rs ...kms.Region) (secretsource.Source, *syncbuf.Buffer) {
	t.Helper()
	logs := &syncbuf.Buffer{}
	cfg.Logger = slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	srcs := make([]secretsource.Source, len(rs))
	for i, r := range rs {
		cfg.Region = r
		srcs[i], _ = newSource(t, cfg)
	}
	return secretsource.Failover(srcs...), logs
}

// twoRegions starts two emulators standing for two regions that hold the
// same secret.
func twoRegions(t *testing.T) (a, b *kmstest.Server) {
	t.Helper()
	return startEmulator(t), startEmulator(t)
}

func TestRegionFailover(t *testing.T) {
	credtest.Hermetic(t)
	cases := []struct {
		name  string
		fault kmstest.Fault
	}{
		{"throttled", kmstest.Fault{Action: "GetSecretValue", Code: "Rejected.Throttling"}},
		{"unavailable", kmstest.Fault{Action: "GetSecretValue", Code: "ServiceUnavailableTemporary"}},
		{"internal", kmstest.Fault{Action: "GetSecretValue", Code: "InternalFailure"}},
		{"connection dropped", kmstest.Fault{Action: "GetSecretValue", Drop: true}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			a, b := twoRegions(t)
			a.InjectFault(c.fault)
			src, logs := regions(t, kms.Config{Credential: accessKey(t), RootCAs: pool(a, b)}, tlsRegion(a, "cn-a"), tlsRegion(b, "cn-b"))
			s, err := src.GetSecret(context.Background(), secretName)
			if err != nil {
				t.Fatal(err)
			}
			checkRds(t, s)
			if a.Calls("GetSecretValue", secretName) != 1 || b.Calls("GetSecretValue", secretName) != 1 {
				t.Errorf("calls: a=%d b=%d, want 1 and 1", a.Calls("GetSecretValue", secretName), b.Calls("GetSecretValue", secretName))
			}
			assertNoLeak(t, logs.String())
		})
	}
}

func TestRegionFailoverWhenDown(t *testing.T) {
	credtest.Hermetic(t)
	b := startEmulator(t)
	src, _ := regions(t, kms.Config{Credential: accessKey(t), RootCAs: b.CertPool()}, kms.Region{ID: "cn-a", Endpoint: deadAddr(t)}, tlsRegion(b, "cn-b"))
	s, err := src.GetSecret(context.Background(), secretName)
	if err != nil {
		t.Fatal(err)
	}
	checkRds(t, s)
}

func TestRegionFailoverOnTimeout(t *testing.T) {
	credtest.Hermetic(t)
	a, b := twoRegions(t)
	a.InjectFault(kmstest.Fault{Action: "GetSecretValue", Latency: time.Minute})
	srcA, _ := newSource(t, kms.Config{Region: tlsRegion(a, "cn-a"), Credential: accessKey(t), RootCAs: a.CertPool(), Timeout: 300 * time.Millisecond})
	srcB, _ := newSource(t, kms.Config{Region: tlsRegion(b, "cn-b"), Credential: accessKey(t), RootCAs: b.CertPool(), Timeout: 300 * time.Millisecond})
	if _, err := srcA.GetSecret(context.Background(), secretName); secretsource.KindOf(err) != secretsource.KindTimeout {
		t.Fatalf("region a alone: %v, want a timeout", err)
	}
	s, err := secretsource.Failover(srcA, srcB).GetSecret(context.Background(), secretName)
	if err != nil {
		t.Fatal(err)
	}
	checkRds(t, s)
	if n := a.Calls("GetSecretValue", secretName); n != 2 {
		t.Errorf("region a asked %d times, want 2 (alone, then first in the failover)", n)
	}
}

func TestNoFailoverOnPermanentError(t *testing.T) {
	credtest.Hermetic(t)
	cases := []struct {
		name  string
		setup func(a *kmstest.Server)
		kind  secretsource.Kind
	}{
		{"not found", func(a *kmstest.Server) { _ = a.DeleteSecret(secretName) }, secretsource.KindNotFound},
		{"access denied", func(a *kmstest.Server) {
			a.InjectFault(kmstest.Fault{Action: "GetSecretValue", Code: "Forbidden.NoPermission"})
		}, secretsource.KindAccessDenied},
		{"revoked key", func(a *kmstest.Server) { a.RevokeAccessKey(testAK) }, secretsource.KindInvalidCredentials},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			a, b := twoRegions(t)
			c.setup(a)
			src, logs := regions(t, kms.Config{Credential: accessKey(t), RootCAs: pool(a, b)}, tlsRegion(a, "cn-a"), tlsRegion(b, "cn-b"))
			_, err := src.GetSecret(context.Background(), secretName)
			if secretsource.KindOf(err) != c.kind {
				t.Fatalf("kind %v, want %v: %v", secretsource.KindOf(err), c.kind, err)
			}
			if n := b.Calls("", ""); n != 0 {
				t.Errorf("region b was asked %d times after a permanent error", n)
			}
			assertNoLeak(t, append(chainTexts(err), logs.String())...)
		})
	}
}

func TestAllRegionsFail(t *testing.T) {
	credtest.Hermetic(t)
	a, b := twoRegions(t)
	a.InjectFault(kmstest.Fault{Action: "GetSecretValue", Code: "ServiceUnavailableTemporary"})
	b.InjectFault(kmstest.Fault{Action: "GetSecretValue", Code: "Rejected.Throttling"})
	src, _ := regions(t, kms.Config{Credential: accessKey(t), RootCAs: pool(a, b)}, tlsRegion(a, "cn-a"), tlsRegion(b, "cn-b"))
	_, err := src.GetSecret(context.Background(), secretName)
	var e *secretsource.Error
	if !errors.As(err, &e) || e.Kind != secretsource.KindThrottled || e.Code != "Rejected.Throttling" || e.Region != "cn-b" {
		t.Fatalf("got %v", err)
	}
	if !errors.Is(err, secretsource.ErrUnavailable) || !errors.Is(err, secretsource.ErrThrottled) || !e.Retryable() {
		t.Errorf("each region's failure should be visible: %v", err)
	}
	if !strings.Contains(err.Error(), "2 of 2 sources tried (cn-a ("+a.KMSTLSAddr()+"), cn-b ("+b.KMSTLSAddr()+"))") {
		t.Errorf("message: %v", err)
	}
	// One prefix per layer: the secret is named once, "secretsource" said once.
	if n := strings.Count(err.Error(), strconv.Quote(secretName)); n != 1 {
		t.Errorf("the secret is named %d times: %v", n, err)
	}
	if n := strings.Count(err.Error(), "secretsource:"); n != 1 {
		t.Errorf(`"secretsource:" appears %d times: %v`, n, err)
	}
}

// Failover across two Sources, the way a KMS source and a DKMS source (or two
// KMS accounts) are combined.
func TestFailoverFunction(t *testing.T) {
	credtest.Hermetic(t)
	a, b := twoRegions(t)
	srcA, _ := newSource(t, kms.Config{Region: tlsRegion(a, "cn-a"), Credential: accessKey(t), RootCAs: a.CertPool()})
	srcB, _ := newSource(t, kms.Config{Region: tlsRegion(b, "cn-b"), Credential: accessKey(t), RootCAs: b.CertPool()})
	f := secretsource.Failover(srcA, srcB)
	vs, ok := f.(secretsource.VersionSource)
	if !ok {
		t.Fatal("Failover of VersionSources should be a VersionSource")
	}

	a.InjectFault(kmstest.Fault{Action: "GetSecretValue", Code: "Rejected.Throttling", Times: 1})
	s, err := f.GetSecret(context.Background(), secretName)
	if err != nil {
		t.Fatal(err)
	}
	checkRds(t, s)
	if b.Calls("GetSecretValue", secretName) != 1 {
		t.Errorf("b calls = %d", b.Calls("GetSecretValue", secretName))
	}

	if _, err := b.RotateSecret(secretName); err != nil {
		t.Fatal(err)
	}
	a.InjectFault(kmstest.Fault{Action: "GetSecretValue", Code: "InternalFailure", Times: 1})
	prev, err := vs.GetSecretVersion(context.Background(), secretName, secretsource.VersionRef{Stage: secretsource.StagePrevious})
	if err != nil || prev.Text() != rdsValue {
		t.Fatalf("previous through failover: %v %v", prev, err)
	}

	b.ResetCalls()
	_, err = f.GetSecret(context.Background(), "missing")
	if !errors.Is(err, secretsource.ErrNotFound) || b.Calls("", "") != 0 {
		t.Errorf("not found must not fail over: %v, b calls %d", err, b.Calls("", ""))
	}
}

func TestCancelledContextReturnsAtOnce(t *testing.T) {
	credtest.Hermetic(t)
	srv := startEmulator(t)
	srv.InjectFault(kmstest.Fault{Action: "GetSecretValue", Latency: time.Minute})
	b := startEmulator(t)
	src, _ := regions(t, kms.Config{Credential: accessKey(t), RootCAs: pool(srv, b), Timeout: time.Minute}, tlsRegion(srv, "cn-a"), tlsRegion(b, "cn-b"))

	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		for srv.Calls("GetSecretValue", secretName) == 0 {
			time.Sleep(5 * time.Millisecond)
		}
		cancel()
	}()
	_, err := src.GetSecret(ctx, secretName)
	if !errors.Is(err, context.Canceled) || secretsource.IsRetryable(err) {
		t.Fatalf("want a non-retryable cancellation, got %v", err)
	}
	if b.Calls("", "") != 0 {
		t.Error("a cancelled call must not fail over")
	}

	// A caller deadline is a timeout.
	dctx, dcancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer dcancel()
	_, err = src.GetSecret(dctx, secretName)
	if secretsource.KindOf(err) != secretsource.KindTimeout || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("want a timeout, got %v", err)
	}
}

// The SDK may be blocked before any KMS request, in a credential provider
// that has no context at all: the caller still returns at once.
func TestCancelledContextDuringCredentialFetch(t *testing.T) {
	credtest.Hermetic(t)
	srv := startEmulator(t)
	srv.InjectFault(kmstest.Fault{Action: "credentialsURI", Latency: time.Minute})
	cred, err := kms.NewCredential(kms.CredentialOptions{Type: kms.CredentialCredentialsURI, URL: srv.CredentialsURI()})
	if err != nil {
		t.Fatal(err)
	}
	src, _ := newSource(t, kms.Config{Region: tlsRegion(srv, region), Credential: cred, RootCAs: srv.CertPool()})
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		for srv.Calls("credentialsURI", "") == 0 {
			time.Sleep(5 * time.Millisecond)
		}
		cancel()
	}()
	_, err = src.GetSecret(ctx, secretName)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("want a cancellation, got %v", err)
	}
	// srv.Close (cleanup) ends the injected latency, so the SDK goroutine
	// finishes before goleak looks.
}

func TestClosedSource(t *testing.T) {
	credtest.Hermetic(t)
	srv := startEmulator(t)
	src, _ := newSource(t, kms.Config{Region: tlsRegion(srv, region), Credential: accessKey(t), RootCAs: srv.CertPool()})
	if err := src.Close(); err != nil {
		t.Fatal(err)
	}
	if err := src.Close(); err != nil {
		t.Fatal("Close is not idempotent:", err)
	}
	if _, err := src.GetSecret(context.Background(), secretName); !errors.Is(err, secretsource.ErrConfig) {
		t.Errorf("after Close: %v", err)
	}
}

func TestConcurrentGetSecret(t *testing.T) {
	credtest.Hermetic(t)
	srv := startEmulator(t, kmstest.WithSecret(kmstest.SecretSpec{Name: "other", Data: "x"}))
	credtest.TrustForSTS(t, srv)
	cred, err := kms.NewCredential(kms.CredentialOptions{Type: kms.CredentialRAMRoleARN, AccessKeyID: testAK,
		AccessKeySecret: testSecret, RoleARN: srv.RoleARN(), STSEndpoint: srv.STSAddr()})
	if err != nil {
		t.Fatal(err)
	}
	src, _ := newSource(t, kms.Config{Region: tlsRegion(srv, region), Credential: cred, RootCAs: srv.CertPool()})
	errs := make(chan error, 40)
	for i := range 40 {
		name := secretName
		if i%2 == 1 {
			name = "other"
		}
		go func() {
			_, err := src.GetSecret(context.Background(), name)
			errs <- err
		}()
	}
	for range 40 {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
}

// The core SDK's transport error quotes the signed URL, STS token included:
// none of it may reach the error chain or the logs.
func TestNetworkErrorHidesSignedURL(t *testing.T) {
	credtest.Hermetic(t)
	srv := startEmulator(t)
	cred, err := kms.NewCredential(kms.CredentialOptions{Type: kms.CredentialCredentialsURI, URL: srv.CredentialsURI()})
	if err != nil {
		t.Fatal(err)
	}
	m, err := cred.GetCredential()
	if err != nil {
		t.Fatal(err)
	}
	src, logs := regions(t, kms.Config{Credential: cred, Scheme: "http"}, kms.Region{ID: "cn-a", Endpoint: deadAddr(t)}, kms.Region{ID: "cn-b", Endpoint: deadAddr(t)})
	_, err = src.GetSecret(context.Background(), secretName)
	if secretsource.KindOf(err) != secretsource.KindNetwork {
		t.Fatalf("got %v", err)
	}
	for _, s := range append(chainTexts(err), logs.String()) {
		for _, leak := range []string{*m.SecurityToken, *m.AccessKeySecret, *m.AccessKeyId, "Signature="} {
			if strings.Contains(s, leak) {
				t.Errorf("%q leaks %q", s, leak)
			}
		}
	}
	if !errors.Is(err, syscall.ECONNREFUSED) {
		t.Errorf("the network cause is lost: %v", err)
	}
}
