// Command quickstart queries a database for a while with the credentials of a
// KMS secret that rotates underneath it, and says how it went: one line a
// second, one line per rotation it sees, and at the end
//
//	21 queries, 0 errors, 4 rotations
//
// It exits with status 1 if any query failed. Every query opens a new
// connection, so every query is a login with the password the secret holds
// at that moment.
//
// Everything comes from the environment, as `kmsdb emulator --db-admin …
// --print-env` prints it: the secret source (kmsdb's default configuration,
// as for Alibaba's secret client), KMSDB_EMULATOR_DB_ENGINE (mysql or
// postgres) and KMSDB_EMULATOR_DB_DSN (where to connect, without user or
// password). See README.md, "Try it without an account":
//
//	go run ./cmd/kmsdb emulator --seed examples/seed.json --db-admin 'root@tcp(127.0.0.1:3306)/' \
//	    --rotate-every 5s --quiet --print-env > emulator.env &
//	until [ -s emulator.env ] || ! kill -0 $! 2>/dev/null; do sleep 0.2; done; . ./emulator.env
//	go run ./examples/quickstart
package main

import (
	"context"
	"database/sql"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"time"

	"github.com/kmsdb/kmsdb/connector"
	"github.com/kmsdb/kmsdb/drivers/mysqlkms"
	"github.com/kmsdb/kmsdb/drivers/pgkms"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	err := run(ctx, os.Args[1:], os.Stdout)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "quickstart:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("quickstart", flag.ContinueOnError)
	secretName := fs.String("secret", "db-secret", "the Rds secret holding the database account")
	engine := fs.String("engine", os.Getenv("KMSDB_EMULATOR_DB_ENGINE"), "mysql (MySQL, MariaDB) or postgres; default $KMSDB_EMULATOR_DB_ENGINE, else from the form of -dsn")
	dsn := fs.String("dsn", os.Getenv("KMSDB_EMULATOR_DB_DSN"), "where to connect, without user or password: tcp(HOST:3306)/DB or postgres://HOST:5432/DB; default $KMSDB_EMULATOR_DB_DSN")
	duration := fs.Duration("for", 20*time.Second, "how long to query")
	every := fs.Duration("every", time.Second, "time between queries")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *dsn == "" {
		return errors.New("no database: set -dsn, or start `kmsdb emulator` with --db-admin and --print-env and source what it prints")
	}
	if *every <= 0 || *duration <= 0 {
		return errors.New("-for and -every must be positive")
	}

	// The one line an application needs: a *sql.DB whose logins follow the secret.
	var db *sql.DB
	query := "SELECT CURRENT_USER()"
	switch e := strings.ToLower(*engine); {
	case e == "postgres" || e == "postgresql" || (e == "" && (strings.HasPrefix(*dsn, "postgres") || strings.Contains(*dsn, "host="))):
		db = sql.OpenDB(pgkms.NewConnector(*secretName, pgkms.WithDSN(*dsn)))
		query = "SELECT current_user"
	case e == "mysql" || e == "mariadb" || e == "":
		db = sql.OpenDB(mysqlkms.NewConnector(*secretName, mysqlkms.WithDSN(*dsn)))
	default:
		return fmt.Errorf("-engine %q: want mysql or postgres", *engine)
	}
	defer db.Close()
	db.SetMaxIdleConns(0) // every query logs in anew: each one proves the password of the moment

	// The secret version in use, from the default cache the connector reads (no KMS call when cached).
	cache, err := connector.DefaultCache(ctx)
	if err != nil {
		return err
	}
	version := func() string {
		s, err := cache.GetSecret(ctx, *secretName)
		if err != nil {
			return "?"
		}
		return s.VersionID()
	}

	fmt.Fprintf(stdout, "querying %s as the account of secret %q for %v, one new connection every %v\n", *dsn, *secretName, *duration, *every)
	start := time.Now()
	tick := time.NewTicker(*every)
	defer tick.Stop()
	var queries, failures, rotations int
	last := ""
	for {
		qctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		var user string
		err := db.QueryRowContext(qctx, query).Scan(&user)
		cancel()
		if ctx.Err() != nil {
			break
		}
		queries++
		at := time.Since(start).Seconds()
		if err != nil {
			failures++
			fmt.Fprintf(stdout, "%5.1fs  query %d FAILED: %v\n", at, queries, err)
		} else {
			v := version()
			if last != "" && v != last {
				rotations++
				fmt.Fprintf(stdout, "%5.1fs  rotation seen: secret version %s -> %s, now logging in as %s\n", at, last, v, user)
			}
			last = v
			fmt.Fprintf(stdout, "%5.1fs  query %d ok as %s (secret version %s)\n", at, queries, user, v)
		}
		if time.Since(start) >= *duration {
			break
		}
		select {
		case <-ctx.Done():
		case <-tick.C:
		}
		if ctx.Err() != nil {
			break
		}
	}
	fmt.Fprintf(stdout, "%d queries, %d errors, %d rotations\n", queries, failures, rotations)
	if rotations == 0 {
		fmt.Fprintln(stdout, "no rotation seen: start the emulator with --rotate-every 5s, or run `go run ./cmd/kmsdb emulator-ctl rotate "+*secretName+"`")
	}
	switch {
	case failures > 0:
		return fmt.Errorf("%d of %d queries failed", failures, queries)
	case ctx.Err() != nil:
		return errors.New("interrupted")
	}
	return nil
}
