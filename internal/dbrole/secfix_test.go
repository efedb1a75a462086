package dbrole

import (
	"context"
	"crypto/rand"
	"database/sql"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
)

// TestScrubServerErrors: real server errors whose text holds the password
// (a syntax error quoting the statement on MariaDB, a failed cast on
// PostgreSQL) come out of scrubErr/pgScrub without it, and keep their error
// number / SQLSTATE.
func TestScrubServerErrors(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	const pw = `sEcr3t'pw\x-4711`
	t.Run("mariadb", func(t *testing.T) {
		a, err := Open(ctx, Config{Engine: MariaDB, DSN: myAdminDSN(), Database: "kmsdb_test"})
		if err != nil {
			t.Fatal(err)
		}
		defer a.Close()
		// As a server that rejects ALTER USER ... IDENTIFIED BY answers:
		// "... near 'IDENTIFIED BY '<pw>'' at line 1".
		err = a.myWithSession(ctx, func(conn *sql.Conn) error {
			_, err := conn.ExecContext(ctx, "ALTER USER 'x'@'%' IDENTIFED BY "+myLiteral(pw))
			return err
		})
		if err == nil || !strings.Contains(err.Error(), "sEcr3t") {
			t.Fatalf("the forced error does not hold the password (test broken): %v", err)
		}
		got := scrubErr(err, pw)
		if strings.Contains(got.Error(), "sEcr3t") {
			t.Errorf("scrubbed error still holds the password: %v", got)
		}
		if ErrorNumber(got) != ErrorNumber(err) || ErrorNumber(got) == 0 {
			t.Errorf("error number %d, want %d", ErrorNumber(got), ErrorNumber(err))
		}
	})
	t.Run("postgres", func(t *testing.T) {
		a, err := Open(ctx, Config{Engine: Postgres, DSN: pgAdminDSN(), Database: "kmsdb_test"})
		if err != nil {
			t.Fatal(err)
		}
		defer a.Close()
		err = a.pgTx(ctx, "forced", func(tx *sql.Tx) error {
			_, err := tx.ExecContext(ctx, "SELECT "+pgLiteral(pw)+"::int")
			return err
		})
		if err == nil || !strings.Contains(err.Error(), "sEcr3t") {
			t.Fatalf("the forced error does not hold the password (test broken): %v", err)
		}
		got := pgScrub(err, pw)
		if strings.Contains(got.Error(), "sEcr3t") {
			t.Errorf("scrubbed error still holds the password: %v", got)
		}
		if SQLState(got) != "22P02" {
			t.Errorf("SQLSTATE %q, want 22P02", SQLState(got))
		}
	})
}

// TestPostgresVerifier: the role's password is sent as a SCRAM-SHA-256
// verifier computed here (never in clear), and pgx logs in with the password
// (ASCII, quotes, and non-ASCII that SASLprep normalizes).
func TestPostgresVerifier(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	a, err := Open(ctx, Config{Engine: Postgres, DSN: pgAdminDSN(), Database: "kmsdb_test", Group: "kmsdb_password_auth"})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	salt := []byte("fixed-salt-16byt")
	defer func(f func() ([]byte, error)) { scramSalt = f }(scramSalt)
	scramSalt = func() ([]byte, error) { return salt, nil }
	name := "kt_scram_" + strings.ToLower(rand.Text()[:10])
	defer func() { _ = a.Drop(context.WithoutCancel(ctx), name) }()
	for i, pw := range []string{"plain-ascii-pw", `q'uo"te\s`, "ö 密码 end", "nbsp\u00A0sent-in-clear"} {
		var err error
		if i == 0 {
			err = a.Create(ctx, name, pw)
		} else {
			err = a.SetPassword(ctx, name, pw)
		}
		if err != nil {
			t.Fatal(err)
		}
		if err := a.CheckPassword(ctx, name, pw); err != nil {
			t.Errorf("password %d: %v", i, err)
		}
		// The statement carried our verifier (fixed salt): the server
		// stored it as sent. The last password is sent in clear.
		var stored string
		if err := a.DB().QueryRowContext(ctx, "SELECT rolpassword FROM pg_authid WHERE rolname = $1", name).Scan(&stored); err != nil {
			t.Fatal(err)
		}
		want, err := scramVerifierSalt(pw, salt, scramIterations)
		if err != nil {
			t.Fatal(err)
		}
		if got := stored == want; got != (i < 3) {
			t.Errorf("password %d: stored verifier is ours: %v, want %v (stored %.30s...)", i, got, i < 3, stored)
		}
	}
	for _, pw := range []string{"ﬁ", "x\u00ADy", "\u2168"} {
		if scramSafe(pw) {
			t.Errorf("scramSafe(%q): SASLprep changes it", pw)
		}
	}
	v1, err := scramVerifierSalt("pencil", []byte("0123456789abcdef"), 4096)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(v1, "SCRAM-SHA-256$4096:MDEyMzQ1Njc4OWFiY2RlZg==$") {
		t.Errorf("verifier %q", v1)
	}
}

// TestGrantNoWildcard: the rights on a database whose name holds '_' do not
// extend to the databases its wildcard would match.
func TestGrantNoWildcard(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	a, err := Open(ctx, Config{Engine: MariaDB, DSN: myAdminDSN(), Database: "kmsdb_wild"})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	if _, err := a.DB().ExecContext(ctx, "CREATE DATABASE IF NOT EXISTS kmsdbXwild"); err != nil {
		t.Fatal(err)
	}
	name := "kt_wild_" + strings.ToLower(rand.Text()[:10])
	const pw = "wild-pw-4711"
	if err := a.Create(ctx, name, pw); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = a.Drop(context.WithoutCancel(ctx), name) }()
	if err := myLogin(ctx, a.Addr(), "kmsdb_wild", name, pw); err != nil {
		t.Fatalf("login to its own database: %v", err)
	}
	err = myLogin(ctx, a.Addr(), "kmsdbXwild", name, pw)
	var me *mysql.MySQLError
	if !errors.As(err, &me) || me.Number != 1044 {
		t.Errorf("login to kmsdbXwild: %v, want access denied (1044)", err)
	}
}

// TestNoBackslashEscapes: with NO_BACKSLASH_ESCAPES in the admin's session
// mode, every statement (Create, Alter, Drop) still quotes a name holding a
// quote and a backslash right.
func TestNoBackslashEscapes(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cfg, err := mysql.ParseDSN(myAdminDSN())
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Params == nil {
		cfg.Params = map[string]string{}
	}
	cfg.Params["sql_mode"] = "'NO_BACKSLASH_ESCAPES'"
	a, err := Open(ctx, Config{Engine: MariaDB, DSN: cfg.FormatDSN(), Database: "kmsdb_test"})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	// No idle connections: each statement outside myWithSession gets a new
	// session in the DSN's mode (not one myWithSession already set up).
	a.DB().SetMaxIdleConns(0)
	var mode string
	if err := a.DB().QueryRowContext(ctx, "SELECT @@SESSION.sql_mode").Scan(&mode); err != nil || !strings.Contains(mode, "NO_BACKSLASH_ESCAPES") {
		t.Fatalf("sql_mode %q, %v: the DSN did not set NO_BACKSLASH_ESCAPES (test broken)", mode, err)
	}
	name := `kt_nbe'\` + strings.ToLower(rand.Text()[:8])
	if err := a.Create(ctx, name, `pw'\x`); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = a.Drop(context.WithoutCancel(ctx), name) }()
	if err := a.Alter(ctx, name, "", "ACCOUNT LOCK"); err != nil {
		t.Errorf("Alter: %v", err)
	}
	if err := a.Drop(ctx, name); err != nil {
		t.Errorf("Drop: %v", err)
	}
	if ok, err := a.Exists(ctx, name); err != nil || ok {
		t.Errorf("after Drop: exists %v, %v", ok, err)
	}
}
