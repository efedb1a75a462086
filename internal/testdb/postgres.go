package testdb

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

var pgPrepared sync.Map // admin DSN -> struct{}: database and group exist

func openPostgres(ctx context.Context, dsn string) (*Server, error) {
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		// pgx redacts the password in its parse errors.
		return nil, fmt.Errorf("testdb: %s is not a valid PostgreSQL connection string: %w", EnvPostgresAdminDSN, err)
	}
	shown := redactURL(dsn)
	cfg.ConnectTimeout = 10 * time.Second
	admin := stdlib.OpenDB(*cfg)
	admin.SetMaxOpenConns(4)
	s := &Server{engine: EnginePostgres, admin: admin, adminDSN: shown, host: cfg.Host, port: int(cfg.Port)}
	if err := admin.QueryRowContext(ctx, "SHOW server_version").Scan(&s.version); err != nil {
		_ = admin.Close()
		return nil, fmt.Errorf("testdb: PostgreSQL at %s (%s) does not answer: %w; %s", s.Addr(), shown, err, setupHint)
	}
	if _, ok := pgPrepared.Load(dsn); !ok {
		if err := pgPrepare(ctx, admin); err != nil {
			_ = admin.Close()
			return nil, fmt.Errorf("testdb: PostgreSQL at %s: %w", s.Addr(), err)
		}
		pgPrepared.Store(dsn, struct{}{})
	}
	dbcfg := cfg.Copy()
	dbcfg.Database = Database
	s.adminDB = stdlib.OpenDB(*dbcfg)
	s.adminDB.SetMaxOpenConns(2)
	return s, nil
}

// pgPrepare creates the database and the password group when missing
// (scripts/testdb.sh does the same; this covers servers given by DSN).
func pgPrepare(ctx context.Context, admin *sql.DB) error {
	var n int
	if err := admin.QueryRowContext(ctx, "SELECT count(*) FROM pg_database WHERE datname = $1", Database).Scan(&n); err != nil {
		return err
	}
	if n == 0 {
		if _, err := admin.ExecContext(ctx, "CREATE DATABASE "+pgIdent(Database)); err != nil && pgCode(err) != "42P04" {
			return fmt.Errorf("create database %s: %w", Database, err)
		}
	}
	if err := admin.QueryRowContext(ctx, "SELECT count(*) FROM pg_roles WHERE rolname = $1", PasswordGroup).Scan(&n); err != nil {
		return err
	}
	if n == 0 {
		if _, err := admin.ExecContext(ctx, "CREATE ROLE "+pgIdent(PasswordGroup)+" NOLOGIN"); err != nil && pgCode(err) != "42710" {
			return fmt.Errorf("create role group %s: %w", PasswordGroup, err)
		}
	}
	return nil
}

func (s *Server) pgExec(ctx context.Context, stmt string) error {
	if _, err := s.admin.ExecContext(ctx, stmt); err != nil {
		return fmt.Errorf("testdb: postgres: %s: %w", redactStmt(stmt), err)
	}
	return nil
}

// pgLockKey is the advisory lock that serializes test-role DDL across
// test processes: concurrent GRANTs on one database or schema fail with
// "tuple concurrently updated".
const pgLockKey = 0x6b6d7364 // "kmsd"

// pgTx runs f in a transaction on Database holding the DDL advisory lock,
// with passwords hashed with scram-sha-256 and standard string literals.
func (s *Server) pgTx(ctx context.Context, what string, f func(*sql.Tx) error) error {
	tx, err := s.adminDB.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("testdb: postgres: %s: %w", what, err)
	}
	defer tx.Rollback()
	for _, stmt := range []string{
		"SELECT pg_advisory_xact_lock(" + strconv.Itoa(pgLockKey) + ")",
		"SET LOCAL password_encryption = 'scram-sha-256'",
		"SET LOCAL standard_conforming_strings = on",
	} {
		if _, err := tx.ExecContext(ctx, stmt); err != nil {
			return fmt.Errorf("testdb: postgres: %s: %s: %w", what, stmt, err)
		}
	}
	if err := f(tx); err != nil {
		return fmt.Errorf("testdb: postgres: %s: %w", what, err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("testdb: postgres: %s: %w", what, err)
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

func (s *Server) pgCreateUser(ctx context.Context, name, password string) error {
	if strings.ContainsRune(password, 0) {
		return errors.New("testdb: postgres: a password cannot contain NUL")
	}
	return s.pgTx(ctx, "create role "+name, func(tx *sql.Tx) error {
		return execAll(ctx, tx,
			"CREATE ROLE "+pgIdent(name)+" LOGIN PASSWORD "+pgLiteral(password)+" IN ROLE "+pgIdent(PasswordGroup),
			"GRANT CONNECT, TEMPORARY, CREATE ON DATABASE "+pgIdent(Database)+" TO "+pgIdent(name),
			"GRANT USAGE, CREATE ON SCHEMA public TO "+pgIdent(name))
	})
}

func (s *Server) pgSetPassword(ctx context.Context, name, password string) error {
	if strings.ContainsRune(password, 0) {
		return errors.New("testdb: postgres: a password cannot contain NUL")
	}
	return s.pgTx(ctx, "set password of "+name, func(tx *sql.Tx) error {
		return execAll(ctx, tx, "ALTER ROLE "+pgIdent(name)+" PASSWORD "+pgLiteral(password))
	})
}

func (s *Server) pgDropUser(ctx context.Context, name string) error {
	var n int
	if err := s.admin.QueryRowContext(ctx, "SELECT count(*) FROM pg_roles WHERE rolname = $1", name).Scan(&n); err != nil {
		return fmt.Errorf("testdb: postgres: drop role %s: %w", name, err)
	}
	if n == 0 {
		return nil
	}
	// No new sessions, then end the existing ones.
	_ = s.pgExec(ctx, "ALTER ROLE "+pgIdent(name)+" NOLOGIN")
	var last error
	for range 20 {
		if _, err := s.admin.ExecContext(ctx, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = $1", name); err != nil {
			return fmt.Errorf("testdb: postgres: terminate sessions of %s: %w", name, err)
		}
		err := s.pgTx(ctx, "drop role "+name, func(tx *sql.Tx) error {
			return execAll(ctx, tx, "DROP OWNED BY "+pgIdent(name), "DROP ROLE IF EXISTS "+pgIdent(name))
		})
		if err == nil {
			return nil
		}
		last = err
		select {
		case <-ctx.Done():
			return fmt.Errorf("testdb: postgres: drop role %s: %w (last error: %v)", name, ctx.Err(), last)
		case <-time.After(100 * time.Millisecond):
		}
	}
	return last
}

// pgLogin opens and closes one connection as user.
func pgLogin(ctx context.Context, host string, port int, user, password string) error {
	cfg, err := pgx.ParseConfig(pgDSN(host, port, user, password))
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

// pgDSN is a postgres:// URL for user to Database; a unix socket directory
// host goes in the host parameter.
func pgDSN(host string, port int, user, password string) string {
	u := url.URL{Scheme: "postgres", User: url.UserPassword(user, password), Path: "/" + Database}
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

func (s *Server) isAuthFailure(err error) bool {
	if s.engine == EnginePostgres {
		return pgCode(err) == "28P01"
	}
	return myNumber(err) == 1045
}

func pgCode(err error) string {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return pe.Code
	}
	return ""
}

func pgIdent(s string) string { return `"` + strings.ReplaceAll(s, `"`, `""`) + `"` }

func pgLiteral(s string) string { return `'` + strings.ReplaceAll(s, `'`, `''`) + `'` }

// redactStmt hides a PASSWORD / IDENTIFIED BY literal in a statement shown in an error.
func redactStmt(stmt string) string {
	for _, kw := range []string{" PASSWORD ", " IDENTIFIED BY "} {
		if i := strings.Index(stmt, kw); i >= 0 {
			return stmt[:i+len(kw)] + "REDACTED"
		}
	}
	return stmt
}

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
