// Package mysqlkms connects database/sql to MySQL and MariaDB (through
// go-sql-driver/mysql) with the credentials of a KMS secret, and keeps
// working through password rotations.
//
//	db := sql.OpenDB(mysqlkms.NewConnector("db-secret"))
//
// Each new connection logs in with the cached secret; when the database
// rejects it, the connector retries as described in package connector (the
// versions the process holds at once, then waiting for the secret's refresh
// within a grace period; past it, failing fast with one probe login per
// second), so a rotation never surfaces as a failed query.
//
// # Base configuration
//
// Everything but the credentials comes from a base configuration: WithDSN
// (a go-sql-driver DSN without user and password, e.g.
// "tcp(db.example.com:3306)/app?parseTime=true"), or WithConfig (a
// *mysql.Config, cloned: the caller's value is never modified). User and
// password always come from the secret; a database name in the secret fills
// an empty one.
//
// # Security: a secret never moves a pinned address
//
// A secret can carry an endpoint (host/port, Endpoint/Port, or the same keys
// in its ExtendedConfig.CustomData, which anyone allowed to call
// UpdateSecret can change without the right to read the value). The secret's
// endpoint is used only when the base configuration names no address at
// all: no WithDSN or WithConfig, a DSN without "(address)" such as "/app" or
// "tcp/app", or a Config whose Addr is empty. It then fills the address the
// way the AWS wrappers do (the secret fills what the DSN leaves out). An
// address the user wrote (any "(host:port)", any network other than tcp
// such as a unix socket, a Config with Addr set) is never changed by a
// secret: not its host, not its port, not the TLS server name. A secret
// whose host was pointed at a server of the attacker's therefore cannot
// make the connector send it the password. WithEndpointFromSecret opts in to
// the secret's endpoint replacing a pinned address.
//
// # Errors the connector classifies
//
// Authentication failures, retried as a rotation may heal them: 1045
// ER_ACCESS_DENIED_ERROR, 1698 ER_ACCESS_DENIED_NO_PASSWORD_ERROR (MariaDB
// answers it for a user that does not exist yet), and any other error with
// SQLSTATE 28000.
//
// Returned at once (connector.Permanent): 3118 (MySQL) / 4151 (MariaDB)
// account locked, 3955 (MySQL) / 4150 (MariaDB) account blocked after too
// many failed logins, 1862 password expired, 1820 must change password, 1049
// unknown database, 1044 no access to the database, 1130 host not allowed,
// 1129 host blocked, 1251 authentication protocol not supported, the
// driver's configuration errors (ErrNativePassword, ErrCleartextPassword,
// ErrOldPassword, ErrUnknownPlugin, ErrNoTLS), and unreachable networks or
// hosts that do not resolve. Everything else (connection refused, 1040 too
// many connections, timeouts) is returned at once as it is.
//
// A password expired on MariaDB with disconnect_on_expired_password=OFF (its
// default) still logs in, in sandbox mode: the error (1820) then comes with
// the first statement, not from the connector.
//
// # Opening by driver name
//
// Frameworks that open by name can use the registered driver "mysqlkms":
//
//	sql.Open("mysqlkms", "db-secret")
//	sql.Open("mysqlkms", "db-secret?tcp(db.example.com:3306)/app?parseTime=true")
//
// The data source name is the secret name, optionally followed by "?" and a
// go-sql-driver DSN without user and password (KMS secret names cannot
// contain "?"). Such connectors use the process-wide default cache (see
// connector.SetDefaultCache). RegisterDriver registers another name whose
// connectors take options (source, logger, grace period...). For GORM, sqlx
// or ent, sql.OpenDB with NewConnector and the framework's "existing
// *sql.DB" constructor gives access to every option too (examples/frameworks).
package mysqlkms

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/kmsdb/kmsdb/connector"
	"github.com/kmsdb/kmsdb/internal/rotation"
	"github.com/kmsdb/kmsdb/secretsource"
)

// DriverName is the name under which the package registers its driver.
const DriverName = "mysqlkms"

// byName is the driver registered as DriverName (its connectors use the
// default cache), and the Driver of every connector.
var byName *rotation.NamedDriver

func init() {
	byName = rotation.NewNamedDriver((&options{Options: rotation.Options{Pkg: pkg}}).open)
	sql.Register(DriverName, byName)
	rotation.RegisterUnwrap(func(c *Connector) *rotation.Connector { return c.rc })
}

const pkg = "mysqlkms" // the prefix of errors

// Option configures a connector.
type Option func(*options)

type options struct {
	rotation.Options // source, DSN, grace, probe, logger, endpoint rule
	cfg              *mysql.Config
}

// WithSource sets where the secret comes from, typically a shared
// *cache.Cache. A secretsource.Cache (such as a *cache.Cache) is used as is;
// any other source gets a cache of its own, closed with the connector
// (sql.DB.Close). Default: connector.DefaultCache.
func WithSource(src secretsource.Source) Option { return func(o *options) { o.SetSource(src) } }

// WithDSN sets the base configuration from a go-sql-driver/mysql DSN, e.g.
// "tcp(db.example.com:3306)/app?parseTime=true". A user or password in it is
// replaced by the secret's.
func WithDSN(dsn string) Option { return func(o *options) { o.SetDSN(dsn) } }

// WithConfig sets the base configuration. It is cloned; the caller's value
// is never modified. User and Passwd are replaced by the secret's. A
// non-empty Addr (or a Net other than tcp) pins the address against the
// secret's endpoint; note that mysql.ParseDSN fills 127.0.0.1:3306 in for a
// DSN without address, so give such a DSN to WithDSN to let the secret fill it.
func WithConfig(cfg *mysql.Config) Option {
	return func(o *options) {
		if cfg == nil {
			o.Fail("WithConfig", "config is nil")
			return
		}
		o.cfg = cfg.Clone()
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
// replace the address of the base configuration, and the TLS server name
// follow it when it was derived from that address. Without it, the secret's
// endpoint only fills a base configuration that names no address (see the
// package documentation): use it only when whoever can change the secret,
// its ExtendedConfig included, may also choose the server that receives the
// password.
func WithEndpointFromSecret() Option { return func(o *options) { o.EndpointFromSecret = true } }

// Connector is what NewConnector returns: a driver.Connector for
// sql.OpenDB whose connections log in with a secret's credentials. Stats
// tells what its logins did; sql.DB.Close calls Close.
type Connector struct{ rc *rotation.Connector }

// Connect opens one connection, retrying a login rejected during a rotation.
func (c *Connector) Connect(ctx context.Context) (driver.Conn, error) { return c.rc.Connect(ctx) }

// Driver returns the "mysqlkms" driver.
func (c *Connector) Driver() driver.Driver { return c.rc.Driver() }

// Stats counts the connector's logins, rejections and fallbacks.
func (c *Connector) Stats() connector.Stats { return c.rc.Stats() }

// Close releases the cache the connector built in front of a plain Source,
// if any. It is idempotent.
func (c *Connector) Close() error { return c.rc.Close() }

// NewConnector returns a connector for sql.OpenDB whose connections log in
// with the credentials of secretName:
//
//	db := sql.OpenDB(mysqlkms.NewConnector("db-secret"))
//
// It never fails: an invalid option is reported by the first Connect
// (db.PingContext). Use Open to validate eagerly.
func NewConnector(secretName string, opts ...Option) *Connector {
	c, err := newConnector(secretName, opts...)
	if err != nil {
		return &Connector{rotation.Failed(byName, err)}
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
// frameworks given a driver name) gets a logger, grace period or source too.
// The data source name is as for "mysqlkms": the secret name, optionally
// followed by "?" and a base DSN (which replaces a WithDSN or WithConfig of
// opts). A
// Source that is not a cache gets one cache, shared by every sql.DB opened
// by name and closed by cleanup; call cleanup when they are closed. A name
// already registered is an error.
func RegisterDriver(name string, opts ...Option) (cleanup func() error, err error) {
	o, err := collect(opts)
	if err != nil {
		return nil, err
	}
	return o.RegisterDriver(name, o.open)
}

func newConnector(secretName string, opts ...Option) (*Connector, error) {
	o, err := collect(opts)
	if err != nil {
		return nil, err
	}
	return o.connector(secretName)
}

func collect(opts []Option) (*options, error) {
	o := &options{Options: rotation.Options{Pkg: pkg}}
	rotation.Apply(o, opts)
	if err := o.Err(); err != nil {
		return nil, err
	}
	return o, nil
}

// open builds the connector of a data source name: a copy of o, with the
// name's base DSN when it has one.
func (o *options) open(secret, dsn string, hasDSN bool) (driver.Connector, error) {
	c := *o
	if hasDSN {
		c.cfg = nil // the name's DSN replaces a WithConfig
		c.SetDSN(dsn)
	}
	return c.connector(secret)
}

func (o *options) connector(secretName string) (*Connector, error) {
	base, pinned, err := o.baseConfig()
	if err != nil {
		return nil, err
	}
	l, err := o.NewLogin(secretName, classify, base.Passwd)
	if err != nil {
		return nil, err
	}
	dial := newDialer(base, !pinned || o.EndpointFromSecret).dial
	return &Connector{rotation.New(byName, l, dial)}, nil
}

// baseConfig returns the base configuration and whether it pins an address
// (names one the user wrote, as opposed to the driver's default).
func (o *options) baseConfig() (base *mysql.Config, pinned bool, err error) {
	switch {
	case o.DSNSet && o.cfg != nil:
		return nil, false, errors.New("mysqlkms: WithDSN and WithConfig both given; use one")
	case o.DSNSet:
		cfg, err := mysql.ParseDSN(o.DSN)
		if err != nil {
			return nil, false, fmt.Errorf("mysqlkms: WithDSN: %w", rotation.Scrub(err, o.DSN))
		}
		// ParseDSN fills 127.0.0.1:3306 in for a DSN without address: decide
		// from the text what the user wrote.
		netw, addr := dsnAddress(o.DSN)
		base, pinned = cfg, namesAddress(netw, addr)
	case o.cfg != nil:
		base, pinned = o.cfg, namesAddress(o.cfg.Net, o.cfg.Addr)
	default:
		base = mysql.NewConfig()
	}
	// Validate now (TLS config names, server public keys...) on a throwaway copy.
	probe := base.Clone()
	if _, err := mysql.NewConnector(probe); err != nil {
		return nil, false, fmt.Errorf("mysqlkms: invalid base configuration: %w", err)
	}
	return base, pinned, nil
}

// namesAddress reports whether a base configuration with this network and
// address names where to connect: any address, or a network other than TCP
// (a unix socket's default path, a dialer registered by name).
func namesAddress(netw, addr string) bool {
	return addr != "" || (netw != "" && netw != "tcp")
}

// dsnAddress returns the network and address written in a go-sql-driver DSN
// ([user[:password]@][net[(addr)]]/dbname[?params]), "" for parts it
// leaves out, following mysql.ParseDSN's own splitting: the last '/', the
// last '@' before it, the first '(' after that.
func dsnAddress(dsn string) (netw, addr string) {
	slash := strings.LastIndexByte(dsn, '/')
	if slash <= 0 {
		return "", ""
	}
	head := dsn[:slash]
	if at := strings.LastIndexByte(head, '@'); at >= 0 {
		head = head[at+1:]
	}
	netw, rest, hasAddr := strings.Cut(head, "(")
	if hasAddr {
		addr = strings.TrimSuffix(rest, ")")
	}
	return netw, addr
}

// dialer builds the per-connection configuration and connects.
type dialer struct {
	base     *mysql.Config // never modified after construction
	baseHost string
	// useEndpoint: the secret's endpoint sets the address (the base names
	// none, or WithEndpointFromSecret).
	useEndpoint bool
}

func newDialer(base *mysql.Config, useEndpoint bool) *dialer {
	d := &dialer{base: base, useEndpoint: useEndpoint}
	d.baseHost, _, _ = net.SplitHostPort(base.Addr)
	return d
}

func (d *dialer) config(acct secretsource.DBAccount) *mysql.Config {
	cfg := d.base.Clone()
	cfg.User, cfg.Passwd = acct.Username, acct.Password
	if d.useEndpoint && acct.Host != "" {
		port := acct.Port
		if port == 0 {
			port = 3306
		}
		cfg.Net = "tcp"
		cfg.Addr = net.JoinHostPort(acct.Host, strconv.Itoa(port))
		if cfg.TLS != nil && !cfg.TLS.InsecureSkipVerify && (cfg.TLS.ServerName == "" || cfg.TLS.ServerName == d.baseHost) {
			cfg.TLS.ServerName = acct.Host
		}
	}
	if cfg.DBName == "" {
		cfg.DBName = acct.DBName
	}
	return cfg
}

func (d *dialer) dial(ctx context.Context, acct secretsource.DBAccount) (driver.Conn, error) {
	c, err := mysql.NewConnector(d.config(acct))
	if err != nil {
		return nil, err
	}
	return c.Connect(ctx)
}

// classify tells what a go-sql-driver/mysql connection error means for the
// rotation algorithm (see the package documentation for the exact codes).
func classify(err error) connector.Class {
	var me *mysql.MySQLError
	if errors.As(err, &me) {
		switch me.Number {
		case 1045, 1698:
			return connector.AuthFailure
		case 3118, 4151, // account locked (MySQL, MariaDB)
			3955, 4150, // blocked after too many failed logins (MySQL, MariaDB)
			1862, 1820, // password expired
			1049,       // unknown database
			1044,       // no access to the database
			1130, 1129, // host not allowed, host blocked
			1251: // authentication protocol not supported
			return connector.Permanent
		}
		if me.SQLState == [5]byte{'2', '8', '0', '0', '0'} {
			return connector.AuthFailure
		}
		return connector.Other
	}
	for _, target := range []error{mysql.ErrNativePassword, mysql.ErrCleartextPassword, mysql.ErrOldPassword,
		mysql.ErrUnknownPlugin, mysql.ErrNoTLS} {
		if errors.Is(err, target) {
			return connector.Permanent
		}
	}
	return rotation.ClassifyNetwork(err)
}
