package rotation

import (
	"context"
	"database/sql/driver"

	"github.com/kmsdb/kmsdb/connector"
	"github.com/kmsdb/kmsdb/secretsource"
)

// DialFunc opens one database connection logging in with acct. It must not
// retry authentication failures itself: Run does.
type DialFunc func(ctx context.Context, acct secretsource.DBAccount) (driver.Conn, error)

// Connector is a database/sql driver.Connector whose connections log in with
// the credentials of a secret, under the rotation algorithm of the package
// documentation. sql.DB closes it (and a cache it owns) on DB.Close.
type Connector struct {
	login *Login
	drv   driver.Driver
	dial  DialFunc
	err   error
}

var (
	_ driver.Connector           = (*Connector)(nil)
	_ interface{ Close() error } = (*Connector)(nil)
)

// New returns a Connector that opens connections with dial under l. drv is
// what Driver returns.
func New(drv driver.Driver, l *Login, dial DialFunc) *Connector {
	return &Connector{login: l, drv: drv, dial: dial}
}

// Failed returns a Connector whose Connect always returns err: a constructor
// that cannot return an error (NewConnector(name, opts...) fits in
// sql.OpenDB(...)) reports a bad option on the first Connect / db.PingContext.
func Failed(drv driver.Driver, err error) *Connector {
	return &Connector{drv: drv, err: err}
}

// Connect opens one connection.
func (c *Connector) Connect(ctx context.Context) (driver.Conn, error) {
	if c.err != nil {
		return nil, c.err
	}
	return Run(ctx, c.login, c.dial)
}

// Driver returns the driver given to New.
func (c *Connector) Driver() driver.Driver { return c.drv }

// Err returns the option error a Connector built by Failed reports, nil otherwise.
func (c *Connector) Err() error { return c.err }

// Login returns the Login of the connector (nil for a Failed one).
func (c *Connector) Login() *Login { return c.login }

// Stats returns the counters of the connector's Login.
func (c *Connector) Stats() connector.Stats {
	if c.login == nil {
		return connector.Stats{}
	}
	return c.login.Stats()
}

// Close releases what the connector owns (a cache it built in front of a
// plain Source). database/sql calls it from DB.Close. It is idempotent.
func (c *Connector) Close() error {
	if c.login == nil {
		return nil
	}
	return c.login.Close()
}
