package rotation

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/kmsdb/kmsdb/connector"
	"github.com/kmsdb/kmsdb/secretsource"
)

// Options are the settings both drivers' options share. Each driver's
// options struct embeds Options and its With* functions are one-line
// wrappers over the setters here, so the two option sets cannot drift apart.
type Options struct {
	Pkg                string // "mysqlkms" or "pgkms": the prefix of every error
	Source             secretsource.Source
	DSN                string
	DSNSet             bool
	Grace, Probe       time.Duration
	Logger             *slog.Logger
	EndpointFromSecret bool
	Errs               []error
}

// Fail records that option was given a bad value; Err reports it.
func (o *Options) Fail(option, problem string) {
	o.Errs = append(o.Errs, fmt.Errorf("%s: %s: %s", o.Pkg, option, problem))
}

// SetSource is WithSource.
func (o *Options) SetSource(src secretsource.Source) {
	if src == nil {
		o.Fail("WithSource", "source is nil")
	}
	o.Source = src
}

// SetDSN is WithDSN.
func (o *Options) SetDSN(dsn string) { o.DSN, o.DSNSet = dsn, true }

// Err is the options' errors, joined; nil when every option was valid.
func (o *Options) Err() error { return errors.Join(o.Errs...) }

// Apply runs opts (skipping nil ones) on o, the driver's options struct.
func Apply[T any, O ~func(*T)](o *T, opts []O) {
	for _, opt := range opts {
		if opt != nil {
			opt(o)
		}
	}
}

// NewLogin is the Login of a connector (or pool) on secretName with these
// options. redact lists values (a base configuration's password) that must
// not show in errors.
func (o *Options) NewLogin(secretName string, classify func(error) connector.Class, redact ...string) (*Login, error) {
	if secretName == "" {
		return nil, errors.New(o.Pkg + ": the secret name is empty")
	}
	l, err := NewLogin(Config{
		SecretName: secretName, Source: o.Source, GracePeriod: o.Grace, ProbeInterval: o.Probe,
		Classify: classify, Redact: redact, Logger: o.Logger,
	})
	if err != nil {
		return nil, fmt.Errorf("%s: %w", o.Pkg, err)
	}
	return l, nil
}

// OpenFunc builds a connector for a secret and the options of a driver
// registration; dsn is the base configuration the data source name carries
// after "?" (hasDSN false without one).
type OpenFunc func(secret, dsn string, hasDSN bool) (driver.Connector, error)

// NamedDriver is a database/sql driver whose data source name is
// "secret[?base-dsn]" (KMS secret names cannot contain "?").
type NamedDriver struct{ open OpenFunc }

var _ driver.DriverContext = (*NamedDriver)(nil)

// NewNamedDriver returns the driver whose connectors open builds.
func NewNamedDriver(open OpenFunc) *NamedDriver { return &NamedDriver{open: open} }

// Open opens one connection (database/sql uses OpenConnector instead).
func (d *NamedDriver) Open(name string) (driver.Conn, error) {
	c, err := d.OpenConnector(name)
	if err != nil {
		return nil, err
	}
	return c.Connect(context.Background())
}

// OpenConnector parses name and builds its connector.
func (d *NamedDriver) OpenConnector(name string) (driver.Connector, error) {
	secret, dsn, hasDSN := strings.Cut(name, "?")
	return d.open(secret, dsn, hasDSN)
}

var registerMu sync.Mutex

// RegisterDriver registers a database/sql driver named name whose connectors
// open builds (the drivers' RegisterDriver). A Source that is not a Cache
// gets one cache, shared by those connectors and closed by cleanup.
func (o *Options) RegisterDriver(name string, open OpenFunc) (cleanup func() error, err error) {
	if cleanup, err = o.shared(); err != nil {
		return nil, err
	}
	if err := register(o.Pkg, name, NewNamedDriver(open)); err != nil {
		_ = cleanup()
		return nil, err
	}
	return cleanup, nil
}

// register registers d under name with database/sql, returning an error
// (sql.Register panics) when the name is taken.
func register(pkg, name string, d driver.Driver) error {
	registerMu.Lock()
	defer registerMu.Unlock()
	if name == "" {
		return errors.New(pkg + ": RegisterDriver: the driver name is empty")
	}
	if slices.Contains(sql.Drivers(), name) {
		return fmt.Errorf("%s: RegisterDriver: a database/sql driver named %q is already registered", pkg, name)
	}
	sql.Register(name, d)
	return nil
}

// shared prepares o for the connectors of one driver registration: a Source
// that is not a Cache gets one cache, shared by them all and closed by the
// returned close (instead of a cache per sql.DB).
func (o *Options) shared() (close func() error, err error) {
	c, closer, err := cacheFor(o.Source)
	if err != nil {
		return nil, fmt.Errorf("%s: RegisterDriver: %w", o.Pkg, err)
	}
	if closer == nil {
		return func() error { return nil }, nil
	}
	o.Source = c
	var once sync.Once
	return func() error {
		var err error
		once.Do(func() { err = closer.Close() })
		return err
	}, nil
}

var (
	unwrapMu  sync.RWMutex
	unwrapper []func(driver.Connector) *Connector
)

// RegisterUnwrap lets Unwrap see through a driver's Connector type C (the
// drivers call it from init).
func RegisterUnwrap[C driver.Connector](rc func(C) *Connector) {
	unwrapMu.Lock()
	defer unwrapMu.Unlock()
	unwrapper = append(unwrapper, func(c driver.Connector) *Connector {
		if x, ok := c.(C); ok {
			return rc(x)
		}
		return nil
	})
}

// Unwrap returns the *Connector behind a driver's connector (for the CLI,
// which reads the Login's account), nil when c is none of them.
func Unwrap(c driver.Connector) *Connector {
	if rc, ok := c.(*Connector); ok {
		return rc
	}
	unwrapMu.RLock()
	defer unwrapMu.RUnlock()
	for _, f := range unwrapper {
		if rc := f(c); rc != nil {
			return rc
		}
	}
	return nil
}

var _ io.Closer = (*Connector)(nil)
