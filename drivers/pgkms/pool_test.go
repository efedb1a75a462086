package pgkms

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// TestPoolUnderRotation: goroutines query the pool without pause while
// connections are re-made all the time and the password rotates in
// alternating orders: no query may fail.
func TestPoolUnderRotation(t *testing.T) {
	e := newEnv(t)
	user := e.srv.CreateUser(t, "load", "load-pass-0")
	e.secrets.PutAccount("db", e.srv.Account(user, "load-pass-0"))
	cfg, err := pgxpool.ParseConfig("sslmode=disable pool_max_conns=4 pool_max_conn_lifetime=150ms pool_health_check_period=50ms")
	must(t, err)
	p := e.poolWith(t, "db", WithPoolConfig(cfg))
	db := e.open(t, "db")
	db.SetMaxIdleConns(4)
	db.SetConnMaxLifetime(150 * time.Millisecond)
	ctx, cancel := context.WithCancel(context.Background())
	var queries, failures atomic.Int64
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			for ctx.Err() == nil {
				var one int
				var err error
				if i%2 == 0 {
					err = p.QueryRow(ctx, "SELECT 1").Scan(&one)
				} else {
					err = db.QueryRowContext(ctx, "SELECT 1").Scan(&one)
				}
				if err != nil && ctx.Err() == nil {
					failures.Add(1)
					t.Errorf("query failed during rotation: %v", err)
				}
				queries.Add(1)
			}
		})
	}
	for i := 1; i <= 4; i++ {
		time.Sleep(200 * time.Millisecond)
		next := fmt.Sprintf("load-pass-%d", i)
		if i%2 == 1 { // secret, then the database 100 ms later
			e.secrets.PutAccount("db", e.srv.Account(user, next))
			_, _ = e.cache.Refresh(ctx, "db")
			time.Sleep(100 * time.Millisecond)
			must(t, e.srv.SetPassword(ctx, user, next))
		} else { // database, then the secret 100 ms later
			must(t, e.srv.SetPassword(ctx, user, next))
			time.Sleep(100 * time.Millisecond)
			e.secrets.PutAccount("db", e.srv.Account(user, next))
		}
	}
	time.Sleep(200 * time.Millisecond)
	cancel()
	wg.Wait()
	t.Logf("%d queries, %d failed; pool %+v; database/sql %+v; source calls %d",
		queries.Load(), failures.Load(), p.Stats(), e.conn.Stats(), e.secrets.Calls())
}

func TestPoolMethods(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	user := e.srv.CreateUser(t, "methods", "pass-m-1")
	e.secrets.PutAccount("db", e.srv.Account(user, "pass-m-1"))
	p := e.pool(t, "db")
	// Each call after a rotation meets a rejected login first.
	rotate := func(i int) {
		next := fmt.Sprintf("pass-m-%d", i+2)
		must(t, e.srv.SetPassword(ctx, user, next))
		e.secrets.PutAccount("db", e.srv.Account(user, next))
		p.Reset()
	}
	steps := []struct {
		name string
		run  func() error
	}{
		{"Exec", func() error { _, err := p.Exec(ctx, "CREATE TEMP TABLE t(x int)"); return err }},
		{"Query", func() error {
			rows, err := p.Query(ctx, "SELECT generate_series(1, 3)")
			if err != nil {
				return err
			}
			n := 0
			for rows.Next() {
				n++
			}
			if n != 3 {
				return fmt.Errorf("%d rows", n)
			}
			return rows.Err()
		}},
		{"SendBatch", func() error {
			b := &pgx.Batch{}
			b.Queue("SELECT 1")
			br := p.SendBatch(ctx, b)
			if _, err := br.Exec(); err != nil {
				return err
			}
			return br.Close()
		}},
		{"BeginTx", func() error {
			tx, err := p.Begin(ctx)
			if err != nil {
				return err
			}
			if _, err := tx.Exec(ctx, "SELECT 1"); err != nil {
				return err
			}
			return tx.Commit(ctx)
		}},
		{"CopyFrom", func() error {
			tx, err := p.Begin(ctx)
			if err != nil {
				return err
			}
			defer tx.Rollback(ctx)
			if _, err := tx.Exec(ctx, "CREATE TEMP TABLE c(x int) ON COMMIT DROP"); err != nil {
				return err
			}
			_, err = tx.CopyFrom(ctx, pgx.Identifier{"c"}, []string{"x"}, pgx.CopyFromRows([][]any{{1}, {2}}))
			return err
		}},
		{"AcquireFunc", func() error { return p.AcquireFunc(ctx, func(c *pgxpool.Conn) error { return c.Ping(ctx) }) }},
		{"Ping", func() error { return p.Ping(ctx) }},
	}
	for i, s := range steps {
		rotate(i)
		if err := s.run(); err != nil {
			t.Errorf("%s after a rotation: %v", s.name, err)
		}
	}
	if st := p.Stat(); st.AcquiredConns() != 0 {
		t.Errorf("%d connections still acquired: a wrapper did not release", st.AcquiredConns())
	}
	// Most steps meet a rejected login (a background refresh of the cache
	// may pick a new version up before the next step needs it).
	if got := p.Stats().AuthFailures; got == 0 {
		t.Errorf("no auth failure met: the test did not exercise the retry")
	}
	t.Logf("pool stats: %+v", p.Stats())
}

func TestConfigurePool(t *testing.T) {
	e := newEnv(t)
	user := e.srv.CreateUser(t, "plain", "pass-plain-1")
	e.secrets.PutAccount("db", e.srv.Account(user, "pass-plain-1"))
	cfg, err := pgxpool.ParseConfig("sslmode=disable")
	must(t, err)
	var chained atomic.Bool
	cfg.BeforeConnect = func(ctx context.Context, cc *pgx.ConnConfig) error {
		chained.Store(cc.User == user)
		return nil
	}
	must(t, ConfigurePool(cfg, "db", WithSource(e.cache)))
	p, err := pgxpool.NewWithConfig(context.Background(), cfg)
	must(t, err)
	defer p.Close()
	var u string
	must(t, p.QueryRow(context.Background(), "SELECT current_user").Scan(&u))
	if u != user || !chained.Load() {
		t.Fatalf("current_user = %q, chained BeforeConnect saw the user: %v", u, chained.Load())
	}
}

// TestPoolFastPathAllocatesLikePgxpool: with an idle connection, the *Pool's
// methods allocate no more than the same calls on its plain *pgxpool.Pool
// (the rotation loop runs only when a login was rejected).
func TestPoolFastPathAllocatesLikePgxpool(t *testing.T) {
	e := newEnv(t)
	user := e.srv.CreateUser(t, "allocs", "allocs-pass-1")
	e.secrets.PutAccount("db", e.srv.Account(user, "allocs-pass-1"))
	p := e.pool(t, "db")
	ctx := context.Background()
	acquire := func(acq func(context.Context) (*pgxpool.Conn, error)) func() {
		return func() {
			c, err := acq(ctx)
			if err != nil {
				t.Fatal(err)
			}
			c.Release()
		}
	}
	queryRow := func(qr func(context.Context, string, ...any) pgx.Row) func() {
		return func() {
			var n int
			if err := qr(ctx, "SELECT 1").Scan(&n); err != nil {
				t.Fatal(err)
			}
		}
	}
	for _, c := range []struct {
		name      string
		raw, pool func()
	}{
		{"Acquire", acquire(p.Pool.Acquire), acquire(p.Acquire)},
		{"QueryRow", queryRow(p.Pool.QueryRow), queryRow(p.QueryRow)},
	} {
		c.pool() // the first connection
		raw, pool := testing.AllocsPerRun(500, c.raw), testing.AllocsPerRun(500, c.pool)
		if pool > raw+0.1 {
			t.Errorf("%s allocates %.2f times per call, the plain pgxpool %.2f", c.name, pool, raw)
		}
	}
}
