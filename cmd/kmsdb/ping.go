package main

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"sync/atomic"
	"time"

	"github.com/kmsdb/kmsdb/connector"
	"github.com/kmsdb/kmsdb/drivers/mysqlkms"
	"github.com/kmsdb/kmsdb/drivers/pgkms"
	"github.com/kmsdb/kmsdb/secretsource"
	"github.com/kmsdb/kmsdb/secretsource/cache"
	"github.com/kmsdb/kmsdb/secretsource/config"
)

func init() {
	register("ping", "log in to MySQL/MariaDB or PostgreSQL with a secret's credentials and print the server version", runPing)
}

const pingUsage = `usage: kmsdb ping --engine mysql|postgres [--dsn BASE-DSN] [--timeout 15s] SECRET

Logs in to the database with the account in SECRET (an Rds secret, or a Generic JSON
secret with user/password fields), through the same connector applications use, and
prints the server version and the user. The secret source is configured as for
Alibaba's secret client (credentials_type, cache_client_region_id, ... in the
environment or ./secretsmanager.properties, or the file KMSDB_PROPERTIES_FILE names).

BASE-DSN gives everything but the credentials (host, port, database, TLS):
  mysql:    "tcp(db.example.com:3306)/app?tls=true"          (go-sql-driver/mysql form)
  postgres: "postgres://db.example.com:5432/app?sslmode=verify-full"  (pgx form)
An endpoint in the secret (host/port) is used only when BASE-DSN names no host; a host
the DSN names is never changed by the secret. The password is never printed.

Exit status:
  0  "ok: ..." on stdout: logged in with the secret's current version (ACSCurrent).
  3  "previous: ..." on stdout, the problem on stderr: the database rejects
     ACSCurrent and the ACSPrevious version logged in instead. Applications
     still connect, but only until ACSPrevious changes: a rotation is half
     done (the new password is not on the database). Finish or repair it.
  1  failed: no login; the reason is on stderr.
  2  usage error.

`

// runPing implements `kmsdb ping`.
func runPing(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("ping", flag.ContinueOnError)
	fs.SetOutput(stderr)
	engine := fs.String("engine", "", "database engine: mysql (also MariaDB) or postgres")
	dsn := fs.String("dsn", "", "base connection string without credentials (see above)")
	timeout := fs.Duration("timeout", 15*time.Second, "give up after this long")
	grace := fs.Duration("grace", 5*time.Second, "how long a rejected password is retried while a rotation completes (0: not at all); "+
		"telling ACSPrevious standing in (exit 3) from a failure takes about 2 s, the secret's refreshes being rate-limited")
	fs.Usage = func() {
		fmt.Fprint(stderr, pingUsage)
		fs.PrintDefaults()
	}
	name, err := parseSecretArg(fs, args)
	if err != nil {
		return err
	}
	kind, err := pingEngine(*engine)
	if err != nil {
		fs.Usage()
		return usagef("%v", err)
	}
	if *timeout <= 0 {
		return usagef("--timeout must be positive, got %v", *timeout)
	}
	if *grace <= 0 {
		*grace = -1 // the connectors read 0 as "default" and a negative value as "do not wait"
	}

	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	stopNotice := noticeWait(stderr, "ping", "the login to %s with secret %q (KMS, then the database; --timeout %s)", kind, name, *timeout)
	defer stopNotice()
	src, err := loadSource(ctx, config.WithLogger(warningLogger(stderr)))
	if err != nil {
		return fmt.Errorf("secret source: %w", err)
	}
	defer src.Close() // the cache closes it too: Close is idempotent
	secrets, err := cache.New(src)
	if err != nil {
		return fmt.Errorf("secret cache: %w", err)
	}
	defer secrets.Close()
	// The connector reports its login (which version, whether ACSPrevious
	// stood in) to the process's Observer: ping reads it there.
	var event atomic.Pointer[connector.LoginEvent]
	prev := connector.DefaultObserver()
	obs := prev
	obs.Login = func(ctx context.Context, e connector.LoginEvent) {
		if e.Secret == name {
			event.Store(&e)
		}
		if prev.Login != nil {
			prev.Login(ctx, e)
		}
	}
	connector.SetDefaultObserver(obs)
	defer connector.SetDefaultObserver(prev)

	c, q := pingConnector(kind, name, *dsn, secrets, *grace)
	db := sql.OpenDB(c)
	defer db.Close()
	db.SetMaxOpenConns(1)
	start := time.Now()
	version, user, err := q.run(ctx, db, name)
	if err != nil {
		return err
	}
	took := time.Since(start).Round(time.Millisecond)
	stopNotice()
	l := pingLogin{kind: kind, secret: name, version: version, user: user, took: took, secretVersion: "-", current: "-"}
	if e := event.Load(); e != nil {
		l.previousUsed = e.PreviousUsed
		if e.Version != "" {
			l.secretVersion = e.Version
		}
	}
	if cur, err := secrets.GetSecret(ctx, name); err == nil { // cached: no KMS call
		l.current = cur.VersionID()
	}
	return pingResult(stdout, l)
}

// pingQueries are the statements that read the server version and the user.
type pingQueries struct{ version, user string }

// pingConnector is the connector of engine kind for secret name.
func pingConnector(kind, name, dsn string, src secretsource.Source, grace time.Duration) (driver.Connector, pingQueries) {
	if kind == "mysql" {
		opts := []mysqlkms.Option{mysqlkms.WithSource(src), mysqlkms.WithGracePeriod(grace)}
		if dsn != "" {
			opts = append(opts, mysqlkms.WithDSN(dsn))
		}
		return mysqlkms.NewConnector(name, opts...), pingQueries{"SELECT VERSION()", "SELECT CURRENT_USER()"}
	}
	opts := []pgkms.Option{pgkms.WithSource(src), pgkms.WithGracePeriod(grace)}
	if dsn != "" {
		opts = append(opts, pgkms.WithDSN(dsn))
	}
	return pgkms.NewConnector(name, opts...), pingQueries{"SHOW server_version", "SELECT current_user"}
}

// run logs in on one connection and reads the server version and the user.
func (q pingQueries) run(ctx context.Context, db *sql.DB, name string) (version, user string, err error) {
	conn, err := db.Conn(ctx)
	if err != nil {
		return "", "", err // the connector's error names the secret, version and user
	}
	defer conn.Close()
	if err := conn.QueryRowContext(ctx, q.version).Scan(&version); err != nil {
		return "", "", fmt.Errorf("logged in, but %s failed: %w", q.version, err)
	}
	if err := conn.QueryRowContext(ctx, q.user).Scan(&user); err != nil {
		return "", "", fmt.Errorf("logged in, but %s failed: %w", q.user, err)
	}
	return version, user, nil
}

// pingLogin is what a successful ping saw: the server version and user, the
// secret version that logged in (from the connector's LoginEvent), whether
// it stood in for the current one, and the current (cached) version.
type pingLogin struct {
	kind, secret, version, user string
	took                        time.Duration
	secretVersion, current      string
	previousUsed                bool
}

// pingResult prints the outcome: "ok", or "previous" (exit 3) when
// ACSPrevious stood in for a rejected ACSCurrent.
func pingResult(stdout io.Writer, l pingLogin) error {
	secretVersion, current := l.secretVersion, l.current
	if !l.previousUsed {
		fmt.Fprintf(stdout, "ok: %s %s, logged in as %s with secret %s (version %s) in %s\n",
			l.kind, l.version, l.user, l.secret, secretVersion, l.took)
		return nil
	}
	fmt.Fprintf(stdout, "previous: %s %s, logged in as %s with secret %s's ACSPrevious version %s in %s; ACSCurrent (version %s) is rejected\n",
		l.kind, l.version, l.user, l.secret, secretVersion, l.took, current)
	return &exitError{code: exitPreviousOnly, err: fmt.Errorf("secret %q: the database rejects the current version %s and accepts "+
		"only ACSPrevious (%s): a rotation is half done; set the current version's password on the database, or rotate again", l.secret, current, secretVersion)}
}

// exitPreviousOnly is ping's exit status when only ACSPrevious logs in.
const exitPreviousOnly = 3

// pingEngine normalizes the --engine flag.
func pingEngine(e string) (string, error) {
	switch strings.ToLower(strings.TrimSpace(e)) {
	case "mysql", "mariadb":
		return "mysql", nil
	case "postgres", "postgresql", "pg":
		return "postgres", nil
	case "":
		return "", errors.New("--engine is required (mysql or postgres)")
	}
	return "", fmt.Errorf("--engine %q: want mysql (also for MariaDB) or postgres", e)
}
