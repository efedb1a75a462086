package integration

// Targets: the three ways an application reaches the database through kmsdb
// (mysqlkms, pgkms, pgkms.Pool), each opened on a cache-shaped source.

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"strconv"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/kmsdb/kmsdb/connector"
	"github.com/kmsdb/kmsdb/drivers/mysqlkms"
	"github.com/kmsdb/kmsdb/drivers/pgkms"
	"github.com/kmsdb/kmsdb/internal/testdb"
	"github.com/kmsdb/kmsdb/secretsource"
)

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
