package pgkms

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"

	"github.com/kmsdb/kmsdb/internal/rotation"
	"github.com/kmsdb/kmsdb/internal/testdb"
	"github.com/kmsdb/kmsdb/secretsource/cache"
)

type benchEnv struct {
	srv   *testdb.Server
	user  string
	cache *cache.Cache
}

func newBenchEnv(b *testing.B) *benchEnv {
	srv := testdb.Postgres(b)
	user := srv.CreateUser(b, "bench", "bench-pass-1")
	st := testdb.NewSecrets()
	st.PutAccount("db", srv.Account(user, "bench-pass-1"))
	c, err := cache.New(st)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = c.Close() })
	return &benchEnv{srv: srv, user: user, cache: c}
}

// BenchmarkConnect opens (and closes) one database/sql connection through
// the connector and through pgx stdlib with a fixed configuration, against
// the same server in the same run. The paired sub-benchmark alternates the
// two and reports their ratio (connector/raw); the target is under 1.05.
func BenchmarkConnect(b *testing.B) {
	e := newBenchEnv(b)
	cfg, err := pgx.ParseConfig(e.srv.DSN(e.user, "bench-pass-1"))
	if err != nil {
		b.Fatal(err)
	}
	raw := stdlib.GetConnector(*cfg)
	kms, err := newConnector("db", WithSource(e.cache), WithDSN("sslmode=disable"))
	if err != nil {
		b.Fatal(err)
	}
	defer kms.Close()
	testdb.BenchmarkConnectors(b, raw, kms)
}

// BenchmarkPool measures what *Pool adds to plain *pgxpool.Pool when an
// idle connection is there (the rotation loop runs only when a login
// fails): Acquire+Release and QueryRow("SELECT 1")+Scan, each through the
// *Pool and through its embedded *pgxpool.Pool (the same pool and
// connections, so only the wrapper differs), in the same run. The paired sub-benchmarks
// alternate the two and report their throughput ratio (raw time / Pool
// time; the target is at least 0.99) and allocations per call of each
// (the target is none more than pgxpool's).
func BenchmarkPool(b *testing.B) {
	e := newBenchEnv(b)
	ctx := context.Background()
	kms, err := NewPool(ctx, "db", WithSource(e.cache), WithDSN("sslmode=disable"))
	if err != nil {
		b.Fatal(err)
	}
	defer kms.Close()
	raw := kms.Pool
	acquire := func(b *testing.B, acq func(context.Context) (*pgxpool.Conn, error)) {
		c, err := acq(ctx)
		if err != nil {
			b.Fatal(err)
		}
		c.Release()
	}
	queryRow := func(b *testing.B, qr func(context.Context, string, ...any) pgx.Row) {
		var n int
		if err := qr(ctx, "SELECT 1").Scan(&n); err != nil || n != 1 {
			b.Fatal(n, err)
		}
	}
	ops := []struct {
		name      string
		raw, pool func(b *testing.B)
	}{
		{"acquire", func(b *testing.B) { acquire(b, raw.Acquire) }, func(b *testing.B) { acquire(b, kms.Acquire) }},
		{"queryrow", func(b *testing.B) { queryRow(b, raw.QueryRow) }, func(b *testing.B) { queryRow(b, kms.QueryRow) }},
	}
	for _, op := range ops {
		op.pool(b) // the first connection
		b.Run(op.name+"/raw", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				op.raw(b)
			}
		})
		b.Run(op.name+"/pool", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				op.pool(b)
			}
		})
		b.Run(op.name+"/paired", func(b *testing.B) {
			const block = 32 // calls per timed block, alternating which pool goes first
			var tr, tk time.Duration
			timed := func(f func(*testing.B)) time.Duration {
				start := time.Now()
				for range block {
					f(b)
				}
				return time.Since(start)
			}
			for i := 0; b.Loop(); i++ {
				if i%2 == 0 {
					tr += timed(op.raw)
					tk += timed(op.pool)
				} else {
					tk += timed(op.pool)
					tr += timed(op.raw)
				}
			}
			b.StopTimer()
			n := float64(b.N * block)
			b.ReportMetric(float64(tr.Nanoseconds())/n, "raw-ns/op")
			b.ReportMetric(float64(tk.Nanoseconds())/n, "pool-ns/op")
			b.ReportMetric(testing.AllocsPerRun(1000, func() { op.raw(b) }), "raw-allocs/op")
			b.ReportMetric(testing.AllocsPerRun(1000, func() { op.pool(b) }), "pool-allocs/op")
			b.ReportMetric(float64(tr)/float64(tk), "throughput-ratio")
		})
	}
}

// BenchmarkScrubLoginError measures what rotation.Scrub costs on the error
// of a real rejected login (pgx's *pgconn.ConnectError over a PgError
// 28P01): the price of rebuilding it without the password, paid once per
// failed login.
func BenchmarkScrubLoginError(b *testing.B) {
	srv := testdb.Postgres(b)
	user := srv.CreateUser(b, "benchscrub", "bench-scrub-right")
	_, err := pgx.Connect(context.Background(), srv.DSN(user, "bench-scrub-wrong"))
	if err == nil {
		b.Fatal("a wrong password logged in")
	}
	b.ReportAllocs()
	for b.Loop() {
		if rotation.Scrub(err, "bench-scrub-wrong") == err { //nolint:errorlint // identity: the ConnectError must be replaced
			b.Fatal("the ConnectError was kept")
		}
	}
}
