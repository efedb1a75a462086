package cache_test

import (
	"context"
	"crypto/rand"
	"fmt"
	"os"
	"time"

	"github.com/kmsdb/kmsdb/secretsource"
	"github.com/kmsdb/kmsdb/secretsource/cache"
)

// exampleSource stands in for kms.New(...) so the examples run anywhere.
var exampleSource = secretsource.SourceFunc(func(ctx context.Context, name string) (*secretsource.Secret, error) {
	return secretsource.NewSecret(secretsource.Fields{Name: name, VersionID: "v1", SecretType: secretsource.TypeRds,
		Value: []byte(`{"AccountName":"app","AccountPassword":"example"}`)}), nil
})

func Example() {
	c, err := cache.New(exampleSource)
	if err != nil {
		panic(err)
	}
	defer c.Close()

	s, err := c.GetSecret(context.Background(), "db-secret") // the first call fetches, the next ones are warm
	if err != nil {
		panic(err)
	}
	fmt.Println(s) // a *Secret never prints its value
	// Output: secret(name="db-secret" version="v1" type="Rds" value=REDACTED)
}

// A database rejected the password of version v1: every connection that saw
// the failure reports it, and the cache fetches once.
func ExampleCache_Invalidate() {
	c, _ := cache.New(exampleSource)
	defer c.Close()
	ctx := context.Background()
	s, _ := c.GetSecret(ctx, "db-secret")

	fmt.Println(c.Invalidate("db-secret", "v0"))          // not the cached version: nothing to do
	fmt.Println(c.Invalidate("db-secret", s.VersionID())) // refresh started (or joined)
	s, _ = c.Refresh(ctx, "db-secret")                    // joins it, under the rate limit
	fmt.Println(s.VersionID())
	// Output:
	// false
	// true
	// v1
}

// Options: a shorter TTL, a bound on staleness, hooks for metrics.
func ExampleNew_options() {
	c, err := cache.New(exampleSource,
		cache.WithTTL(2*time.Minute),
		cache.WithMaxStaleness(6*time.Hour),
		cache.WithRefreshLimit(2*time.Second, 3),
		cache.WithHooks(cache.Hooks{
			ServingStale: func(_ context.Context, e cache.StaleEvent) { fmt.Println("stale:", e.Name, e.Age) },
		}),
	)
	if err != nil {
		panic(err)
	}
	defer c.Close()
	_, err = cache.New(exampleSource, cache.WithTTL(-1))
	fmt.Println(err)
	// Output: cache: WithTTL: TTL must be positive, got -1ns
}

// An encrypted file store lets a restarted process serve secrets while KMS is
// unreachable. The key comes from elsewhere (an environment variable, a mounted
// secret), never from the directory.
func ExampleNewFileStore() {
	dir, _ := os.MkdirTemp("", "kmsdb-cache")
	defer os.RemoveAll(dir)
	key := make([]byte, 32)
	_, _ = rand.Read(key)

	store, err := cache.NewFileStore(dir, key)
	if err != nil {
		panic(err)
	}
	c, _ := cache.New(exampleSource, cache.WithStore(store))
	_, _ = c.GetSecret(context.Background(), "db-secret")
	_ = c.Close() // waits for the save

	recs, _ := store.Load(context.Background())
	fmt.Println(len(recs), recs[0].Secret.Name())
	// Output: 1 db-secret
}

// Info feeds metrics and health checks: how old the served value is, whether
// it is stale.
func ExampleCache_Info() {
	c, _ := cache.New(exampleSource)
	defer c.Close()
	_, _ = c.GetSecret(context.Background(), "db-secret")
	info, _ := c.Info("db-secret")
	fmt.Println(info.Version, info.Serving, info.Stale, info.Failures)
	// Output: v1 true false 0
}
