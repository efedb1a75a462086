package mysqlkms

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/kmsdb/kmsdb/connector"
	"github.com/kmsdb/kmsdb/internal/testdb"
	"github.com/kmsdb/kmsdb/secretsource"
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

// TestSecretCannotRedirectPinnedAddress plays an attacker who may change a
// secret's metadata (UpdateSecret, ExtendedConfig) but not read its value:
// the secret's endpoint points at a decoy server while the user's base
// configuration pins the real one. Every login must go to the pinned server
// and succeed; the decoy must see no connection.
func TestSecretCannotRedirectPinnedAddress(t *testing.T) {
	e := newEnv(t)
	decoy := testdb.StartDecoy(t, false)
	user := e.srv.CreateUser(t, "pin", "pin-pass-1")
	host, port, _ := net.SplitHostPort(e.srv.Addr())
	evil := e.srv.Account(user, "pin-pass-1")
	evil.Host, evil.Port = decoy.Host(), decoy.Port()
	inCustomData := e.srv.Account(user, "pin-pass-1")
	inCustomData.Host, inCustomData.Port = "", 0
	customData := fmt.Sprintf(`{"SecretSubType":"SingleUser","CustomData":{"Endpoint":%q,"Port":"%d"}}`, decoy.Host(), decoy.Port())
	for _, tc := range []struct {
		name string
		put  func(name string)
		opts []Option
		open func(t *testing.T, name string) *sql.DB // nil: e.open with opts
	}{
		{"DSN pins host and port; secret host/port", func(n string) { e.secrets.PutAccount(n, evil) },
			[]Option{WithDSN("tcp(" + e.srv.Addr() + ")/" + testdb.Database)}, nil},
		{"DSN pins host and port; secret ExtendedConfig.CustomData", func(n string) {
			b, _ := json.Marshal(inCustomData)
			e.secrets.PutExtended(n, "Rds", string(b), customData)
		}, []Option{WithDSN("tcp(" + e.srv.Addr() + ")/" + testdb.Database)}, nil},
		{"DSN pins host only (default port); secret has the decoy's port", func(n string) {
			a := evil
			a.Host = host // same host, another port
			e.secrets.PutAccount(n, a)
		}, []Option{WithDSN("tcp(" + host + ")/" + testdb.Database)}, nil},
		{"WithConfig pins the address", func(n string) { e.secrets.PutAccount(n, evil) },
			[]Option{WithConfig(&mysql.Config{Net: "tcp", Addr: e.srv.Addr(), DBName: testdb.Database, AllowNativePasswords: true})}, nil},
		{"driver name with a DSN", func(n string) { e.secrets.PutAccount(n, evil) }, nil, func(t *testing.T, n string) *sql.DB {
			connector.SetDefaultCache(e.cache)
			t.Cleanup(func() { connector.SetDefaultCache(nil) })
			db, err := sql.Open(DriverName, n+"?tcp("+e.srv.Addr()+")/"+testdb.Database)
			must(t, err)
			t.Cleanup(func() { _ = db.Close() })
			return db
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if port != "3306" && strings.Contains(tc.name, "default port") {
				t.Skip("the test server does not listen on the default port")
			}
			name := "pin-" + strings.ReplaceAll(tc.name, " ", "-")
			tc.put(name)
			var db *sql.DB
			if tc.open != nil {
				db = tc.open(t, name)
			} else {
				db = e.open(t, name, tc.opts...)
			}
			if got := currentUser(t, db); got != user {
				t.Fatalf("CURRENT_USER = %q, want %q", got, user)
			}
			if n := decoy.Connections(); n != 0 {
				t.Fatalf("the decoy the secret named got %d connection(s)", n)
			}
		})
	}
}

// TestSecretFillsAnUnnamedAddress: when the base configuration names no
// address, the secret's endpoint is used (host/port in the value, or in
// ExtendedConfig.CustomData), and WithEndpointFromSecret lets it replace a
// pinned one.
func TestSecretFillsAnUnnamedAddress(t *testing.T) {
	e := newEnv(t)
	decoy := testdb.StartDecoy(t, false)
	user := e.srv.CreateUser(t, "fill", "fill-pass-1")
	acct := e.srv.Account(user, "fill-pass-1")
	noEndpoint := acct
	noEndpoint.Host, noEndpoint.Port = "", 0
	b, _ := json.Marshal(noEndpoint)
	e.secrets.PutAccount("value", acct)
	e.secrets.PutExtended("custom", "Rds", string(b),
		fmt.Sprintf(`{"CustomData":{"Endpoint":%q,"Port":%d}}`, e.srv.Host(), e.srv.Port()))
	for _, tc := range []struct {
		name, secret string
		opts         []Option
	}{
		{"no base configuration", "value", nil},
		{"DSN without address", "value", []Option{WithDSN("/" + testdb.Database + "?parseTime=true")}},
		{"DSN with tcp but no address", "value", []Option{WithDSN("tcp/" + testdb.Database)}},
		{"Config without Addr", "value", []Option{WithConfig(&mysql.Config{DBName: testdb.Database, AllowNativePasswords: true})}},
		{"endpoint in CustomData", "custom", []Option{WithDSN("/")}},
		{"WithEndpointFromSecret over a pinned address", "value",
			[]Option{WithDSN("tcp(" + decoy.Addr() + ")/" + testdb.Database), WithEndpointFromSecret()}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := currentUser(t, e.open(t, tc.secret, tc.opts...)); got != user {
				t.Fatalf("CURRENT_USER = %q, want %q", got, user)
			}
		})
	}
	if n := decoy.Connections(); n != 0 {
		t.Errorf("the pinned decoy got %d connection(s) although the secret's endpoint was opted in", n)
	}
}

// TestPinnedTLSServerName: the TLS server name of a pinned address never
// follows the secret; with no address named it follows the secret's host.
func TestPinnedTLSServerName(t *testing.T) {
	acct := secretsource.DBAccount{Username: "u", Password: "p", Host: "evil.example", Port: 3307}
	for _, tc := range []struct {
		name, dsn          string
		opts               []Option
		wantAddr, wantName string
	}{
		{"pinned", "tcp(db.example:3306)/app?tls=true", nil, "db.example:3306", "db.example"},
		{"pinned, default port", "tcp(db.example)/app?tls=true", nil, "db.example:3306", "db.example"},
		{"pinned unix socket", "unix(/run/mysqld/mysqld.sock)/app", nil, "/run/mysqld/mysqld.sock", ""},
		{"unix socket, default path", "unix/app", nil, "/tmp/mysql.sock", ""},
		{"no address", "/app?tls=true", nil, "evil.example:3307", "evil.example"},
		{"opted in", "tcp(db.example:3306)/app?tls=true", []Option{WithEndpointFromSecret()}, "evil.example:3307", "evil.example"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := &options{}
			for _, opt := range append([]Option{WithDSN(tc.dsn)}, tc.opts...) {
				opt(o)
			}
			base, pinned, err := o.baseConfig()
			must(t, err)
			cfg := newDialer(base, !pinned || o.EndpointFromSecret).config(acct)
			if cfg.Addr != tc.wantAddr {
				t.Errorf("Addr = %q, want %q", cfg.Addr, tc.wantAddr)
			}
			if tc.wantName != "" && (cfg.TLS == nil || cfg.TLS.ServerName != tc.wantName) {
				t.Errorf("TLS = %+v, want ServerName %q", cfg.TLS, tc.wantName)
			}
			if cfg.Passwd != "p" || cfg.User != "u" {
				t.Errorf("credentials not set")
			}
		})
	}
}
