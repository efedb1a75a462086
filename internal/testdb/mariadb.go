package testdb

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/go-sql-driver/mysql"
)

var myPrepared sync.Map // admin DSN -> struct{}: database exists

// myHosts are the account hosts every MariaDB test user is created for: any
// TCP client, and the unix socket.
var myHosts = []string{"%", "localhost"}

func openMariaDB(ctx context.Context, dsn string) (*Server, error) {
	cfg, err := mysql.ParseDSN(dsn)
	if err != nil {
		return nil, fmt.Errorf("testdb: %s is not a valid go-sql-driver/mysql DSN: %w", EnvMySQLAdminDSN, err)
	}
	shown := cfg.User + ":REDACTED@" + cfg.Net + "(" + cfg.Addr + ")/" + cfg.DBName
	if cfg.Passwd == "" {
		shown = cfg.User + "@" + cfg.Net + "(" + cfg.Addr + ")/" + cfg.DBName
	}
	cfg.Timeout = 10 * time.Second
	cfg.MultiStatements = false
	conn, err := mysql.NewConnector(cfg)
	if err != nil {
		return nil, fmt.Errorf("testdb: %s: %w", EnvMySQLAdminDSN, err)
	}
	admin := sql.OpenDB(conn)
	admin.SetMaxOpenConns(4)
	s := &Server{engine: EngineMariaDB, admin: admin, adminDSN: shown}
	if err := admin.QueryRowContext(ctx, "SELECT VERSION()").Scan(&s.version); err != nil {
		_ = admin.Close()
		return nil, fmt.Errorf("testdb: MariaDB at %s (%s) does not answer: %w; %s", cfg.Addr, shown, err, setupHint)
	}
	if cfg.Net == "tcp" {
		host, port, err := net.SplitHostPort(cfg.Addr)
		if err == nil {
			s.host = host
			s.port, _ = strconv.Atoi(port)
		}
	} else {
		s.socket = cfg.Addr
	}
	if s.host == "" {
		s.host = "127.0.0.1"
		var port int
		if err := admin.QueryRowContext(ctx, "SELECT @@port").Scan(&port); err == nil {
			s.port = port
		}
	}
	if _, ok := myPrepared.Load(dsn); !ok {
		if _, err := admin.ExecContext(ctx, "CREATE DATABASE IF NOT EXISTS "+myIdent(Database)); err != nil {
			_ = admin.Close()
			return nil, fmt.Errorf("testdb: MariaDB at %s: create database %s: %w", s.Addr(), Database, err)
		}
		myPrepared.Store(dsn, struct{}{})
	}
	return s, nil
}

// myWithSession runs f on one admin session whose sql_mode lets backslash
// escapes in string literals work (myLiteral relies on them).
func (s *Server) myWithSession(ctx context.Context, f func(*sql.Conn) error) error {
	conn, err := s.admin.Conn(ctx)
	if err != nil {
		return fmt.Errorf("testdb: mariadb admin connection: %w", err)
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, "SET SESSION sql_mode = REPLACE(@@sql_mode, 'NO_BACKSLASH_ESCAPES', '')"); err != nil {
		return fmt.Errorf("testdb: mariadb: set sql_mode: %w", err)
	}
	return f(conn)
}

func (s *Server) myCreateUser(ctx context.Context, name, password string) error {
	return s.myWithSession(ctx, func(conn *sql.Conn) error {
		for _, h := range myHosts {
			acct := myAccount(name, h)
			if _, err := conn.ExecContext(ctx, "CREATE USER "+acct+" IDENTIFIED BY "+myLiteral(password)); err != nil {
				return fmt.Errorf("testdb: mariadb: create user %s: %w", acct, err)
			}
			if _, err := conn.ExecContext(ctx, "GRANT ALL PRIVILEGES ON "+myIdent(Database)+".* TO "+acct); err != nil {
				return fmt.Errorf("testdb: mariadb: grant on %s to %s: %w", Database, acct, err)
			}
		}
		return nil
	})
}

func (s *Server) mySetPassword(ctx context.Context, name, password string) error {
	return s.myWithSession(ctx, func(conn *sql.Conn) error {
		for _, h := range myHosts {
			acct := myAccount(name, h)
			if _, err := conn.ExecContext(ctx, "ALTER USER "+acct+" IDENTIFIED BY "+myLiteral(password)); err != nil {
				return fmt.Errorf("testdb: mariadb: set password of %s: %w", acct, err)
			}
		}
		return nil
	})
}

// myForEachHost runs format (with one %s for the account) for each host of user name.
func (s *Server) myForEachHost(ctx context.Context, name, format string) error {
	for _, h := range myHosts {
		stmt := fmt.Sprintf(format, myAccount(name, h))
		if _, err := s.admin.ExecContext(ctx, stmt); err != nil {
			return fmt.Errorf("testdb: mariadb: %s: %w", stmt, err)
		}
	}
	return nil
}

func (s *Server) myDropUser(ctx context.Context, name string) error {
	var n int
	if err := s.admin.QueryRowContext(ctx, "SELECT count(*) FROM mysql.user WHERE User = ?", name).Scan(&n); err != nil {
		return fmt.Errorf("testdb: mariadb: drop user %s: %w", name, err)
	}
	if n == 0 {
		return nil
	}
	_ = s.myForEachHost(ctx, name, "ALTER USER %s ACCOUNT LOCK") // no new sessions
	rows, err := s.admin.QueryContext(ctx, "SELECT ID FROM information_schema.PROCESSLIST WHERE USER = ?", name)
	if err != nil {
		return fmt.Errorf("testdb: mariadb: sessions of %s: %w", name, err)
	}
	var ids []int64
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id); err != nil {
			rows.Close()
			return err
		}
		ids = append(ids, id)
	}
	rows.Close()
	for _, id := range ids {
		// 1094: unknown thread id (the session ended meanwhile).
		if _, err := s.admin.ExecContext(ctx, "KILL CONNECTION "+strconv.FormatInt(id, 10)); err != nil && myNumber(err) != 1094 {
			return fmt.Errorf("testdb: mariadb: kill session %d of %s: %w", id, name, err)
		}
	}
	accts := make([]string, len(myHosts))
	for i, h := range myHosts {
		accts[i] = myAccount(name, h)
	}
	if _, err := s.admin.ExecContext(ctx, "DROP USER IF EXISTS "+strings.Join(accts, ", ")); err != nil {
		return fmt.Errorf("testdb: mariadb: drop user %s: %w", name, err)
	}
	return nil
}

func myLogin(ctx context.Context, addr, user, password string) error {
	cfg := mysql.NewConfig()
	cfg.User, cfg.Passwd, cfg.Net, cfg.Addr, cfg.DBName = user, password, "tcp", addr, Database
	cfg.Timeout = 10 * time.Second
	c, err := mysql.NewConnector(cfg)
	if err != nil {
		return err
	}
	conn, err := c.Connect(ctx)
	if err != nil {
		return err
	}
	return conn.Close()
}

// myDSN is the go-sql-driver/mysql DSN (Config.FormatDSN) for user to Database over TCP.
func myDSN(addr, user, password string) string {
	cfg := mysql.NewConfig()
	cfg.User, cfg.Passwd, cfg.Net, cfg.Addr, cfg.DBName = user, password, "tcp", addr, Database
	return cfg.FormatDSN()
}

func myNumber(err error) uint16 {
	var me *mysql.MySQLError
	if errors.As(err, &me) {
		return me.Number
	}
	return 0
}

func myIdent(s string) string { return "`" + strings.ReplaceAll(s, "`", "``") + "`" }

func myAccount(user, host string) string { return myLiteral(user) + "@" + myLiteral(host) }

// myLiteral quotes s as a MariaDB/MySQL string literal (backslash escapes on).
func myLiteral(s string) string {
	var b strings.Builder
	b.WriteByte('\'')
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case 0:
			b.WriteString(`\0`)
		case '\n':
			b.WriteString(`\n`)
		case '\r':
			b.WriteString(`\r`)
		case '\\':
			b.WriteString(`\\`)
		case '\'':
			b.WriteString(`\'`)
		case '"':
			b.WriteString(`\"`)
		case 0x1a:
			b.WriteString(`\Z`)
		default:
			b.WriteByte(c)
		}
	}
	b.WriteByte('\'')
	return b.String()
}
