package dkms_test

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kmsdb/kmsdb/internal/syncbuf"
	"github.com/kmsdb/kmsdb/secretsource"
	"github.com/kmsdb/kmsdb/secretsource/dkms"
	"github.com/kmsdb/kmsdb/secretsource/kms"
	"github.com/kmsdb/kmsdb/secretsource/kmstest"
)

const (
	dbPassword = "Pa55w0rd-never-in-logs-91"
	secretName = "db/app"
)

var rdsValue = `{"AccountName":"app","AccountPassword":"` + dbPassword + `"}`

type instance struct {
	srv *kmstest.Server
	key kmstest.ClientKey
}

func startInstance(t *testing.T, opts ...kmstest.Option) instance {
	t.Helper()
	opts = append([]kmstest.Option{kmstest.WithSecret(kmstest.SecretSpec{Name: secretName, Type: "Rds", Data: rdsValue,
		ExtendedConfig: map[string]any{"SecretSubType": "SingleUser"}})}, opts...)
	srv := kmstest.Start(t, opts...)
	ck, err := srv.NewClientKey()
	if err != nil {
		t.Fatal(err)
	}
	return instance{srv, ck}
}

func (in instance) endpoint() dkms.Endpoint {
	return dkms.Endpoint{RegionID: "cn-hangzhou", Endpoint: in.srv.DKMSAddr(), ClientKeyFile: in.key.File,
		Password: in.key.Password, CAFile: in.srv.CAFile()}
}

func newSource(t *testing.T, cfg dkms.Config) (*dkms.Source, *syncbuf.Buffer) {
	t.Helper()
	logs := &syncbuf.Buffer{}
	cfg.Logger = slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	if cfg.Timeout == 0 {
		cfg.Timeout = 10 * time.Second
	}
	s, err := dkms.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s, logs
}

func assertNoLeak(t *testing.T, passwords []string, texts ...string) {
	t.Helper()
	for _, s := range texts {
		for _, p := range append([]string{dbPassword}, passwords...) {
			if p != "" && strings.Contains(s, p) {
				t.Errorf("output leaks a secret: %s", s)
			}
		}
	}
}

func checkRds(t *testing.T, s *secretsource.Secret) {
	t.Helper()
	if s.Name() != secretName || s.Text() != rdsValue || s.Type() != "Rds" || s.VersionID() == "" ||
		!s.HasStage(secretsource.StageCurrent) || s.CreateTime().IsZero() {
		t.Fatalf("unexpected secret %v stages=%v", s, s.VersionStages())
	}
}

func deadAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close()
	return addr
}

func TestGetSecret(t *testing.T) {
	in := startInstance(t)
	src, logs := newSource(t, dkms.Config{Endpoint: in.endpoint(), FetchExtendedConfig: true})
	s, err := src.GetSecret(context.Background(), secretName)
	if err != nil {
		t.Fatal(err)
	}
	checkRds(t, s)
	if !strings.Contains(s.ExtendedConfig(), "SingleUser") {
		t.Errorf("ExtendedConfig = %q", s.ExtendedConfig())
	}
	if o := s.Origin(); o.Source != "dkms" || o.Region != "cn-hangzhou" || o.Endpoint != in.srv.DKMSAddr() || o.RequestID == "" {
		t.Errorf("Origin = %+v, want dkms, cn-hangzhou, endpoint %s and a request id", o, in.srv.DKMSAddr())
	}
	if _, err := in.srv.RotateSecret(secretName); err != nil {
		t.Fatal(err)
	}
	prev, err := src.GetSecretVersion(context.Background(), secretName, secretsource.VersionRef{Stage: secretsource.StagePrevious})
	if err != nil || prev.Text() != rdsValue || !prev.HasStage(secretsource.StagePrevious) {
		t.Fatalf("previous: %v %v", prev, err)
	}
	assertNoLeak(t, []string{in.key.Password}, logs.String())
}

func TestIgnoreSSLCertsWarnsOnce(t *testing.T) {
	in := startInstance(t)
	ep := in.endpoint()
	ep.CAFile, ep.IgnoreSSLCerts = "", true
	src, logs := newSource(t, dkms.Config{Endpoint: ep})
	for range 3 {
		if _, err := src.GetSecret(context.Background(), secretName); err != nil {
			t.Fatal(err)
		}
	}
	if n := strings.Count(logs.String(), "verification is OFF"); n != 1 {
		t.Errorf("want exactly one warning, got %d: %s", n, logs)
	}
}

func TestTLSVerifiedByDefault(t *testing.T) {
	in := startInstance(t)
	ep := in.endpoint()
	ep.CAFile = ""
	src, _ := newSource(t, dkms.Config{Endpoint: ep})
	_, err := src.GetSecret(context.Background(), secretName)
	if secretsource.KindOf(err) != secretsource.KindTLS || secretsource.IsRetryable(err) || !strings.Contains(err.Error(), "TLS") {
		t.Fatalf("want a TLS error, got %v", err)
	}
}

func TestErrors(t *testing.T) {
	in := startInstance(t)
	src, logs := newSource(t, dkms.Config{Endpoint: in.endpoint()})
	_, err := src.GetSecret(context.Background(), "missing")
	var e *secretsource.Error
	if !errors.As(err, &e) || e.Kind != secretsource.KindNotFound || e.Code == "" || e.RequestID == "" || e.Secret != "missing" {
		t.Fatalf("not found: %#v", err)
	}

	in.srv.RevokeClientKey(in.key.KeyID)
	_, err = src.GetSecret(context.Background(), secretName)
	if secretsource.KindOf(err) != secretsource.KindInvalidCredentials || secretsource.IsRetryable(err) {
		t.Fatalf("revoked key: %v", err)
	}
	assertNoLeak(t, []string{in.key.Password}, err.Error(), logs.String())
}

func TestSDKRetriesOff(t *testing.T) {
	in := startInstance(t)
	in.srv.InjectFault(kmstest.Fault{Action: "dkms:GetSecretValue", Code: "Rejected.Throttling"})
	src, _ := newSource(t, dkms.Config{Endpoint: in.endpoint()})
	_, err := src.GetSecret(context.Background(), secretName)
	var e *secretsource.Error
	if !errors.As(err, &e) || e.Kind != secretsource.KindThrottled || e.Code != "Rejected.Throttling" || !e.Retryable() {
		t.Fatalf("got %v", err)
	}
	if n := in.srv.Calls("dkms:GetSecretValue", secretName); n != 1 {
		t.Errorf("the SDK retried: %d calls", n)
	}
}

// TestFailover: one Source per endpoint composed with secretsource.Failover
// (as config.Load does) moves on after a retryable failure only.
func TestFailover(t *testing.T) {
	cases := []struct {
		name  string
		setup func(a instance, ep *dkms.Endpoint)
	}{
		{"throttled", func(a instance, _ *dkms.Endpoint) {
			a.srv.InjectFault(kmstest.Fault{Action: "dkms:GetSecretValue", Code: "Rejected.Throttling"})
		}},
		{"unavailable", func(a instance, _ *dkms.Endpoint) {
			a.srv.InjectFault(kmstest.Fault{Action: "dkms:GetSecretValue", Code: "ServiceUnavailableTemporary"})
		}},
		{"down", func(_ instance, ep *dkms.Endpoint) { ep.Endpoint = deadAddr(t) }},
	}
	a, b := startInstance(t), startInstance(t) // shared: each case resets faults and counters
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			a.srv.ClearFaults()
			a.srv.ResetCalls()
			b.srv.ResetCalls()
			epA := a.endpoint()
			c.setup(a, &epA)
			srcA, logs := newSource(t, dkms.Config{Endpoint: epA})
			srcB, _ := newSource(t, dkms.Config{Endpoint: b.endpoint()})
			s, err := secretsource.Failover(srcA, srcB).GetSecret(context.Background(), secretName)
			if err != nil {
				t.Fatal(err)
			}
			checkRds(t, s)
			if b.srv.Calls("dkms:GetSecretValue", secretName) != 1 {
				t.Errorf("b calls = %d", b.srv.Calls("dkms:GetSecretValue", secretName))
			}
			assertNoLeak(t, []string{a.key.Password, b.key.Password}, logs.String())
		})
	}
	t.Run("no failover on not found", func(t *testing.T) {
		a.srv.ClearFaults()
		b.srv.ResetCalls()
		if err := a.srv.DeleteSecret(secretName); err != nil {
			t.Fatal(err)
		}
		srcA, _ := newSource(t, dkms.Config{Endpoint: a.endpoint()})
		srcB, _ := newSource(t, dkms.Config{Endpoint: b.endpoint()})
		_, err := secretsource.Failover(srcA, srcB).GetSecret(context.Background(), secretName)
		if !errors.Is(err, secretsource.ErrNotFound) || b.srv.Calls("", "") != 0 {
			t.Fatalf("got %v, b calls %d", err, b.srv.Calls("", ""))
		}
	})
}

func TestCancelledContext(t *testing.T) {
	in := startInstance(t)
	in.srv.InjectFault(kmstest.Fault{Action: "dkms:GetSecretValue", Latency: time.Minute})
	src, _ := newSource(t, dkms.Config{Endpoint: in.endpoint(), Timeout: time.Minute})
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		for in.srv.Calls("dkms:GetSecretValue", "") == 0 {
			time.Sleep(5 * time.Millisecond)
		}
		cancel()
	}()
	_, err := src.GetSecret(ctx, secretName)
	if !errors.Is(err, context.Canceled) || secretsource.IsRetryable(err) {
		t.Fatalf("want a cancellation, got %v", err)
	}
	// A second caller, queued behind the stuck request, also leaves on its deadline.
	dctx, dcancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer dcancel()
	_, err = src.GetSecret(dctx, secretName)
	if secretsource.KindOf(err) != secretsource.KindTimeout {
		t.Fatalf("want a timeout, got %v", err)
	}
	// Cleanup closes the emulator, which ends the injected latency and the SDK goroutine.
}

func TestConfigErrors(t *testing.T) {
	in := startInstance(t)
	dir := t.TempDir()
	notPEM := filepath.Join(dir, "ca.txt")
	if err := os.WriteFile(notPEM, []byte("hello"), 0o600); err != nil {
		t.Fatal(err)
	}
	badKey := filepath.Join(dir, "key.json")
	if err := os.WriteFile(badKey, []byte(`{"KeyId":"KAAP.x","PrivateKeyData":"bm90IHBrY3MxMg=="}`), 0o600); err != nil {
		t.Fatal(err)
	}
	const wrongPassword = "wrong-pass-hunter2"
	cases := []struct {
		name string
		edit func(*dkms.Endpoint)
		want string
	}{
		{"no endpoint", func(e *dkms.Endpoint) { e.Endpoint = "" }, "endpoint is empty"},
		{"endpoint with path", func(e *dkms.Endpoint) { e.Endpoint = "host/x" }, "host[:port]"},
		{"endpoint with userinfo", func(e *dkms.Endpoint) { e.Endpoint = "https://kst:" + wrongPassword + "@kst-1.example" }, "holds '@'"},
		{"no client key", func(e *dkms.Endpoint) { e.ClientKeyFile = "" }, "clientKeyFile is empty"},
		{"no password", func(e *dkms.Endpoint) { e.Password = "" }, "no password"},
		{"unreadable client key", func(e *dkms.Endpoint) { e.ClientKeyFile = filepath.Join(dir, "none.json") }, "none.json"},
		{"wrong password", func(e *dkms.Endpoint) { e.Password = wrongPassword }, "wrong password"},
		{"not a PKCS#12", func(e *dkms.Endpoint) { e.ClientKeyFile = badKey }, "key.json"},
		{"missing CA file", func(e *dkms.Endpoint) { e.CAFile = filepath.Join(dir, "none.pem") }, "none.pem"},
		{"CA file not PEM", func(e *dkms.Endpoint) { e.CAFile = notPEM }, "holds no PEM certificate"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ep := in.endpoint()
			c.edit(&ep)
			_, err := dkms.New(dkms.Config{Endpoint: ep})
			if !errors.Is(err, secretsource.ErrConfig) || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("got %v, want a config error mentioning %q", err, c.want)
			}
			assertNoLeak(t, []string{wrongPassword, in.key.Password}, err.Error())
		})
	}
	if _, err := dkms.New(dkms.Config{}); !errors.Is(err, secretsource.ErrConfig) {
		t.Errorf("empty config: %v", err)
	}
}

// A dedicated instance first, the shared gateway as the fallback: the mix
// Alibaba's secret client allows, through secretsource.Failover.
func TestFailoverToSharedGateway(t *testing.T) {
	in := startInstance(t, kmstest.WithAccessKey("LTAI-dkms-test", "ak-secret-never-logged"))
	in.srv.InjectFault(kmstest.Fault{Action: "dkms:GetSecretValue", Code: "ServiceUnavailableTemporary"})
	dsrc, _ := newSource(t, dkms.Config{Endpoint: in.endpoint()})
	cred, err := kms.NewCredential(kms.CredentialOptions{Type: kms.CredentialAccessKey, AccessKeyID: "LTAI-dkms-test",
		AccessKeySecret: "ak-secret-never-logged"})
	if err != nil {
		t.Fatal(err)
	}
	ksrc, err := kms.New(kms.Config{Region: kms.Region{ID: "cn-hangzhou", Endpoint: in.srv.KMSTLSAddr()},
		Credential: cred, RootCAs: in.srv.CertPool()})
	if err != nil {
		t.Fatal(err)
	}
	defer ksrc.Close()
	s, err := secretsource.Failover(dsrc, ksrc).GetSecret(context.Background(), secretName)
	if err != nil {
		t.Fatal(err)
	}
	checkRds(t, s)
	if in.srv.Calls("dkms:GetSecretValue", secretName) != 1 || in.srv.Calls("GetSecretValue", secretName) != 1 {
		t.Errorf("calls: dkms %d, kms %d", in.srv.Calls("dkms:GetSecretValue", secretName), in.srv.Calls("GetSecretValue", secretName))
	}
}

// Concurrent callers on two Sources sharing one endpoint: the Tea runtime's
// shared client must not race (run with -race).
func TestConcurrentGetSecret(t *testing.T) {
	in := startInstance(t)
	a, _ := newSource(t, dkms.Config{Endpoint: in.endpoint()})
	b, _ := newSource(t, dkms.Config{Endpoint: in.endpoint()})
	errs := make(chan error, 20)
	for i := range 20 {
		src := a
		if i%2 == 1 {
			src = b
		}
		go func() {
			_, err := src.GetSecret(context.Background(), secretName)
			errs <- err
		}()
	}
	for range 20 {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
}
