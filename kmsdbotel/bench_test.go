package kmsdbotel_test

import (
	"context"
	"errors"
	"runtime"
	"syscall"
	"testing"
	"time"

	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/kmsdb/kmsdb/connector"
	"github.com/kmsdb/kmsdb/kmsdbotel"
	"github.com/kmsdb/kmsdb/secretsource/cache"
	"github.com/kmsdb/kmsdb/secretsource/kmstest"
)

// userProviders are the SDK providers an application would install: a
// meter provider with a reader, a tracer provider with the batch span
// processor (its exporter discards) and sampler s.
func userProviders(b *testing.B, s sdktrace.Sampler) connector.Observer {
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(sdkmetric.NewManualReader()))
	tp := sdktrace.NewTracerProvider(sdktrace.WithSampler(s), sdktrace.WithBatcher(tracetest.NewNoopExporter()))
	b.Cleanup(func() {
		_ = mp.Shutdown(context.Background())
		_ = tp.Shutdown(context.Background())
	})
	return kmsdbotel.NewObserver(kmsdbotel.WithMeterProvider(mp), kmsdbotel.WithTracerProvider(tp))
}

// What the adapter adds to a login: its Login hook, on the SDK (metrics
// recorded; spans sampled, not sampled, or sampled after the caller's
// decision), for a first-attempt login, one that met a rotation (a span and
// a histogram recording too), and a failure past the grace period. The
// issue asks for under 2 µs. The connection's own work (building the event)
// is internal/rotation's BenchmarkRunEvent.
func BenchmarkLoginHook(b *testing.B) {
	sampled := userProviders(b, sdktrace.AlwaysSample())
	unsampled := userProviders(b, sdktrace.NeverSample())
	parent := userProviders(b, sdktrace.ParentBased(sdktrace.NeverSample()))
	noop := kmsdbotel.NewObserver() // the global providers: no-op unless the application set them
	rejected := &connector.Error{Secret: "db", Version: "v2", User: "app", Class: connector.AuthFailure, Attempts: 3,
		Waited: time.Second, Err: errors.Join(connector.ErrCredentialsRejected, errors.New("access denied"))}
	first := connector.LoginEvent{Secret: "db", Version: "v1", User: "app", Attempts: 1, Waited: time.Millisecond}
	rotation := connector.LoginEvent{Secret: "db", Version: "v2", User: "app", Attempts: 3, Waited: 200 * time.Millisecond, PreviousUsed: true}
	failed := connector.LoginEvent{Secret: "db", Version: "v2", User: "app", Attempts: 3, Waited: time.Second,
		Class: connector.AuthFailure, Err: rejected}
	// The caller's context holds a sampled span (a traced request): the
	// metrics may keep exemplars pointing at it.
	caller, span := sdktrace.NewTracerProvider().Tracer("app").Start(context.Background(), "request")
	defer span.End()
	for _, bc := range []struct {
		name string
		o    connector.Observer
		e    connector.LoginEvent
		ctx  context.Context
	}{
		{"sampled/first-attempt", sampled, first, nil},
		{"sampled/rotation", sampled, rotation, nil},
		{"sampled/failed-after-grace", sampled, failed, nil},
		{"unsampled/rotation", unsampled, rotation, nil},
		{"unsampled-parent/rotation", parent, rotation, nil},
		{"noop/first-attempt", noop, first, nil},
		{"noop/rotation", noop, rotation, nil},
		{"sampled-in-caller-span/first-attempt", sampled, first, caller},
		{"sampled-in-caller-span/rotation", sampled, rotation, caller},
	} {
		b.Run(bc.name, func(b *testing.B) {
			ctx := bc.ctx
			if ctx == nil {
				ctx = context.Background()
			}
			b.ReportAllocs()
			cpuLoop(b, func() { bc.o.Login(ctx, bc.e) })
		})
	}
}

// What the SDK itself costs, for comparison: a span started with a start
// time and ended, no attribute, on the sampled and unsampled providers of
// BenchmarkLoginHook. The rotation span cannot cost less.
func BenchmarkSDKSpanFloor(b *testing.B) {
	for _, bc := range []struct {
		name string
		s    sdktrace.Sampler
	}{{"sampled", sdktrace.AlwaysSample()}, {"unsampled", sdktrace.NeverSample()}} {
		b.Run(bc.name, func(b *testing.B) {
			tp := sdktrace.NewTracerProvider(sdktrace.WithSampler(bc.s), sdktrace.WithBatcher(tracetest.NewNoopExporter()))
			defer func() { _ = tp.Shutdown(context.Background()) }()
			tr := tp.Tracer("floor")
			ctx := context.Background()
			b.ReportAllocs()
			cpuLoop(b, func() {
				now := time.Now()
				_, span := tr.Start(ctx, "floor", trace.WithTimestamp(now.Add(-time.Second)))
				span.End(trace.WithTimestamp(now))
			})
		})
	}
}

// The cached read path with and without the adapter's hooks: the hooks run
// only from the cache's fetches and timers, so GetSecret stays at 0 allocs.
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

// cpuLoop runs f b.N times on one OS thread and reports the thread's CPU
// time per call as cpu-ns/op, besides the wall time of ns/op: on a loaded
// machine (CI, shared runners) the wall time counts the waits for a core too.
func cpuLoop(b *testing.B, f func()) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	t0, ok := threadCPU()
	for b.Loop() {
		f()
	}
	if t1, ok1 := threadCPU(); ok && ok1 {
		b.ReportMetric(float64(t1-t0)/float64(b.N), "cpu-ns/op")
	}
}

// threadCPU is the CPU time of the calling thread (user and system).
func threadCPU() (time.Duration, bool) {
	var ru syscall.Rusage
	if err := syscall.Getrusage(rusageThread, &ru); err != nil {
		return 0, false
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()), true
}
