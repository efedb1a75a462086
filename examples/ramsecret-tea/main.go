// Command ramsecret-tea calls an Alibaba Cloud API with a Tea SDK client
// (here kms-20160120/v3 over darabonba-openapi) whose AccessKey lives in a KMS
// RAM secret and rotates underneath it: the ramsecret provider is the
// client's credentials-go Credential, asked for a fresh key pair on every
// request. A key rejected after a rotation triggers one refresh and one retry.
//
// Configure the KMS source as for Alibaba's secret clients (environment or
// ./secretsmanager.properties, see secretsource/config). Against the emulator:
//
//	go run ./cmd/kmsdb emulator --seed examples/seed.json   # prints {"kms":"http://127.0.0.1:PORT",...}
//	export cache_client_region_id='[{"regionId":"cn-hangzhou","endpoint":"127.0.0.1:PORT"}]'
//	export credentials_type=ak credentials_access_key_id=LTAItest credentials_access_secret=test-secret
//	export KMSDB_EXAMPLE_HTTP=true                            # the emulator without --tls
//	go run ./examples/ramsecret-tea -endpoint 127.0.0.1:PORT -calls 3
//
// With `kmsdb emulator --tls`, set KMSDB_EXAMPLE_CA_FILE to its caFile
// instead of KMSDB_EXAMPLE_HTTP. Against the real service, leave both unset
// and -endpoint empty.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	openapi "github.com/alibabacloud-go/darabonba-openapi/v2/client"
	kms "github.com/alibabacloud-go/kms-20160120/v3/client"
	"github.com/alibabacloud-go/tea/tea"

	"github.com/kmsdb/kmsdb/ramsecret"
	"github.com/kmsdb/kmsdb/secretsource/cache"
	"github.com/kmsdb/kmsdb/secretsource/config"
)

func main() {
	if err := run(context.Background(), os.Args[1:], os.LookupEnv, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "ramsecret-tea:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, lookupEnv func(string) (string, bool), stdout io.Writer) error {
	fs := flag.NewFlagSet("ramsecret-tea", flag.ContinueOnError)
	secretName := fs.String("secret", "acs/ram/user/app", "the RAM secret holding the AccessKey")
	region := fs.String("region", "cn-hangzhou", "region of the API called with the key")
	endpoint := fs.String("endpoint", "", "host[:port] of the API called with the key (default: the region's KMS endpoint)")
	calls := fs.Int("calls", 3, "how many calls to make")
	interval := fs.Duration("interval", time.Second, "pause between calls")
	if err := fs.Parse(args); err != nil {
		return err
	}
	// The secret source and its cache: one per process.
	opts, caPEM, plainHTTP, err := emulatorOptions(lookupEnv)
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

	p, err := ramsecret.New(secrets, *secretName)
	if err != nil {
		return err
	}
	cfg := &openapi.Config{Credential: p, RegionId: tea.String(*region)}
	if *endpoint != "" {
		cfg.Endpoint = tea.String(*endpoint)
	}
	if plainHTTP {
		cfg.Protocol = tea.String("http")
	}
	if caPEM != nil {
		cfg.Ca = tea.String(string(caPEM))
	}
	client, err := kms.NewClient(cfg)
	if err != nil {
		return err
	}

	for i := 1; i <= *calls; i++ {
		if i > 1 {
			select {
			case <-time.After(*interval):
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		// A Tea client is not safe for concurrent use (it writes shared fields
		// per request); the provider is: one client per goroutine, one provider.
		resp, err := ramsecret.DoClient(ctx, p, func(ctx context.Context) (*kms.ListSecretsResponse, error) {
			return client.ListSecrets(&kms.ListSecretsRequest{})
		})
		if err != nil {
			return fmt.Errorf("call %d: %w", i, err)
		}
		k, err := p.AccessKey(ctx)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "call %d: ListSecrets ok (%d secrets); current key: version %s of %s\n",
			i, tea.Int32Value(resp.Body.TotalCount), k.VersionID, k.SecretName)
	}
	st := p.Stats()
	fmt.Fprintf(stdout, "rejected keys %d, forced refreshes %d, retried calls %d\n", st.Rejected, st.Refreshes, st.Retries)
	return nil
}

// emulatorOptions are the configuration options the example adds for the
// emulator: its CA (KMSDB_EXAMPLE_CA_FILE, returned for the API client too)
// or plain HTTP (KMSDB_EXAMPLE_HTTP=true). Against the real service: none.
func emulatorOptions(lookupEnv func(string) (string, bool)) (opts []config.Option, caPEM []byte, plainHTTP bool, err error) {
	env := func(k string) string { v, _ := lookupEnv(k); return v }
	opts = []config.Option{config.WithLookupEnv(lookupEnv)}
	if file := env("KMSDB_EXAMPLE_CA_FILE"); file != "" {
		if caPEM, err = os.ReadFile(file); err != nil {
			return nil, nil, false, fmt.Errorf("KMSDB_EXAMPLE_CA_FILE: %w", err)
		}
		pool, err := rootCAs(caPEM, file)
		if err != nil {
			return nil, nil, false, err
		}
		opts = append(opts, config.WithRootCAs(pool))
	}
	plainHTTP = env("KMSDB_EXAMPLE_HTTP") == "true"
	if plainHTTP {
		opts = append(opts, config.WithHTTP())
	}
	return opts, caPEM, plainHTTP, nil
}
