package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/kmsdb/kmsdb/internal/testdb"
	"github.com/kmsdb/kmsdb/secretsource/kmstest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// The example runs against the emulator (HTTPS, its CA given by
// KMSDB_EXAMPLE_CA_FILE) and a real database that checks the password,
// configured by environment variables only, and its password rotates
// between two queries.
func TestRunAgainstEmulator(t *testing.T) {
	db := testdb.Postgres(t)
	db.RequirePasswordEnforced(t)
	const password = `ex@mple:/?#%&=+'"\ pw`
	user := db.CreateUser(t, "example", password)
	srv := kmstest.Start(t, kmstest.WithAccessKey("LTAItest", "test-secret"),
		kmstest.WithSecret(kmstest.SecretSpec{Name: "db-secret", Type: "Rds",
			Data: fmt.Sprintf(`{"AccountName":%q,"AccountPassword":%q}`, user, password)}))
	// Each rotation changes the database password right after the secret.
	srv.OnRotate(func(ev kmstest.RotationEvent) {
		if ev.Phase != "after" {
			return
		}
		var v struct{ AccountName, AccountPassword string }
		if err := jsonUnmarshal(ev.NewValue, &v); err != nil {
			t.Error(err)
			return
		}
		if err := db.SetPassword(context.Background(), v.AccountName, v.AccountPassword); err != nil {
			t.Error(err)
		}
	})
	env := map[string]string{
		"cache_client_region_id":    fmt.Sprintf(`[{"regionId":"cn-hangzhou","endpoint":%q}]`, srv.KMSTLSAddr()),
		"credentials_type":          "ak",
		"credentials_access_key_id": "LTAItest",
		"credentials_access_secret": "test-secret",
		"KMSDB_EXAMPLE_CA_FILE":     srv.CAFile(),
	}
	lookup := func(k string) (string, bool) { v, ok := env[k]; return v, ok }
	t.Chdir(t.TempDir()) // no secretsmanager.properties

	var out bytes.Buffer
	done := make(chan error, 1)
	go func() {
		done <- run(context.Background(), []string{"-dsn", "postgres://" + db.Addr() + "/" + db.DBName() + "?sslmode=disable", "-queries", "3", "-interval", "300ms"}, lookup, &out)
	}()
	// Rotate while the example runs: once its cache holds the first version.
	for srv.Calls("GetSecretValue", "db-secret") == 0 && len(done) == 0 {
		time.Sleep(10 * time.Millisecond)
	}
	if _, err := srv.RotateSecret("db-secret"); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatalf("%v\noutput:\n%s", err, out.String())
	}
	t.Log(out.String())
	for _, w := range []string{"query 3: PostgreSQL ", user} {
		if !strings.Contains(out.String(), w) {
			t.Errorf("output lacks %q:\n%s", w, out.String())
		}
	}
	if strings.Contains(out.String(), password) {
		t.Error("the output shows the password")
	}
}

func jsonUnmarshal(s string, v any) error { return json.Unmarshal([]byte(s), v) }
