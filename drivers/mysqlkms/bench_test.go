package mysqlkms

import (
	"context"
	"database/sql/driver"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/kmsdb/kmsdb/internal/testdb"
	"github.com/kmsdb/kmsdb/secretsource/cache"
)

// BenchmarkConnect opens (and closes) one connection through the connector
// and through the raw driver with a fixed configuration, against the same
// server in the same run. The paired sub-benchmark alternates the two and
// reports their ratio (connector/raw); the target is under 1.05.
func BenchmarkConnect(b *testing.B) {
	srv := testdb.MariaDB(b)
	user := srv.CreateUser(b, "bench", "bench-pass-1")
	st := testdb.NewSecrets()
	st.PutAccount("db", srv.Account(user, "bench-pass-1"))
	c, err := cache.New(st)
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	ctx := context.Background()

	cfg := mysql.NewConfig()
	cfg.User, cfg.Passwd, cfg.Net, cfg.Addr, cfg.DBName = user, "bench-pass-1", "tcp", srv.Addr(), testdb.Database
	raw, err := mysql.NewConnector(cfg)
	if err != nil {
		b.Fatal(err)
	}
	kms, err := newConnector("db", WithProvider(c))
	if err != nil {
		b.Fatal(err)
	}
	defer kms.Close()
	open := func(b *testing.B, c driver.Connector) time.Duration {
		start := time.Now()
		conn, err := c.Connect(ctx)
		if err != nil {
			b.Fatal(err)
		}
		d := time.Since(start)
		_ = conn.Close()
		return d
	}
	open(b, kms) // warm the cache

	b.Run("raw", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			open(b, raw)
		}
	})
	b.Run("connector", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			open(b, kms)
		}
	})
	b.Run("paired", func(b *testing.B) {
		var tr, tk time.Duration
		for i := 0; b.Loop(); i++ {
			if i%2 == 0 {
				tr += open(b, raw)
				tk += open(b, kms)
			} else {
				tk += open(b, kms)
				tr += open(b, raw)
			}
		}
		b.ReportMetric(float64(tr.Nanoseconds())/float64(b.N), "raw-ns/connect")
		b.ReportMetric(float64(tk.Nanoseconds())/float64(b.N), "connector-ns/connect")
		b.ReportMetric(float64(tk)/float64(tr), "ratio")
	})
}
