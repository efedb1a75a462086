package pgkms

import (
	"context"
	"database/sql"
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/kmsdb/kmsdb/internal/testdb"
)

// connectTracer is a pgx tracer (pgx.QueryTracer and pgx.ConnectTracer, as
// otelpgx is) that counts the connects it sees and the users they log in as.
type connectTracer struct {
	connects atomic.Int64
	user     atomic.Value
}

func (t *connectTracer) TraceQueryStart(ctx context.Context, _ *pgx.Conn, _ pgx.TraceQueryStartData) context.Context {
	return ctx
}

func (t *connectTracer) TraceQueryEnd(context.Context, *pgx.Conn, pgx.TraceQueryEndData) {}

func (t *connectTracer) TraceConnectStart(ctx context.Context, d pgx.TraceConnectStartData) context.Context {
	t.connects.Add(1)
	t.user.Store(d.ConnConfig.User)
	return ctx
}

func (t *connectTracer) TraceConnectEnd(context.Context, pgx.TraceConnectEndData) {}

// The application's pgx tracer passes through WithConfig and ConfigurePool:
// every login kmsdb makes is a connect the tracer sees (docs/observability.md).
func TestTracerPassesThrough(t *testing.T) {
	e := newEnv(t)
	user := e.srv.CreateUser(t, "traced", "pass-traced-1")
	e.secrets.PutAccount("db", e.srv.Account(user, "pass-traced-1"))
	ctx := context.Background()

	t.Run("WithConfig", func(t *testing.T) {
		cfg, err := pgx.ParseConfig(fmt.Sprintf("host=%s port=%d sslmode=disable dbname=%s", e.srv.Host(), e.srv.Port(), testdb.Database))
		must(t, err)
		tr := &connectTracer{}
		cfg.Tracer = tr
		c, err := newConnector("db", WithSource(e.cache), WithConfig(cfg))
		must(t, err)
		db := sql.OpenDB(c)
		defer db.Close()
		must(t, db.PingContext(ctx))
		if n, u := tr.connects.Load(), tr.user.Load(); n != 1 || u != user {
			t.Errorf("the tracer saw %d connects as %v, want 1 as %s", n, u, user)
		}
	})
	t.Run("ConfigurePool", func(t *testing.T) {
		cfg, err := pgxpool.ParseConfig(fmt.Sprintf("host=%s port=%d sslmode=disable dbname=%s", e.srv.Host(), e.srv.Port(), testdb.Database))
		must(t, err)
		tr := &connectTracer{}
		cfg.ConnConfig.Tracer = tr
		must(t, ConfigurePool(cfg, "db", WithSource(e.cache)))
		p, err := pgxpool.NewWithConfig(ctx, cfg)
		must(t, err)
		defer p.Close()
		must(t, p.Ping(ctx))
		if n, u := tr.connects.Load(), tr.user.Load(); n != 1 || u != user {
			t.Errorf("the tracer saw %d connects as %v, want 1 as %s", n, u, user)
		}
	})
}
