// Command postgres queries PostgreSQL through database/sql (pgx) with the
// credentials of a KMS secret, in one line:
//
//	db := sql.OpenDB(pgkms.NewConnector("db-secret", pgkms.WithDSN("postgres://db:5432/app")))
//
// Connections log in with the cached secret; when the password rotates, a
// rejected login refreshes the secret and retries, so the application never
// sees the rotation. The secret source is kmsdb's default, configured like
// Alibaba's secret clients: environment variables or ./secretsmanager.properties.
// Against the emulator:
//
//	kmsdb emulator --seed examples/seed.json --db-admin 'postgres://postgres@127.0.0.1:5432/postgres' --quiet --print-env > emulator.env &
//	until [ -s emulator.env ] || ! kill -0 $! 2>/dev/null; do sleep 0.2; done; . ./emulator.env
//	go run ./examples/postgres -secret db-secret -dsn 'postgres://127.0.0.1:5432/kmsdb_emulator?sslmode=disable'
//
// (--db-admin makes the emulator create the seed's account app and change its
// password on each rotation, as KMS does for RDS). Against the real service,
// set the same variables to your region and credentials; the code does not
// change.
package main

import (
	"context"
	"database/sql"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/kmsdb/kmsdb/drivers/pgkms"
)

func main() {
	if err := run(context.Background(), os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "postgres:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("postgres", flag.ContinueOnError)
	secretName := fs.String("secret", "db-secret", "the Rds (or Generic JSON) secret holding the database account")
	dsn := fs.String("dsn", "", "base connection string without credentials, pgx form, e.g. postgres://db.example.com:5432/kmsdb_emulator?sslmode=verify-full")
	queries := fs.Int("queries", 3, "how many queries to run")
	interval := fs.Duration("interval", time.Second, "pause between queries")
	if err := fs.Parse(args); err != nil {
		return err
	}

	// The one line: a *sql.DB whose logins follow the secret.
	db := sql.OpenDB(pgkms.NewConnector(*secretName, pgkms.WithDSN(*dsn)))
	defer db.Close()
	db.SetConnMaxLifetime(5 * time.Minute)

	for i := 1; i <= *queries; i++ {
		if i > 1 {
			select {
			case <-time.After(*interval):
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		var version, user string
		if err := db.QueryRowContext(ctx, "SELECT current_setting('server_version'), current_user").Scan(&version, &user); err != nil {
			return fmt.Errorf("query %d: %w", i, err)
		}
		fmt.Fprintf(stdout, "query %d: PostgreSQL %s as %s\n", i, version, user)
	}
	return nil
}
