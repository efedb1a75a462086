package pgkms

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

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
	srv := testdb.Postgres(t)
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
	c, err := newConnector(secret, append([]Option{WithSource(e.cache), WithDSN("sslmode=disable")}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	e.conn = c
	db := sql.OpenDB(c)
	db.SetMaxIdleConns(0)
	t.Cleanup(func() { _ = db.Close() })
	return db
}

func (e *env) pool(t *testing.T, secret string, opts ...Option) *Pool {
	t.Helper()
	return e.poolWith(t, secret, append([]Option{WithDSN("sslmode=disable")}, opts...)...)
}

// poolWith is pool without the default base configuration.
func (e *env) poolWith(t *testing.T, secret string, opts ...Option) *Pool {
	t.Helper()
	p, err := NewPool(context.Background(), secret, append([]Option{WithSource(e.cache)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	return p
}

func currentUser(t *testing.T, db *sql.DB) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var u string
	if err := db.QueryRowContext(ctx, "SELECT current_user").Scan(&u); err != nil {
		t.Fatal(err)
	}
	return u
}

func poolUser(t *testing.T, p *Pool) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var u string
	if err := p.QueryRow(ctx, "SELECT current_user").Scan(&u); err != nil {
		t.Fatal(err)
	}
	return u
}

// assertNoSecret fails when a password shows in any formatting of err or of
// an error in its chain.
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
	if got := currentUser(t, e.open(t, "db")); got != user {
		t.Fatalf("current_user = %q, want %q", got, user)
	}
	if got := poolUser(t, e.pool(t, "db")); got != user {
		t.Fatalf("pool: current_user = %q, want %q", got, user)
	}
}

func TestHardPassword(t *testing.T) {
	e := newEnv(t)
	user := e.srv.CreateUser(t, "hard", testdb.HardPassword)
	e.secrets.PutAccount("db", e.srv.Account(user, testdb.HardPassword))
	db := e.open(t, "db")
	p := e.pool(t, "db")
	if got := currentUser(t, db); got != user {
		t.Fatalf("current_user = %q, want %q", got, user)
	}
	if got := poolUser(t, p); got != user {
		t.Fatalf("pool: current_user = %q, want %q", got, user)
	}
	next := testdb.HardPassword + " 2"
	must(t, e.srv.SetPassword(context.Background(), user, next))
	e.secrets.PutAccount("db", e.srv.Account(user, next))
	p.Reset()
	if got := currentUser(t, db); got != user {
		t.Fatalf("after rotation current_user = %q", got)
	}
	if got := poolUser(t, p); got != user {
		t.Fatalf("pool after rotation: current_user = %q", got)
	}
}

func TestWrongPasswordIsRejected(t *testing.T) {
	e := newEnv(t)
	user := e.srv.CreateUser(t, "wrong", "right-pass-1")
	e.secrets.PutAccount("db", e.srv.Account(user, "wrong-pass-1"))
	check := func(t *testing.T, err error) {
		t.Helper()
		if !errors.Is(err, connector.ErrCredentialsRejected) {
			t.Fatalf("err = %v, want credentials rejected", err)
		}
		var pe *pgconn.PgError
		if !errors.As(err, &pe) || pe.Code != "28P01" {
			t.Fatalf("want SQLSTATE 28P01 in the chain, got %v", err)
		}
		assertNoSecret(t, err, "wrong-pass-1", "right-pass-1")
		if !strings.Contains(err.Error(), `secret "db" version "v1"`) || !strings.Contains(err.Error(), user) {
			t.Errorf("error does not name the secret, version and user: %v", err)
		}
	}
	t.Run("database/sql", func(t *testing.T) {
		check(t, e.open(t, "db", WithGracePeriod(-1)).PingContext(context.Background()))
	})
	t.Run("pool", func(t *testing.T) {
		check(t, e.pool(t, "db", WithGracePeriod(-1)).Ping(context.Background()))
	})
}

// rotationOrder is one order of changing the database password and the secret.
type rotationOrder struct {
	name   string
	rotate func(t *testing.T, e *env, user, next string)
}

var rotations = []rotationOrder{
	{"secret then database, cache still old", func(t *testing.T, e *env, user, next string) {
		e.secrets.PutAccount("db", e.srv.Account(user, next))
		must(t, e.srv.SetPassword(context.Background(), user, next))
	}},
	{"database then secret, cache still old", func(t *testing.T, e *env, user, next string) {
		must(t, e.srv.SetPassword(context.Background(), user, next))
		e.secrets.PutAccount("db", e.srv.Account(user, next))
	}},
	{"secret refreshed before the database changes (ACSPrevious)", func(t *testing.T, e *env, user, next string) {
		e.secrets.PutAccount("db", e.srv.Account(user, next))
		_, err := e.cache.Refresh(context.Background(), "db")
		must(t, err)
	}},
	{"database changed, secret later (polling)", func(t *testing.T, e *env, user, next string) {
		must(t, e.srv.SetPassword(context.Background(), user, next))
		go func() {
			time.Sleep(400 * time.Millisecond)
			e.secrets.PutAccount("db", e.srv.Account(user, next))
		}()
	}},
}

// TestRotation rotates the database password and the secret in each order
// and checks that the next connections log in, through database/sql and
// through the pool.
func TestRotation(t *testing.T) {
	for _, tc := range rotations {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			user := e.srv.CreateUser(t, "rot", "pass-v1-aaaa")
			e.secrets.PutAccount("db", e.srv.Account(user, "pass-v1-aaaa"))
			db := e.open(t, "db")
			p := e.pool(t, "db")
			if currentUser(t, db) != user || poolUser(t, p) != user {
				t.Fatal("wrong user before rotation")
			}
			tc.rotate(t, e, user, "pass-v2-bbbb")
			p.Reset() // every pool connection is made anew
			var wg sync.WaitGroup
			wg.Go(func() {
				for i := range 3 {
					if got := currentUser(t, db); got != user {
						t.Errorf("connection %d after rotation: current_user = %q", i, got)
					}
				}
			})
			for i := range 3 {
				if got := poolUser(t, p); got != user {
					t.Errorf("pool query %d after rotation: current_user = %q", i, got)
				}
				p.Reset()
			}
			wg.Wait()
			must(t, e.srv.SetPassword(context.Background(), user, "pass-v2-bbbb"))
			p.Reset()
			if currentUser(t, db) != user || poolUser(t, p) != user {
				t.Fatal("wrong user after the rotation completed")
			}
			t.Logf("database/sql: %+v; pool: %+v", e.conn.Stats(), p.Stats())
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
		t.Fatalf("current_user = %q, want %q", got, a)
	}
	must(t, e.srv.SetPassword(ctx, b, "pass-b-2222"))
	e.secrets.PutAccount("db", e.srv.Account(b, "pass-b-2222"))
	_, err := e.cache.Refresh(ctx, "db")
	must(t, err)
	if got := currentUser(t, db); got != b {
		t.Fatalf("after the swap current_user = %q, want %q", got, b)
	}
}

func TestNonHealingErrorsReturnAtOnce(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name  string
		setup func(t *testing.T, e *env, user string) []Option
		code  string
	}{
		{"unknown database", func(t *testing.T, e *env, user string) []Option {
			return []Option{WithDSN("sslmode=disable dbname=kt_no_such_database")}
		}, "3D000"},
		{"account locked (NOLOGIN)", func(t *testing.T, e *env, user string) []Option {
			must(t, e.srv.Lock(ctx, user))
			return nil
		}, "28000"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			user := e.srv.CreateUser(t, "perm", "pass-perm-1")
			acct := e.srv.Account(user, "pass-perm-1")
			acct.DBName = ""
			e.secrets.PutAccount("db", acct)
			opts := tc.setup(t, e, user)
			check := func(t *testing.T, err error) {
				t.Helper()
				if !errors.Is(err, connector.ErrLoginRefused) {
					t.Fatalf("err = %v, want login refused", err)
				}
				var pe *pgconn.PgError
				if !errors.As(err, &pe) || pe.Code != tc.code {
					t.Fatalf("want SQLSTATE %s, got %v", tc.code, err)
				}
				var ce *connector.Error
				if errors.As(err, &ce) && ce.Attempts != 1 {
					t.Errorf("attempts = %d, want 1", ce.Attempts)
				}
				if got := e.secrets.Calls(); got != 1 {
					t.Errorf("source calls = %d, want 1 (the first fetch only)", got)
				}
				assertNoSecret(t, err, "pass-perm-1")
				t.Log(err)
			}
			t.Run("database/sql", func(t *testing.T) { check(t, e.open(t, "db", opts...).PingContext(ctx)) })
			t.Run("pool", func(t *testing.T) { check(t, e.pool(t, "db", opts...).Ping(ctx)) })
		})
	}
}

func TestWithConfigIsNotModified(t *testing.T) {
	e := newEnv(t)
	user := e.srv.CreateUser(t, "cfg", "pass-cfg-1")
	e.secrets.PutAccount("db", e.srv.Account(user, "pass-cfg-1"))
	cfg, err := pgx.ParseConfig(fmt.Sprintf("host=%s port=%d sslmode=disable dbname=%s", e.srv.Host(), e.srv.Port(), testdb.Database))
	must(t, err)
	before := fmt.Sprintf("%s %d %s %q", cfg.Host, cfg.Port, cfg.User, cfg.Password)
	c, err := newConnector("db", WithSource(e.cache), WithConfig(cfg))
	must(t, err)
	db := sql.OpenDB(c)
	defer db.Close()
	if got := currentUser(t, db); got != user {
		t.Fatalf("current_user = %q", got)
	}
	if after := fmt.Sprintf("%s %d %s %q", cfg.Host, cfg.Port, cfg.User, cfg.Password); after != before {
		t.Errorf("the caller's config changed: %s -> %s", before, after)
	}
}

func TestBadOptions(t *testing.T) {
	if _, err := Open("db", WithDSN("postgres://u:secret-in-dsn@h:notaport/db")); err == nil {
		t.Error("Open accepted a bad DSN")
	} else {
		assertNoSecret(t, err, "secret-in-dsn")
	}
	if _, err := Open(""); err == nil {
		t.Error("Open accepted an empty secret name")
	}
	cfg, _ := pgx.ParseConfig("")
	if _, err := Open("db", WithDSN(""), WithConfig(cfg)); err == nil {
		t.Error("Open accepted WithDSN and WithConfig together")
	}
	db := sql.OpenDB(NewConnector("db", WithDSN("postgres://u:secret-in-dsn@h:notaport/db")))
	defer db.Close()
	err := db.PingContext(context.Background())
	if err == nil || !strings.Contains(err.Error(), "pgkms") {
		t.Fatalf("Ping = %v, want the option error", err)
	}
	assertNoSecret(t, err, "secret-in-dsn")
}

func TestRegisteredDriverName(t *testing.T) {
	e := newEnv(t)
	user := e.srv.CreateUser(t, "named", "pass-named-1")
	acct := e.srv.Account(user, "pass-named-1")
	acct.Host, acct.Port = "", 0
	e.secrets.PutAccount("named-secret", acct)
	connector.SetDefaultCache(e.cache)
	t.Cleanup(func() { connector.SetDefaultCache(nil) })
	for _, dsn := range []string{
		fmt.Sprintf("postgres://%s/%s?sslmode=disable", e.srv.Addr(), testdb.Database),
		fmt.Sprintf("host=%s port=%d sslmode=disable", e.srv.Host(), e.srv.Port()),
	} {
		db, err := sql.Open(DriverName, "named-secret?"+dsn)
		must(t, err)
		if got := currentUser(t, db); got != user {
			t.Errorf("%s: current_user = %q", dsn, got)
		}
		db.Close()
	}
}

func TestClassify(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want connector.Class
	}{
		{&pgconn.PgError{Code: "28P01"}, connector.AuthFailure},
		{fmt.Errorf("wrapped: %w", &pgconn.PgError{Code: "28P01"}), connector.AuthFailure},
		{&pgconn.PgError{Code: "28000"}, connector.Permanent},
		{&pgconn.PgError{Code: "3D000"}, connector.Permanent},
		{&pgconn.PgError{Code: "42501"}, connector.Permanent},
		{&pgconn.PgError{Code: "53300"}, connector.Other},
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

// TestWarmConnectsAreQuiet: once the cache is warm, new connections (through
// database/sql and through the pool) make no call to the secret source and
// log nothing at Info or above.
func TestWarmConnectsAreQuiet(t *testing.T) {
	e := newEnv(t)
	user := e.srv.CreateUser(t, "warm", "warm-pass-1")
	e.secrets.PutAccount("db", e.srv.Account(user, "warm-pass-1"))
	var logs bytes.Buffer
	logger := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelInfo}))
	db := e.open(t, "db", WithLogger(logger))
	const n = 20
	for range n {
		if got := currentUser(t, db); got != user {
			t.Fatalf("current_user = %q, want %q", got, user)
		}
	}
	if st := e.conn.Stats(); st.Logins != n || st.Retries != 0 {
		t.Errorf("stats = %+v, want %d logins (a new connection per query) and no retry", st, n)
	}
	p := e.pool(t, "db", WithLogger(logger))
	for range n {
		if got := poolUser(t, p); got != user {
			t.Fatalf("pool: current_user = %q, want %q", got, user)
		}
	}
	if got := e.secrets.Calls(); got != 1 {
		t.Errorf("source calls = %d, want 1 (the cold fetch only)", got)
	}
	if logs.Len() != 0 {
		t.Errorf("connections logged at Info or above:\n%s", logs.String())
	}
}
