package pgkms

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"

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
	kms, err := newConnector("db", WithProvider(e.cache), WithDSN("sslmode=disable"))
	if err != nil {
		b.Fatal(err)
	}
	defer kms.Close()
	testdb.BenchmarkConnectors(b, raw, kms)
}

// BenchmarkPoolAcquire measures what the rotation loop adds to an Acquire
// that finds an idle connection: plain *pgxpool.Pool against *Pool.
func BenchmarkPoolAcquire(b *testing.B) {
	e := newBenchEnv(b)
	ctx := context.Background()
	cfg, err := pgxpool.ParseConfig(e.srv.DSN(e.user, "bench-pass-1"))
	if err != nil {
		b.Fatal(err)
	}
	raw, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		b.Fatal(err)
	}
	defer raw.Close()
	kms, err := NewPool(ctx, "db", WithProvider(e.cache), WithDSN("sslmode=disable"))
	if err != nil {
		b.Fatal(err)
	}
	defer kms.Close()
	b.Run("raw", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			c, err := raw.Acquire(ctx)
			if err != nil {
				b.Fatal(err)
			}
			c.Release()
		}
	})
	b.Run("pool", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			c, err := kms.Acquire(ctx)
			if err != nil {
				b.Fatal(err)
			}
			c.Release()
		}
	})
}
