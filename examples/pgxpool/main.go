// Command pgxpool queries PostgreSQL through a pgx connection pool with the
// credentials of a KMS secret:
//
//	pool, err := pgkms.NewPool(ctx, "db-secret", pgkms.WithDSN("postgres://db:5432/app"))
//
// The *pgkms.Pool has every method of *pgxpool.Pool; those that may open a
// connection retry a login rejected during a rotation, so the application
// never sees it. pool.Pool is the plain *pgxpool.Pool for code that needs
// that type (see pgkms.ConfigurePool for wiring your own pgxpool.Config).
//
// The secret source is kmsdb's default, configured like Alibaba's secret
// clients (environment variables or ./secretsmanager.properties). Against the
// emulator:
//
//	kmsdb emulator --seed examples/seed.json --db-admin 'postgres://postgres@127.0.0.1:5432/postgres' --quiet --print-env > emulator.env &
//	until [ -s emulator.env ] || ! kill -0 $! 2>/dev/null; do sleep 0.2; done; . ./emulator.env
//	go run ./examples/pgxpool -secret db-secret -dsn 'postgres://127.0.0.1:5432/kmsdb_emulator?sslmode=disable&pool_max_conns=8'
//
// (--db-admin makes the emulator create the seed's account app and change its
// password on each rotation, as KMS does for RDS). Against the real service,
// set the same variables to your region and credentials; the code does not
// change.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/kmsdb/kmsdb/drivers/pgkms"
)

func main() {
	if err := run(context.Background(), os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "pgxpool:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("pgxpool", flag.ContinueOnError)
	secretName := fs.String("secret", "db-secret", "the Rds (or Generic JSON) secret holding the database account")
	dsn := fs.String("dsn", "", "base connection string without credentials, pgx form; pool_* parameters set the pool")
	queries := fs.Int("queries", 3, "how many queries to run")
	interval := fs.Duration("interval", time.Second, "pause between queries")
	if err := fs.Parse(args); err != nil {
		return err
	}

	pool, err := pgkms.NewPool(ctx, *secretName, pgkms.WithDSN(*dsn))
	if err != nil {
		return err
	}
	defer pool.Close()

	for i := 1; i <= *queries; i++ {
		if i > 1 {
			if err := pause(ctx, *interval); err != nil {
				return err
			}
		}
		var version, user string
		if err := pool.QueryRow(ctx, "SELECT current_setting('server_version'), current_user").Scan(&version, &user); err != nil {
			return fmt.Errorf("query %d: %w", i, err)
		}
		st := pool.Stat()
		fmt.Fprintf(stdout, "query %d: PostgreSQL %s as %s (pool: %d connections)\n", i, version, user, st.TotalConns())
	}
	return nil
}

func pause(ctx context.Context, d time.Duration) error {
	select {
	case <-time.After(d):
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
