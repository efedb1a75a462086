package mysqlkms

import (
	"database/sql"
	"encoding/json"
	"fmt"
	"net"
	"strings"
	"testing"

	"github.com/go-sql-driver/mysql"

	"github.com/kmsdb/kmsdb/connector"
	"github.com/kmsdb/kmsdb/internal/testdb"
	"github.com/kmsdb/kmsdb/secretsource"
)

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
