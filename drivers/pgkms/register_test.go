package pgkms

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
	"github.com/kmsdb/kmsdb/secretsource/cache"
)

// TestRegisterDriver: a driver registered with options opens by name with
// them, against the real PostgreSQL: its source (a plain one, given one shared
// cache), its grace period (none: a rejected password fails at once instead
// of waiting 30 s), its logger (the rejection is logged there) and the
// name's DSN. The name cannot be registered twice, and cleanup closes the
// shared cache.
func TestRegisterDriver(t *testing.T) {
	srv := testdb.Postgres(t)
	srv.RequirePasswordEnforced(t)
	user := srv.CreateUser(t, "reg", "reg-pass-1")
	acct := srv.Account(user, "reg-pass-1")
	acct.Host, acct.Port = "", 0 // the address comes from the name
	secrets := testdb.NewSecrets()
	secrets.PutAccount("reg-secret", acct)
	var logs syncbuf.Buffer
	name := "pgkms-test-" + rand.Text()

	cleanup, err := RegisterDriver(name, WithSource(secrets), WithGracePeriod(-1),
		WithLogger(slog.New(slog.NewTextHandler(&logs, nil))))
	if err != nil {
		t.Fatal(err)
	}
	db, err := sql.Open(name, "reg-secret?postgres://"+srv.Addr()+"/"+testdb.Database+"?sslmode=disable")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	db.SetMaxIdleConns(0) // every query logs in
	if got := currentUser(t, db); got != user {
		t.Fatalf("CURRENT_USER = %q, want %q", got, user)
	}

	// The database password changes, the secret does not: no grace, so the
	// next login fails at once, and says so in the registered logger.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
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

	if _, err := RegisterDriver(name); err == nil || !strings.Contains(err.Error(), "already registered") {
		t.Errorf("second registration of %q: %v; want 'already registered'", name, err)
	}
	if err := cleanup(); err != nil {
		t.Fatal(err)
	}
	if err := db.PingContext(ctx); !errors.Is(err, cache.ErrClosed) {
		t.Errorf("after cleanup: %v; want the shared cache closed", err)
	}
}

func TestRegisterDriverBadOptions(t *testing.T) {
	if _, err := RegisterDriver("pgkms-bad-"+rand.Text(), WithSource(nil)); err == nil ||
		!strings.Contains(err.Error(), "WithSource") {
		t.Errorf("RegisterDriver with a nil source: %v", err)
	}
	if _, err := RegisterDriver(""); err == nil {
		t.Error("RegisterDriver with an empty name succeeded")
	}
}
