// Package dbrole creates login roles, changes their passwords and drops them
// on MariaDB/MySQL and PostgreSQL through database/sql and an admin account:
// what `kmsdb demo` needs, and what the test fixtures (internal/testdb) build
// on. Role names and passwords are always quoted (never spliced raw into a
// statement), and no error shows a password.
package dbrole

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
)

// Engine names a database engine.
type Engine string

// Engines.
const (
	Postgres Engine = "postgres"
	MariaDB  Engine = "mariadb" // MariaDB or MySQL
)

// Config says which server to administer and where roles get their rights.
type Config struct {
	Engine Engine
	// DSN is the admin account's connection string: a pgx connection string
	// of a superuser (PostgreSQL) or a go-sql-driver/mysql DSN of a user that
	// may CREATE USER and GRANT (MariaDB).
	DSN string
	// Database is the database new roles may connect to (and create objects
	// in); Open creates it when missing.
	Database string
	// Group (PostgreSQL only) is a NOLOGIN role every new role joins, so that a
	// pg_hba.conf rule for +Group asks them for a scram-sha-256 password even
	// where other roles are trusted; Open creates it when missing. Empty: none.
	Group string
}

// Admin is admin access to one server. Its methods are safe for concurrent use.
type Admin struct {
	cfg     Config
	db      *sql.DB // maintenance database (PostgreSQL) / no database (MariaDB)
	grantDB *sql.DB // PostgreSQL: on cfg.Database, for grants and DROP OWNED
	shown   string  // the admin DSN without its password
	host    string
	port    int
	socket  string // MariaDB unix socket, when the DSN names one
	version string
}

// Open connects as admin, checks the server answers and creates the
// database (and PostgreSQL role group) when missing.
func Open(ctx context.Context, cfg Config) (*Admin, error) {
	switch cfg.Engine {
	case Postgres:
		return openPostgres(ctx, cfg)
	case MariaDB:
		return openMariaDB(ctx, cfg)
	}
	return nil, fmt.Errorf("dbrole: unknown engine %q", cfg.Engine)
}

// Engine is the server's engine.
func (a *Admin) Engine() Engine { return a.cfg.Engine }

// Host is the host name or IP address the server listens on for TCP.
func (a *Admin) Host() string { return a.host }

// Port is the server's TCP port.
func (a *Admin) Port() int { return a.port }

// Addr is host:port.
func (a *Admin) Addr() string { return joinHostPort(a.host, a.port) }

// Database is the database roles are granted on.
func (a *Admin) Database() string { return a.cfg.Database }

// Version is the server's version string.
func (a *Admin) Version() string { return a.version }

// Shown is the admin DSN with its password redacted, for messages.
func (a *Admin) Shown() string { return a.shown }

// DB is the admin connection pool; it is closed by Close.
func (a *Admin) DB() *sql.DB { return a.db }

// Close closes the admin connections. Roles stay.
func (a *Admin) Close() error {
	var errs []error
	if a.grantDB != nil {
		errs = append(errs, a.grantDB.Close())
	}
	errs = append(errs, a.db.Close())
	return errors.Join(errs...)
}

// Create creates login role name with password, allowed to connect to
// Database and create objects there. PostgreSQL: a LOGIN role, member of
// Group, its password hashed with scram-sha-256. MariaDB: name@'%' and
// name@'localhost', both IDENTIFIED BY password.
func (a *Admin) Create(ctx context.Context, name, password string) error {
	if a.cfg.Engine == Postgres {
		return a.pgCreate(ctx, name, password)
	}
	return a.myCreate(ctx, name, password)
}

// SetPassword changes the password of role name. Existing sessions stay open.
func (a *Admin) SetPassword(ctx context.Context, name, password string) error {
	if a.cfg.Engine == Postgres {
		return a.pgSetPassword(ctx, name, password)
	}
	return a.mySetPassword(ctx, name, password)
}

// Restore sets the password of role name back after a failed change, as a
// best effort: on MariaDB every account host of name that exists gets it
// (ALTER USER IF EXISTS), so a change that failed half-way (name@'%'
// altered, name@'localhost' refused) is undone; on PostgreSQL it is
// SetPassword. The error, if any, shows no password.
func (a *Admin) Restore(ctx context.Context, name, password string) error {
	if a.cfg.Engine == Postgres {
		return a.pgSetPassword(ctx, name, password)
	}
	return a.myWithSession(ctx, func(conn *sql.Conn) error {
		var errs []error
		for _, h := range myHosts {
			acct := myAccount(name, h)
			if _, err := conn.ExecContext(ctx, "ALTER USER IF EXISTS "+acct+" IDENTIFIED BY "+myLiteral(password)); err != nil {
				errs = append(errs, fmt.Errorf("dbrole: mariadb: restore the password of %s: %w", acct, scrubErr(err, password)))
			}
		}
		return errors.Join(errs...)
	})
}

// Ensure makes login role name exist with password: it sets the password of
// a role that exists and creates (as Create does) one that does not, and
// reports whether it created it. On MariaDB each account host (name@'%',
// name@'localhost') is handled on its own, so a user that exists for one
// host only gets the other; the existing one keeps its grants. An existing
// PostgreSQL role keeps its attributes and memberships (it does not join
// Group).
func (a *Admin) Ensure(ctx context.Context, name, password string) (created bool, err error) {
	if a.cfg.Engine == Postgres {
		return a.pgEnsure(ctx, name, password)
	}
	return a.myEnsure(ctx, name, password)
}

// Exists reports whether role name exists (on MariaDB: for any account host).
func (a *Admin) Exists(ctx context.Context, name string) (bool, error) {
	q := "SELECT count(*) FROM mysql.user WHERE User = ?"
	if a.cfg.Engine == Postgres {
		q = "SELECT count(*) FROM pg_roles WHERE rolname = $1"
	}
	var n int
	if err := a.db.QueryRowContext(ctx, q, name).Scan(&n); err != nil {
		return false, fmt.Errorf("dbrole: %s: does role %s exist: %w", a.cfg.Engine, name, err)
	}
	return n > 0, nil
}

// HBAFile is the path of PostgreSQL's pg_hba.conf ("" on MariaDB or when the
// server does not say).
func (a *Admin) HBAFile(ctx context.Context) string {
	var f string
	if a.cfg.Engine == Postgres {
		_ = a.db.QueryRowContext(ctx, "SHOW hba_file").Scan(&f)
	}
	return f
}

// Drop ends the sessions of role name and drops it (and, on PostgreSQL, what
// it owns in Database). Dropping a role that does not exist is not an error.
func (a *Admin) Drop(ctx context.Context, name string) error {
	if a.cfg.Engine == Postgres {
		return a.pgDrop(ctx, name)
	}
	return a.myDrop(ctx, name)
}

// Alter runs ALTER ROLE name <pg> (PostgreSQL) or, for each account host of
// name, ALTER USER name@host <my> (MariaDB). pg and my are SQL written by the
// caller (e.g. "NOLOGIN", "ACCOUNT LOCK"), never user input.
func (a *Admin) Alter(ctx context.Context, name, pg, my string) error {
	if a.cfg.Engine == Postgres {
		return a.pgExec(ctx, "ALTER ROLE "+pgIdent(name)+" "+pg)
	}
	return a.myForEachHost(ctx, name, "ALTER USER %s "+my)
}

// Login opens one connection to Database as user with password and closes it.
func (a *Admin) Login(ctx context.Context, user, password string) error {
	if a.cfg.Engine == Postgres {
		return pgLogin(ctx, a.host, a.port, a.cfg.Database, user, password)
	}
	return myLogin(ctx, a.Addr(), a.cfg.Database, user, password)
}

// IsAuthFailure reports whether err is the server rejecting a login's
// password (PostgreSQL SQLSTATE 28P01, MariaDB error 1045).
func (a *Admin) IsAuthFailure(err error) bool {
	if a.cfg.Engine == Postgres {
		return SQLState(err) == "28P01"
	}
	return ErrorNumber(err) == 1045
}

// CheckPassword proves that role name logs in with password and that the
// server rejects a wrong password for it: PostgreSQL trusts some roles
// without asking (pg_hba.conf), which would make a rotation meaningless.
func (a *Admin) CheckPassword(ctx context.Context, name, password string) error {
	if err := a.Login(ctx, name, password); err != nil {
		return fmt.Errorf("dbrole: %s at %s: role %s cannot log in with its own password: %w", a.cfg.Engine, a.Addr(), name, err)
	}
	err := a.Login(ctx, name, "wrong-"+password)
	if err == nil {
		return fmt.Errorf("dbrole: %s at %s ACCEPTED A WRONG PASSWORD for role %s: password authentication is not enforced", a.cfg.Engine, a.Addr(), name)
	}
	if !a.IsAuthFailure(err) {
		return fmt.Errorf("dbrole: %s at %s: a wrong password failed, but not with an authentication error: %w", a.cfg.Engine, a.Addr(), err)
	}
	return nil
}

// DSN is a connection string for user with password to Database over TCP, in
// the form the engine's Go driver reads: a postgres:// URL for pgx (user and
// password escaped), a go-sql-driver/mysql DSN for MariaDB.
func (a *Admin) DSN(user, password string) string {
	if a.cfg.Engine == Postgres {
		return pgDSN(a.host, a.port, a.cfg.Database, user, password)
	}
	return myDSN(a.Addr(), a.cfg.Database, user, password)
}

// redactStmt hides a PASSWORD / IDENTIFIED BY literal in a statement shown in an error.
func redactStmt(stmt string) string {
	for _, kw := range []string{" PASSWORD ", " IDENTIFIED BY "} {
		if i := strings.Index(stmt, kw); i >= 0 {
			return stmt[:i+len(kw)] + "REDACTED"
		}
	}
	return stmt
}

func joinHostPort(host string, port int) string {
	if strings.Contains(host, ":") {
		return fmt.Sprintf("[%s]:%d", host, port)
	}
	return fmt.Sprintf("%s:%d", host, port)
}
