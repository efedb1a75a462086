package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/kmsdb/kmsdb/internal/testdb"
	"github.com/kmsdb/kmsdb/secretsource/kmstest"
)

const (
	pingTestAK     = "LTAI5tPingTestKey"
	pingTestSecret = "ping-test-secret=="
	// pingPassword has the characters that break naive DSN building.
	pingPassword = `Ping p@ss:/?#%&=+'"\ é`
)

// pingEnv configures `kmsdb ping` through Alibaba's environment variables
// against an emulator holding secret name = {user, password}, and lets
// config.Load trust the emulator's CA.
func pingEnv(t *testing.T, name, user, password string) *kmstest.Server {
	t.Helper()
	v, _ := json.Marshal(map[string]string{"AccountName": user, "AccountPassword": password})
	srv := kmstest.Start(t, kmstest.WithAccessKey(pingTestAK, pingTestSecret),
		kmstest.WithSecret(kmstest.SecretSpec{Name: name, Type: "Rds", Data: string(v)}))
	useEmulator(t, srv, pingTestAK, pingTestSecret)
	return srv
}

func TestPing(t *testing.T) {
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
			user := db.CreateUser(t, "ping", pingPassword)
			pingEnv(t, "db/ping", user, pingPassword)
			ctx := context.Background()

			var out, errb bytes.Buffer
			if err := runPing(ctx, []string{"--engine", engine, "--dsn", dsn, "db/ping"}, &out, &errb); err != nil {
				t.Fatalf("%v\nstderr: %s", err, errb.String())
			}
			got := out.String()
			t.Log(got)
			for _, w := range []string{"ok: ", db.Version(), user, "db/ping", "version v"} {
				if !strings.Contains(got, w) {
					t.Errorf("output lacks %q: %s", w, got)
				}
			}
			if strings.Contains(got+errb.String(), pingPassword) {
				t.Error("the output shows the password")
			}

			// Flags after the secret name, and a wrong password on the database:
			// an error that names the secret, never the password.
			ctx2, cancel := context.WithCancel(ctx)
			defer cancel()
			if err := db.SetPassword(ctx2, user, "not-the-secret's-password"); err != nil {
				t.Fatal(err)
			}
			out.Reset()
			errb.Reset()
			err := runPing(ctx, []string{"db/ping", "--engine", engine, "--dsn", dsn, "--grace", "0"}, &out, &errb)
			if err == nil {
				t.Fatal("ping succeeded with a wrong password")
			}
			if strings.Contains(err.Error(), pingPassword) || strings.Contains(out.String()+errb.String(), pingPassword) {
				t.Errorf("the error shows the password: %v", err)
			}
			if !strings.Contains(err.Error(), "db/ping") || !strings.Contains(err.Error(), "rejected") {
				t.Errorf("the error does not say the credentials of db/ping were rejected: %v", err)
			}
		})
	}
}

func TestPingUsage(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"no secret", []string{"--engine", "mysql"}, "missing SECRET"},
		{"no engine", []string{"db"}, "--engine is required"},
		{"bad engine", []string{"--engine", "oracle", "db"}, `"oracle"`},
		{"two secrets", []string{"--engine", "mysql", "a", "b"}, "one SECRET expected"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out, errb bytes.Buffer
			err := runPing(ctx, tc.args, &out, &errb)
			if !errors.Is(err, errUsage) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("want a usage error with %q, got %v", tc.want, err)
			}
		})
	}
}
