package testdb

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"testing"

	_ "github.com/go-sql-driver/mysql"
	_ "github.com/jackc/pgx/v5/stdlib"
	"go.uber.org/goleak"

	"github.com/kmsdb/kmsdb/internal/dbrole"
	"github.com/kmsdb/kmsdb/secretsource"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func servers(t *testing.T) []*Server { return []*Server{Postgres(t), MariaDB(t)} }

func TestPasswordEnforced(t *testing.T) {
	RequirePasswordEnforced(t)
}

// TestUsers covers CreateUser, DSN, SetPassword, Lock, ExpirePassword and
// DropUser on both engines, and records the errors each state yields.
func TestUsers(t *testing.T) {
	ctx := context.Background()
	for _, s := range servers(t) {
		t.Run(string(s.Engine()), func(t *testing.T) {
			u := s.CreateUser(t, "Some User!", HardPassword)
			if !strings.HasPrefix(u, "kt_someuser_") {
				t.Errorf("name %q", u)
			}
			if err := s.role.Login(ctx, u, HardPassword); err != nil {
				t.Fatalf("login with a hard password: %v", err)
			}
			// The DSN escapes the password for the engine's driver.
			driverName := "pgx"
			if s.Engine() == EngineMariaDB {
				driverName = "mysql"
			}
			db, err := sql.Open(driverName, s.DSN(u, HardPassword))
			if err != nil {
				t.Fatal(err)
			}
			if err := db.PingContext(ctx); err != nil {
				t.Errorf("DSN login: %v", err)
			}
			db.Close()

			if err := s.SetPassword(ctx, u, "second-pass"); err != nil {
				t.Fatal(err)
			}
			if err := s.role.Login(ctx, u, HardPassword); !s.role.IsAuthFailure(err) {
				t.Errorf("old password after SetPassword: %v, want an auth failure", err)
			}
			if err := s.role.Login(ctx, u, "second-pass"); err != nil {
				t.Errorf("new password: %v", err)
			}

			if err := s.Lock(ctx, u); err != nil {
				t.Fatal(err)
			}
			err = s.role.Login(ctx, u, "second-pass")
			t.Logf("locked: %v", err)
			if s.Engine() == EnginePostgres && dbrole.SQLState(err) != "28000" {
				t.Errorf("locked role: %v, want SQLSTATE 28000", err)
			}
			if s.Engine() == EngineMariaDB && dbrole.ErrorNumber(err) != 4151 && dbrole.ErrorNumber(err) != 3118 {
				t.Errorf("locked account: %v, want error 4151 (MariaDB) or 3118 (MySQL)", err)
			}
			if err := s.Unlock(ctx, u); err != nil {
				t.Fatal(err)
			}
			if err := s.role.Login(ctx, u, "second-pass"); err != nil {
				t.Errorf("after Unlock: %v", err)
			}

			if err := s.ExpirePassword(ctx, u); err != nil {
				t.Fatal(err)
			}
			err = s.role.Login(ctx, u, "second-pass")
			t.Logf("expired password: %v", err)
			if s.Engine() == EnginePostgres && dbrole.SQLState(err) != "28P01" {
				t.Errorf("expired password: %v, want SQLSTATE 28P01", err)
			}

			// A session open when the user is dropped is terminated.
			db, err = sql.Open(driverName, s.DSN(u, "second-pass"))
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			if s.Engine() == EngineMariaDB {
				_ = s.SetPassword(ctx, u, "second-pass") // leave the expired state
			} else {
				_ = s.role.Alter(ctx, u, "VALID UNTIL 'infinity'", "")
			}
			conn, err := db.Conn(ctx)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			if err := s.DropUser(ctx, u); err != nil {
				t.Fatal(err)
			}
			if err := conn.PingContext(ctx); err == nil {
				t.Error("the session of a dropped user still works")
			}
			if err := s.DropUser(ctx, u); err != nil {
				t.Errorf("dropping twice: %v", err)
			}
		})
	}
}

func TestSecrets(t *testing.T) {
	ctx := context.Background()
	st := NewSecrets()
	v1 := st.PutAccount("db", Account{User: "a", Password: "one"})
	v2 := st.PutAccount("db", Account{User: "a", Password: "two"})
	cur, err := st.GetSecret(ctx, "db")
	if err != nil || cur.VersionID() != v2 {
		t.Fatalf("current = %v, %v", cur, err)
	}
	prev, err := st.GetSecretVersion(ctx, "db", secretsource.VersionRef{Stage: secretsource.StagePrevious})
	if err != nil || prev.VersionID() != v1 {
		t.Fatalf("previous = %v, %v", prev, err)
	}
	// The versions hold the accounts put, as Rds secrets.
	for _, tc := range []struct {
		s    *secretsource.Secret
		want string
	}{{cur, "two"}, {prev, "one"}} {
		acct, err := secretsource.DecodeDBAccount(tc.s)
		if err != nil || acct.Username != "a" || acct.Password != tc.want || tc.s.Type() != secretsource.TypeRds {
			t.Errorf("version %s: user %q, password matches: %v, type %q, err %v",
				tc.s.VersionID(), acct.Username, acct.Password == tc.want, tc.s.Type(), err)
		}
	}
	if _, err := st.GetSecret(ctx, "nope"); err == nil {
		t.Error("missing secret found")
	}
	if st.Calls() != 3 {
		t.Errorf("calls = %d", st.Calls())
	}
}

func TestUnreachableServerFailsWithHint(t *testing.T) {
	t.Setenv(EnvPostgresAdminDSN, "postgres://postgres@127.0.0.1:1/postgres?sslmode=disable&connect_timeout=2")
	t.Setenv(EnvMySQLAdminDSN, "root@tcp(127.0.0.1:1)/?timeout=2s")
	for _, e := range []Engine{EnginePostgres, EngineMariaDB} {
		_, err := Open(context.Background(), e)
		if err == nil || !strings.Contains(err.Error(), "scripts/testdb.sh") || !strings.Contains(err.Error(), "does not answer") {
			t.Errorf("%s: %v, want a 'does not answer' error naming scripts/testdb.sh", e, err)
		}
	}
}

// TestAccountNeverPrintsPassword: test logs that print an Account show no password.
func TestAccountNeverPrintsPassword(t *testing.T) {
	a := Account{User: "app", Password: "account-pw-31", Host: "127.0.0.1", Port: 3306, DBName: Database}
	var buf bytes.Buffer
	slog.New(slog.NewTextHandler(&buf, nil)).Info("acct", "v", a, "p", &a)
	outputs := []string{buf.String()}
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x"} {
		outputs = append(outputs, fmt.Sprintf(verb, a), fmt.Sprintf(verb, &a))
	}
	for _, out := range outputs {
		if strings.Contains(out, "account-pw-31") {
			t.Errorf("the password shows: %s", out)
		}
	}
	// The secret value still carries it: PutAccount marshals the JSON.
	b, err := json.Marshal(a)
	if err != nil || !strings.Contains(string(b), `"AccountPassword":"account-pw-31"`) {
		t.Errorf("JSON = %s, %v; want the password in AccountPassword", b, err)
	}
}
