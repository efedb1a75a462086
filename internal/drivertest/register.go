// Package drivertest holds the tests every database driver of kmsdb
// (drivers/mysqlkms, drivers/pgkms) runs the same way against its real
// database: a driver describes itself (Driver) and calls the test.
package drivertest

import (
	"context"
	"crypto/rand"
	"database/sql"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/kmsdb/kmsdb/connector"
	"github.com/kmsdb/kmsdb/internal/syncbuf"
	"github.com/kmsdb/kmsdb/internal/testdb"
	"github.com/kmsdb/kmsdb/secretsource"
	"github.com/kmsdb/kmsdb/secretsource/cache"
)

// Driver is what the shared tests need of a driver package whose options
// are of type O.
type Driver[O any] struct {
	Name     string                            // "pgkms": the prefix of the names registered
	Database string                            // "PostgreSQL", for messages
	Server   func(t testing.TB) *testdb.Server // testdb.Postgres or testdb.MariaDB
	// DSN is the DSN part of a registered name's DSN ("secret?DSN") for a
	// server at addr.
	DSN func(addr string) string
	// CurrentUserQuery answers the name of the user logged in.
	CurrentUserQuery string
	// The package's RegisterDriver and options.
	RegisterDriver  func(name string, opts ...O) (cleanup func() error, err error)
	WithSource      func(secretsource.Source) O
	WithGracePeriod func(time.Duration) O
	WithLogger      func(*slog.Logger) O
}

// TestRegisterDriver: a driver registered with options opens by name with
// them, against the real database: its source (a plain one, given one shared
// cache), its grace period (none: a rejected password fails at once instead
// of waiting 30 s), its logger (the rejection is logged there) and the
// name's DSN. The name cannot be registered twice, and cleanup closes the
// shared cache.
func TestRegisterDriver[O any](t *testing.T, d Driver[O]) {
	t.Helper()
	srv := d.Server(t)
	srv.RequirePasswordEnforced(t)
	user := srv.CreateUser(t, "reg", "reg-pass-1")
	acct := srv.Account(user, "reg-pass-1")
	acct.Host, acct.Port = "", 0 // the address comes from the name
	secrets := testdb.NewSecrets()
	secrets.PutAccount("reg-secret", acct)
	var logs syncbuf.Buffer
	name := d.Name + "-test-" + rand.Text()

	cleanup, err := d.RegisterDriver(name, d.WithSource(secrets), d.WithGracePeriod(-1),
		d.WithLogger(slog.New(slog.NewTextHandler(&logs, nil))))
	if err != nil {
		t.Fatal(err)
	}
	db, err := sql.Open(name, "reg-secret?"+d.DSN(srv.Addr()))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	db.SetMaxIdleConns(0) // every query logs in
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var got string
	if err := db.QueryRowContext(ctx, d.CurrentUserQuery).Scan(&got); err != nil {
		t.Fatal(err)
	}
	if got != user {
		t.Fatalf("current user on %s = %q, want %q", d.Database, got, user)
	}

	// The database password changes, the secret does not: no grace, so the
	// next login fails at once, and says so in the registered logger.
	if err := srv.SetPassword(ctx, user, "reg-pass-2"); err != nil {
		t.Fatal(err)
	}
	err = db.PingContext(ctx)
	if !errors.Is(err, connector.ErrCredentialsRejected) || strings.Contains(err.Error(), "stopped waiting") {
		t.Fatalf("ping with a stale secret: %v; want ErrCredentialsRejected at once, without waiting", err)
	}
	if !strings.Contains(logs.String(), "kmsdb connector:") {
		t.Errorf("the registered logger saw nothing: %q", logs.String())
	}
	if strings.Contains(logs.String(), "reg-pass-1") || strings.Contains(err.Error(), "reg-pass-1") {
		t.Error("a password shows in the log or the error")
	}

	if _, err := d.RegisterDriver(name); err == nil || !strings.Contains(err.Error(), "already registered") {
		t.Errorf("second registration of %q: %v; want 'already registered'", name, err)
	}
	if err := cleanup(); err != nil {
		t.Fatal(err)
	}
	if err := db.PingContext(ctx); !errors.Is(err, cache.ErrClosed) {
		t.Errorf("after cleanup: %v; want the shared cache closed", err)
	}
}

// TestRegisterDriverBadOptions: a nil source and an empty name are refused.
func TestRegisterDriverBadOptions[O any](t *testing.T, d Driver[O]) {
	t.Helper()
	if _, err := d.RegisterDriver(d.Name+"-bad-"+rand.Text(), d.WithSource(nil)); err == nil ||
		!strings.Contains(err.Error(), "WithSource") {
		t.Errorf("RegisterDriver with a nil source: %v", err)
	}
	if _, err := d.RegisterDriver(""); err == nil {
		t.Error("RegisterDriver with an empty name succeeded")
	}
}
