package cache

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kmsdb/kmsdb/internal/syncbuf"
	"github.com/kmsdb/kmsdb/secretsource"
	"github.com/kmsdb/kmsdb/secretsource/cache/internal/clock"
)

func TestClose(t *testing.T) {
	fc := clock.NewFake(t0)
	src := newFakeSource(fc)
	c, err := New(src, withClock(fc))
	if err != nil {
		t.Fatal(err)
	}
	mustGet(t, c, "db")
	if fc.Pending() == 0 {
		t.Fatal("no timers after a fetch")
	}
	var wg sync.WaitGroup
	for range 10 {
		wg.Go(func() {
			if err := c.Close(); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if n := fc.Pending(); n != 0 {
		t.Errorf("%d timers left after Close", n)
	}
	ctx := context.Background()
	if _, err := c.GetSecret(ctx, "db"); !errors.Is(err, ErrClosed) || err.Error() != "cache: closed" {
		t.Errorf("GetSecret after Close: %v", err)
	}
	if _, err := c.Refresh(ctx, "db"); !errors.Is(err, ErrClosed) {
		t.Errorf("Refresh after Close: %v", err)
	}
	if _, err := c.GetSecretVersion(ctx, "db", secretsource.VersionRef{Stage: secretsource.StagePrevious}); !errors.Is(err, ErrClosed) {
		t.Errorf("GetSecretVersion after Close: %v", err)
	}
	if c.Invalidate("db", "v1") {
		t.Error("Invalidate acted after Close")
	}
	if _, ok := c.Info("db"); ok {
		t.Error("Info after Close")
	}
	fc.Advance(48 * time.Hour)
	if n := src.Calls(); n != 1 {
		t.Errorf("calls after Close: %d", n)
	}
}

func TestCloseAbortsFetchInProgress(t *testing.T) {
	src := newFakeSource(nil)
	src.gate = make(chan struct{})
	c, err := New(src)
	if err != nil {
		t.Fatal(err)
	}
	errc := make(chan error, 1)
	go func() { _, err := c.GetSecret(context.Background(), "db"); errc <- err }()
	eventually(t, "the fetch to start", func() bool { return src.Calls() == 1 })
	_ = c.Close()
	if err := <-errc; !errors.Is(err, ErrClosed) {
		t.Errorf("caller waiting during Close: %v", err)
	}
}

func TestWarmStartFromStore(t *testing.T) {
	fc := clock.NewFake(t0)
	store := newMemStore()
	old := secretsource.NewSecret(secretsource.Fields{Name: "db", VersionID: "v0", Value: []byte("pw-0")})
	_ = store.Save(context.Background(), Record{Secret: old, FetchedAt: t0.Add(-time.Hour)})
	_ = store.Save(context.Background(), Record{Secret: secretsource.NewSecret(secretsource.Fields{Name: "ancient", VersionID: "x"}), FetchedAt: t0.Add(-48 * time.Hour)})

	t.Run("source down: the persisted value is served", func(t *testing.T) {
		src := newFakeSource(fc)
		src.setErr(errUnavailable)
		var stale []StaleEvent
		c := newTestCache(t, src, withClock(fc), WithStore(store), WithHooks(Hooks{ServingStale: func(_ context.Context, e StaleEvent) { stale = append(stale, e) }}))
		s := mustGet(t, c, "db")
		if s.VersionID() != "v0" {
			t.Fatalf("got %v", s)
		}
		if len(stale) != 1 || stale[0].Age != time.Hour {
			t.Errorf("stale events %+v", stale)
		}
		// Nothing to serve for it: the cold fetch retries the outage within the
		// fetch timeout (on the fake clock, moved here), then gives up.
		if r, _ := driveUntil(t, fc, c, "ancient", goGet(context.Background(), c, "ancient"), time.Minute); r.err == nil {
			t.Error("a record past the max staleness was served")
		} else if !errors.Is(r.err, secretsource.ErrUnavailable) {
			t.Errorf("ancient: err = %v, want the source's ErrUnavailable", r.err)
		}
	})
	t.Run("source up: the fresh value wins", func(t *testing.T) {
		src := newFakeSource(fc)
		c := newTestCache(t, src, withClock(fc), WithStore(store))
		if s := mustGet(t, c, "db"); s.VersionID() != "v1" {
			t.Fatalf("got %v, want the fresh v1", s)
		}
		fc.Advance(0) // the warm-start refresh joins nothing new
		if n := src.Calls(); n > 2 {
			t.Errorf("calls = %d", n)
		}
	})
}

func TestOptionsValidation(t *testing.T) {
	src := newFakeSource(nil)
	tests := []struct {
		name string
		opt  Option
		want string
	}{
		{"ttl", WithTTL(0), "WithTTL"},
		{"policy", WithRefreshPolicy(nil), "WithRefreshPolicy"},
		{"backoff", WithBackoff(nil), "WithBackoff"},
		{"stale", WithMaxStaleness(-1), "WithMaxStaleness"},
		{"hold", WithErrorHold(-1), "WithErrorHold"},
		{"timeout", WithFetchTimeout(0), "WithFetchTimeout"},
		{"limit", WithRefreshLimit(time.Second, 0), "WithRefreshLimit"},
		{"store", WithStore(nil), "WithStore"},
		{"logger", WithLogger(nil), "WithLogger"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := New(src, tt.opt); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("err = %v, want it to name %s", err, tt.want)
			}
		})
	}
	if _, err := New(nil); err == nil {
		t.Error("nil source accepted")
	}
}

// TestNoSecretInLogs drives every path with a Debug JSON logger and checks the
// value never appears.
func TestNoSecretInLogs(t *testing.T) {
	var buf syncbuf.Buffer
	h := slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug})
	fc := clock.NewFake(t0)
	src := newFakeSource(fc)
	src.value = "hunter2-SECRET"
	c := newTestCache(t, src, withClock(fc), WithLogger(slog.New(h)), WithMaxStaleness(time.Hour))
	mustGet(t, c, "db")
	c.Invalidate("db", "v1")
	mustGet(t, c, "db")
	src.setErr(errUnavailable)
	fc.Advance(2 * time.Hour)
	// The timers' refresh and eviction run on goroutines of their own: wait
	// for their lines before Close stops them.
	for _, want := range []string{"fetching secret failed", "serving stale secret", "evicted secret"} {
		eventually(t, "log line "+want, func() bool { return strings.Contains(buf.String(), want) })
	}
	_ = c.Close()
	out := buf.String()
	if strings.Contains(out, "hunter2") {
		t.Fatalf("secret value in logs:\n%s", out)
	}
	for _, want := range []string{"refreshed secret", "fetching secret failed", "serving stale secret", "evicted secret"} {
		if !strings.Contains(out, want) {
			t.Errorf("log lacks %q", want)
		}
	}
}

// TestRaceEverything is the race test of every shared structure: 100
// goroutines mixing every method over a few secrets while background refreshes
// run on the real clock.
func TestRaceEverything(t *testing.T) {
	src := newFakeSource(nil)
	store := newMemStore()
	c := newTestCache(t, src, WithTTL(time.Millisecond), WithRefreshLimit(time.Microsecond, 100), WithStore(store),
		WithMaxStaleness(time.Hour), WithBackoff(ExponentialBackoff{Base: time.Microsecond, Max: time.Millisecond}),
		WithHooks(Hooks{Refreshed: func(context.Context, RefreshedEvent) {}, RefreshFailed: func(context.Context, RefreshFailedEvent) {}, ServingStale: func(context.Context, StaleEvent) {}}))
	var wg sync.WaitGroup
	for i := range 100 {
		wg.Go(func() {
			ctx := context.Background()
			name := fmt.Sprintf("s%d", i%5)
			for j := range 50 {
				switch (i + j) % 7 {
				case 0, 1, 2:
					if s, err := c.GetSecret(ctx, name); err == nil {
						c.Invalidate(name, s.VersionID())
					}
				case 3:
					_, _ = c.Refresh(ctx, name)
				case 4:
					_, _ = c.GetSecretVersion(ctx, name, secretsource.VersionRef{Stage: secretsource.StagePrevious})
				case 5:
					c.Info(name)
					_ = c.String()
				case 6:
					if j%14 == 6 {
						src.rotate(name)
					} else if j%21 == 6 {
						src.setErr(errUnavailable)
					} else {
						src.setErr(nil)
					}
				}
			}
		})
	}
	wg.Wait()
	_ = c.Close()
}
