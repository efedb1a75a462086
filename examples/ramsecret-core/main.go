// Command ramsecret-core calls an Alibaba Cloud API with an alibaba-cloud-sdk-go
// (core) client whose AccessKey lives in a KMS RAM secret and rotates
// underneath it. The client asks the ramsecret provider for the key on every
// request; a key rejected after a rotation triggers one refresh and one retry.
//
// The KMS source is configured like Alibaba's secret clients: environment
// variables or ./secretsmanager.properties (see secretsource/config). The
// API called with the rotated key is KMS ListSecrets, so the example runs
// against the emulator alone:
//
//	go run ./cmd/kmsdb emulator --seed examples/seed.json   # prints {"kms":"http://127.0.0.1:PORT",...}
//	export cache_client_region_id='[{"regionId":"cn-hangzhou","endpoint":"127.0.0.1:PORT"}]'
//	export credentials_type=ak credentials_access_key_id=LTAItest credentials_access_secret=test-secret
//	export KMSDB_EXAMPLE_HTTP=true                            # the emulator without --tls
//	go run ./examples/ramsecret-core -endpoint 127.0.0.1:PORT -calls 3
//
// With `kmsdb emulator --tls`, set KMSDB_EXAMPLE_CA_FILE to its caFile
// instead of KMSDB_EXAMPLE_HTTP. Against the real service, leave both unset
// and -endpoint empty.
package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"time"

	"github.com/aliyun/alibaba-cloud-sdk-go/sdk"
	"github.com/aliyun/alibaba-cloud-sdk-go/services/kms"

	"github.com/kmsdb/kmsdb/ramsecret"
	"github.com/kmsdb/kmsdb/secretsource/cache"
	"github.com/kmsdb/kmsdb/secretsource/config"
)

func main() {
	if err := run(context.Background(), os.Args[1:], os.LookupEnv, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "ramsecret-core:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, lookupEnv func(string) (string, bool), stdout io.Writer) error {
	fs := flag.NewFlagSet("ramsecret-core", flag.ContinueOnError)
	secretName := fs.String("secret", "acs/ram/user/app", "the RAM secret holding the AccessKey")
	region := fs.String("region", "cn-hangzhou", "region of the API called with the key")
	endpoint := fs.String("endpoint", "", "host[:port] of the API called with the key (default: the region's KMS endpoint)")
	calls := fs.Int("calls", 3, "how many calls to make")
	interval := fs.Duration("interval", time.Second, "pause between calls")
	if err := fs.Parse(args); err != nil {
		return err
	}
	// The secret source and its cache: one per process.
	opts, pool, plainHTTP, err := emulatorOptions(lookupEnv)
	if err != nil {
		return err
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

	// The provider is the client's credential: kms.NewClientWithOptions accepts it.
	p, err := ramsecret.New(secrets, *secretName)
	if err != nil {
		return err
	}
	cfg := sdk.NewConfig()
	cfg.AutoRetry = false
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}
	defer tr.CloseIdleConnections()
	cfg.HttpTransport = tr
	if !plainHTTP {
		cfg.Scheme = "HTTPS"
	}
	client, err := kms.NewClientWithOptions(*region, cfg, p)
	if err != nil {
		return err
	}
	defer client.Shutdown()
	if *endpoint != "" {
		client.Domain = *endpoint
	}

	for i := 1; i <= *calls; i++ {
		if i > 1 {
			select {
			case <-time.After(*interval):
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		// A core client is not safe for concurrent use; the provider is: give
		// each goroutine its own client over the same provider.
		resp, err := ramsecret.DoClient(ctx, p, func(ctx context.Context) (*kms.ListSecretsResponse, error) {
			return client.ListSecrets(kms.CreateListSecretsRequest())
		})
		if err != nil {
			return fmt.Errorf("call %d: %w", i, err)
		}
		k, err := p.AccessKey(ctx)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "call %d: ListSecrets ok (%d secrets); current key: version %s of %s\n",
			i, resp.TotalCount, k.VersionID, k.SecretName)
	}
	st := p.Stats()
	fmt.Fprintf(stdout, "rejected keys %d, forced refreshes %d, retried calls %d\n", st.Rejected, st.Refreshes, st.Retries)
	return nil
}

// emulatorOptions are the configuration options the example adds for the
// emulator: its CA (KMSDB_EXAMPLE_CA_FILE, returned for the API client too;
// nil means the system roots) or plain HTTP (KMSDB_EXAMPLE_HTTP=true).
// Against the real service: none.
func emulatorOptions(lookupEnv func(string) (string, bool)) (opts []config.Option, pool *x509.CertPool, plainHTTP bool, err error) {
	env := func(k string) string { v, _ := lookupEnv(k); return v }
	opts = []config.Option{config.WithLookupEnv(lookupEnv)}
	if pool, err = exampleRootCAs(env("KMSDB_EXAMPLE_CA_FILE")); err != nil {
		return nil, nil, false, err
	}
	if pool != nil {
		opts = append(opts, config.WithRootCAs(pool))
	}
	plainHTTP = env("KMSDB_EXAMPLE_HTTP") == "true"
	if plainHTTP {
		opts = append(opts, config.WithHTTP())
	}
	return opts, pool, plainHTTP, nil
}

// exampleRootCAs reads the emulator's CA (KMSDB_EXAMPLE_CA_FILE); nil means
// the system roots.
func exampleRootCAs(file string) (*x509.CertPool, error) {
	if file == "" {
		return nil, nil
	}
	pem, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("KMSDB_EXAMPLE_CA_FILE: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, errors.New("KMSDB_EXAMPLE_CA_FILE: no PEM certificate in " + file)
	}
	return pool, nil
}
