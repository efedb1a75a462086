package dbrole

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/stdlib"
)

var pgPrepared sync.Map // admin DSN + database + group -> struct{}: they exist

func openPostgres(ctx context.Context, c Config) (*Admin, error) {
	cfg, err := pgx.ParseConfig(c.DSN)
	if err != nil {
		// pgx redacts the password in its parse errors.
		return nil, fmt.Errorf("dbrole: the PostgreSQL admin DSN is not a valid connection string: %w", err)
	}
	shown := redactURL(c.DSN)
	cfg.ConnectTimeout = 10 * time.Second
	db := stdlib.OpenDB(*cfg)
	db.SetMaxOpenConns(4)
	a := &Admin{cfg: c, db: db, shown: shown, host: cfg.Host, port: int(cfg.Port)}
	if err := db.QueryRowContext(ctx, "SHOW server_version").Scan(&a.version); err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("dbrole: PostgreSQL at %s (%s) does not answer: %w", a.Addr(), shown, err)
	}
	key := c.DSN + "\x00" + c.Database + "\x00" + c.Group
	if _, ok := pgPrepared.Load(key); !ok {
		if err := pgPrepare(ctx, db, c); err != nil {
			_ = db.Close()
			return nil, fmt.Errorf("dbrole: PostgreSQL at %s: %w", a.Addr(), err)
		}
		pgPrepared.Store(key, struct{}{})
	}
	dbcfg := cfg.Copy()
	dbcfg.Database = c.Database
	a.grantDB = stdlib.OpenDB(*dbcfg)
	a.grantDB.SetMaxOpenConns(2)
	return a, nil
}

// pgPrepare creates the database and the password group when missing
// (scripts/testdb.sh does the same for the local server).
func pgPrepare(ctx context.Context, db *sql.DB, c Config) error {
	var n int
	if err := db.QueryRowContext(ctx, "SELECT count(*) FROM pg_database WHERE datname = $1", c.Database).Scan(&n); err != nil {
		return err
	}
	if n == 0 {
		if _, err := db.ExecContext(ctx, "CREATE DATABASE "+pgIdent(c.Database)); err != nil && SQLState(err) != "42P04" {
			return fmt.Errorf("create database %s: %w", c.Database, err)
		}
	}
	if c.Group == "" {
		return nil
	}
	if err := db.QueryRowContext(ctx, "SELECT count(*) FROM pg_roles WHERE rolname = $1", c.Group).Scan(&n); err != nil {
		return err
	}
	if n == 0 {
		if _, err := db.ExecContext(ctx, "CREATE ROLE "+pgIdent(c.Group)+" NOLOGIN"); err != nil && SQLState(err) != "42710" {
			return fmt.Errorf("create role group %s: %w", c.Group, err)
		}
	}
	return nil
}

func (a *Admin) pgExec(ctx context.Context, stmt string) error {
	if _, err := a.db.ExecContext(ctx, stmt); err != nil {
		return fmt.Errorf("dbrole: postgres: %s: %w", redactStmt(stmt), err)
	}
	return nil
}

// pgLockKey is the advisory lock that serializes role DDL across processes:
// concurrent GRANTs on one database or schema fail with "tuple concurrently
// updated".
const pgLockKey = 0x6b6d7364 // "kmsd"

// pgTx runs f in a transaction on Database holding the DDL advisory lock,
// with passwords hashed with scram-sha-256 (a safety net: pgCreate and
// pgSetPassword send a verifier) and standard string literals.
func (a *Admin) pgTx(ctx context.Context, what string, f func(*sql.Tx) error) error {
	tx, err := a.grantDB.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("dbrole: postgres: %s: %w", what, err)
	}
	// After Commit, Rollback returns sql.ErrTxDone; before it, the error that
	// made f or a statement fail is the one to report.
	defer func() { _ = tx.Rollback() }()
	for _, stmt := range []string{
		"SELECT pg_advisory_xact_lock(" + strconv.Itoa(pgLockKey) + ")",
		"SET LOCAL password_encryption = 'scram-sha-256'",
		"SET LOCAL standard_conforming_strings = on",
	} {
		if _, err := tx.ExecContext(ctx, stmt); err != nil {
			return fmt.Errorf("dbrole: postgres: %s: %s: %w", what, stmt, err)
		}
	}
	if err := f(tx); err != nil {
		return fmt.Errorf("dbrole: postgres: %s: %w", what, err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("dbrole: postgres: %s: %w", what, err)
	}
	return nil
}

func execAll(ctx context.Context, tx *sql.Tx, stmts ...string) error {
	for _, stmt := range stmts {
		if _, err := tx.ExecContext(ctx, stmt); err != nil {
			return fmt.Errorf("%s: %w", redactStmt(stmt), err)
		}
	}
	return nil
}

var errNUL = errors.New("dbrole: postgres: a password cannot contain NUL")

func (a *Admin) pgCreate(ctx context.Context, name, password string) error {
	if strings.ContainsRune(password, 0) {
		return errNUL
	}
	lit, verifier, err := pgPasswordLiteral(password)
	if err != nil {
		return err
	}
	create := "CREATE ROLE " + pgIdent(name) + " LOGIN PASSWORD " + lit
	if a.cfg.Group != "" {
		// PASSWORD stays last: redactStmt cuts the statement there.
		create = "CREATE ROLE " + pgIdent(name) + " LOGIN IN ROLE " + pgIdent(a.cfg.Group) + " PASSWORD " + lit
	}
	err = a.pgTx(ctx, "create role "+name, func(tx *sql.Tx) error {
		return execAll(ctx, tx, create,
			"GRANT CONNECT, TEMPORARY, CREATE ON DATABASE "+pgIdent(a.cfg.Database)+" TO "+pgIdent(name),
			"GRANT USAGE, CREATE ON SCHEMA public TO "+pgIdent(name))
	})
	return pgScrub(err, password, verifier)
}

func (a *Admin) pgEnsure(ctx context.Context, name, password string) (bool, error) {
	ok, err := a.Exists(ctx, name)
	if err != nil {
		return false, err
	}
	if ok {
		return false, a.pgSetPassword(ctx, name, password)
	}
	if err := a.pgCreate(ctx, name, password); err != nil {
		if SQLState(err) == "42710" { // created meanwhile by another session
			return false, a.pgSetPassword(ctx, name, password)
		}
		return false, err
	}
	return true, nil
}

func (a *Admin) pgSetPassword(ctx context.Context, name, password string) error {
	if strings.ContainsRune(password, 0) {
		return errNUL
	}
	lit, verifier, err := pgPasswordLiteral(password)
	if err != nil {
		return err
	}
	err = a.pgTx(ctx, "set password of "+name, func(tx *sql.Tx) error {
		return execAll(ctx, tx, "ALTER ROLE "+pgIdent(name)+" PASSWORD "+lit)
	})
	return pgScrub(err, password, verifier)
}

// pgScrub removes the password and its verifier from err's text, keeping
// the SQLSTATE (SQLState) and the message's shape.
func pgScrub(err error, secrets ...string) error {
	if err == nil {
		return nil
	}
	msg := scrubText(err.Error(), secrets)
	if msg == err.Error() {
		return err
	}
	return &scrubbedError{msg: msg, cause: scrubErr(err, secrets...)}
}

func (a *Admin) pgDrop(ctx context.Context, name string) error {
	var n int
	if err := a.db.QueryRowContext(ctx, "SELECT count(*) FROM pg_roles WHERE rolname = $1", name).Scan(&n); err != nil {
		return fmt.Errorf("dbrole: postgres: drop role %s: %w", name, err)
	}
	if n == 0 {
		return nil
	}
	// No new sessions, then end the existing ones.
	_ = a.pgExec(ctx, "ALTER ROLE "+pgIdent(name)+" NOLOGIN")
	var last error
	for range 20 {
		if _, err := a.db.ExecContext(ctx, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = $1", name); err != nil {
			return fmt.Errorf("dbrole: postgres: terminate sessions of %s: %w", name, err)
		}
		err := a.pgTx(ctx, "drop role "+name, func(tx *sql.Tx) error {
			return execAll(ctx, tx, "DROP OWNED BY "+pgIdent(name), "DROP ROLE IF EXISTS "+pgIdent(name))
		})
		if err == nil {
			return nil
		}
		last = err
		select {
		case <-ctx.Done():
			return fmt.Errorf("dbrole: postgres: drop role %s: %w (last error: %w)", name, ctx.Err(), last)
		case <-time.After(100 * time.Millisecond):
		}
	}
	return last
}

// pgLogin opens and closes one connection as user.
func pgLogin(ctx context.Context, host string, port int, database, user, password string) error {
	cfg, err := pgx.ParseConfig(pgDSN(host, port, database, user, password))
	if err != nil {
		return err
	}
	cfg.ConnectTimeout = 10 * time.Second
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return err
	}
	return conn.Close(ctx)
}

// pgDSN is a postgres:// URL for user to database; a unix socket directory
// host goes in the host parameter.
func pgDSN(host string, port int, database, user, password string) string {
	u := url.URL{Scheme: "postgres", User: url.UserPassword(user, password), Path: "/" + database}
	q := url.Values{"sslmode": {"disable"}}
	if strings.HasPrefix(host, "/") {
		q.Set("host", host)
		q.Set("port", strconv.Itoa(port))
	} else {
		u.Host = joinHostPort(host, port)
	}
	u.RawQuery = q.Encode()
	return u.String()
}

// SQLState is the PostgreSQL SQLSTATE of err, "" when it has none.
func SQLState(err error) string {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return pe.Code
	}
	return ""
}

func pgIdent(s string) string { return `"` + strings.ReplaceAll(s, `"`, `""`) + `"` }

func pgLiteral(s string) string { return `'` + strings.ReplaceAll(s, `'`, `''`) + `'` }

// redactURL shows a DSN without its password.
func redactURL(dsn string) string {
	if u, err := url.Parse(dsn); err == nil && u.User != nil {
		if _, has := u.User.Password(); has {
			u.User = url.UserPassword(u.User.Username(), "REDACTED")
		}
		return u.String()
	}
	if strings.Contains(dsn, "password") {
		return "(connection string with a password)"
	}
	return dsn
}
