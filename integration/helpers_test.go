package integration

// Shared helpers of the real-database tests: the emulator + real KMS source +
// real cache stack, a load generator with latency recording, the figures
// lines, and where the database servers come from.
//
// Where the servers come from, in order:
//  1. KMSDB_TEST_PG_ADMIN_DSN / KMSDB_TEST_MYSQL_ADMIN_DSN (see internal/testdb);
//  2. the servers of this machine, prepared by scripts/testdb.sh (`make test` runs it first);
//  3. containers started with testcontainers-go (PostgreSQL and MariaDB modules, MySQL on request) for an
//     engine whose server does not answer, when a Docker engine does.
// KMSDB_TEST_CONTAINERS=1 (`make test-containers`) uses containers only and fails when it cannot;
// =0 never uses them. containers_test.go has the details. When no server is available the tests fail
// (never skip) with a line saying what to set.

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/kmsdb/kmsdb/connector"
	"github.com/kmsdb/kmsdb/drivers/mysqlkms"
	"github.com/kmsdb/kmsdb/drivers/pgkms"
	"github.com/kmsdb/kmsdb/internal/testdb"
	"github.com/kmsdb/kmsdb/secretsource"
	"github.com/kmsdb/kmsdb/secretsource/cache"
	"github.com/kmsdb/kmsdb/secretsource/kms"
	"github.com/kmsdb/kmsdb/secretsource/kmstest"
)

func TestMain(m *testing.M) {
	stop, err := prepareServers()
	if err != nil {
		fmt.Fprintln(os.Stderr, "integration:", err)
		os.Exit(1)
	}
	code := 0
	func() {
		defer func() {
			// Containers are removed on every exit path, a failed removal fails the run.
			if err := stop(); err != nil {
				fmt.Fprintln(os.Stderr, "integration:", err)
				code = max(code, 1)
			}
		}()
		// Leak check on every exit path of the tests themselves.
		code = runWithLeakCheck(m)
	}()
	os.Exit(code)
}

func runWithLeakCheck(m *testing.M) int {
	code := m.Run()
	if code != 0 {
		return code
	}
	if err := goleak.Find(goleakOptions()...); err != nil {
		fmt.Fprintln(os.Stderr, "goleak: goroutines left running after the tests:", err)
		return 1
	}
	return 0
}

func goleakOptions() []goleak.Option {
	return []goleak.Option{
		// database/sql and net/http keep-alive goroutines of pools that tests closed
		// exit asynchronously; goleak.Find retries for a while before reporting.
		goleak.IgnoreTopFunction("internal/poll.runtime_pollWait"),
		// testcontainers' reaper connection (only when containers were used).
		goleak.IgnoreAnyFunction("github.com/testcontainers/testcontainers-go.(*Reaper).connect.func1"),
	}
}

// ---------------------------------------------------------------------------
// Database servers: env DSNs -> local servers -> testcontainers (containers_test.go).

// serverAnswers reports whether testdb reaches engine e's server (DSN given or local).
func serverAnswers(e testdb.Engine) bool {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := testdb.Open(ctx, e)
	if err != nil {
		return false
	}
	_ = s.Close(ctx)
	return true
}

// ---------------------------------------------------------------------------
// KMS: emulator + real secretsource/kms (alibaba-cloud-sdk-go over HTTPS) + real cache.

const (
	testAccessKeyID     = "LTAIintegration"
	testAccessKeySecret = "integration-access-secret"
	testRegion          = "cn-hangzhou"
)

// kmsStack is the emulator and the cache the connectors read through.
type kmsStack struct {
	srv   *kmstest.Server
	src   *kms.Source
	cache *cache.Cache
}

// newKMSStack starts the emulator with specs, a KMS source talking HTTPS to it
// through the official SDK, and a cache over that source. Everything is closed
// when t ends.
func newKMSStack(t testing.TB, cacheOpts []cache.Option, specs ...kmstest.SecretSpec) *kmsStack {
	t.Helper()
	opts := []kmstest.Option{kmstest.WithAccessKey(testAccessKeyID, testAccessKeySecret)}
	for _, s := range specs {
		opts = append(opts, kmstest.WithSecret(s))
	}
	srv := kmstest.Start(t, opts...)
	cred, err := kms.NewCredential(kms.CredentialOptions{Type: kms.CredentialAccessKey,
		AccessKeyID: testAccessKeyID, AccessKeySecret: testAccessKeySecret})
	if err != nil {
		t.Fatal(err)
	}
	src, err := kms.New(kms.Config{
		Region:     kms.Region{ID: testRegion, Endpoint: srv.KMSTLSAddr()},
		Credential: cred,
		Scheme:     "https",
		RootCAs:    srv.CertPool(),
		Timeout:    2 * time.Second,
		Logger:     testLogger(t),
	})
	if err != nil {
		t.Fatal(err)
	}
	c, err := cache.New(src, append([]cache.Option{cache.WithLogger(testLogger(t))}, cacheOpts...)...)
	if err != nil {
		_ = src.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := c.Close(); err != nil {
			t.Error(err)
		}
		_ = src.Close()
	})
	return &kmsStack{srv: srv, src: src, cache: c}
}

// testLogger logs warnings and errors to the test log (KMSDB_TEST_DEBUG=1: debug too).
func testLogger(t testing.TB) *slog.Logger {
	level := slog.LevelWarn
	if os.Getenv("KMSDB_TEST_DEBUG") != "" {
		level = slog.LevelDebug
	}
	return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: level}))
}

type tWriter struct{ t testing.TB }

func (w tWriter) Write(p []byte) (int, error) {
	defer func() { _ = recover() }() // a log line after the test ended must not panic
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// rdsValue is the JSON value of an Rds secret.
func rdsValue(user, password string) string {
	return fmt.Sprintf(`{"AccountName":%s,"AccountPassword":%s}`, strconv.Quote(user), jsonString(password))
}

// jsonString quotes s as a JSON string (strconv.Quote differs for non-ASCII escapes only; both are valid JSON
// for the characters we use, but encode explicitly to be exact).
func jsonString(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range s {
		switch {
		case r == '"':
			b.WriteString(`\"`)
		case r == '\\':
			b.WriteString(`\\`)
		case r < 0x20:
			fmt.Fprintf(&b, `\u%04x`, r)
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte('"')
	return b.String()
}

// account decodes the account of an Rds secret value.
func account(t testing.TB, value string) (user, password string) {
	t.Helper()
	user, password, err := decodeAccount(value)
	if err != nil {
		t.Fatal(err)
	}
	return user, password
}

// decodeAccount is account for goroutines other than the test's.
func decodeAccount(value string) (user, password string, err error) {
	s := secretsource.NewSecret(secretsource.Fields{Name: "decode", SecretType: "Rds", Value: []byte(value)})
	a, err := secretsource.DecodeDBAccount(s)
	if err != nil {
		return "", "", fmt.Errorf("decode Rds value: %w", err)
	}
	return a.Username, a.Password, nil
}

// ---------------------------------------------------------------------------
// Load: N goroutines querying without pause, latency per phase.

// phase of a load run; samples are recorded per phase.
type phase int32

const (
	phaseWarmup   phase = iota // not recorded
	phaseSteady                // no rotation
	phaseRotating              // rotations (or outage) in progress
	numPhases
)

func (p phase) String() string {
	return [...]string{"warmup", "steady", "rotating"}[p]
}

// loadRun is a running load.
type loadRun struct {
	phase   atomic.Int32
	stop    atomic.Bool
	wg      sync.WaitGroup
	workers []*worker

	errMu  sync.Mutex
	errors []string // first few distinct failures
}

type worker struct {
	lat  [numPhases][]time.Duration
	errs [numPhases]int
}

// startLoad runs query in n goroutines, without pause, until Stop. Each query
// gets its own timeout so a stuck query is a failure, not a hang.
func startLoad(n int, query func(ctx context.Context) error) *loadRun {
	l := &loadRun{}
	for range n {
		w := &worker{}
		for p := range w.lat {
			w.lat[p] = make([]time.Duration, 0, 1<<14)
		}
		l.workers = append(l.workers, w)
		l.wg.Go(func() {
			for !l.stop.Load() {
				p := phase(l.phase.Load())
				ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
				start := time.Now()
				err := query(ctx)
				d := time.Since(start)
				cancel()
				if err != nil {
					w.errs[p]++
					l.noteError(p, err)
					continue
				}
				if p != phaseWarmup {
					w.lat[p] = append(w.lat[p], d)
				}
			}
		})
	}
	return l
}

func (l *loadRun) noteError(p phase, err error) {
	l.errMu.Lock()
	defer l.errMu.Unlock()
	if len(l.errors) < 10 {
		l.errors = append(l.errors, p.String()+": "+err.Error())
	}
}

func (l *loadRun) setPhase(p phase) { l.phase.Store(int32(p)) }

// finish stops the load and returns the results per phase.
func (l *loadRun) finish() loadResult {
	l.stop.Store(true)
	l.wg.Wait()
	var r loadResult
	for _, w := range l.workers {
		for p := range numPhases {
			r.lat[p] = append(r.lat[p], w.lat[p]...)
			r.errs[p] += w.errs[p]
		}
	}
	for p := range numPhases {
		slices.Sort(r.lat[p])
	}
	r.errors = l.errors
	return r
}

type loadResult struct {
	lat    [numPhases][]time.Duration // sorted
	errs   [numPhases]int
	errors []string
}

func (r loadResult) failed() int {
	n := 0
	for _, e := range r.errs {
		n += e
	}
	return n
}

func (r loadResult) queries(p phase) int { return len(r.lat[p]) + r.errs[p] }

// pct is the q-quantile (0..1) of phase p's latencies.
func (r loadResult) pct(p phase, q float64) time.Duration {
	s := r.lat[p]
	if len(s) == 0 {
		return 0
	}
	i := int(math.Ceil(q*float64(len(s)))) - 1
	return s[max(0, min(i, len(s)-1))]
}

// requireNoFailures fails t when any query failed, listing the first errors.
func (r loadResult) requireNoFailures(t testing.TB) {
	t.Helper()
	if n := r.failed(); n > 0 {
		t.Errorf("%d queries failed (warmup %d, steady %d, rotating %d); first errors:\n  %s",
			n, r.errs[phaseWarmup], r.errs[phaseSteady], r.errs[phaseRotating], strings.Join(r.errors, "\n  "))
	}
}

// figures logs one line the lead can quote, prefixed KMSDB_FIGURES, and appends
// it to the file named by KMSDB_FIGURES_FILE when set.
func figures(t testing.TB, format string, args ...any) {
	t.Helper()
	line := "KMSDB_FIGURES " + t.Name() + ": " + fmt.Sprintf(format, args...)
	t.Log(line)
	if f := os.Getenv("KMSDB_FIGURES_FILE"); f != "" {
		if fh, err := os.OpenFile(f, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644); err == nil {
			_, _ = fmt.Fprintln(fh, line)
			_ = fh.Close()
		}
	}
}

// ms formats d in milliseconds with two decimals.
func ms(d time.Duration) string { return strconv.FormatFloat(float64(d)/1e6, 'f', 2, 64) + "ms" }

// envInt reads a positive integer environment variable, or def.
func envInt(t testing.TB, name string, def int) int {
	t.Helper()
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n <= 0 {
		t.Fatalf("%s=%q: want a positive integer", name, v)
	}
	return n
}

// selectOne runs SELECT 1 on db and checks the answer.
func selectOne(ctx context.Context, db *sql.DB) error {
	var n int
	if err := db.QueryRowContext(ctx, "SELECT 1").Scan(&n); err != nil {
		return err
	}
	if n != 1 {
		return errors.New("SELECT 1 returned " + strconv.Itoa(n))
	}
	return nil
}

// ---------------------------------------------------------------------------
// Targets: the three ways an application reaches the database through kmsdb.

// targetKind is how the load reaches the database.
type targetKind string

const (
	kindMariaDB  targetKind = "mariadb"  // *sql.DB over mysqlkms
	kindPostgres targetKind = "postgres" // *sql.DB over pgkms (pgx stdlib)
	kindPgxpool  targetKind = "pgxpool"  // *pgkms.Pool
)

var allKinds = []targetKind{kindMariaDB, kindPostgres, kindPgxpool}

func (k targetKind) engine() testdb.Engine {
	if k == kindMariaDB {
		return testdb.EngineMariaDB
	}
	return testdb.EnginePostgres
}

// dbServer returns the test server of k's engine, password enforcement proven.
func dbServer(t testing.TB, k targetKind) *testdb.Server {
	t.Helper()
	var s *testdb.Server
	if k.engine() == testdb.EngineMariaDB {
		s = testdb.MariaDB(t)
	} else {
		s = testdb.Postgres(t)
	}
	s.RequirePasswordEnforced(t)
	return s
}

// baseDSN is the connection string without credentials the connectors start from.
func baseDSN(s *testdb.Server, dbName string) string {
	if s.Engine() == testdb.EngineMariaDB {
		return "tcp(" + s.Addr() + ")/" + dbName + "?timeout=10s"
	}
	return "postgres://" + s.Addr() + "/" + dbName + "?sslmode=disable&connect_timeout=10"
}

// target is an open connection pool of one kind.
type target struct {
	kind  targetKind
	query func(ctx context.Context) error
	stats func() connector.Stats
	// newConns counts connections opened so far (successful logins).
	newConns func() int64
	close    func()
}

type targetOptions struct {
	workers  int           // pool size
	lifetime time.Duration // connection max lifetime (0: unlimited)
	dbName   string        // default testdb.Database
	grace    time.Duration // connector grace period (0: default)
}

// openTarget opens a pool of kind k for secretName through the stack's cache.
func openTarget(t testing.TB, k targetKind, s *testdb.Server, p secretsource.Cache, secretName string, o targetOptions) *target {
	t.Helper()
	if o.dbName == "" {
		o.dbName = testdb.Database
	}
	if o.workers == 0 {
		o.workers = 4
	}
	dsn := baseDSN(s, o.dbName)
	log := testLogger(t)
	tg := &target{kind: k}
	switch k {
	case kindMariaDB, kindPostgres:
		var c driver.Connector
		if k == kindMariaDB {
			c = mysqlkms.NewConnector(secretName, mysqlkms.WithSource(p), mysqlkms.WithDSN(dsn),
				mysqlkms.WithLogger(log), mysqlkms.WithGracePeriod(o.grace))
		} else {
			c = pgkms.NewConnector(secretName, pgkms.WithSource(p), pgkms.WithDSN(dsn),
				pgkms.WithLogger(log), pgkms.WithGracePeriod(o.grace))
		}
		db := sql.OpenDB(c)
		db.SetMaxOpenConns(o.workers)
		db.SetMaxIdleConns(o.workers)
		db.SetConnMaxLifetime(o.lifetime)
		tg.query = func(ctx context.Context) error { return selectOne(ctx, db) }
		tg.stats = c.(interface{ Stats() connector.Stats }).Stats
		tg.newConns = func() int64 { st := tg.stats(); return st.Logins - st.AuthFailures - st.Failed }
		tg.close = func() { _ = db.Close() }
	case kindPgxpool:
		cfg, err := pgxpool.ParseConfig(dsn)
		if err != nil {
			t.Fatal(err)
		}
		cfg.MaxConns = int32(o.workers)
		cfg.MinConns = 0
		if o.lifetime > 0 {
			cfg.MaxConnLifetime = o.lifetime
			cfg.MaxConnLifetimeJitter = o.lifetime / 4
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		pool, err := pgkms.NewPool(ctx, secretName, pgkms.WithSource(p), pgkms.WithPoolConfig(cfg),
			pgkms.WithLogger(log), pgkms.WithGracePeriod(o.grace))
		if err != nil {
			t.Fatal(err)
		}
		tg.query = func(ctx context.Context) error {
			var n int
			if err := pool.QueryRow(ctx, "SELECT 1").Scan(&n); err != nil {
				return err
			}
			if n != 1 {
				return errors.New("SELECT 1 returned " + strconv.Itoa(n))
			}
			return nil
		}
		tg.stats = pool.Stats // its Logins count only logins that met a rejection (the rest bypass the loop)
		tg.newConns = func() int64 { return pool.Stat().NewConnsCount() }
		tg.close = pool.Close
	default:
		t.Fatalf("unknown target kind %q", k)
	}
	t.Cleanup(tg.close)
	return tg
}

// testdbUnique is a unique suffix for passwords and names.
func testdbUnique(base string) string { return testdb.UniqueName(base) }
