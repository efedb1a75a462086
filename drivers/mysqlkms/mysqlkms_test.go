package mysqlkms

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/kmsdb/kmsdb/connector"
	"github.com/kmsdb/kmsdb/internal/testdb"
	"github.com/kmsdb/kmsdb/secretsource/cache"
)

type env struct {
	srv     *testdb.Server
	secrets *testdb.Secrets
	cache   *cache.Cache
	conn    *Connector // of the last open
}

func newEnv(t *testing.T) *env {
	t.Helper()
	srv := testdb.MariaDB(t)
	srv.RequirePasswordEnforced(t)
	st := testdb.NewSecrets()
	c, err := cache.New(st, cache.WithRefreshLimit(20*time.Millisecond, 5))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return &env{srv: srv, secrets: st, cache: c}
}

// open returns a *sql.DB through the connector that opens a new connection for every use.
func (e *env) open(t *testing.T, secret string, opts ...Option) *sql.DB {
	t.Helper()
	c, err := newConnector(secret, append([]Option{WithSource(e.cache)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	e.conn = c
	db := sql.OpenDB(c)
	db.SetMaxIdleConns(0)
	t.Cleanup(func() { _ = db.Close() })
	return db
}

func currentUser(t *testing.T, db *sql.DB) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var u string
	if err := db.QueryRowContext(ctx, "SELECT SUBSTRING_INDEX(CURRENT_USER(), '@', 1)").Scan(&u); err != nil {
		t.Fatal(err)
	}
	return u
}

// assertNoSecret fails when s shows in any formatting of err.
func assertNoSecret(t *testing.T, err error, secrets ...string) {
	t.Helper()
	for _, f := range []string{"%v", "%+v", "%#v", "%s", "%q"} {
		text := fmt.Sprintf(f, err)
		for _, s := range secrets {
			if strings.Contains(text, s) {
				t.Errorf("%s of the error shows a password: %s", f, text)
			}
		}
	}
	for e := err; e != nil; e = errors.Unwrap(e) {
		for _, s := range secrets {
			if strings.Contains(e.Error(), s) {
				t.Errorf("an error in the chain (%T) shows a password: %s", e, e.Error())
			}
		}
	}
}

func TestConnectWithSecret(t *testing.T) {
	e := newEnv(t)
	user := e.srv.CreateUser(t, "app", "first-pass-1")
	e.secrets.PutAccount("db", e.srv.Account(user, "first-pass-1"))
	db := e.open(t, "db")
	if got := currentUser(t, db); got != user {
		t.Fatalf("CURRENT_USER = %q, want %q", got, user)
	}
}

func TestHardPassword(t *testing.T) {
	e := newEnv(t)
	user := e.srv.CreateUser(t, "hard", testdb.HardPassword)
	e.secrets.PutAccount("db", e.srv.Account(user, testdb.HardPassword))
	db := e.open(t, "db")
	if got := currentUser(t, db); got != user {
		t.Fatalf("CURRENT_USER = %q, want %q", got, user)
	}
	// Rotate to another hard password, database first, then the secret.
	next := testdb.HardPassword + " 2"
	if err := e.srv.SetPassword(context.Background(), user, next); err != nil {
		t.Fatal(err)
	}
	e.secrets.PutAccount("db", e.srv.Account(user, next))
	if got := currentUser(t, db); got != user {
		t.Fatalf("after rotation CURRENT_USER = %q, want %q", got, user)
	}
}

func TestWrongPasswordIsRejected(t *testing.T) {
	e := newEnv(t)
	user := e.srv.CreateUser(t, "wrong", "right-pass-1")
	e.secrets.PutAccount("db", e.srv.Account(user, "wrong-pass-1"))
	db := e.open(t, "db", WithGracePeriod(-1))
	err := db.PingContext(context.Background())
	if !errors.Is(err, connector.ErrCredentialsRejected) {
		t.Fatalf("Ping = %v, want credentials rejected", err)
	}
	var me *mysql.MySQLError
	if !errors.As(err, &me) || me.Number != 1045 {
		t.Fatalf("want MySQL error 1045 in the chain, got %v", err)
	}
	assertNoSecret(t, err, "wrong-pass-1", "right-pass-1")
	if !strings.Contains(err.Error(), `secret "db" version "v1"`) || !strings.Contains(err.Error(), user) {
		t.Errorf("error does not name the secret, version and user: %v", err)
	}
}

// TestRotation rotates the database password and the secret in each order
// and checks that the next connection logs in.
func TestRotation(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name   string
		rotate func(t *testing.T, e *env, user, next string)
	}{
		{"secret then database, cache still old", func(t *testing.T, e *env, user, next string) {
			e.secrets.PutAccount("db", e.srv.Account(user, next))
			must(t, e.srv.SetPassword(ctx, user, next))
		}},
		{"database then secret, cache still old", func(t *testing.T, e *env, user, next string) {
			must(t, e.srv.SetPassword(ctx, user, next))
			e.secrets.PutAccount("db", e.srv.Account(user, next))
		}},
		{"secret refreshed before the database changes (ACSPrevious)", func(t *testing.T, e *env, user, next string) {
			e.secrets.PutAccount("db", e.srv.Account(user, next))
			_, err := e.cache.Refresh(ctx, "db")
			must(t, err)
			// The cache holds the new version; the database still has the old
			// password: ACSPrevious logs in.
		}},
		{"database changed, secret later (polling)", func(t *testing.T, e *env, user, next string) {
			must(t, e.srv.SetPassword(ctx, user, next))
			go func() {
				time.Sleep(400 * time.Millisecond)
				e.secrets.PutAccount("db", e.srv.Account(user, next))
			}()
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			user := e.srv.CreateUser(t, "rot", "pass-v1-aaaa")
			e.secrets.PutAccount("db", e.srv.Account(user, "pass-v1-aaaa"))
			db := e.open(t, "db")
			if got := currentUser(t, db); got != user {
				t.Fatalf("CURRENT_USER = %q", got)
			}
			tc.rotate(t, e, user, "pass-v2-bbbb")
			for i := range 3 {
				if got := currentUser(t, db); got != user {
					t.Fatalf("connection %d after rotation: CURRENT_USER = %q", i, got)
				}
			}
			// Finish the rotation where the case left it half done, and go on.
			must(t, e.srv.SetPassword(ctx, user, "pass-v2-bbbb"))
			if got := currentUser(t, db); got != user {
				t.Fatalf("after the rotation completed: CURRENT_USER = %q", got)
			}
			t.Logf("connector stats: %+v", e.conn.Stats())
		})
	}
}

func TestDoubleUsersSwap(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	a := e.srv.CreateUser(t, "dua", "pass-a-1111")
	b := e.srv.CreateUser(t, "dub", "pass-b-1111")
	e.secrets.PutAccount("db", e.srv.Account(a, "pass-a-1111"))
	db := e.open(t, "db")
	if got := currentUser(t, db); got != a {
		t.Fatalf("CURRENT_USER = %q, want %q", got, a)
	}
	// Rotation: reset the password of the standby account, then make it current.
	must(t, e.srv.SetPassword(ctx, b, "pass-b-2222"))
	e.secrets.PutAccount("db", e.srv.Account(b, "pass-b-2222"))
	_, err := e.cache.Refresh(ctx, "db")
	must(t, err)
	if got := currentUser(t, db); got != b {
		t.Fatalf("after the swap CURRENT_USER = %q, want %q", got, b)
	}
}

func TestNonHealingErrorsReturnAtOnce(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name    string
		setup   func(t *testing.T, e *env, user string) []Option
		numbers []uint16
	}{
		{"unknown database", func(t *testing.T, e *env, user string) []Option {
			return []Option{WithDSN("tcp(" + e.srv.Addr() + ")/kt_no_such_database")}
		}, []uint16{1049, 1044}}, // 1044 when the user may not see whether it exists
		{"account locked", func(t *testing.T, e *env, user string) []Option {
			must(t, e.srv.Lock(ctx, user))
			return nil
		}, []uint16{4151, 3118}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			user := e.srv.CreateUser(t, "perm", "pass-perm-1")
			acct := e.srv.Account(user, "pass-perm-1")
			acct.DBName = ""
			e.secrets.PutAccount("db", acct)
			db := e.open(t, "db", tc.setup(t, e, user)...)
			start := time.Now()
			err := db.PingContext(ctx)
			if !errors.Is(err, connector.ErrLoginRefused) {
				t.Fatalf("Ping = %v, want login refused", err)
			}
			var me *mysql.MySQLError
			if !errors.As(err, &me) || !slices.Contains(tc.numbers, me.Number) {
				t.Fatalf("want error %v, got %v", tc.numbers, err)
			}
			var ce *connector.Error
			if !errors.As(err, &ce) || ce.Attempts != 1 {
				t.Errorf("attempts = %d, want 1", ce.Attempts)
			}
			if got := e.secrets.Calls(); got != 1 {
				t.Errorf("source calls = %d, want 1 (the first fetch only)", got)
			}
			t.Logf("returned after %v: %v", time.Since(start), err)
			assertNoSecret(t, err, "pass-perm-1")
		})
	}
}

func TestBadOptions(t *testing.T) {
	if _, err := Open("db", WithDSN("tcp(127.0.0.1:3306)/app?tls=no-such-config")); err == nil {
		t.Error("Open accepted an unknown TLS config")
	}
	if _, err := Open(""); err == nil {
		t.Error("Open accepted an empty secret name")
	}
	if _, err := Open("db", WithDSN("/x"), WithConfig(mysql.NewConfig())); err == nil {
		t.Error("Open accepted WithDSN and WithConfig together")
	}
	// NewConnector reports the error on first use.
	db := sql.OpenDB(NewConnector("db", WithDSN("user:secret-in-dsn@tcp(127.0.0.1:3306)/app?tls=no-such-config")))
	defer db.Close()
	err := db.PingContext(context.Background())
	if err == nil || !strings.Contains(err.Error(), "mysqlkms") {
		t.Fatalf("Ping = %v, want the option error", err)
	}
	assertNoSecret(t, err, "secret-in-dsn")
}

func TestWithConfigIsNotModified(t *testing.T) {
	e := newEnv(t)
	user := e.srv.CreateUser(t, "cfg", "pass-cfg-1")
	e.secrets.PutAccount("db", e.srv.Account(user, "pass-cfg-1"))
	cfg := mysql.NewConfig()
	cfg.Net, cfg.Addr, cfg.DBName = "tcp", e.srv.Addr(), testdb.Database
	cfg.Params = map[string]string{"autocommit": "1"}
	before := cfg.FormatDSN()
	db := e.open(t, "db", WithConfig(cfg))
	if got := currentUser(t, db); got != user {
		t.Fatalf("CURRENT_USER = %q", got)
	}
	if after := cfg.FormatDSN(); after != before {
		t.Errorf("the caller's config changed: %s -> %s", before, after)
	}
}

func TestRegisteredDriverName(t *testing.T) {
	e := newEnv(t)
	user := e.srv.CreateUser(t, "named", "pass-named-1")
	acct := e.srv.Account(user, "pass-named-1")
	acct.Host, acct.Port = "", 0 // the address comes from the name
	e.secrets.PutAccount("named-secret", acct)
	connector.SetDefaultCache(e.cache)
	t.Cleanup(func() { connector.SetDefaultCache(nil) })
	db, err := sql.Open(DriverName, "named-secret?tcp("+e.srv.Addr()+")/"+testdb.Database+"?parseTime=true")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if got := currentUser(t, db); got != user {
		t.Fatalf("CURRENT_USER = %q", got)
	}
}

func TestClassify(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want connector.Class
	}{
		{&mysql.MySQLError{Number: 1045, SQLState: [5]byte{'2', '8', '0', '0', '0'}}, connector.AuthFailure},
		{&mysql.MySQLError{Number: 1698, SQLState: [5]byte{'2', '8', '0', '0', '0'}}, connector.AuthFailure},
		{&mysql.MySQLError{Number: 9999, SQLState: [5]byte{'2', '8', '0', '0', '0'}}, connector.AuthFailure},
		{&mysql.MySQLError{Number: 4151}, connector.Permanent},
		{&mysql.MySQLError{Number: 3118}, connector.Permanent},
		{&mysql.MySQLError{Number: 1862}, connector.Permanent},
		{&mysql.MySQLError{Number: 1049}, connector.Permanent},
		{&mysql.MySQLError{Number: 1040}, connector.Other},
		{fmt.Errorf("wrapped: %w", mysql.ErrNativePassword), connector.Permanent},
		{errors.New("dial tcp 127.0.0.1:1: connect: connection refused"), connector.Other},
	} {
		if got := classify(tc.err); got != tc.want {
			t.Errorf("Classify(%v) = %v, want %v", tc.err, got, tc.want)
		}
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// TestWarmConnectsAreQuiet: once the cache is warm, new connections make no
// call to the secret source and log nothing at Info or above.
func TestWarmConnectsAreQuiet(t *testing.T) {
	e := newEnv(t)
	user := e.srv.CreateUser(t, "warm", "warm-pass-1")
	e.secrets.PutAccount("db", e.srv.Account(user, "warm-pass-1"))
	var logs bytes.Buffer
	db := e.open(t, "db", WithLogger(slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelInfo}))))
	const n = 20
	for range n {
		if got := currentUser(t, db); got != user {
			t.Fatalf("CURRENT_USER = %q, want %q", got, user)
		}
	}
	if got := e.secrets.Calls(); got != 1 {
		t.Errorf("source calls = %d, want 1 (the cold fetch only)", got)
	}
	if st := e.conn.Stats(); st.Logins != n || st.Retries != 0 {
		t.Errorf("stats = %+v, want %d logins (a new connection per query) and no retry", st, n)
	}
	if logs.Len() != 0 {
		t.Errorf("connections logged at Info or above:\n%s", logs.String())
	}
}
