package integration

// Overhead of the connectors: opening one connection through the connector
// (warm cache) against the raw driver with a fixed DSN, same server, same
// user, same run.
//
//	go test -run '^$' -bench 'Open' -benchtime 3s ./...   (in integration/)
//
// TestOverheadRatio computes the ratio in one run, interleaving the two in
// rounds so that machine noise hits both alike, and logs it as a
// KMSDB_FIGURES line (target < 1.05). It asserts nothing about time.
// KMSDB_OVERHEAD_OPENS raises the number of opens per round (default 8; MariaDB 8x that).

import (
	"context"
	"database/sql/driver"
	"slices"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"

	"github.com/kmsdb/kmsdb/drivers/mysqlkms"
	"github.com/kmsdb/kmsdb/drivers/pgkms"
	"github.com/kmsdb/kmsdb/internal/testdb"
	"github.com/kmsdb/kmsdb/secretsource/cache"
	"github.com/kmsdb/kmsdb/secretsource/kmstest"
)

// openPair is the connector and the raw driver connector for one engine, both
// logging in as the same user to the same server.
type openPair struct {
	kms, raw driver.Connector
	calls    func() int // KMS calls so far
}

func newOpenPair(tb testing.TB, engine testdb.Engine) openPair {
	tb.Helper()
	k := kindPostgres
	if engine == testdb.EngineMariaDB {
		k = kindMariaDB
	}
	db := dbServer(tb, k)
	pw := "overhead-" + testdbUnique("pw")
	user := db.CreateUser(tb, "overhead", pw)
	const secretName = "overhead-db"
	// A TTL of a day: the cache's first refresh falls anywhere in (0, TTL] (the
	// fleet spread), which with the 5 min default lands inside this test's
	// few seconds about once in a hundred runs; the test counts KMS calls.
	stack := newKMSStack(tb, []cache.Option{cache.WithTTL(24 * time.Hour)},
		kmstest.SecretSpec{Name: secretName, Type: "Rds", Data: rdsValue(user, pw)})
	var p openPair
	base := baseDSN(db, testdb.Database)
	if engine == testdb.EngineMariaDB {
		p.kms = mysqlkms.NewConnector(secretName, mysqlkms.WithSource(stack.cache), mysqlkms.WithDSN(base))
		cfg, err := mysql.ParseDSN(db.DSN(user, pw))
		if err != nil {
			tb.Fatal(err)
		}
		if p.raw, err = mysql.NewConnector(cfg); err != nil {
			tb.Fatal(err)
		}
	} else {
		p.kms = pgkms.NewConnector(secretName, pgkms.WithSource(stack.cache), pgkms.WithDSN(base))
		cfg, err := pgx.ParseConfig(db.DSN(user, pw))
		if err != nil {
			tb.Fatal(err)
		}
		p.raw = stdlib.GetConnector(*cfg)
	}
	p.calls = func() int { return stack.srv.Calls("GetSecretValue", secretName) }
	// Warm both (cache, DNS, server-side caches).
	for _, c := range []driver.Connector{p.kms, p.raw} {
		openClose(tb, c)
	}
	return p
}

func openClose(tb testing.TB, c driver.Connector) {
	conn, err := c.Connect(context.Background())
	if err != nil {
		tb.Fatal(err)
	}
	if err := conn.Close(); err != nil {
		tb.Fatal(err)
	}
}

func benchOpen(b *testing.B, engine testdb.Engine, viaKMS bool) {
	p := newOpenPair(b, engine)
	c := p.raw
	if viaKMS {
		c = p.kms
	}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		openClose(b, c)
	}
}

func BenchmarkOpenConnectorMariaDB(b *testing.B)  { benchOpen(b, testdb.EngineMariaDB, true) }
func BenchmarkOpenRawMariaDB(b *testing.B)        { benchOpen(b, testdb.EngineMariaDB, false) }
func BenchmarkOpenConnectorPostgres(b *testing.B) { benchOpen(b, testdb.EnginePostgres, true) }
func BenchmarkOpenRawPostgres(b *testing.B)       { benchOpen(b, testdb.EnginePostgres, false) }

func TestOverheadRatio(t *testing.T) {
	const rounds = 6
	opens := envInt(t, "KMSDB_OVERHEAD_OPENS", 8)
	for _, engine := range []testdb.Engine{testdb.EngineMariaDB, testdb.EnginePostgres} {
		t.Run(string(engine), func(t *testing.T) {
			opens := opens
			if engine == testdb.EngineMariaDB {
				opens *= 8 // sub-millisecond opens: more samples for the same time
			}
			p := newOpenPair(t, engine)
			calls0 := p.calls()
			var kmsTimes, rawTimes []time.Duration
			for r := range rounds {
				// Alternate which goes first in a round.
				order := []bool{true, false}
				if r%2 == 1 {
					order = []bool{false, true}
				}
				for _, viaKMS := range order {
					c := p.raw
					if viaKMS {
						c = p.kms
					}
					for range opens {
						start := time.Now()
						openClose(t, c)
						d := time.Since(start)
						if viaKMS {
							kmsTimes = append(kmsTimes, d)
						} else {
							rawTimes = append(rawTimes, d)
						}
					}
				}
			}
			calls := p.calls() - calls0
			mk, mr := median(kmsTimes), median(rawTimes)
			ratio := float64(mk) / float64(mr)
			if calls != 0 {
				t.Errorf("%d KMS calls while opening %d connections with a warm cache: want 0", calls, len(kmsTimes))
			}
			figures(t, "engine=%s opens=%d+%d median connector=%s raw=%s ratio=%.3f (target < 1.05; race=%v) kms_calls=%d",
				engine, len(kmsTimes), len(rawTimes), ms(mk), ms(mr), ratio, raceEnabled, calls)
		})
	}
}

func median(s []time.Duration) time.Duration {
	if len(s) == 0 {
		return 0
	}
	s = slices.Clone(s)
	slices.Sort(s)
	return s[len(s)/2]
}
