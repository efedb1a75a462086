package kmsdbotel_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/kmsdb/kmsdb/connector"
	"github.com/kmsdb/kmsdb/kmsdbotel"
	"github.com/kmsdb/kmsdb/secretsource/cache"
	"github.com/kmsdb/kmsdb/secretsource/kmstest"
)

// What the adapter adds to a login: its Login hook, on the SDK (metrics
// recorded, spans sampled), for a first-attempt login, one that met a
// rotation (a span and a histogram recording too), and a failure past the
// grace period.
func BenchmarkLoginHook(b *testing.B) {
	tm := newTelemetry(b)
	o := tm.observer()
	noop := kmsdbotel.NewObserver() // the global providers: no-op unless the application set them
	rejected := &connector.Error{Secret: "db", Version: "v2", User: "app", Class: connector.AuthFailure, Attempts: 3,
		Waited: time.Second, Err: errors.Join(connector.ErrCredentialsRejected, errors.New("access denied"))}
	for _, bc := range []struct {
		name string
		o    connector.Observer
		e    connector.LoginEvent
	}{
		{"sdk/first-attempt", o, connector.LoginEvent{Secret: "db", Version: "v1", User: "app", Attempts: 1, Waited: time.Millisecond}},
		{"sdk/rotation", o, connector.LoginEvent{Secret: "db", Version: "v2", User: "app", Attempts: 3, Waited: 200 * time.Millisecond, PreviousUsed: true}},
		{"sdk/failed-after-grace", o, connector.LoginEvent{Secret: "db", Version: "v2", User: "app", Attempts: 3, Waited: time.Second,
			Class: connector.AuthFailure, Err: rejected}},
		{"noop/first-attempt", noop, connector.LoginEvent{Secret: "db", Version: "v1", User: "app", Attempts: 1, Waited: time.Millisecond}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				bc.o.Login(bc.e)
			}
		})
	}
}

// The cached read path with and without the adapter's hooks: the hooks run
// only from the cache's background work, so GetSecret stays at 0 allocs.
func BenchmarkCachedRead(b *testing.B) {
	tm := newTelemetry(b)
	for _, bc := range []struct {
		name string
		opts []cache.Option
	}{
		{"plain", nil},
		{"otel", []cache.Option{cache.WithHooks(tm.observer().Cache)}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			_, src := emulator(b, kmstest.SecretSpec{Name: "db", Data: `{"AccountName":"app","AccountPassword":"Bench-pass-1"}`})
			c, err := cache.New(src, bc.opts...) // closes src
			if err != nil {
				b.Fatal(err)
			}
			defer c.Close()
			ctx := context.Background()
			if _, err := c.GetSecret(ctx, "db"); err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			for b.Loop() {
				if _, err := c.GetSecret(ctx, "db"); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
