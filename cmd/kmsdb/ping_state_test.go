package main

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/kmsdb/kmsdb/internal/testdb"
)

// TestPingStates: ping tells "ok" (exit 0), "previous" (exit 3: the database rejects ACSCurrent and only
// ACSPrevious logs in, a half-done rotation) and "failed" (exit 1) apart, in its message and its exit status.
func TestPingStates(t *testing.T) {
	for _, engine := range []string{"postgres", "mysql"} {
		t.Run(engine, func(t *testing.T) {
			var db *testdb.Server
			var dsn string
			if engine == "postgres" {
				db = testdb.Postgres(t)
				dsn = "postgres://" + db.Addr() + "/" + db.DBName() + "?sslmode=disable"
			} else {
				db = testdb.MariaDB(t)
				dsn = "tcp(" + db.Addr() + ")/" + db.DBName()
			}
			db.RequirePasswordEnforced(t)
			user := db.CreateUser(t, "pingst", pingPassword)
			srv := pingEnv(t, "db/state", user, pingPassword)
			// A generous --grace: reaching ACSPrevious takes the secret's rate-limited refreshes (about 2 s on a
			// cold cache), and this test is about the outcome, not the wait.
			ping := func(grace string) (int, string, string) {
				var out, errb bytes.Buffer
				code := runMain(context.Background(), []string{"ping", "--engine", engine, "--dsn", dsn, "--grace", grace, "db/state"}, &out, &errb)
				if strings.Contains(out.String()+errb.String(), pingPassword) {
					t.Error("the output shows the password")
				}
				return code, out.String(), errb.String()
			}

			if code, out, errOut := ping("10s"); code != 0 || !strings.HasPrefix(out, "ok: ") {
				t.Fatalf("ok: exit %d\nstdout: %s\nstderr: %s", code, out, errOut)
			}

			// The secret rotates to a password the database does not have: ACSPrevious stands in.
			state, _ := srv.Secret("db/state")
			v, _ := json.Marshal(map[string]string{"AccountName": user, "AccountPassword": "not-on-the-database"})
			if err := srv.AddVersion("db/state", string(v), "v-new"); err != nil {
				t.Fatal(err)
			}
			code, out, errOut := ping("10s")
			t.Logf("exit %d\nstdout: %sstderr: %s", code, out, errOut)
			if code != exitPreviousOnly || !strings.HasPrefix(out, "previous: ") ||
				!strings.Contains(out, "ACSPrevious version "+state.CurrentVersionID) || !strings.Contains(out, "ACSCurrent (version v-new) is rejected") {
				t.Fatalf("previous: exit %d, want %d\nstdout: %s\nstderr: %s", code, exitPreviousOnly, out, errOut)
			}
			if !strings.Contains(errOut, "kmsdb ping: ") || !strings.Contains(errOut, "rotation is half done") {
				t.Errorf("stderr does not explain the state: %s", errOut)
			}

			// Neither version logs in: failed.
			ctx := context.Background()
			if err := db.SetPassword(ctx, user, "neither-version"); err != nil {
				t.Fatal(err)
			}
			code, out, errOut = ping("0s")
			if code != 1 || out != "" || !strings.Contains(errOut, "rejected") {
				t.Fatalf("failed: exit %d\nstdout: %s\nstderr: %s", code, out, errOut)
			}
		})
	}
}
