package ramsecret_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/kmsdb/kmsdb/ramsecret"
	"github.com/kmsdb/kmsdb/secretsource"
	"github.com/kmsdb/kmsdb/secretsource/cache"
)

// benchProvider is a provider over the real cache, warmed from a source that
// serves one RAM secret (the hot path never reaches the source).
func benchProvider(b *testing.B) *ramsecret.Provider {
	b.Helper()
	sec := secretsource.NewSecret(secretsource.Fields{Name: ramName, VersionID: "v1", SecretType: secretsource.TypeRAM,
		DataType: secretsource.DataText,
		Value:    fmt.Appendf(nil, `{"AccessKeyId":%q,"AccessKeySecret":%q}`, firstAK, firstSK)})
	src := secretsource.SourceFunc(func(ctx context.Context, name string) (*secretsource.Secret, error) { return sec, nil })
	c, err := cache.New(src)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = c.Close() })
	p, err := ramsecret.New(c, ramName)
	if err != nil {
		b.Fatal(err)
	}
	if _, err := p.AccessKey(context.Background()); err != nil {
		b.Fatal(err)
	}
	return p
}

// The plain provider: one atomic load in the cache, one pointer compare here.
func BenchmarkAccessKey(b *testing.B) {
	p := benchProvider(b)
	ctx := context.Background()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := p.AccessKey(ctx); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// What a Tea SDK client calls per request (a fresh model each time).
func BenchmarkGetCredential(b *testing.B) {
	p := benchProvider(b)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := p.GetCredential(); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// What a core SDK client calls per request.
func BenchmarkGetCredentials(b *testing.B) {
	p := benchProvider(b)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := p.GetCredentials(); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// The wrapper around a call that succeeds.
func BenchmarkDoSuccess(b *testing.B) {
	p := benchProvider(b)
	ctx := context.Background()
	call := func(ctx context.Context, k secretsource.AccessKey) (int, error) { return len(k.ID), nil }
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ramsecret.Do(ctx, p, call); err != nil {
			b.Fatal(err)
		}
	}
}
