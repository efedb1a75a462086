package connector

import (
	"context"
	"log/slog"
	"strings"
	"testing"

	"github.com/kmsdb/kmsdb/internal/credtest"
	"github.com/kmsdb/kmsdb/internal/syncbuf"
	"github.com/kmsdb/kmsdb/secretsource/kmstest"
)

// TestDefaultProviderWarns: the default cache is built from the
// environment with no logger; what weakens it (ignoreSslCerts, a local
// source) reaches slog.Default() at Warn instead of vanishing.
func TestDefaultProviderWarns(t *testing.T) {
	credtest.Hermetic(t)
	t.Chdir(t.TempDir()) // no secretsmanager.properties
	for _, k := range []string{"KMSDB_PROPERTIES_FILE", "KMSDB_LOCAL_SECRETS", "KMSDB_LOCAL_SECRETS_FILE", "credentials_type",
		"cache_client_region_id", "cache_client_dkms_config_info"} {
		t.Setenv(k, "")
	}
	capture := func(t *testing.T) *syncbuf.Buffer {
		buf := &syncbuf.Buffer{}
		old := slog.Default()
		slog.SetDefault(slog.New(slog.NewTextHandler(buf, nil)))
		t.Cleanup(func() { slog.SetDefault(old) })
		return buf
	}
	ctx := context.Background()

	t.Run("local secrets", func(t *testing.T) {
		def := capture(t)
		t.Setenv("KMSDB_LOCAL_SECRETS", "true")
		t.Setenv("KMSDB_SECRET_DB_APP", "local-value-not-logged")
		SetDefaultCache(nil)
		defer SetDefaultCache(nil)
		p, err := DefaultCache(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if s, err := p.GetSecret(ctx, "db/app"); err != nil || s.Text() != "local-value-not-logged" {
			t.Fatalf("GetSecret: %v", err)
		}
		out := def.String()
		if !strings.Contains(out, "level=WARN") || !strings.Contains(out, "local source (KMSDB_LOCAL_SECRETS=true)") ||
			strings.Contains(out, "local-value-not-logged") {
			t.Errorf("slog.Default got:\n%s", out)
		}
	})
	t.Run("ignoreSslCerts", func(t *testing.T) {
		def := capture(t)
		ck, err := kmstest.WriteClientKey(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		t.Setenv("DKMS_PW", ck.Password)
		t.Setenv("cache_client_dkms_config_info", `[{"regionId":"cn-hangzhou","endpoint":"127.0.0.1:1","clientKeyFile":"`+
			ck.File+`","passwordFromEnvVariable":"DKMS_PW","ignoreSslCerts":true}]`)
		SetDefaultCache(nil)
		defer SetDefaultCache(nil)
		if _, err := DefaultCache(ctx); err != nil {
			t.Fatal(err)
		}
		out := def.String()
		if !strings.Contains(out, "level=WARN") || !strings.Contains(out, "ignoreSslCerts") || strings.Contains(out, ck.Password) {
			t.Errorf("slog.Default got:\n%s", out)
		}
	})
}
