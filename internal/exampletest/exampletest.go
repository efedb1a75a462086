// Package exampletest runs the database examples (examples/mysql, postgres,
// pgxpool) the way a user would: configured by environment variables only,
// against the emulator over HTTPS and a real database that checks the
// password, with a rotation while they run.
package exampletest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/kmsdb/kmsdb/internal/testdb"
	"github.com/kmsdb/kmsdb/secretsource/kmstest"
)

// RunFunc is the run function of an example's main package.
type RunFunc func(ctx context.Context, args []string, lookupEnv func(string) (string, bool), stdout io.Writer) error

// RunRotating creates a user with a hard password on db, serves it as the
// Rds secret "db-secret" from the emulator (its CA given by
// KMSDB_EXAMPLE_CA_FILE), runs run with -dsn dsn for three queries, and
// rotates the secret once the example's cache holds the first version; each
// rotation changes the database password right after the secret. The
// output must contain every string of wants and the user, and never the
// password.
func RunRotating(t *testing.T, db *testdb.Server, dsn string, run RunFunc, wants ...string) {
	t.Helper()
	db.RequirePasswordEnforced(t)
	const password = `ex@mple:/?#%&=+'"\ pw`
	user := db.CreateUser(t, "example", password)
	srv := kmstest.Start(t, kmstest.WithAccessKey("LTAItest", "test-secret"),
		kmstest.WithSecret(kmstest.SecretSpec{Name: "db-secret", Type: "Rds",
			Data: fmt.Sprintf(`{"AccountName":%q,"AccountPassword":%q}`, user, password)}))
	srv.OnRotate(func(ev kmstest.RotationEvent) {
		if ev.Phase != "after" {
			return
		}
		var v struct{ AccountName, AccountPassword string }
		if err := json.Unmarshal([]byte(ev.NewValue), &v); err != nil {
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
		done <- run(context.Background(), []string{"-dsn", dsn, "-queries", "3", "-interval", "300ms"}, lookup, &out)
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
	for _, w := range append(wants, user) {
		if !strings.Contains(out.String(), w) {
			t.Errorf("output lacks %q:\n%s", w, out.String())
		}
	}
	if strings.Contains(out.String(), password) {
		t.Error("the output shows the password")
	}
}
