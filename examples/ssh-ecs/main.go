// Command ssh-ecs logs in to an ECS instance over SSH with the password or
// key pair held in a KMS ECS secret (SecretType ECS), always the current
// version: when KMS has rotated the login and the cache has not seen it yet,
// the refused login triggers one refresh and one retry.
//
// Configure the KMS source as for Alibaba's secret clients (environment or
// ./secretsmanager.properties, see secretsource/config). Against the emulator
// (this directory's seed.json holds an ECS password secret):
//
//	go run ./cmd/kmsdb emulator --seed examples/ssh-ecs/seed.json   # prints {"kms":"http://127.0.0.1:PORT",...}
//	export cache_client_region_id='[{"regionId":"cn-hangzhou","endpoint":"127.0.0.1:PORT"}]'
//	export credentials_type=ak credentials_access_key_id=LTAItest credentials_access_secret=test-secret
//	export KMSDB_EXAMPLE_HTTP=true
//	go run ./examples/ssh-ecs -secret acs/ecs/web-1                 # shows the login, never its secret
//	go run ./examples/ssh-ecs -secret acs/ecs/web-1 -addr HOST:22   # logs in, checking ~/.ssh/known_hosts
//
// With `kmsdb emulator --tls`, set KMSDB_EXAMPLE_CA_FILE to its caFile
// instead of KMSDB_EXAMPLE_HTTP.
package main

import (
	"context"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"golang.org/x/crypto/ssh/knownhosts"

	"github.com/kmsdb/kmsdb/ramsecret"
	"github.com/kmsdb/kmsdb/secretsource/cache"
	"github.com/kmsdb/kmsdb/secretsource/config"
)

func main() {
	if err := run(context.Background(), os.Args[1:], os.LookupEnv, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "ssh-ecs:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, lookupEnv func(string) (string, bool), stdout io.Writer) error {
	fs := flag.NewFlagSet("ssh-ecs", flag.ContinueOnError)
	secretName := fs.String("secret", "acs/ecs/web-1", "the ECS secret holding the login")
	addr := fs.String("addr", "", "host:port of the SSH server; empty only shows the login")
	home, _ := os.UserHomeDir()
	knownHosts := fs.String("known-hosts", filepath.Join(home, ".ssh", "known_hosts"), "known_hosts file that checks the server's host key")
	timeout := fs.Duration("timeout", 10*time.Second, "bound on connecting and logging in")
	if err := fs.Parse(args); err != nil {
		return err
	}
	env := func(k string) string { v, _ := lookupEnv(k); return v }

	opts := []config.Option{config.WithLookupEnv(lookupEnv)}
	if file := env("KMSDB_EXAMPLE_CA_FILE"); file != "" {
		pem, err := os.ReadFile(file)
		if err != nil {
			return fmt.Errorf("KMSDB_EXAMPLE_CA_FILE: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return errors.New("KMSDB_EXAMPLE_CA_FILE: no PEM certificate in " + file)
		}
		opts = append(opts, config.WithRootCAs(pool))
	}
	if env("KMSDB_EXAMPLE_HTTP") == "true" {
		opts = append(opts, config.WithHTTP())
	}
	src, err := config.Load(ctx, opts...)
	if err != nil {
		return err
	}
	secrets, err := cache.New(src)
	if err != nil {
		_ = src.Close()
		return err
	}
	defer secrets.Close() // closes src too: the cache owns it

	e, err := ramsecret.NewECS(secrets, *secretName)
	if err != nil {
		return err
	}
	login, err := e.Credential(ctx)
	if err != nil {
		return err
	}
	fmt.Fprintln(stdout, login) // user name and kind of login; never the password or the key

	if *addr == "" {
		return nil
	}
	hostKey, err := knownhosts.New(*knownHosts)
	if err != nil {
		return fmt.Errorf("-known-hosts: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	client, err := e.Dial(ctx, "tcp", *addr, hostKey)
	if err != nil {
		return err
	}
	defer client.Close()
	fmt.Fprintf(stdout, "logged in to %s as %s (server %s)\n", *addr, client.User(), client.ServerVersion())
	return nil
}
