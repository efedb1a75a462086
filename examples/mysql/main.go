// Command mysql queries MySQL or MariaDB through database/sql with the
// credentials of a KMS secret, in one line:
//
//	db := sql.OpenDB(mysqlkms.NewConnector("db-secret", mysqlkms.WithDSN("tcp(db:3306)/app")))
//
// Connections log in with the cached secret; when the password rotates, a
// rejected login refreshes the secret and retries, so the application never
// sees the rotation. The secret source is configured like Alibaba's secret
// clients: environment variables or ./secretsmanager.properties.
//
//	go run ./cmd/kmsdb emulator --tls --seed examples/seed.json   # prints {"kms":"https://127.0.0.1:PORT","caFile":...}
//	export cache_client_region_id='[{"regionId":"cn-hangzhou","endpoint":"127.0.0.1:PORT"}]'
//	export credentials_type=ak credentials_access_key_id=LTAItest credentials_access_secret=test-secret
//	export KMSDB_EXAMPLE_CA_FILE=<caFile>     # or KMSDB_EXAMPLE_HTTP=true for the emulator without --tls
//	go run ./examples/mysql -secret db-secret -dsn 'tcp(127.0.0.1:3306)/app'
//
// (the seed's db-secret names the account app / p@ss=w0rd: create it on
// the database first). Against the real service, leave the KMSDB_EXAMPLE_*
// variables unset.
package main

import (
	"context"
	"crypto/x509"
	"database/sql"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/kmsdb/kmsdb/connector"
	"github.com/kmsdb/kmsdb/drivers/mysqlkms"
	"github.com/kmsdb/kmsdb/secretsource/cache"
	"github.com/kmsdb/kmsdb/secretsource/config"
)

func main() {
	if err := run(context.Background(), os.Args[1:], os.LookupEnv, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "mysql:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, lookupEnv func(string) (string, bool), stdout io.Writer) error {
	fs := flag.NewFlagSet("mysql", flag.ContinueOnError)
	secretName := fs.String("secret", "db-secret", "the Rds (or Generic JSON) secret holding the database account")
	dsn := fs.String("dsn", "", "base DSN without credentials, go-sql-driver/mysql form, e.g. tcp(db.example.com:3306)/app?tls=true")
	queries := fs.Int("queries", 3, "how many queries to run")
	interval := fs.Duration("interval", time.Second, "pause between queries")
	if err := fs.Parse(args); err != nil {
		return err
	}

	// The process-wide secret cache, configured like Alibaba's secret clients.
	// A connector given no provider builds exactly this by itself; it is built
	// here only so that the example can trust the emulator's CA
	// (KMSDB_EXAMPLE_CA_FILE) or speak plain HTTP to it (KMSDB_EXAMPLE_HTTP=true).
	secrets, closeSecrets, err := exampleProvider(ctx, lookupEnv)
	if err != nil {
		return err
	}
	defer closeSecrets()
	connector.SetDefaultCache(secrets)
	defer connector.SetDefaultCache(nil)

	// The one line: a *sql.DB whose logins follow the secret.
	db := sql.OpenDB(mysqlkms.NewConnector(*secretName, mysqlkms.WithDSN(*dsn)))
	defer db.Close()
	db.SetConnMaxLifetime(5 * time.Minute)

	for i := 1; i <= *queries; i++ {
		if i > 1 {
			if err := pause(ctx, *interval); err != nil {
				return err
			}
		}
		var version, user string
		if err := db.QueryRowContext(ctx, "SELECT VERSION(), CURRENT_USER()").Scan(&version, &user); err != nil {
			return fmt.Errorf("query %d: %w", i, err)
		}
		fmt.Fprintf(stdout, "query %d: %s as %s\n", i, version, user)
	}
	return nil
}

// exampleProvider builds a cache over the source the configuration
// describes, with the emulator's CA or plain HTTP when asked.
func exampleProvider(ctx context.Context, lookupEnv func(string) (string, bool)) (*cache.Cache, func(), error) {
	env := func(k string) string { v, _ := lookupEnv(k); return v }
	opts := []config.Option{config.WithLookupEnv(lookupEnv)}
	if f := env("KMSDB_EXAMPLE_CA_FILE"); f != "" {
		pem, err := os.ReadFile(f)
		if err != nil {
			return nil, nil, fmt.Errorf("KMSDB_EXAMPLE_CA_FILE: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, nil, fmt.Errorf("KMSDB_EXAMPLE_CA_FILE %s: no PEM certificate", f)
		}
		opts = append(opts, config.WithRootCAs(pool))
	}
	if env("KMSDB_EXAMPLE_HTTP") == "true" {
		opts = append(opts, config.WithHTTP())
	}
	src, err := config.Load(ctx, opts...)
	if err != nil {
		return nil, nil, err
	}
	c, err := cache.New(src)
	if err != nil {
		_ = src.Close()
		return nil, nil, err
	}
	return c, func() { _ = c.Close() }, nil // closing the cache closes src
}

func pause(ctx context.Context, d time.Duration) error {
	select {
	case <-time.After(d):
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
