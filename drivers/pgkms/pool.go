package pgkms

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/kmsdb/kmsdb/connector"
	"github.com/kmsdb/kmsdb/internal/rotation"
	"github.com/kmsdb/kmsdb/secretsource"
)

// Pool is a *pgxpool.Pool whose connections log in with the credentials of
// a secret, and whose methods that may open a connection retry a rejected
// login under the rotation algorithm: a rotation never fails a call. It has
// every method of *pgxpool.Pool; the embedded Pool is the plain pool, for
// code that needs that type (a call through it may see the error of a
// rejected login once per rotation).
type Pool struct {
	*pgxpool.Pool
	login *rotation.Login
}

// NewPool returns a Pool for secretName. The pool configuration comes from
// WithPoolConfig, WithDSN or WithConfig (pool settings from their pool_*
// parameters), with pgx's defaults otherwise. As pgxpool.NewWithConfig, it
// makes no connection itself (MinConns connections are made in the
// background); use Ping to check the database. Close the Pool when done: it
// also closes a cache it built in front of a plain Source.
func NewPool(ctx context.Context, secretName string, opts ...Option) (*Pool, error) {
	o, err := collect(opts)
	if err != nil {
		return nil, err
	}
	cfg, err := o.poolConfig()
	if err != nil {
		return nil, err
	}
	l, err := o.configure(cfg, secretName)
	if err != nil {
		return nil, err
	}
	p, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		_ = l.Close()
		return nil, l.Scrub(err, secretsource.DBAccount{})
	}
	return &Pool{Pool: p, login: l}, nil
}

// ConfigurePool makes the connections of a pool built from cfg log in with
// the credentials of secretName: it sets cfg.BeforeConnect (a BeforeConnect
// already set runs after it). Connections use the newest account the
// connector knows, and ACSPrevious while it stands in for a rejected
// current version; but pgxpool cannot retry a rejected login, so the one
// acquisition that meets it fails. Use NewPool for no failure at all.
// WithDSN, WithConfig and WithPoolConfig do not apply. The connector's
// cache, when it built one for WithSource, lives as long as the process.
func ConfigurePool(cfg *pgxpool.Config, secretName string, opts ...Option) error {
	if cfg == nil {
		return errors.New("pgkms: ConfigurePool: config is nil")
	}
	o, err := collect(opts)
	if err != nil {
		return err
	}
	if o.DSNSet || o.cfg != nil || o.poolCfg != nil {
		return errors.New("pgkms: ConfigurePool takes the pool configuration itself; WithDSN, WithConfig and WithPoolConfig do not apply")
	}
	_, err = o.configure(cfg, secretName)
	return err
}

func (o *options) poolConfig() (*pgxpool.Config, error) {
	if o.poolCfg != nil {
		return o.poolCfg, nil
	}
	dsn := ""
	if o.DSNSet {
		dsn = o.DSN
	}
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("pgkms: WithDSN: %w", scrubParseError(err, dsn))
	}
	if o.cfg != nil {
		cfg.ConnConfig = o.cfg
	}
	return cfg, nil
}

// configure sets cfg.BeforeConnect and returns the Login behind it.
func (o *options) configure(cfg *pgxpool.Config, secretName string) (*rotation.Login, error) {
	l, err := o.NewLogin(secretName, classify, cfg.ConnConfig.Password)
	if err != nil {
		return nil, err
	}
	a := &applier{endpoint: newEndpoint(cfg.ConnConfig, o.EndpointFromSecret), login: l}
	next := cfg.BeforeConnect
	cfg.BeforeConnect = func(ctx context.Context, cc *pgx.ConnConfig) error {
		if err := a.apply(ctx, cc); err != nil {
			return err
		}
		if next != nil {
			return next(ctx, cc)
		}
		return nil
	}
	return l, nil
}

// Stats returns the counters of the pool's rotation loop.
func (p *Pool) Stats() connector.Stats { return p.login.Stats() }

// Close closes the pool, then what the connector owns.
func (p *Pool) Close() {
	p.Pool.Close()
	_ = p.login.Close()
}

// Acquire returns a connection from the pool, opening one if needed; a
// rejected login is retried under the rotation algorithm.
//
// An idle connection costs what it costs in pgxpool: the rotation loop runs
// only when opening a connection failed. A new connection logs in with the
// account the connector chooses now (rotation.Login.Account); when the
// database rejects it, rotation.Continue takes over and each retry logs in
// with exactly the account the loop chose, carried in the context to
// BeforeConnect.
func (p *Pool) Acquire(ctx context.Context) (*pgxpool.Conn, error) {
	c, err := p.Pool.Acquire(ctx)
	if err == nil {
		return c, nil
	}
	return p.acquireAfter(ctx, err)
}

// acquireAfter handles a failed acquisition. Only a login the database
// refused enters the rotation loop (and counts as a login, with a
// connector.LoginEvent): a rejected password, retried under the rotation
// algorithm, a refusal retrying cannot heal, and the answers the connector
// itself gave BeforeConnect (a secret that cannot be read, a rejection being
// waited out). Every other error (a closed pool, an acquisition that timed
// out or whose context ended, too many connections, a network error) comes
// back as pgxpool returned it, scrubbed, without counting as a login.
func (p *Pool) acquireAfter(ctx context.Context, err error) (*pgxpool.Conn, error) {
	acct := p.triedAccount(err)
	if !loginRefused(err) {
		return nil, p.login.Scrub(err, acct)
	}
	c, err := rotation.Continue(ctx, p.login, acct, err, func(ctx context.Context, acct secretsource.DBAccount) (*pgxpool.Conn, error) {
		return p.Pool.Acquire(withAccount(ctx, acct))
	})
	if err != nil {
		// A retry that failed for a reason that is not about the login
		// comes back as pgxpool returned it (scrubbed), as above.
		var ce *connector.Error
		if errors.As(err, &ce) && ce.Class == connector.Other {
			return nil, ce.Err
		}
		return nil, err
	}
	return c, nil
}

// triedAccount is the account of the login that failed with err, the error
// pgxpool returned (zero when unknown). pgx keeps the configuration of the
// attempt in its *pgconn.ConnectError, the password included: it is read
// here, from the error pgxpool handed the Pool, and never reaches a caller
// (rotation.Scrub replaces the ConnectError by a copy without it).
func (p *Pool) triedAccount(err error) secretsource.DBAccount {
	var pe *pgconn.ConnectError
	if errors.As(err, &pe) && pe.Config != nil {
		acct, _ := p.login.Match(pe.Config.User, pe.Config.Password)
		return acct
	}
	return secretsource.DBAccount{}
}

// loginRefused reports whether err, from a failed acquisition, is the
// database's answer to a login (an error classify does not call Other) or
// the connector's own, from BeforeConnect.
func loginRefused(err error) bool {
	var ce *connector.Error
	if errors.As(err, &ce) {
		return true
	}
	var pe *pgconn.PgError
	return errors.As(err, &pe) && classify(err) != connector.Other
}

// AcquireFunc acquires a connection, calls f with it and releases it.
func (p *Pool) AcquireFunc(ctx context.Context, f func(*pgxpool.Conn) error) error {
	c, err := p.Acquire(ctx)
	if err != nil {
		return err
	}
	defer c.Release()
	return f(c)
}

// Exec acquires a connection, runs sql and releases the connection.
func (p *Pool) Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error) {
	c, err := p.Acquire(ctx)
	if err != nil {
		return pgconn.CommandTag{}, err
	}
	defer c.Release()
	return c.Exec(ctx, sql, args...)
}

// Query acquires a connection and runs sql; the connection is released
// when the rows are closed (or read to the end).
func (p *Pool) Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error) {
	c, err := p.Acquire(ctx)
	if err != nil {
		return errRows{err}, err
	}
	rows, err := c.Query(ctx, sql, args...)
	if err != nil {
		c.Release()
		return errRows{err}, err
	}
	r := rowsChunks.get()
	r.Rows, r.c = rows, c
	return r, nil
}

// QueryRow acquires a connection and runs sql; the connection is released
// by Scan.
func (p *Pool) QueryRow(ctx context.Context, sql string, args ...any) pgx.Row {
	c, err := p.Acquire(ctx)
	if err != nil {
		return errRows{err}
	}
	r := rowChunks.get()
	r.r, r.c = c.QueryRow(ctx, sql, args...), c
	return r
}

// SendBatch acquires a connection and sends b; the connection is released
// when the results are closed.
func (p *Pool) SendBatch(ctx context.Context, b *pgx.Batch) pgx.BatchResults {
	c, err := p.Acquire(ctx)
	if err != nil {
		return errBatch{err}
	}
	r := batchChunks.get()
	r.BatchResults, r.c = c.SendBatch(ctx, b), c
	return r
}

// Begin acquires a connection and starts a transaction; the connection is
// released by Commit or Rollback.
func (p *Pool) Begin(ctx context.Context) (pgx.Tx, error) {
	return p.BeginTx(ctx, pgx.TxOptions{})
}

// BeginTx acquires a connection and starts a transaction with opts; the
// connection is released by Commit or Rollback.
func (p *Pool) BeginTx(ctx context.Context, opts pgx.TxOptions) (pgx.Tx, error) {
	c, err := p.Acquire(ctx)
	if err != nil {
		return nil, err
	}
	tx, err := c.BeginTx(ctx, opts)
	if err != nil {
		c.Release()
		return nil, err
	}
	t := txChunks.get()
	t.Tx, t.c = tx, c
	return t, nil
}

// CopyFrom acquires a connection, runs a COPY FROM and releases the connection.
func (p *Pool) CopyFrom(ctx context.Context, tableName pgx.Identifier, columnNames []string, rowSrc pgx.CopyFromSource) (int64, error) {
	c, err := p.Acquire(ctx)
	if err != nil {
		return 0, err
	}
	defer c.Release()
	return c.CopyFrom(ctx, tableName, columnNames, rowSrc)
}

// Ping acquires a connection, pings the server and releases the connection.
func (p *Pool) Ping(ctx context.Context) error {
	c, err := p.Acquire(ctx)
	if err != nil {
		return err
	}
	defer c.Release()
	return c.Ping(ctx)
}

// chunks hands out zeroed values of T carved from arrays, so that wrapping
// a result costs an allocation per chunkLen calls, as pgxpool's own
// wrappers do. A value is never handed out twice.
type chunks[T any] struct{ p sync.Pool }

const chunkLen = 64

type chunk[T any] struct {
	items [chunkLen]T
	n     int
}

func (c *chunks[T]) get() *T {
	ch, _ := c.p.Get().(*chunk[T])
	if ch == nil {
		ch = new(chunk[T])
	}
	v := &ch.items[ch.n]
	ch.n++
	if ch.n < chunkLen {
		c.p.Put(ch)
	}
	return v
}

var (
	rowChunks   chunks[poolRow]
	rowsChunks  chunks[poolRows]
	batchChunks chunks[poolBatch]
	txChunks    chunks[poolTx]
)

// poolRows releases its connection when closed.
type poolRows struct {
	pgx.Rows
	c *pgxpool.Conn
}

func (r *poolRows) Close() {
	r.Rows.Close()
	if r.c != nil {
		r.c.Release()
		r.c = nil
	}
}

func (r *poolRows) Next() bool {
	if r.Rows.Next() {
		return true
	}
	r.Close()
	return false
}

// poolRow releases its connection after Scan.
type poolRow struct {
	r pgx.Row
	c *pgxpool.Conn
}

func (r *poolRow) Scan(dest ...any) error {
	err := r.r.Scan(dest...)
	if r.c != nil {
		r.c.Release()
		r.c = nil
	}
	return err
}

// poolBatch releases its connection when closed.
type poolBatch struct {
	pgx.BatchResults
	c *pgxpool.Conn
}

func (b *poolBatch) Close() error {
	err := b.BatchResults.Close()
	if b.c != nil {
		b.c.Release()
		b.c = nil
	}
	return err
}

// poolTx releases its connection when the transaction ends.
type poolTx struct {
	pgx.Tx
	c *pgxpool.Conn
}

func (t *poolTx) Commit(ctx context.Context) error {
	err := t.Tx.Commit(ctx)
	if t.c != nil {
		t.c.Release()
		t.c = nil
	}
	return err
}

func (t *poolTx) Rollback(ctx context.Context) error {
	err := t.Tx.Rollback(ctx)
	if t.c != nil {
		t.c.Release()
		t.c = nil
	}
	return err
}

// errRows is the Rows and Row of a query that could not start.
type errRows struct{ err error }

func (errRows) Close()                                       {}
func (e errRows) Err() error                                 { return e.err }
func (errRows) CommandTag() pgconn.CommandTag                { return pgconn.CommandTag{} }
func (errRows) FieldDescriptions() []pgconn.FieldDescription { return nil }
func (errRows) Next() bool                                   { return false }
func (e errRows) Scan(...any) error                          { return e.err }
func (e errRows) Values() ([]any, error)                     { return nil, e.err }
func (errRows) RawValues() [][]byte                          { return nil }
func (errRows) Conn() *pgx.Conn                              { return nil }
func (errRows) TypeMap() *pgtype.Map                         { return nil }

// errBatch is the BatchResults of a batch that could not be sent.
type errBatch struct{ err error }

func (e errBatch) Exec() (pgconn.CommandTag, error) { return pgconn.CommandTag{}, e.err }
func (e errBatch) Query() (pgx.Rows, error)         { return errRows(e), e.err }
func (e errBatch) QueryRow() pgx.Row                { return errRows(e) }
func (e errBatch) Close() error                     { return e.err }
func (errBatch) Tx() pgx.Tx                         { return nil }
