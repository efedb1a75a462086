package testdb

import (
	"context"
	"database/sql/driver"
	"testing"
	"time"
)

// BenchmarkConnectors compares opening a connection through a kmsdb
// connector with opening it through the raw driver, same server, same run:
// sub-benchmarks raw and connector (time and allocations each), and paired,
// which alternates the two and reports both times and their ratio. One open
// through the connector warms its cache before any timing.
func BenchmarkConnectors(b *testing.B, raw, kms driver.Connector) {
	ctx := context.Background()
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
