package main

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"os"
	"strings"
	"testing"

	"github.com/kmsdb/kmsdb/internal/credtest"
	"github.com/kmsdb/kmsdb/internal/syncbuf"
	"github.com/kmsdb/kmsdb/internal/testdb"
	"github.com/kmsdb/kmsdb/secretsource/config"
)

// TestCommandsPrintConfigWarnings: get and ping print the configuration's
// warnings on stderr (the user running them is the one to tell), never a
// value; nothing goes to slog.Default.
func TestCommandsPrintConfigWarnings(t *testing.T) {
	def := &syncbuf.Buffer{}
	old := slog.Default()
	slog.SetDefault(slog.New(slog.NewTextHandler(def, nil)))
	t.Cleanup(func() { slog.SetDefault(old) })
	ctx := context.Background()

	t.Run("get: unknown key", func(t *testing.T) {
		getEnv(t) // the working directory is now a fresh one
		if err := os.WriteFile(config.DefaultPropertiesFile, []byte("# shared with the Java client\nrefresh_secret_tll=60000\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		var out, errb bytes.Buffer
		if err := runGet(ctx, []string{"db/app"}, &out, &errb); err != nil {
			t.Fatalf("%v\nstderr: %s", err, errb.String())
		}
		want := "kmsdb: warning: kmsdb config: properties file secretsmanager.properties line 2: unknown key ignored (did you mean refresh_secret_ttl?)\n"
		if errb.String() != want {
			t.Errorf("stderr %q\nwant %q", errb.String(), want)
		}
	})
	t.Run("ping: local secrets", func(t *testing.T) {
		db := testdb.MariaDB(t)
		user := db.CreateUser(t, "warn", pingPassword)
		account, _ := json.Marshal(map[string]string{"AccountName": user, "AccountPassword": pingPassword})
		credtest.Hermetic(t)
		t.Chdir(t.TempDir())
		for _, k := range []string{"KMSDB_PROPERTIES_FILE", "KMSDB_LOCAL_SECRETS_FILE", "credentials_type", "cache_client_region_id", "cache_client_dkms_config_info"} {
			t.Setenv(k, "")
		}
		t.Setenv("KMSDB_LOCAL_SECRETS", "true")
		t.Setenv("KMSDB_SECRET_DB_WARN", string(account))
		var out, errb bytes.Buffer
		if err := runPing(ctx, []string{"--engine", "mysql", "--dsn", "tcp(" + db.Addr() + ")/" + db.DBName(), "db/warn"}, &out, &errb); err != nil {
			t.Fatalf("%v\nstderr: %s", err, errb.String())
		}
		if !strings.Contains(errb.String(), "kmsdb: warning: kmsdb config: secrets are served by a local source (KMSDB_LOCAL_SECRETS=true), not by KMS") {
			t.Errorf("stderr %q", errb.String())
		}
		if strings.Contains(out.String()+errb.String(), pingPassword) {
			t.Error("the output shows the password")
		}
	})
	if def.String() != "" {
		t.Errorf("slog.Default got lines: %s", def.String())
	}
}
