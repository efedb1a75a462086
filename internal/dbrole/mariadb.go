package dbrole

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

var myPrepared sync.Map // admin DSN + database -> struct{}: database exists

// myHosts are the account hosts every MariaDB role is created for: any TCP
// client, and the unix socket.
var myHosts = []string{"%", "localhost"}

func openMariaDB(ctx context.Context, c Config) (*Admin, error) {
	cfg, err := mysql.ParseDSN(c.DSN)
	if err != nil {
		return nil, fmt.Errorf("dbrole: the MariaDB admin DSN is not a valid go-sql-driver/mysql DSN: %w", err)
	}
	shown := cfg.User + ":REDACTED@" + cfg.Net + "(" + cfg.Addr + ")/" + cfg.DBName
	if cfg.Passwd == "" {
		shown = cfg.User + "@" + cfg.Net + "(" + cfg.Addr + ")/" + cfg.DBName
	}
	cfg.Timeout = 10 * time.Second
	cfg.MultiStatements = false
	conn, err := mysql.NewConnector(cfg)
	if err != nil {
		return nil, fmt.Errorf("dbrole: MariaDB admin DSN %s: %w", shown, err)
	}
	db := sql.OpenDB(conn)
	db.SetMaxOpenConns(4)
	a := &Admin{cfg: c, db: db, shown: shown}
	if err := db.QueryRowContext(ctx, "SELECT VERSION()").Scan(&a.version); err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("dbrole: MariaDB at %s (%s) does not answer: %w", cfg.Addr, shown, err)
	}
	a.host, a.port, a.socket = myAddr(ctx, db, cfg)
	key := c.DSN + "\x00" + c.Database
	if _, ok := myPrepared.Load(key); !ok {
		if _, err := db.ExecContext(ctx, "CREATE DATABASE IF NOT EXISTS "+myIdent(c.Database)); err != nil {
			_ = db.Close()
			return nil, fmt.Errorf("dbrole: MariaDB at %s: create database %s: %w", a.Addr(), c.Database, err)
		}
		myPrepared.Store(key, struct{}{})
	}
	return a, nil
}

// myAddr is where clients reach the server over TCP (and its socket, when
// the admin DSN names one).
func myAddr(ctx context.Context, db *sql.DB, cfg *mysql.Config) (host string, port int, socket string) {
	if cfg.Net == "tcp" {
		if h, p, err := net.SplitHostPort(cfg.Addr); err == nil {
			host = h
			port, _ = strconv.Atoi(p)
		}
	} else {
		socket = cfg.Addr
	}
	if host == "" {
		host = "127.0.0.1"
		_ = db.QueryRowContext(ctx, "SELECT @@port").Scan(&port)
	}
	return host, port, socket
}

// myWithSession runs f on one admin session whose sql_mode lets backslash
// escapes in string literals work (myLiteral relies on them).
func (a *Admin) myWithSession(ctx context.Context, f func(*sql.Conn) error) error {
	conn, err := a.db.Conn(ctx)
	if err != nil {
		return fmt.Errorf("dbrole: mariadb admin connection: %w", err)
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, "SET SESSION sql_mode = REPLACE(@@sql_mode, 'NO_BACKSLASH_ESCAPES', '')"); err != nil {
		return fmt.Errorf("dbrole: mariadb: set sql_mode: %w", err)
	}
	return f(conn)
}

func (a *Admin) myCreate(ctx context.Context, name, password string) error {
	return a.myWithSession(ctx, func(conn *sql.Conn) error {
		for _, h := range myHosts {
			acct := myAccount(name, h)
			if _, err := conn.ExecContext(ctx, "CREATE USER "+acct+" IDENTIFIED BY "+myLiteral(password)); err != nil {
				return fmt.Errorf("dbrole: mariadb: create user %s: %w", acct, scrubErr(err, password))
			}
			if _, err := conn.ExecContext(ctx, "GRANT ALL PRIVILEGES ON "+myGrantDB(a.cfg.Database)+".* TO "+acct); err != nil {
				return fmt.Errorf("dbrole: mariadb: grant on %s to %s: %w", a.cfg.Database, acct, err)
			}
		}
		return nil
	})
}

func (a *Admin) myEnsure(ctx context.Context, name, password string) (created bool, err error) {
	err = a.myWithSession(ctx, func(conn *sql.Conn) error {
		for _, h := range myHosts {
			acct := myAccount(name, h)
			var n int
			if err := conn.QueryRowContext(ctx, "SELECT count(*) FROM mysql.user WHERE User = ? AND Host = ?", name, h).Scan(&n); err != nil {
				return fmt.Errorf("dbrole: mariadb: does %s exist: %w", acct, err)
			}
			if n > 0 {
				if _, err := conn.ExecContext(ctx, "ALTER USER "+acct+" IDENTIFIED BY "+myLiteral(password)); err != nil {
					return fmt.Errorf("dbrole: mariadb: set password of %s: %w", acct, scrubErr(err, password))
				}
				continue
			}
			if _, err := conn.ExecContext(ctx, "CREATE USER "+acct+" IDENTIFIED BY "+myLiteral(password)); err != nil {
				return fmt.Errorf("dbrole: mariadb: create user %s: %w", acct, scrubErr(err, password))
			}
			created = true
			if _, err := conn.ExecContext(ctx, "GRANT ALL PRIVILEGES ON "+myGrantDB(a.cfg.Database)+".* TO "+acct); err != nil {
				return fmt.Errorf("dbrole: mariadb: grant on %s to %s: %w", a.cfg.Database, acct, err)
			}
		}
		return nil
	})
	return created, err
}

func (a *Admin) mySetPassword(ctx context.Context, name, password string) error {
	return a.myWithSession(ctx, func(conn *sql.Conn) error {
		for _, h := range myHosts {
			acct := myAccount(name, h)
			if _, err := conn.ExecContext(ctx, "ALTER USER "+acct+" IDENTIFIED BY "+myLiteral(password)); err != nil {
				return fmt.Errorf("dbrole: mariadb: set password of %s: %w", acct, scrubErr(err, password))
			}
		}
		return nil
	})
}

// myForEachHost runs format (with one %s for the account) for each host of
// user name, on a session set up by myWithSession (myLiteral quotes the
// account).
func (a *Admin) myForEachHost(ctx context.Context, name, format string) error {
	return a.myWithSession(ctx, func(conn *sql.Conn) error {
		for _, h := range myHosts {
			stmt := fmt.Sprintf(format, myAccount(name, h))
			if _, err := conn.ExecContext(ctx, stmt); err != nil {
				return fmt.Errorf("dbrole: mariadb: %s: %w", redactStmt(stmt), err)
			}
		}
		return nil
	})
}

func (a *Admin) myDrop(ctx context.Context, name string) error {
	var n int
	if err := a.db.QueryRowContext(ctx, "SELECT count(*) FROM mysql.user WHERE User = ?", name).Scan(&n); err != nil {
		return fmt.Errorf("dbrole: mariadb: drop user %s: %w", name, err)
	}
	if n == 0 {
		return nil
	}
	_ = a.myForEachHost(ctx, name, "ALTER USER %s ACCOUNT LOCK") // no new sessions
	if err := a.myKillSessions(ctx, name); err != nil {
		return err
	}
	accts := make([]string, len(myHosts))
	for i, h := range myHosts {
		accts[i] = myAccount(name, h)
	}
	return a.myWithSession(ctx, func(conn *sql.Conn) error {
		if _, err := conn.ExecContext(ctx, "DROP USER IF EXISTS "+strings.Join(accts, ", ")); err != nil {
			return fmt.Errorf("dbrole: mariadb: drop user %s: %w", name, err)
		}
		return nil
	})
}

func (a *Admin) myKillSessions(ctx context.Context, name string) error {
	rows, err := a.db.QueryContext(ctx, "SELECT ID FROM information_schema.PROCESSLIST WHERE USER = ?", name)
	if err != nil {
		return fmt.Errorf("dbrole: mariadb: sessions of %s: %w", name, err)
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
		if _, err := a.db.ExecContext(ctx, "KILL CONNECTION "+strconv.FormatInt(id, 10)); err != nil && ErrorNumber(err) != 1094 {
			return fmt.Errorf("dbrole: mariadb: kill session %d of %s: %w", id, name, err)
		}
	}
	return nil
}

func myLogin(ctx context.Context, addr, database, user, password string) error {
	cfg := mysql.NewConfig()
	cfg.User, cfg.Passwd, cfg.Net, cfg.Addr, cfg.DBName = user, password, "tcp", addr, database
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

// myDSN is the go-sql-driver/mysql DSN (Config.FormatDSN) for user to database over TCP.
func myDSN(addr, database, user, password string) string {
	cfg := mysql.NewConfig()
	cfg.User, cfg.Passwd, cfg.Net, cfg.Addr, cfg.DBName = user, password, "tcp", addr, database
	return cfg.FormatDSN()
}

// ErrorNumber is the MariaDB/MySQL error number of err, 0 when it has none.
func ErrorNumber(err error) uint16 {
	var me *mysql.MySQLError
	if errors.As(err, &me) {
		return me.Number
	}
	return 0
}

func myIdent(s string) string { return "`" + strings.ReplaceAll(s, "`", "``") + "`" }

// myGrantDB quotes database name for a database-level GRANT, where '_' and
// '%' are wildcards: escaped, the grant covers this database only (not
// kmsdbXemulator for kmsdb_emulator).
func myGrantDB(name string) string {
	return myIdent(strings.NewReplacer(`\`, `\\`, `_`, `\_`, `%`, `\%`).Replace(name))
}

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
