package connector_test

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/kmsdb/kmsdb/connector"
	"github.com/kmsdb/kmsdb/drivers/mysqlkms"
	"github.com/kmsdb/kmsdb/internal/credtest"
	"github.com/kmsdb/kmsdb/internal/syncbuf"
	"github.com/kmsdb/kmsdb/internal/testdb"
	"github.com/kmsdb/kmsdb/secretsource/cache"
	"github.com/kmsdb/kmsdb/secretsource/kmstest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// observed records what an Observer receives.
type observed struct {
	mu     sync.Mutex
	logins []connector.LoginEvent
	cache  []any // cache.RefreshedEvent, RefreshFailedEvent, StaleEvent, EvictedEvent
	log    syncbuf.Buffer
}

func (o *observed) observer() connector.Observer {
	add := func(e any) { o.mu.Lock(); o.cache = append(o.cache, e); o.mu.Unlock() }
	return connector.Observer{
		Logger: slog.New(slog.NewTextHandler(&o.log, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Cache: cache.Hooks{
			Refreshed:     func(_ context.Context, e cache.RefreshedEvent) { add(e) },
			RefreshFailed: func(_ context.Context, e cache.RefreshFailedEvent) { add(e) },
			ServingStale:  func(_ context.Context, e cache.StaleEvent) { add(e) },
			Evicted:       func(_ context.Context, e cache.EvictedEvent) { add(e) },
		},
		Login: func(_ context.Context, e connector.LoginEvent) {
			o.mu.Lock()
			o.logins = append(o.logins, e)
			o.mu.Unlock()
		},
	}
}

func (o *observed) take() ([]connector.LoginEvent, []any) {
	o.mu.Lock()
	defer o.mu.Unlock()
	l, c := o.logins, o.cache
	o.logins, o.cache = nil, nil
	return l, c
}

// TestObserver: one SetDefaultObserver call reaches the default cache's
// hooks and logger and every connector built without a logger. A rotation
// against the emulator and MariaDB, through sql.OpenDB(mysqlkms.NewConnector
// (name)) and the default cache configured by the environment alone, gives
// one LoginEvent per connection, the refresh that brought the new version,
// and no password in any event or log line.
func TestObserver(t *testing.T) {
	const name = "db-observed"
	pw := []string{"observed-pass-one-1", "observed-pass-two-2", "observed-pass-three-3"}
	db, srv, user, value := startObserved(t, name, pw[0])

	var o observed
	connector.SetDefaultObserver(o.observer()) // before the default cache exists: its configuration is logged too
	connector.SetDefaultCache(nil)
	t.Cleanup(func() { connector.SetDefaultCache(nil); connector.SetDefaultObserver(connector.Observer{}) })

	sdb := sql.OpenDB(mysqlkms.NewConnector(name))
	sdb.SetMaxIdleConns(0) // every query logs in
	t.Cleanup(func() { _ = sdb.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	query := func(db *sql.DB) error {
		var one int
		return db.QueryRowContext(ctx, "SELECT 1").Scan(&one)
	}
	var all []any // every event, for the password check

	// 1. A cold start: one fetch, one login.
	if err := query(sdb); err != nil {
		t.Fatal(err)
	}
	logins, events := o.take()
	all = append(append(all, anys(logins)...), events...)
	v1 := only(t, "first connection", logins).Version
	if e := logins[0]; e.Secret != name || e.User != user || v1 == "" || e.Attempts != 1 || e.PreviousUsed || e.Err != nil {
		t.Errorf("first connection: %+v", e)
	}
	if r := refreshed(events); len(r) != 1 || r[0].Name != name || r[0].Version != v1 || r[0].Reason != "cold" {
		t.Errorf("cache events of the first connection: %+v", events)
	}

	// 2. The database and the secret rotate; the cache still holds v1.
	if err := db.SetPassword(ctx, user, pw[1]); err != nil {
		t.Fatal(err)
	}
	if err := srv.PutSecretValue(name, value(pw[1]), "v-observed-2"); err != nil {
		t.Fatal(err)
	}
	if err := query(sdb); err != nil {
		t.Fatal(err)
	}
	logins, events = o.take()
	all = append(append(all, anys(logins)...), events...)
	if e := only(t, "connection during the rotation", logins); e.Version != "v-observed-2" || e.Attempts < 2 || e.Err != nil || e.PreviousUsed {
		t.Errorf("connection during the rotation: %+v", e)
	}
	if r := refreshed(events); len(r) == 0 || !r[len(r)-1].Changed || r[len(r)-1].Version != "v-observed-2" || r[len(r)-1].Previous != v1 {
		t.Errorf("cache events during the rotation: %+v", events)
	}

	// 3. The database moves to a password KMS never had: a connector that
	// does not wait fails; its event carries the scrubbed *Error.
	if err := db.SetPassword(ctx, user, pw[2]); err != nil {
		t.Fatal(err)
	}
	failing := sql.OpenDB(mysqlkms.NewConnector(name, mysqlkms.WithGracePeriod(-1)))
	failing.SetMaxIdleConns(0)
	t.Cleanup(func() { _ = failing.Close() })
	qerr := query(failing)
	if !errors.Is(qerr, connector.ErrCredentialsRejected) {
		t.Fatalf("query with a password the database no longer accepts: %v", qerr)
	}
	_ = failing.Close() // stops its background refresh before the events are read
	logins, events = o.take()
	all = append(append(all, anys(logins)...), events...)
	e := only(t, "failed connection", logins)
	var ce *connector.Error
	if e.Class != connector.AuthFailure || !errors.As(e.Err, &ce) || ce.Secret != name || e.Attempts != 2 ||
		(e.Version != "v-observed-2" && e.Version != v1) { // the current version, then the one it replaced
		t.Errorf("failed connection: %+v", e)
	}

	checkObserved(t, all, o.log.String(), name, pw)
}

func only(t *testing.T, what string, logins []connector.LoginEvent) connector.LoginEvent {
	t.Helper()
	if len(logins) != 1 {
		t.Fatalf("%s: %d LoginEvents, want 1: %+v", what, len(logins), logins)
	}
	return logins[0]
}

func refreshed(events []any) []cache.RefreshedEvent {
	var out []cache.RefreshedEvent
	for _, e := range events {
		if r, ok := e.(cache.RefreshedEvent); ok {
			out = append(out, r)
		}
	}
	return out
}

func anys[T any](s []T) []any {
	out := make([]any, len(s))
	for i, v := range s {
		out[i] = v
	}
	return out
}

// startObserved creates a MariaDB user with password, and an emulator
// holding the secret name with its account; the environment configures the
// default cache for that emulator, as a user would (no code option).
func startObserved(t *testing.T, name, password string) (*testdb.Server, *kmstest.Server, string, func(string) string) {
	t.Helper()
	db := testdb.MariaDB(t)
	db.RequirePasswordEnforced(t)
	user := db.CreateUser(t, "obs", password)
	value := func(p string) string {
		b, err := json.Marshal(db.Account(user, p))
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	srv := kmstest.Start(t, kmstest.WithAccessKey("LTAIobserver", "observer-secret"),
		kmstest.WithSecret(kmstest.SecretSpec{Name: name, Type: "Rds", Data: value(password)}))
	credtest.Hermetic(t)
	t.Chdir(t.TempDir()) // no secretsmanager.properties
	for k, v := range map[string]string{
		"KMSDB_PROPERTIES_FILE": "", "KMSDB_LOCAL_SECRETS": "", "cache_client_dkms_config_info": "",
		"credentials_type": "ak", "credentials_access_key_id": "LTAIobserver", "credentials_access_secret": "observer-secret",
		"cache_client_region_id": `[{"regionId":"cn-hangzhou","endpoint":"` + srv.KMSTLSAddr() + `","caFilePath":"` + srv.CAFile() + `"}]`,
	} {
		t.Setenv(k, v)
	}

	return db, srv, user, value
}

// checkObserved: no password in any event, in any format, nor in the log;
// the Observer's logger got the connectors' lines.
func checkObserved(t *testing.T, all []any, log, name string, pw []string) {
	t.Helper()
	for _, ev := range all {
		for _, f := range []string{"%v", "%+v", "%#v"} {
			text := fmt.Sprintf(f, ev)
			for _, p := range pw {
				if strings.Contains(text, p) {
					t.Errorf("%s of %T shows a password: %s", f, ev, text)
				}
			}
		}
	}
	for _, p := range pw {
		if strings.Contains(log, p) {
			t.Errorf("the log shows a password:\n%s", log)
		}
	}
	// The Observer's logger got the connectors' and the cache's lines.
	for _, want := range []string{"kmsdb connector: database rejected the credentials", "secret=" + name} {
		if !strings.Contains(log, want) {
			t.Errorf("the Observer's logger has no %q:\n%s", want, log)
		}
	}
}
