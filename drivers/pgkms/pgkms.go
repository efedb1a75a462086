// Package pgkms connects to PostgreSQL through pgx v5 with the credentials
// of a KMS secret, and keeps working through password rotations: a
// database/sql connector (pgx stdlib) and a pgxpool.
//
//	db := sql.OpenDB(pgkms.NewConnector("db-secret"))
//	pool, err := pgkms.NewPool(ctx, "db-secret")
//
// Each new connection logs in with the cached secret; when PostgreSQL
// rejects it, the connector retries as described in package connector (the
// versions the process holds at once, then waiting for the secret's refresh
// within a grace period; past it, failing fast with one probe login per
// second), so a rotation never surfaces as a failed query.
//
// # pgxpool
//
// pgxpool has no hook that can retry a failed connect: BeforeConnect only
// edits the configuration, and the constructor's error goes straight to the
// caller of Acquire (or Query, Exec...). NewPool therefore returns a *Pool
// that embeds the *pgxpool.Pool and overrides every method that may open a
// connection (Acquire, AcquireFunc, Exec, Query, QueryRow, SendBatch, Begin,
// BeginTx, CopyFrom, Ping). Each acquires from the pool directly, so a call
// that finds an idle connection costs what it costs in pgxpool (no extra
// allocation); a new connection logs in with the account the connector
// chooses now (rotation.Login.Account: the current version, or an older one
// standing in for it). Only when that login is rejected does the call enter
// the rotation loop (rotation.Continue), whose retries carry the account to
// try in the context to BeforeConnect (pgxpool passes the acquirer's context
// values to the constructor). An authentication failure can only happen while
// a connection is being made, before any statement is sent, so retrying the
// acquisition is always safe. Connections the pool makes in the background
// (MinConns, health checks) use Account's choice and fail silently, as
// pgxpool's do.
//
// Code that needs a plain *pgxpool.Pool can use Pool.Pool (the embedded
// pool) or ConfigurePool, which wires BeforeConnect into a pgxpool.Config:
// connections log in with Account's choice too, but the one Acquire whose
// login was rejected returns that error (the next one succeeds once the
// rotation loop of another call, or the held versions, found a password that
// works).
//
// # Base configuration
//
// Everything but the credentials comes from a base configuration: WithDSN
// (a pgx connection string without password, URL or keyword/value), or
// WithConfig (a *pgx.ConnConfig made by pgx.ParseConfig, copied: the caller's
// value is never modified), or for NewPool WithPoolConfig. With none, pgx's
// defaults and PG* environment variables apply. User and password always
// come from the secret; a database name in the secret fills an empty one.
//
// # Security: a secret never moves a pinned host
//
// A secret can carry an endpoint (host/port, Endpoint/Port, or the same keys
// in its ExtendedConfig.CustomData, which anyone allowed to call
// UpdateSecret can change without the right to read the value). The
// secret's endpoint is used only when the user named no host at all: no
// host in the connection string (keyword host=, URL authority or ?host=),
// no PGHOST, no service (service=, PGSERVICE), no host set in code on a
// WithConfig/WithPoolConfig/ConfigurePool configuration. It then fills what
// the user left out, as the AWS wrappers do: the host, and the port unless
// one was named (port=, URL, PGPORT). The filled host gets the TLS settings
// pgx derives from the connection string for it (sslmode, sslrootcert, SNI
// and the server name for verify-full), exactly as if the user had written
// it. A host the user named, its port, its fallback hosts, a unix socket
// directory and the TLS server name are never changed by a secret, so a
// secret pointed at a server of the attacker's cannot make the connector
// send it the password. WithEndpointFromSecret opts in to the secret's
// endpoint replacing a named host (all fallbacks collapse onto it, each TLS
// mode kept).
//
// Errors from parsing a connection string never show it, nor any spelling
// of a password in it (keyword/value with any spacing or quoting, URL
// userinfo or query, percent-encoded): pgx's own masking is best-effort.
// Errors of a failed login hold no password anywhere a caller can reach:
// pgx keeps the configuration of the attempt, password included, in
// *pgconn.ConnectError; the connectors and the Pool's methods return a copy
// whose Config holds the host, port, database and user only, with the
// *pgconn.PgError (its SQLSTATE) reachable below it. Errors of the embedded
// *pgxpool.Pool and of a ConfigurePool pool are pgx's own, password included.
//
// # Errors the connector classifies
//
// Authentication failure, retried: SQLSTATE 28P01 invalid_password (also
// what PostgreSQL answers for a password past its VALID UNTIL, and for a
// role that does not exist under password authentication: the server does
// not tell the client why).
//
// Returned at once (connector.Permanent): 28000
// invalid_authorization_specification (role not permitted to log in, i.e.
// NOLOGIN, no pg_hba.conf entry, role does not exist where the server trusts
// the address, failed certificate or ident authentication), 3D000 unknown
// database, 42501 no CONNECT privilege, and unreachable networks or hosts
// that do not resolve. Everything else (connection refused, 53300 too many
// connections, 57P03 server starting, timeouts) is returned at once as it is.
// A Pool counts as logins (Stats, connector.LoginEvent) only the logins the
// database refused: a closed pool, an acquisition that timed out or whose
// context ended, too many connections or a network error is returned as
// pgxpool returned it, scrubbed, and counts as nothing.
//
// # Opening by driver name
//
// Frameworks that open by name can use the registered driver "pgkms":
//
//	sql.Open("pgkms", "db-secret")
//	sql.Open("pgkms", "db-secret?postgres://db.example.com:5432/app?sslmode=verify-full")
//	sql.Open("pgkms", "db-secret?host=db.example.com dbname=app")
//
// The data source name is the secret name, optionally followed by "?" and a
// pgx connection string without password (KMS secret names cannot contain
// "?"). Such connectors use the process-wide default cache (see
// connector.SetDefaultCache). RegisterDriver registers another name whose
// connectors take options (source, logger, grace period...).
//
// sqlx picks its bind variables by driver name and does not know "pgkms":
// call sqlx.BindDriver("pgkms", sqlx.DOLLAR) once before sqlx.Open("pgkms",
// ...), or wrap a connector's *sql.DB with sqlx.NewDb(db, "pgx"). Without
// either, Rebind leaves "?" in place and PostgreSQL answers 42601. GORM
// takes the *sql.DB: gorm.Open(postgres.New(postgres.Config{Conn: db})).
// Both are in examples/frameworks.
package pgkms

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"

	"github.com/kmsdb/kmsdb/connector"
	"github.com/kmsdb/kmsdb/internal/rotation"
	"github.com/kmsdb/kmsdb/secretsource"
)

// DriverName is the name under which the package registers its driver.
const DriverName = "pgkms"

func init() {
	sql.Register(DriverName, rotation.NewNamedDriver((&options{Options: rotation.Options{Pkg: pkg}}).open))
	rotation.RegisterUnwrap(func(c *Connector) *rotation.Connector { return c.rc })
	rotation.RegisterRedactor(redactConnectError)
	rotation.RegisterRedactor(redactParseConfigError)
}

const pkg = "pgkms" // the prefix of errors

// Option configures a connector or a pool.
type Option func(*options)

type options struct {
	rotation.Options // source, DSN, grace, probe, logger, endpoint rule
	cfg              *pgx.ConnConfig
	poolCfg          *pgxpool.Config
}

// WithSource sets where the secret comes from, typically a shared
// *cache.Cache. A secretsource.Cache (such as a *cache.Cache) is used as is;
// any other source gets a cache of its own, closed with the connector
// (sql.DB.Close) or the Pool. Default: connector.DefaultCache.
func WithSource(src secretsource.Source) Option { return func(o *options) { o.SetSource(src) } }

// WithDSN sets the base configuration from a pgx connection string (URL or
// keyword/value), e.g. "postgres://db.example.com:5432/app?sslmode=verify-full".
// A user or password in it is replaced by the secret's.
func WithDSN(dsn string) Option { return func(o *options) { o.SetDSN(dsn) } }

// WithConfig sets the base configuration of each connection. It must come
// from pgx.ParseConfig; it is copied, the caller's value is never modified.
// Its host counts as named (pinned against the secret's endpoint) when its
// connection string or PGHOST names one, or when code changed its hosts or
// ports after parsing.
func WithConfig(cfg *pgx.ConnConfig) Option {
	return func(o *options) {
		if cfg == nil {
			o.Fail("WithConfig", "config is nil")
			return
		}
		o.cfg = cfg.Copy()
	}
}

// WithPoolConfig sets the base configuration of NewPool (pool sizes,
// lifetimes, hooks). It must come from pgxpool.ParseConfig; it is copied. A
// BeforeConnect already set runs after the connector has set the credentials.
func WithPoolConfig(cfg *pgxpool.Config) Option {
	return func(o *options) {
		if cfg == nil {
			o.Fail("WithPoolConfig", "config is nil")
			return
		}
		o.poolCfg = cfg.Copy()
	}
}

// WithGracePeriod sets how long a rejected secret version is retried while
// a rotation completes (default connector.DefaultGracePeriod; negative: no
// waiting).
func WithGracePeriod(d time.Duration) Option { return func(o *options) { o.Grace = d } }

// WithProbeInterval sets how often one login may reach the database once
// the secret has been rejected for longer than the grace period, to see
// whether the rotation was fixed; every other connection fails at once
// (default connector.DefaultProbeInterval, one per second).
func WithProbeInterval(d time.Duration) Option { return func(o *options) { o.Probe = d } }

// WithLogger sets the logger for retries and fallbacks (never a password).
func WithLogger(l *slog.Logger) Option { return func(o *options) { o.Logger = l } }

// WithEndpointFromSecret lets the endpoint a secret carries (host, port)
// replace the host and port the base configuration names, its fallbacks
// collapsing onto it and the TLS server name following it when it was the
// base host's. Without it, the secret's endpoint only fills a configuration
// that names no host (see the package documentation): use it only when
// whoever can change the secret, its ExtendedConfig included, may also
// choose the server that receives the password.
func WithEndpointFromSecret() Option { return func(o *options) { o.EndpointFromSecret = true } }

func collect(opts []Option) (*options, error) {
	o := &options{Options: rotation.Options{Pkg: pkg}}
	rotation.Apply(o, opts)
	if err := o.Err(); err != nil {
		return nil, err
	}
	n := 0
	for _, set := range []bool{o.DSNSet, o.cfg != nil, o.poolCfg != nil} {
		if set {
			n++
		}
	}
	if n > 1 {
		return nil, errors.New("pgkms: give only one of WithDSN, WithConfig and WithPoolConfig")
	}
	return o, nil
}

// Connector is what NewConnector returns: a driver.Connector for
// sql.OpenDB (pgx stdlib connections) whose connections log in with a
// secret's credentials. Stats tells what its logins did; sql.DB.Close calls
// Close.
type Connector struct{ rc *rotation.Connector }

// Connect opens one connection, retrying a login rejected during a rotation.
func (c *Connector) Connect(ctx context.Context) (driver.Conn, error) { return c.rc.Connect(ctx) }

// Driver returns pgx's database/sql driver.
func (c *Connector) Driver() driver.Driver { return c.rc.Driver() }

// Stats counts the connector's logins, rejections and fallbacks.
func (c *Connector) Stats() connector.Stats { return c.rc.Stats() }

// Close releases the cache the connector built in front of a plain Source,
// if any. It is idempotent.
func (c *Connector) Close() error { return c.rc.Close() }

// NewConnector returns a connector for sql.OpenDB whose connections log in
// with the credentials of secretName:
//
//	db := sql.OpenDB(pgkms.NewConnector("db-secret"))
//
// It never fails: an invalid option is reported by the first Connect
// (db.PingContext). Use Open to validate eagerly.
func NewConnector(secretName string, opts ...Option) *Connector {
	c, err := newConnector(secretName, opts...)
	if err != nil {
		return &Connector{rotation.Failed(stdlib.GetDefaultDriver(), err)}
	}
	return c
}

// Open validates the options and returns a *sql.DB using NewConnector. It
// makes no network call; use db.PingContext to check the database.
func Open(secretName string, opts ...Option) (*sql.DB, error) {
	c, err := newConnector(secretName, opts...)
	if err != nil {
		return nil, err
	}
	return sql.OpenDB(c), nil
}

// RegisterDriver registers a database/sql driver named name whose connectors
// use opts, so that code opening by name (sql.Open(name, "db-secret"),
// sqlx.Open, frameworks given a driver name) gets a logger, grace period or
// source too. The data source name is as for "pgkms": the secret name,
// optionally followed by "?" and a base connection string (which replaces a
// WithDSN or WithConfig of opts). A Source that is not a cache gets one cache, shared by
// every sql.DB opened by name and closed by cleanup; call cleanup when they
// are closed. A name already registered is an error.
func RegisterDriver(name string, opts ...Option) (cleanup func() error, err error) {
	o, err := collect(opts)
	if err != nil {
		return nil, err
	}
	if o.poolCfg != nil {
		return nil, errors.New("pgkms: RegisterDriver: WithPoolConfig is for NewPool; use WithConfig or WithDSN")
	}
	return o.RegisterDriver(name, o.open)
}

// open builds the connector of a data source name: a copy of o, with the
// name's base connection string when it has one.
func (o *options) open(secret, dsn string, hasDSN bool) (driver.Connector, error) {
	c := *o
	if hasDSN {
		c.cfg = nil // the name's connection string replaces a WithConfig
		c.SetDSN(dsn)
	}
	return c.connector(secret)
}

func newConnector(secretName string, opts ...Option) (*Connector, error) {
	o, err := collect(opts)
	if err != nil {
		return nil, err
	}
	return o.connector(secretName)
}

func (o *options) connector(secretName string) (*Connector, error) {
	if o.poolCfg != nil {
		return nil, errors.New("pgkms: WithPoolConfig is for NewPool; use WithConfig or WithDSN")
	}
	base, err := o.baseConfig()
	if err != nil {
		return nil, err
	}
	l, err := o.NewLogin(secretName, classify, base.Password)
	if err != nil {
		return nil, err
	}
	a := &applier{endpoint: newEndpoint(base, o.EndpointFromSecret), login: l}
	sc := stdlib.GetConnector(*base, stdlib.OptionBeforeConnect(func(ctx context.Context, cfg *pgx.ConnConfig) error {
		return a.apply(ctx, cfg)
	}))
	dial := func(ctx context.Context, acct secretsource.DBAccount) (driver.Conn, error) {
		return sc.Connect(withAccount(ctx, acct))
	}
	return &Connector{rotation.New(stdlib.GetDefaultDriver(), l, dial)}, nil
}

func (o *options) baseConfig() (*pgx.ConnConfig, error) {
	if o.cfg != nil {
		return o.cfg, nil
	}
	dsn := ""
	if o.DSNSet {
		dsn = o.DSN
	}
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("pgkms: WithDSN: %w", scrubParseError(err, dsn))
	}
	return cfg, nil
}

// accountKey carries the account an attempt logs in with, from the rotation
// loop to BeforeConnect.
type accountKey struct{}

// ctxAccount wraps the account so that formatting a context never shows it.
type ctxAccount struct{ acct secretsource.DBAccount }

func (a *ctxAccount) String() string { return a.acct.String() }

func withAccount(ctx context.Context, acct secretsource.DBAccount) context.Context {
	return context.WithValue(ctx, accountKey{}, &ctxAccount{acct})
}

// applier sets the credentials (and the secret's endpoint, when the rules
// allow it) on a connection configuration.
type applier struct {
	endpoint *endpoint
	login    *rotation.Login
}

// apply sets cfg (a copy owned by this connection) from the account in ctx,
// or from the login's current account when the connection is made outside
// the rotation loop (pgxpool background connections, plain ConfigurePool).
func (a *applier) apply(ctx context.Context, cfg *pgx.ConnConfig) error {
	var acct secretsource.DBAccount
	if v, ok := ctx.Value(accountKey{}).(*ctxAccount); ok {
		acct = v.acct
	} else {
		var err error
		if acct, err = a.login.Account(ctx); err != nil {
			return err
		}
	}
	cfg.User, cfg.Password = acct.Username, acct.Password
	if err := a.endpoint.apply(cfg, acct); err != nil {
		return err
	}
	if cfg.Database == "" {
		cfg.Database = acct.DBName
	}
	return nil
}

// classify tells what a pgx connection error means for the rotation
// algorithm (see the package documentation for the exact codes).
func classify(err error) connector.Class {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		switch pe.Code {
		case "28P01":
			return connector.AuthFailure
		case "28000", "3D000", "42501":
			return connector.Permanent
		}
		return connector.Other
	}
	return rotation.ClassifyNetwork(err)
}
