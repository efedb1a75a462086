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
	"os"
	"strings"
	"testing"
	"time"

	"github.com/kmsdb/kmsdb/connector"
	"github.com/kmsdb/kmsdb/internal/testdb"
	"github.com/kmsdb/kmsdb/secretsource/kmstest"
)

// RunFunc is the run function of an example's main package.
type RunFunc func(ctx context.Context, args []string, stdout io.Writer) error

// RunRotating creates a user with a hard password on db, serves it as the
// Rds secret "db-secret" from the emulator over HTTPS, points kmsdb's default
// configuration at it with environment variables only (what
// `kmsdb emulator --print-env` prints), runs run with -dsn dsn for three queries, and
// rotates the secret once the example's cache holds the first version; each
// rotation changes the database password right after the secret. The
// output must contain every string of wants and the user, and never the
// password.
func RunRotating(t *testing.T, db *testdb.Server, dsn string, run RunFunc, wants ...string) {
	t.Helper()
	db.RequirePasswordEnforced(t)
	const password = `ex@mple:/?#%&=+'"\ pw` //nolint:gosec // test-only password of a throwaway local role
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
	UseEmulator(t, srv, "LTAItest", "test-secret")

	var out bytes.Buffer
	done := make(chan error, 1)
	go func() {
		done <- run(context.Background(), []string{"-dsn", dsn, "-queries", "3", "-interval", "300ms"}, &out)
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

// UseEmulator points kmsdb's default configuration at srv's HTTPS gateway for
// the rest of t, through the environment only (as `kmsdb emulator
// --print-env` does): AccessKey id/secret, the region with the emulator's CA
// file, no secretsmanager.properties. The default cache built meanwhile is
// closed when t ends.
func UseEmulator(t *testing.T, srv *kmstest.Server, accessKeyID, accessKeySecret string) {
	t.Helper()
	region, err := json.Marshal([]map[string]string{{"regionId": "cn-hangzhou", "endpoint": srv.KMSTLSAddr(), "caFilePath": srv.CAFile()}})
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range map[string]string{
		"cache_client_region_id":    string(region),
		"credentials_type":          "ak",
		"credentials_access_key_id": accessKeyID,
		"credentials_access_secret": accessKeySecret,
	} {
		t.Setenv(k, v)
	}
	for _, k := range []string{"KMSDB_LOCAL_SECRETS", "KMSDB_LOCAL_SECRETS_FILE", "KMSDB_PROPERTIES_FILE", "cache_client_dkms_config_info"} {
		t.Setenv(k, "")
		_ = os.Unsetenv(k)
	}
	t.Chdir(t.TempDir()) // no secretsmanager.properties
	connector.SetDefaultCache(nil)
	t.Cleanup(func() { connector.SetDefaultCache(nil) })
}
