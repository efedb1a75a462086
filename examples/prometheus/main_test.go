package main

import (
	"context"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/kmsdb/kmsdb/connector"
	"github.com/kmsdb/kmsdb/secretsource/cache"
	"github.com/kmsdb/kmsdb/secretsource/kms"
	"github.com/kmsdb/kmsdb/secretsource/kmstest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// A fetch from the emulator and a login that met a rotation show on
// /metrics in Prometheus' text format, the secret name hashed, no password.
func TestMetricsEndpoint(t *testing.T) {
	const password = "Prom-pass-0001"
	srv := kmstest.Start(t, kmstest.WithAccessKey("LTAIprom", "prom-ak-secret"),
		kmstest.WithSecret(kmstest.SecretSpec{Name: "shop-db", Data: `{"AccountName":"shop","AccountPassword":"` + password + `"}`}))
	cred, err := kms.NewCredential(kms.CredentialOptions{Type: kms.CredentialAccessKey, AccessKeyID: "LTAIprom", AccessKeySecret: "prom-ak-secret"})
	if err != nil {
		t.Fatal(err)
	}
	src, err := kms.New(kms.Config{Region: kms.Region{ID: "cn-hangzhou", Endpoint: srv.KMSTLSAddr()},
		Credential: cred, RootCAs: srv.CertPool(), Timeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	o, handler, shutdown, err := metrics()
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = shutdown(context.Background()) }()
	c, err := cache.New(src, cache.WithHooks(o.Cache))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.GetSecret(context.Background(), "shop-db"); err != nil {
		t.Fatal(err)
	}
	_ = c.Close()
	o.Login(context.Background(), connector.LoginEvent{Secret: "shop-db", Version: "v2", User: "shop", Attempts: 2, Waited: 300 * time.Millisecond})

	rec := httptest.NewRecorder()
	handler.ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	body := rec.Body.String()
	for _, want := range []string{"kmsdb_kms_calls_total", "kmsdb_kms_duration_seconds_bucket", "kmsdb_cache_refreshes_total",
		"kmsdb_logins_total", "kmsdb_auth_failures_total", "kmsdb_rotation_wait_seconds_count", `kmsdb_secret_name="`} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %s:\n%s", want, body)
		}
	}
	for _, never := range []string{password, "prom-ak-secret", "shop-db"} {
		if strings.Contains(body, never) {
			t.Errorf("/metrics shows %q", never)
		}
	}
}

func TestRunNeedsSecret(t *testing.T) {
	if err := run(context.Background(), nil, &strings.Builder{}); err == nil || !strings.Contains(err.Error(), "-secret") {
		t.Errorf("run without -secret: %v", err)
	}
}
