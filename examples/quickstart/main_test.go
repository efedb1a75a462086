package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/kmsdb/kmsdb/internal/exampletest"
	"github.com/kmsdb/kmsdb/internal/testdb"
	"github.com/kmsdb/kmsdb/secretsource/kmstest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// TestQuickstart runs the quickstart, configured by the environment only, against the emulator over HTTPS and a
// real database that checks the password, while the secret rotates twice; each rotation changes the database
// while the new version is ACSPending, as KMS (and `kmsdb emulator --db-admin`) does. The whole path through
// the real `kmsdb emulator` process is internal/readmetest's TestREADMENewcomerPath.
func TestQuickstart(t *testing.T) {
	for _, eng := range []testdb.Engine{testdb.EngineMariaDB, testdb.EnginePostgres} {
		t.Run(string(eng), func(t *testing.T) {
			db := testdb.MariaDB
			env := map[string]string{"KMSDB_EMULATOR_DB_ENGINE": "mysql"}
			if eng == testdb.EnginePostgres {
				db = testdb.Postgres
				env["KMSDB_EMULATOR_DB_ENGINE"] = "postgres"
			}
			srv := db(t)
			srv.RequirePasswordEnforced(t)
			const password = `quick:/?#%&=+'"\ start` //nolint:gosec // test-only password of a throwaway local role
			user := srv.CreateUser(t, "quick", password)
			env["KMSDB_EMULATOR_DB_DSN"] = "tcp(" + srv.Addr() + ")/" + srv.DBName()
			if eng == testdb.EnginePostgres {
				env["KMSDB_EMULATOR_DB_DSN"] = "postgres://" + srv.Addr() + "/" + srv.DBName() + "?sslmode=disable"
			}
			for k, v := range env {
				t.Setenv(k, v)
			}
			emu := kmstest.Start(t, kmstest.WithAccessKey("LTAItest", "test-secret"),
				kmstest.WithSecret(kmstest.SecretSpec{Name: "db-secret", Type: "Rds",
					Data: fmt.Sprintf(`{"AccountName":%q,"AccountPassword":%q}`, user, password)}))
			emu.OnRotatePending(func(ev kmstest.RotationEvent) error {
				var v struct{ AccountName, AccountPassword string }
				if err := json.Unmarshal([]byte(ev.NewValue), &v); err != nil {
					return err
				}
				return srv.SetPassword(context.Background(), v.AccountName, v.AccountPassword)
			})
			exampletest.UseEmulator(t, emu, "LTAItest", "test-secret")

			var out bytes.Buffer
			done := make(chan error, 1)
			go func() { done <- run(context.Background(), []string{"-for", "3s", "-every", "100ms"}, &out) }()
			for emu.Calls("GetSecretValue", "db-secret") == 0 && len(done) == 0 {
				time.Sleep(10 * time.Millisecond)
			}
			for range 2 {
				time.Sleep(time.Second)
				if _, err := emu.RotateSecret("db-secret"); err != nil {
					t.Fatal(err)
				}
			}
			if err := <-done; err != nil {
				t.Fatalf("%v\noutput:\n%s", err, out.String())
			}
			t.Log(out.String())
			if !regexp.MustCompile(`(?m)^\d+ queries, 0 errors, 2 rotations$`).MatchString(out.String()) ||
				strings.Count(out.String(), "rotation seen: secret version ") != 2 || !strings.Contains(out.String(), " ok as "+user) {
				t.Errorf("output:\n%s", out.String())
			}
			if strings.Contains(out.String(), password) {
				t.Error("the output shows the password")
			}
		})
	}
}

// TestQuickstartFails: a query that fails makes run fail (exit status 1) and says so in the totals.
func TestQuickstartFails(t *testing.T) {
	t.Setenv("KMSDB_EMULATOR_DB_ENGINE", "mysql")
	t.Setenv("KMSDB_EMULATOR_DB_DSN", "tcp(127.0.0.1:1)/nothing?timeout=1s")
	emu := kmstest.Start(t, kmstest.WithAccessKey("LTAItest", "test-secret"),
		kmstest.WithSecret(kmstest.SecretSpec{Name: "db-secret", Type: "Rds",
			Data: `{"AccountName":"nobody","AccountPassword":"pw-4711"}`}))
	exampletest.UseEmulator(t, emu, "LTAItest", "test-secret")
	var out bytes.Buffer
	err := run(context.Background(), []string{"-for", "100ms", "-every", "50ms"}, &out)
	if err == nil || !strings.Contains(out.String(), " errors, 0 rotations") || strings.Contains(out.String(), " 0 errors") {
		t.Fatalf("err %v, output:\n%s", err, out.String())
	}
	if strings.Contains(out.String()+err.Error(), "pw-4711") {
		t.Error("a password is shown")
	}
}
