package kmsdbotel_test

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/kmsdb/kmsdb/connector"
	"github.com/kmsdb/kmsdb/drivers/mysqlkms"
	"github.com/kmsdb/kmsdb/kmsdbotel"
	"github.com/kmsdb/kmsdb/secretsource"
	"github.com/kmsdb/kmsdb/secretsource/cache"
	"github.com/kmsdb/kmsdb/secretsource/kms"
	"github.com/kmsdb/kmsdb/secretsource/kmstest"
)

// mariaDB opens the admin connection of the local MariaDB (the root module's
// internal/testdb cannot be imported from here): KMSDB_TEST_MYSQL_ADMIN_DSN,
// default root@tcp(127.0.0.1:3306)/. It returns the server's address.
func mariaDB(t *testing.T) (*sql.DB, string) {
	t.Helper()
	dsn := os.Getenv("KMSDB_TEST_MYSQL_ADMIN_DSN")
	if dsn == "" {
		dsn = "root@tcp(127.0.0.1:3306)/"
	}
	cfg, err := mysql.ParseDSN(dsn)
	if err != nil {
		t.Fatalf("KMSDB_TEST_MYSQL_ADMIN_DSN: %v", err)
	}
	db, err := sql.Open("mysql", dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := db.PingContext(ctx); err != nil {
		t.Fatalf("MariaDB at %s does not answer (run `bash scripts/testdb.sh`): %v", cfg.Addr, err)
	}
	return db, cfg.Addr
}

// setPassword creates user (for hosts % and localhost) or changes its password.
func setPassword(ctx context.Context, admin *sql.DB, user, password string, create bool) error {
	verb := "ALTER"
	if create {
		verb = "CREATE"
	}
	conn, err := admin.Conn(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	// DDL takes no placeholders: quote, with backslash escapes on.
	if _, err := conn.ExecContext(ctx, "SET SESSION sql_mode = REPLACE(@@sql_mode, 'NO_BACKSLASH_ESCAPES', '')"); err != nil {
		return err
	}
	lit := func(s string) string {
		return "'" + strings.NewReplacer(`\`, `\\`, "'", `\'`).Replace(s) + "'"
	}
	for _, h := range []string{"%", "localhost"} {
		if _, err := conn.ExecContext(ctx, verb+" USER "+lit(user)+"@"+lit(h)+" IDENTIFIED BY "+lit(password)); err != nil {
			return err
		}
	}
	return nil
}

// countingSource counts the fetches of the current version and of others.
type countingSource struct {
	*kms.Source
	current, versions atomic.Int64
}

func (s *countingSource) GetSecret(ctx context.Context, name string) (*secretsource.Secret, error) {
	s.current.Add(1)
	return s.Source.GetSecret(ctx, name)
}

func (s *countingSource) GetSecretVersion(ctx context.Context, name string, ref secretsource.VersionRef) (*secretsource.Secret, error) {
	s.versions.Add(1)
	return s.Source.GetSecretVersion(ctx, name, ref)
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// A rotation under load, KMS on the emulator and the database real: the
// counters and the histogram tell what connector.Stats and the events
// tell, and nothing exported holds a password.
func TestRotationUnderLoadMatchesStats(t *testing.T) {
	admin, addr := mariaDB(t)
	ctx := context.Background()
	user := "kotel_" + randomHex(4)
	oldPass := "Old-pass-" + randomHex(8)
	if err := setPassword(ctx, admin, user, oldPass, true); err != nil {
		t.Fatalf("create user: %v", err)
	}
	t.Cleanup(func() { _, _ = admin.Exec("DROP USER IF EXISTS '" + user + "'@'%', '" + user + "'@'localhost'") })

	const secret = "rotating-db"
	data, _ := json.Marshal(map[string]string{"AccountName": user, "AccountPassword": oldPass})
	srv, src := emulator(t, kmstest.SecretSpec{Name: secret, Type: "Rds", Data: string(data),
		ExtendedConfig: map[string]any{"SecretSubType": "SingleUser"}})
	var mu sync.Mutex
	passwords := []string{oldPass, emuSecret}
	srv.OnRotate(func(e kmstest.RotationEvent) { // the database first, then the secret
		if e.Phase != "before" {
			return
		}
		var v struct{ AccountPassword string }
		if err := json.Unmarshal([]byte(e.NewValue), &v); err != nil || v.AccountPassword == "" {
			t.Errorf("rotation: new value without a password: %v", err)
			return
		}
		mu.Lock()
		passwords = append(passwords, v.AccountPassword)
		mu.Unlock()
		if err := setPassword(ctx, admin, user, v.AccountPassword, false); err != nil {
			t.Errorf("rotation: alter user: %v", err)
		}
	})

	tm := newTelemetry(t)
	var events, retried, previous atomic.Int64
	o := tm.observer(kmsdbotel.WithNext(connector.Observer{Login: func(_ context.Context, e connector.LoginEvent) {
		events.Add(1)
		if e.Attempts > 1 {
			retried.Add(1)
		}
		if e.PreviousUsed {
			previous.Add(1)
		}
	}}))
	connector.SetDefaultObserver(o)
	t.Cleanup(func() { connector.SetDefaultObserver(connector.Observer{}) })

	counted := &countingSource{Source: src}
	c, err := cache.New(counted, cache.WithHooks(o.Cache), cache.WithRefreshLimit(10*time.Millisecond, 5))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	conn := mysqlkms.NewConnector(secret, mysqlkms.WithSource(c), mysqlkms.WithDSN("tcp("+addr+")/"))
	db := sql.OpenDB(conn)
	db.SetMaxIdleConns(0) // every use logs in
	defer db.Close()

	app := tm.tp.Tracer("app")
	const workers, each = 6, 15
	var done atomic.Int64
	rotated := make(chan struct{})
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for range each {
				cctx, cancel := context.WithTimeout(ctx, 60*time.Second)
				cctx, span := app.Start(cctx, "ping") // the application's span around the query
				err := db.PingContext(cctx)
				span.End()
				cancel()
				if err != nil {
					t.Errorf("ping: %v", err)
					return
				}
				if done.Add(1) == 2*workers {
					close(rotated) // every worker keeps connecting while the secret rotates
				}
			}
		})
	}
	<-rotated
	if _, err := srv.RotateSecret(secret); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	_ = db.Close()

	st := conn.Stats()
	t.Logf("stats %+v; events %d, retried %d, previous used %d; fetches %d, of other versions %d",
		st, events.Load(), retried.Load(), previous.Load(), counted.current.Load(), counted.versions.Load())
	if st.AuthFailures == 0 {
		t.Fatal("no login was rejected during the rotation: does the database enforce passwords? (scripts/testdb.sh)")
	}
	name := attribute.String("kmsdb.secret.name", secret)
	// A refresh the rotation loop kicked may still be on its way back from
	// the emulator: wait for its event. Every fetch has one, of the
	// current version or of another (GetSecretVersion: ACSPrevious).
	calls := func() int64 { return counted.current.Load() + counted.versions.Load() }
	if got, want := counted.current.Load()+counted.versions.Load(), int64(srv.Calls("GetSecretValue", secret)); got != want {
		t.Errorf("the source made %d calls, the emulator saw %d", got, want)
	}
	rm := tm.collect(t)
	for deadline := time.Now().Add(30 * time.Second); sum(t, rm, "kmsdb.kms.calls", name) != calls() && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
		rm = tm.collect(t)
	}
	checks := []struct {
		metric    string
		got, want int64
	}{
		{"kmsdb.login.attempts", sum(t, rm, "kmsdb.login.attempts", name), st.Logins},
		{"kmsdb.auth_failures", sum(t, rm, "kmsdb.auth_failures", name), st.AuthFailures},
		{"kmsdb.logins{failure}", sum(t, rm, "kmsdb.logins", attribute.String("kmsdb.result", "failure")), st.Failed},
		{"kmsdb.logins", sum(t, rm, "kmsdb.logins", name), events.Load()},
		{"kmsdb.logins{success}", sum(t, rm, "kmsdb.logins", attribute.String("kmsdb.result", "success")), workers * each},
		{"kmsdb.previous_used", sum(t, rm, "kmsdb.previous_used", name), previous.Load()},
		{"kmsdb.rotation.wait count", int64(histCount(t, rm, "kmsdb.rotation.wait", name)), retried.Load()},
		{"kmsdb.kms.calls", sum(t, rm, "kmsdb.kms.calls", name), calls()},
		{"kmsdb.cache.refreshes", sum(t, rm, "kmsdb.cache.refreshes", name), calls()},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s = %d, want %d", c.metric, c.got, c.want)
		}
	}
	if retried.Load() == 0 {
		t.Error("no connection retried during the rotation")
	}
	// The spans nest: a rotation in the ping that met it, the cold fetch
	// in the ping that started it; the refreshes the rotation loop asks for
	// run in the background, as root spans.
	pings := map[trace.SpanID]bool{}
	for _, s := range tm.spans.Ended() {
		if s.Name() == "ping" {
			pings[s.SpanContext().SpanID()] = true
		}
	}
	var rotationSpans, coldSpans int64
	for _, s := range tm.spans.Ended() {
		set := attribute.NewSet(s.Attributes()...)
		switch s.Name() {
		case "kmsdb.rotation":
			rotationSpans++
			if !s.StartTime().Before(s.EndTime()) {
				t.Errorf("rotation span from %v to %v", s.StartTime(), s.EndTime())
			}
			if !pings[s.Parent().SpanID()] {
				t.Errorf("rotation span's parent %v is not a ping span", s.Parent().SpanID())
			}
		case "kmsdb.secret.fetch":
			reason, _ := set.Value("kmsdb.cache.reason")
			if reason.AsString() == "cold" {
				coldSpans++
				if !pings[s.Parent().SpanID()] {
					t.Errorf("cold fetch span's parent %v is not a ping span", s.Parent().SpanID())
				}
			} else if s.Parent().IsValid() {
				t.Errorf("%s fetch span (a background refresh) has a parent", reason.AsString())
			}
			if result, _ := set.Value("kmsdb.result"); result.AsString() == "success" {
				for _, k := range []attribute.Key{"kmsdb.kms.gateway", "cloud.region", "kmsdb.kms.request_id"} {
					if v, _ := set.Value(k); v.AsString() == "" {
						t.Errorf("successful %s fetch span lacks %s", reason.AsString(), k)
					}
				}
			}
		}
	}
	if coldSpans != 1 {
		t.Errorf("%d cold fetch spans, want 1", coldSpans)
	}
	if rotationSpans != retried.Load() {
		t.Errorf("%d kmsdb.rotation spans, want %d (the sequences that retried)", rotationSpans, retried.Load())
	}

	out := tm.exported(t)
	mu.Lock()
	defer mu.Unlock()
	if len(passwords) < 3 {
		t.Fatal("the rotation hook did not see the new password")
	}
	for _, p := range passwords {
		if strings.Contains(out, p) {
			t.Errorf("a password or AccessKey secret shows in the exported telemetry")
		}
	}
	if !strings.Contains(out, "metric kmsdb.auth_failures") || !strings.Contains(out, "span kmsdb.rotation") {
		t.Errorf("the export looks empty:\n%s", out)
	}
}
