package pgkms

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/kmsdb/kmsdb/connector"
	"github.com/kmsdb/kmsdb/internal/testdb"
	"github.com/kmsdb/kmsdb/secretsource"
)

// TestSecretCannotRedirectPinnedHost plays an attacker who may change a
// secret's metadata (UpdateSecret, ExtendedConfig) but not read its value:
// the secret's endpoint points at a decoy PostgreSQL that asks for the
// password in clear text, while the user's base configuration pins the real
// server. Every login must go to the pinned server and succeed; the decoy
// must see no connection and no password.
func TestSecretCannotRedirectPinnedHost(t *testing.T) {
	e := newEnv(t)
	decoy := testdb.StartDecoy(t, true)
	const pw = "pin-pass-1"
	user := e.srv.CreateUser(t, "pin", pw)
	host, port, db := e.srv.Host(), e.srv.Port(), testdb.Database
	evil := e.srv.Account(user, pw)
	evil.Host, evil.Port = decoy.Host(), decoy.Port()
	putEvil := func(name string) { e.secrets.PutAccount(name, evil) }
	putCustomData := func(name string) {
		a := e.srv.Account(user, pw)
		a.Host, a.Port = "", 0
		b, _ := json.Marshal(a)
		e.secrets.PutExtended(name, "Rds", string(b),
			fmt.Sprintf(`{"SecretSubType":"SingleUser","CustomData":{"Endpoint":"%s:%d"}}`, decoy.Host(), decoy.Port()))
	}
	kv := fmt.Sprintf("host=%s port=%d sslmode=disable dbname=%s", host, port, db)
	viaDB := func(opts ...Option) func(t *testing.T, name string) string {
		return func(t *testing.T, name string) string { return currentUser(t, e.open(t, name, opts...)) }
	}
	viaConfig := func(cfg *pgx.ConnConfig) func(t *testing.T, name string) string {
		return func(t *testing.T, name string) string {
			c, err := newConnector(name, WithSource(e.cache), WithConfig(cfg))
			must(t, err)
			db := sql.OpenDB(c)
			t.Cleanup(func() { _ = db.Close() })
			return currentUser(t, db)
		}
	}
	viaPool := func(opts ...Option) func(t *testing.T, name string) string {
		return func(t *testing.T, name string) string { return poolUser(t, e.poolWith(t, name, opts...)) }
	}
	for _, tc := range []struct {
		name  string
		env   map[string]string
		put   func(name string)
		login func(t *testing.T, name string) string
	}{
		{"keyword host and port; secret host/port", nil, putEvil, viaDB(WithDSN(kv))},
		{"keyword host and port; ExtendedConfig.CustomData", nil, putCustomData, viaDB(WithDSN(kv))},
		{"URL host; secret host/port", nil, putEvil,
			viaDB(WithDSN(fmt.Sprintf("postgres://%s/%s?sslmode=disable", e.srv.Addr(), db)))},
		{"URL ?host= query", nil, putCustomData,
			viaDB(WithDSN(fmt.Sprintf("postgres:///%s?host=%s&port=%d&sslmode=disable", db, host, port)))},
		{"host pinned, port left to its default; secret has the decoy's port", nil,
			func(name string) { a := evil; a.Host = host; e.secrets.PutAccount(name, a) },
			viaDB(WithDSN(fmt.Sprintf("host=%s sslmode=disable", host)))},
		{"PGHOST and PGPORT", map[string]string{"PGHOST": host, "PGPORT": fmt.Sprint(port)}, putEvil,
			viaDB(WithDSN("sslmode=disable"))},
		{"two hosts", nil, putEvil, viaDB(WithDSN(fmt.Sprintf("host=%s,%s port=%d sslmode=disable", host, host, port)))},
		{"WithConfig", nil, putEvil, func(t *testing.T, name string) string {
			cfg, err := pgx.ParseConfig(kv)
			must(t, err)
			return viaConfig(cfg)(t, name)
		}},
		{"WithConfig, host set in code", nil, putEvil, func(t *testing.T, name string) string {
			cfg, err := pgx.ParseConfig("sslmode=disable")
			must(t, err)
			cfg.Host, cfg.Port = host, uint16(port)
			return viaConfig(cfg)(t, name)
		}},
		{"pool WithDSN", nil, putEvil, viaPool(WithDSN(kv))},
		{"pool WithPoolConfig", nil, putCustomData, func(t *testing.T, name string) string {
			cfg, err := pgxpool.ParseConfig(kv + " pool_max_conns=2")
			must(t, err)
			return viaPool(WithPoolConfig(cfg))(t, name)
		}},
		{"ConfigurePool", nil, putEvil, func(t *testing.T, name string) string {
			cfg, err := pgxpool.ParseConfig(kv)
			must(t, err)
			must(t, ConfigurePool(cfg, name, WithSource(e.cache)))
			p, err := pgxpool.NewWithConfig(context.Background(), cfg)
			must(t, err)
			defer p.Close()
			var u string
			must(t, p.QueryRow(context.Background(), "SELECT current_user").Scan(&u))
			return u
		}},
		{"driver name", nil, putEvil, func(t *testing.T, name string) string {
			connector.SetDefaultCache(e.cache)
			t.Cleanup(func() { connector.SetDefaultCache(nil) })
			db, err := sql.Open(DriverName, name+"?"+kv)
			must(t, err)
			t.Cleanup(func() { _ = db.Close() })
			return currentUser(t, db)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if port != 5432 && strings.Contains(tc.name, "default") {
				t.Skip("the test server does not listen on the default port")
			}
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			name := "pin-" + strings.ReplaceAll(tc.name, " ", "-")
			tc.put(name)
			if got := tc.login(t, name); got != user {
				t.Fatalf("current_user = %q, want %q", got, user)
			}
			if n, pws := decoy.Connections(), decoy.Passwords(); n != 0 || len(pws) != 0 {
				t.Fatalf("the decoy the secret named got %d connection(s) and %d password(s)", n, len(pws))
			}
		})
	}
}

// TestSecretFillsAnUnnamedHost: when the user names no host, the secret's
// endpoint (in its value or its ExtendedConfig.CustomData) is used, a port
// the user named is kept, and WithEndpointFromSecret lets the secret
// replace a named host.
func TestSecretFillsAnUnnamedHost(t *testing.T) {
	e := newEnv(t)
	decoy := testdb.StartDecoy(t, true)
	user := e.srv.CreateUser(t, "fill", "fill-pass-1")
	e.secrets.PutAccount("value", e.srv.Account(user, "fill-pass-1"))
	a := e.srv.Account(user, "fill-pass-1")
	a.Host, a.Port = "", 0
	b, _ := json.Marshal(a)
	e.secrets.PutExtended("custom", "Rds", string(b),
		fmt.Sprintf(`{"CustomData":{"Endpoint":%q,"Port":%d}}`, e.srv.Host(), e.srv.Port()))
	wrongPort := e.srv.Account(user, "fill-pass-1")
	wrongPort.Port = decoy.Port()
	e.secrets.PutAccount("wrong-port", wrongPort)
	for _, tc := range []struct {
		name, secret string
		opts         []Option
	}{
		{"keyword/value without host", "value", []Option{WithDSN("sslmode=disable")}},
		{"URL without host", "value", []Option{WithDSN("postgres:///?sslmode=disable")}},
		{"URL with user but no host", "value", []Option{WithDSN("postgres://someone@/" + testdb.Database + "?sslmode=disable")}},
		{"endpoint in CustomData", "custom", []Option{WithDSN("sslmode=disable")}},
		{"the user's port is kept", "wrong-port", []Option{WithDSN(fmt.Sprintf("port=%d sslmode=disable", e.srv.Port()))}},
		{"WithEndpointFromSecret over a named host", "value",
			[]Option{WithDSN(fmt.Sprintf("host=%s port=%d sslmode=disable", decoy.Host(), decoy.Port())), WithEndpointFromSecret()}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := currentUser(t, e.open(t, tc.secret, tc.opts...)); got != user {
				t.Fatalf("database/sql: current_user = %q, want %q", got, user)
			}
			if got := poolUser(t, e.poolWith(t, tc.secret, tc.opts...)); got != user {
				t.Fatalf("pool: current_user = %q, want %q", got, user)
			}
		})
	}
	if n := decoy.Connections(); n != 0 {
		t.Errorf("the decoy got %d connection(s)", n)
	}
}

// TestEndpointRules checks the configuration each connection gets: hosts,
// ports, fallbacks and TLS server names the user named stay as they are; a
// host the secret fills gets the TLS settings pgx derives for it.
func TestEndpointRules(t *testing.T) {
	evil := secretsource.DBAccount{Username: "u", Password: "p", Host: "evil.example", Port: 6543, SecretName: "db"}
	type want struct {
		host      string
		port      uint16
		tlsName   string // "" with noTLS
		noTLS     bool
		fallbacks int
	}
	for _, tc := range []struct {
		name    string
		dsn     string
		env     map[string]string
		fromSec bool
		acct    secretsource.DBAccount
		want    want
		wantErr bool
	}{
		{"pinned verify-full", "host=db.example sslmode=verify-full", nil, false, evil, want{"db.example", 5432, "db.example", false, 0}, false},
		{"pinned prefer", "host=db.example", nil, false, evil, want{"db.example", 5432, "db.example", false, 1}, false},
		{"pinned URL", "postgres://db.example:5433/app?sslmode=require", nil, false, evil, want{"db.example", 5433, "db.example", false, 0}, false},
		{"pinned unix socket", "host=/run/postgresql", nil, false, evil, want{"/run/postgresql", 5432, "", true, 0}, false},
		{"pinned two hosts", "host=a.example,b.example sslmode=verify-full", nil, false, evil, want{"a.example", 5432, "a.example", false, 1}, false},
		{"pinned by PGHOST", "sslmode=verify-full", map[string]string{"PGHOST": "db.example"}, false, evil, want{"db.example", 5432, "db.example", false, 0}, false},
		{"no host: the secret fills host and port", "sslmode=verify-full", nil, false, evil, want{"evil.example", 6543, "evil.example", false, 0}, false},
		{"no host, prefer: TLS then plain", "", nil, false, evil, want{"evil.example", 6543, "evil.example", false, 1}, false},
		{"no host, port named", "port=5444 sslmode=require", nil, false, evil, want{"evil.example", 5444, "evil.example", false, 0}, false},
		{"no host, URL", "postgres:///app?sslmode=verify-full", nil, false, evil, want{"evil.example", 6543, "evil.example", false, 0}, false},
		{"opted in", "host=db.example sslmode=verify-full", nil, true, evil, want{"evil.example", 6543, "evil.example", false, 0}, false},
		{"opted in, two hosts", "host=a.example,b.example port=1,2 sslmode=verify-full", nil, true, evil, want{"evil.example", 6543, "evil.example", false, 0}, false},
		{"secret host with a comma", "sslmode=verify-full", nil, false,
			secretsource.DBAccount{Username: "u", Password: "p", Host: "evil.example,other.example"}, want{}, true},
		{"secret port out of range", "sslmode=verify-full", nil, false,
			secretsource.DBAccount{Username: "u", Password: "p", Host: "evil.example", Port: 65536 + 6543}, want{}, true},
		{"secret port out of range, opted in", "host=db.example sslmode=verify-full", nil, true,
			secretsource.DBAccount{Username: "u", Password: "p", Host: "evil.example", Port: -1}, want{}, true},
		{"secret host trying to inject sslmode", "sslmode=verify-full", nil, false,
			secretsource.DBAccount{Username: "u", Password: "p", Host: "evil.example' sslmode='disable"},
			want{"evil.example' sslmode='disable", 5432, "evil.example' sslmode='disable", false, 0}, false},
		{"secret host trying to inject into a URL", "postgres:///app?sslmode=verify-full", nil, false,
			secretsource.DBAccount{Username: "u", Password: "p", Host: "evil.example&sslmode=disable"},
			want{"evil.example&sslmode=disable", 5432, "evil.example&sslmode=disable", false, 0}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("PGHOST", "")
			t.Setenv("PGPORT", "")
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			base, err := pgx.ParseConfig(tc.dsn)
			must(t, err)
			ep := newEndpoint(base, tc.fromSec)
			cfg := base.Copy()
			err = ep.apply(cfg, tc.acct)
			if tc.wantErr {
				if err == nil {
					t.Fatalf("apply accepted host %q (now %q)", tc.acct.Host, cfg.Host)
				}
				return
			}
			must(t, err)
			w := tc.want
			if cfg.Host != w.host || cfg.Port != w.port || len(cfg.Fallbacks) != w.fallbacks {
				t.Errorf("host %q port %d, %d fallbacks; want %q %d, %d", cfg.Host, cfg.Port, len(cfg.Fallbacks), w.host, w.port, w.fallbacks)
			}
			switch {
			case w.noTLS && cfg.TLSConfig != nil:
				t.Errorf("TLS on for a unix socket")
			case !w.noTLS && cfg.TLSConfig == nil:
				t.Errorf("TLS off, want server name %q", w.tlsName)
			case !w.noTLS && cfg.TLSConfig.ServerName != w.tlsName:
				t.Errorf("TLS server name %q, want %q", cfg.TLSConfig.ServerName, w.tlsName)
			}
			for _, fb := range cfg.Fallbacks {
				if tc.fromSec || !ep.hostNamed {
					if fb.Host != w.host {
						t.Errorf("fallback to %q, want only %q", fb.Host, w.host)
					}
				}
				if fb.TLSConfig != nil && fb.TLSConfig.ServerName != fb.Host {
					t.Errorf("fallback %q has TLS server name %q", fb.Host, fb.TLSConfig.ServerName)
				}
			}
		})
	}
}
