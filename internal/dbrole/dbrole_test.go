package dbrole

import (
	"context"
	"crypto/rand"
	"os"
	"strings"
	"testing"
	"time"
)

func TestQuoting(t *testing.T) {
	if got := myLiteral("a'b\\c\x00"); got != `'a\'b\\c\0'` {
		t.Errorf("myLiteral = %s", got)
	}
	if got := pgLiteral("a'b\\c"); got != `'a''b\c'` {
		t.Errorf("pgLiteral = %s", got)
	}
	if got := myIdent("a`b"); got != "`a``b`" {
		t.Errorf("myIdent = %s", got)
	}
	if got := pgIdent(`a"b`); got != `"a""b"` {
		t.Errorf("pgIdent = %s", got)
	}
	if got := redactStmt("ALTER ROLE x PASSWORD 'secret'"); strings.Contains(got, "secret") {
		t.Errorf("redactStmt = %s", got)
	}
	if got := redactStmt("CREATE ROLE x LOGIN IN ROLE g PASSWORD 'secret'"); strings.Contains(got, "secret") {
		t.Errorf("redactStmt = %s", got)
	}
}

// TestRoleLifecycle: on both local servers a role created with a password
// that breaks naive quoting logs in with it, not with a wrong one, follows
// SetPassword, and is gone after Drop (a second Drop is no error).
func TestRoleLifecycle(t *testing.T) {
	onLocalServers(t, func(t *testing.T, ctx context.Context, _ Config, a *Admin) {
		name := "kt_dbrole_" + strings.ToLower(rand.Text()[:10])
		const pw1, pw2 = `p@ss:/?#%&=+'"\ w ö 密码 end`, "second`pass'\""
		if err := a.Create(ctx, name, pw1); err != nil {
			t.Fatal(err)
		}
		defer func() { _ = a.Drop(context.WithoutCancel(ctx), name) }()
		if err := a.CheckPassword(ctx, name, pw1); err != nil {
			t.Fatal(err)
		}
		if err := a.SetPassword(ctx, name, pw2); err != nil {
			t.Fatal(err)
		}
		if err := a.Login(ctx, name, pw1); !a.IsAuthFailure(err) {
			t.Errorf("old password after SetPassword: %v, want an authentication failure", err)
		}
		if err := a.Login(ctx, name, pw2); err != nil {
			t.Errorf("new password: %v", err)
		}
		if err := a.Drop(ctx, name); err != nil {
			t.Fatal(err)
		}
		if err := a.Login(ctx, name, pw2); err == nil {
			t.Error("a dropped role still logs in")
		}
		if err := a.Drop(ctx, name); err != nil {
			t.Errorf("second Drop: %v", err)
		}
	})
}

// onLocalServers runs test against an Admin of each local server
// (PostgreSQL with the password-auth group, MariaDB), each a subtest with a
// minute's context.
func onLocalServers(t *testing.T, test func(t *testing.T, ctx context.Context, cfg Config, a *Admin)) {
	for _, cfg := range []Config{
		{Engine: Postgres, DSN: pgAdminDSN(), Database: "kmsdb_test", Group: "kmsdb_password_auth"},
		{Engine: MariaDB, DSN: myAdminDSN(), Database: "kmsdb_test"},
	} {
		t.Run(string(cfg.Engine), func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			a, err := Open(ctx, cfg)
			if err != nil {
				t.Fatal(err)
			}
			defer a.Close()
			test(t, ctx, cfg, a)
		})
	}
}

func TestPasswordNeverInErrors(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	a, err := Open(ctx, Config{Engine: Postgres, DSN: pgAdminDSN(), Database: "kmsdb_test"})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	// Creating the same role twice fails; the error shows the statement, not the password.
	name := "kt_dbrole_" + strings.ToLower(rand.Text()[:10])
	if err := a.Create(ctx, name, "first-pw-4711"); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = a.Drop(context.WithoutCancel(ctx), name) }()
	err = a.Create(ctx, name, "second-pw-4711")
	if err == nil || strings.Contains(err.Error(), "pw-4711") {
		t.Errorf("second Create: %v; want an error without the password", err)
	}
}

// The test servers' admin DSNs: internal/testdb's variables, else the local servers.
func pgAdminDSN() string {
	return envOr("KMSDB_TEST_PG_ADMIN_DSN", "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable")
}
func myAdminDSN() string { return envOr("KMSDB_TEST_MYSQL_ADMIN_DSN", "root@tcp(127.0.0.1:3306)/") }

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

// TestEnsure: Ensure creates a missing role (reporting it), then only changes
// the password of the existing one: the old password stops working, the new
// one logs in. On MariaDB a user that exists for one account host only gets
// the other.
func TestEnsure(t *testing.T) {
	onLocalServers(t, func(t *testing.T, ctx context.Context, cfg Config, a *Admin) {
		name := "kt_ensure_" + strings.ToLower(rand.Text()[:10])
		defer func() { _ = a.Drop(context.WithoutCancel(ctx), name) }()
		if ok, err := a.Exists(ctx, name); err != nil || ok {
			t.Fatalf("Exists before: %v %v", ok, err)
		}
		const pw1, pw2 = "first'pw-4711", `second\pw"4711`
		created, err := a.Ensure(ctx, name, pw1)
		if err != nil || !created {
			t.Fatalf("first Ensure: created %v, %v", created, err)
		}
		if err := a.CheckPassword(ctx, name, pw1); err != nil {
			t.Fatal(err)
		}
		created, err = a.Ensure(ctx, name, pw2)
		if err != nil || created {
			t.Fatalf("second Ensure: created %v, %v", created, err)
		}
		if err := a.Login(ctx, name, pw1); !a.IsAuthFailure(err) {
			t.Errorf("old password after Ensure: %v, want an authentication failure", err)
		}
		if err := a.Login(ctx, name, pw2); err != nil {
			t.Errorf("new password: %v", err)
		}
		if ok, err := a.Exists(ctx, name); err != nil || !ok {
			t.Fatalf("Exists after: %v %v", ok, err)
		}
		if cfg.Engine == MariaDB {
			if _, err := a.DB().ExecContext(ctx, "DROP USER "+myAccount(name, "%")); err != nil {
				t.Fatal(err)
			}
			if created, err := a.Ensure(ctx, name, pw1); err != nil || !created {
				t.Fatalf("Ensure with one host missing: created %v, %v", created, err)
			}
			if err := a.Login(ctx, name, pw1); err != nil {
				t.Errorf("after re-creating name@%%: %v", err)
			}
		} else if f := a.HBAFile(ctx); !strings.HasSuffix(f, "pg_hba.conf") {
			t.Errorf("HBAFile = %q", f)
		}
	})
}
