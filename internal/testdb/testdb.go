// Package testdb gives tests admin access to a real PostgreSQL and a real
// MariaDB (or MySQL) server, with throwaway login roles whose passwords are
// actually checked.
//
// Where the servers come from, in order:
//   - KMSDB_TEST_PG_ADMIN_DSN (a pgx connection string of a superuser, default
//     postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable) and
//     KMSDB_TEST_MYSQL_ADMIN_DSN (a go-sql-driver/mysql DSN of a user that may
//     CREATE USER and GRANT, default root@tcp(127.0.0.1:3306)/);
//   - scripts/testdb.sh prepares the servers of the local machine (starts them,
//     makes PostgreSQL ask members of the role group kmsdb_password_auth for a
//     scram-sha-256 password even where other roles are trusted).
//
// A server that does not answer fails the test (never skips it): a green run
// must mean the tests ran. Every role a test creates has a unique name and is
// dropped, its sessions terminated first, when the test ends.
//
//	srv := testdb.Postgres(t)
//	srv.RequirePasswordEnforced(t)
//	user := srv.CreateUser(t, "app", "s3cret")
//	db, _ := sql.Open("pgx", srv.DSN(user, "s3cret"))
package testdb

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kmsdb/kmsdb/internal/dbrole"
)

// Environment variables naming the admin DSNs of the test servers.
const (
	EnvPostgresAdminDSN = "KMSDB_TEST_PG_ADMIN_DSN"
	EnvMySQLAdminDSN    = "KMSDB_TEST_MYSQL_ADMIN_DSN"
)

// Defaults used when the environment variables are not set: the local servers
// that scripts/testdb.sh prepares.
const (
	DefaultPostgresAdminDSN = "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"
	DefaultMySQLAdminDSN    = "root@tcp(127.0.0.1:3306)/"
)

// Database is the database test roles are granted on, on both engines.
const Database = "kmsdb_test"

// HardPassword has every character that breaks naive DSN building or SQL
// quoting, spaces and non-ASCII: tests log in with it on both engines.
const HardPassword = `p@ss:/?#%&=+'"\ w ö 密码 end` //nolint:gosec // test-only password of throwaway local roles

// PasswordGroup is the PostgreSQL role group whose members must give a
// password (pg_hba.conf rule added by scripts/testdb.sh).
const PasswordGroup = "kmsdb_password_auth"

// setupHint is appended to every "server does not answer" failure.
const setupHint = "run `bash scripts/testdb.sh` (it starts and prepares the local PostgreSQL and MariaDB), " +
	"or set " + EnvPostgresAdminDSN + " / " + EnvMySQLAdminDSN + " to admin DSNs of reachable servers"

// Engine names a database engine.
type Engine = dbrole.Engine

// Engines.
const (
	EnginePostgres = dbrole.Postgres
	EngineMariaDB  = dbrole.MariaDB // MariaDB or MySQL
)

// Server is admin access to one test server (internal/dbrole does the SQL).
// Its methods are safe for concurrent use.
type Server struct {
	role *dbrole.Admin

	mu    sync.Mutex
	users []string // created by this Server and not dropped yet
}

// Engine reports which engine the server runs.
func (s *Server) Engine() Engine { return s.role.Engine() }

// Host is the host name or IP address the server listens on for TCP.
func (s *Server) Host() string { return s.role.Host() }

// Port is the server's TCP port.
func (s *Server) Port() int { return s.role.Port() }

// Addr is host:port.
func (s *Server) Addr() string { return s.role.Addr() }

// DBName is the database test users may connect to (Database).
func (s *Server) DBName() string { return Database }

// Version is the server's version string.
func (s *Server) Version() string { return s.role.Version() }

// Admin is the admin connection pool. Do not close it; it is closed with the Server.
func (s *Server) Admin() *sql.DB { return s.role.DB() }

// Postgres connects to the test PostgreSQL server as admin, makes sure the
// database and role group exist, and closes everything when t ends. It fails t
// (never skips) when the server does not answer.
func Postgres(t testing.TB) *Server {
	t.Helper()
	return open(t, EnginePostgres)
}

// MariaDB connects to the test MariaDB (or MySQL) server as admin, makes sure
// the database exists, and closes everything when t ends. It fails t (never
// skips) when the server does not answer.
func MariaDB(t testing.TB) *Server {
	t.Helper()
	return open(t, EngineMariaDB)
}

func open(t testing.TB, e Engine) *Server {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := Open(ctx, e)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := s.Close(ctx); err != nil {
			t.Error(err)
		}
	})
	return s
}

// Open connects to the test server of engine e without a testing.TB (for
// programs such as scripts/testdb.sh's checker). Close it when done; Close
// drops every user it created.
func Open(ctx context.Context, e Engine) (*Server, error) {
	cfg := dbrole.Config{Engine: e, Database: Database}
	switch e {
	case EnginePostgres:
		cfg.DSN, cfg.Group = envOr(EnvPostgresAdminDSN, DefaultPostgresAdminDSN), PasswordGroup
	case EngineMariaDB:
		cfg.DSN = envOr(EnvMySQLAdminDSN, DefaultMySQLAdminDSN)
	default:
		return nil, fmt.Errorf("testdb: unknown engine %q", e)
	}
	role, err := dbrole.Open(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("testdb: %w; %s", err, setupHint)
	}
	return &Server{role: role}, nil
}

// Close drops every user created through s (terminating their sessions) and
// closes the admin connections.
func (s *Server) Close(ctx context.Context) error {
	s.mu.Lock()
	users := s.users
	s.users = nil
	s.mu.Unlock()
	var errs []error
	for _, u := range users {
		if err := s.dropUser(ctx, u); err != nil {
			errs = append(errs, err)
		}
	}
	errs = append(errs, s.role.Close())
	return errors.Join(errs...)
}

// CreateUser creates a login role whose name starts with base and is unique to
// this run, with the given password, allowed to connect to DBName (and to
// create objects there). It returns the name. The role is dropped, its
// sessions terminated first, when t ends.
//
// PostgreSQL: LOGIN role, member of PasswordGroup (so scram-sha-256 is
// enforced), password hashed with scram-sha-256. MariaDB: name@'%' and
// name@'localhost', both IDENTIFIED BY password.
func (s *Server) CreateUser(t testing.TB, base, password string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	name, err := s.NewUser(ctx, base, password)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := s.DropUser(ctx, name); err != nil {
			t.Error(err)
		}
	})
	return name
}

// NewUser is CreateUser without a testing.TB: the user is dropped by DropUser
// or by Close.
func (s *Server) NewUser(ctx context.Context, base, password string) (string, error) {
	name := UniqueName(base)
	if err := s.role.Create(ctx, name, password); err != nil {
		_ = s.dropUser(ctx, name)
		return "", err
	}
	s.mu.Lock()
	s.users = append(s.users, name)
	s.mu.Unlock()
	return name, nil
}

// DropUser terminates the sessions of user name and drops it (and, on
// PostgreSQL, what it owns in DBName). Dropping a user that does not exist is
// not an error.
func (s *Server) DropUser(ctx context.Context, name string) error {
	s.mu.Lock()
	for i, u := range s.users {
		if u == name {
			s.users = append(s.users[:i], s.users[i+1:]...)
			break
		}
	}
	s.mu.Unlock()
	return s.dropUser(ctx, name)
}

func (s *Server) dropUser(ctx context.Context, name string) error { return s.role.Drop(ctx, name) }

// SetPassword changes the password of user name. Existing sessions stay open.
func (s *Server) SetPassword(ctx context.Context, name, password string) error {
	return s.role.SetPassword(ctx, name, password)
}

// Lock stops user name from logging in, whatever the password.
//
// MariaDB: ALTER USER ... ACCOUNT LOCK; a login then fails with error 4151
// (MySQL: 3118) "account is locked". PostgreSQL: ALTER ROLE ... NOLOGIN; a
// login then fails with SQLSTATE 28000 "role ... is not permitted to log in".
func (s *Server) Lock(ctx context.Context, name string) error {
	return s.role.Alter(ctx, name, "NOLOGIN", "ACCOUNT LOCK")
}

// Unlock undoes Lock.
func (s *Server) Unlock(ctx context.Context, name string) error {
	return s.role.Alter(ctx, name, "LOGIN", "ACCOUNT UNLOCK")
}

// ExpirePassword marks the password of user name as expired.
//
// PostgreSQL: VALID UNTIL in the past; a login then fails exactly like a wrong
// password (SQLSTATE 28P01: the server does not tell the client why).
// MariaDB: PASSWORD EXPIRE; with disconnect_on_expired_password=OFF (the
// default) the login succeeds in sandbox mode and statements fail with error
// 1820; with it ON the login fails with 1862.
func (s *Server) ExpirePassword(ctx context.Context, name string) error {
	return s.role.Alter(ctx, name, "VALID UNTIL '2000-01-01 00:00:00+00'", "PASSWORD EXPIRE")
}

// DSN is a connection string for user with password to DBName over TCP, in
// the form the engine's Go driver reads: a postgres:// URL for pgx (user and
// password escaped), a go-sql-driver/mysql DSN for MariaDB (Config.FormatDSN).
func (s *Server) DSN(user, password string) string { return s.role.DSN(user, password) }

// RequirePasswordEnforced proves that the server rejects a wrong password for
// a role created by CreateUser (and accepts the right one), and fails t
// otherwise (never skips). The proof is made once per process and engine.
func (s *Server) RequirePasswordEnforced(t testing.TB) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := s.ProvePasswordEnforced(ctx); err != nil {
		t.Fatal(err)
	}
}

// RequirePasswordEnforced proves, on both engines, that a wrong password is
// rejected (see Server.RequirePasswordEnforced), and fails t otherwise.
func RequirePasswordEnforced(t testing.TB) {
	t.Helper()
	Postgres(t).RequirePasswordEnforced(t)
	MariaDB(t).RequirePasswordEnforced(t)
}

var proven sync.Map // Engine+adminDSN -> struct{}

// ProvePasswordEnforced is RequirePasswordEnforced returning an error.
func (s *Server) ProvePasswordEnforced(ctx context.Context) error {
	key := string(s.Engine()) + " " + s.role.Shown()
	if _, ok := proven.Load(key); ok {
		return nil
	}
	password := "probe-" + randomHex(8)
	name, err := s.NewUser(ctx, "probe", password)
	if err != nil {
		return err
	}
	defer func() { _ = s.DropUser(context.WithoutCancel(ctx), name) }()
	if err := s.role.CheckPassword(ctx, name, password); err != nil {
		if s.Engine() == EnginePostgres && strings.Contains(err.Error(), "ACCEPTED A WRONG PASSWORD") {
			return fmt.Errorf("testdb: %w (pg_hba.conf needs `host all +%s 127.0.0.1/32 scram-sha-256` above any trust rule: run `bash scripts/testdb.sh`)",
				err, PasswordGroup)
		}
		return fmt.Errorf("testdb: %w", err)
	}
	proven.Store(key, struct{}{})
	return nil
}

// UniqueName returns "kt_" + base (lowercased, reduced to [a-z0-9_], at most
// 12 characters) + "_" + 10 random hex digits: a valid unquoted identifier on
// both engines, at most 26 characters (MySQL's limit is 32).
func UniqueName(base string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(base) {
		if b.Len() == 12 {
			break
		}
		if (r >= 'a' && r <= 'z') || (r >= '0' && r <= '9') || r == '_' {
			b.WriteRune(r)
		}
	}
	if b.Len() == 0 {
		b.WriteString("user")
	}
	return "kt_" + b.String() + "_" + randomHex(5)
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}
