package connector

import (
	"context"
	"testing"
	"time"

	"github.com/kmsdb/kmsdb/internal/credtest"
	"github.com/kmsdb/kmsdb/secretsource/config"
	"github.com/kmsdb/kmsdb/secretsource/kmstest"
)

// TestDefaultProviderFollowsTheConfiguration: refresh_secret_ttl sets the
// default cache's TTL (with the default of 5 minutes the secret would not be
// fetched again during the test) and the secrets of secret_names are fetched
// at start, before anyone asks for them.
func TestDefaultProviderFollowsTheConfiguration(t *testing.T) {
	srv := kmstest.Start(t, kmstest.WithAccessKey("LTAIprovider", "provider-secret"),
		kmstest.WithSecret(kmstest.SecretSpec{Name: "app-a", Data: "value-a"}),
		kmstest.WithSecret(kmstest.SecretSpec{Name: "app-b", Data: "value-b"}))
	credtest.Hermetic(t)
	t.Chdir(t.TempDir())
	t.Setenv("KMSDB_PROPERTIES_FILE", "")
	t.Setenv("credentials_type", "ak")
	t.Setenv("credentials_access_key_id", "LTAIprovider")
	t.Setenv("credentials_access_secret", "provider-secret")
	t.Setenv("cache_client_region_id", `[{"regionId":"cn-hangzhou","endpoint":"`+srv.KMSTLSAddr()+`"}]`)
	t.Setenv("refresh_secret_ttl", "200")
	t.Setenv("secret_names", "app-a, app-b")
	old := loadSettings
	loadSettings = func(ctx context.Context, opts ...config.Option) (*config.Settings, error) {
		return config.LoadSettings(ctx, append(opts, config.WithRootCAs(srv.CertPool()))...)
	}
	SetDefaultCache(nil)
	t.Cleanup(func() { SetDefaultCache(nil); loadSettings = old })

	if _, err := DefaultCache(context.Background()); err != nil {
		t.Fatal(err)
	}
	// Waits, not timed asserts: each condition fails only if it never holds.
	waitFor(t, "secret_names fetched at start", func() bool {
		return srv.Calls("GetSecretValue", "app-a") >= 1 && srv.Calls("GetSecretValue", "app-b") >= 1
	})
	waitFor(t, "refreshes at the refresh_secret_ttl pace", func() bool {
		return srv.Calls("GetSecretValue", "app-a") >= 4
	})
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting: %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
