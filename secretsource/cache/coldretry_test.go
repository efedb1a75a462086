package cache

// Tests of the in-flight retries of a cold fetch: a secret with nothing to
// serve whose fetch fails with a retryable error is fetched again, under the
// backoff and the rate limit, while a caller waits.

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/kmsdb/kmsdb/internal/syncbuf"
	"github.com/kmsdb/kmsdb/secretsource"
	"github.com/kmsdb/kmsdb/secretsource/cache/internal/clock"
)

// TestColdRetryRidesOutTransientErrors: a cold GetSecret whose first fetches
// fail with a retryable error gets the value; the retries follow the backoff
// and the rate limit and are reported through the hooks.
func TestColdRetryRidesOutTransientErrors(t *testing.T) {
	for _, tt := range []struct {
		name string
		err  error
	}{
		{"unavailable", errUnavailable},
		{"throttled", &secretsource.Error{Kind: secretsource.KindThrottled, Source: "fake", Code: "Rejected.Throttling"}},
		{"network", &secretsource.Error{Kind: secretsource.KindNetwork, Source: "fake", Message: "connection reset"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			fc := clock.NewFake(t0)
			src := &flakySource{clk: fc, n: 3, err: tt.err, next: newFakeSource(nil)}
			bo := &recBackoff{}
			var mu sync.Mutex
			var failed []RefreshFailedEvent
			var refreshed []RefreshedEvent
			c := newTestCache(t, src, withClock(fc), withRand(seqRand(3)), WithBackoff(bo), WithHooks(Hooks{
				RefreshFailed: func(_ context.Context, e RefreshFailedEvent) { mu.Lock(); failed = append(failed, e); mu.Unlock() },
				Refreshed:     func(_ context.Context, e RefreshedEvent) { mu.Lock(); refreshed = append(refreshed, e); mu.Unlock() },
			}))
			r, moved := driveUntil(t, fc, c, "db", goGet(context.Background(), c, "db"), time.Minute)
			if r.err != nil || r.s.VersionID() != "v1" {
				t.Fatalf("GetSecret = %v, %v; want v1 after the retries", r.s, r.err)
			}
			if n := src.Calls(); n != 4 {
				t.Fatalf("source calls = %d, want 4 (3 failures + 1 success)", n)
			}
			bo.mu.Lock()
			delays, ceils := append([]time.Duration(nil), bo.delays...), append([]time.Duration(nil), bo.ceils...)
			bo.mu.Unlock()
			if len(delays) != 3 {
				t.Fatalf("backoff asked %d times, want 3", len(delays))
			}
			for i, d := range delays {
				if d < 0 || d >= ceils[i] {
					t.Errorf("delay %d = %v outside the full-jitter range [0, %v)", i+1, d, ceils[i])
				}
			}
			checkGaps(t, src.Times(), delays, DefaultRefreshEvery)
			t.Logf("%s: value after %v of simulated time", tt.name, moved)
			mu.Lock()
			defer mu.Unlock()
			if len(failed) != 3 || len(refreshed) != 1 || refreshed[0].Reason != ReasonCold {
				t.Fatalf("hooks: %d failures %+v, refreshed %+v", len(failed), failed, refreshed)
			}
			for i, f := range failed {
				if !f.Retryable || f.Attempt != i+1 || f.RetryIn != delays[i] || !errors.Is(f.Err, tt.err) {
					t.Errorf("failure %d: %+v", i+1, f)
				}
			}
			if info, _ := c.Info("db"); info.Failures != 0 || info.LastError != nil || !info.Serving {
				t.Errorf("info after recovery: %+v", info)
			}
		})
	}
}

// TestColdPermanentErrorNotRetried: a permanent error reaches the caller at
// once, after one call, and is then held.
func TestColdPermanentErrorNotRetried(t *testing.T) {
	for _, tt := range []struct {
		name string
		err  error
	}{
		{"not found", errNotFound},
		{"access denied", &secretsource.Error{Kind: secretsource.KindAccessDenied, Source: "fake", Code: "Forbidden.NoPermission"}},
		{"invalid credentials", &secretsource.Error{Kind: secretsource.KindInvalidCredentials, Source: "fake", Code: "InvalidAccessKeyId.NotFound"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			fc := clock.NewFake(t0)
			src := newFakeSource(fc)
			src.setErr(tt.err)
			var failed []RefreshFailedEvent
			c := newTestCache(t, src, withClock(fc),
				WithHooks(Hooks{RefreshFailed: func(_ context.Context, e RefreshFailedEvent) { failed = append(failed, e) }}))
			r := waitResult(t, goGet(context.Background(), c, "db"))
			if !errors.Is(r.err, tt.err) {
				t.Fatalf("err = %v, want %v", r.err, tt.err)
			}
			if n := src.Calls(); n != 1 {
				t.Fatalf("source calls = %d, want 1", n)
			}
			if len(failed) != 1 || failed[0].Retryable || failed[0].RetryIn != 0 {
				t.Errorf("failure events %+v", failed)
			}
			if n := fc.Pending(); n != 1 { // the drop of the slot when the hold ends
				t.Errorf("%d timers pending after a permanent error, want the one that drops the slot", n)
			}
			// Held: WithErrorHold (30 s) without the source being asked.
			fc.Advance(DefaultErrorHold - time.Second)
			if _, err := c.GetSecret(context.Background(), "db"); !errors.Is(err, tt.err) || src.Calls() != 1 {
				t.Fatalf("within the hold: err %v, calls %d", err, src.Calls())
			}
		})
	}
}

// TestColdUnknownErrorRetriedOnce: an unclassified error is "retryable once".
func TestColdUnknownErrorRetriedOnce(t *testing.T) {
	fc := clock.NewFake(t0)
	boom := errors.New("boom")
	src := &flakySource{clk: fc, n: 1 << 30, err: boom}
	c := newTestCache(t, src, withClock(fc), withRand(constRand(0.5)))
	r, _ := driveUntil(t, fc, c, "db", goGet(context.Background(), c, "db"), time.Minute)
	if !errors.Is(r.err, boom) {
		t.Fatalf("err = %v, want boom", r.err)
	}
	if n := src.Calls(); n != 2 {
		t.Fatalf("source calls = %d, want 2 (one retry)", n)
	}
}

// TestColdRetryBoundedByFetchTimeout: a caller that waits forever gets the
// error once the next retry would end after the fetch timeout.
func TestColdRetryBoundedByFetchTimeout(t *testing.T) {
	fc := clock.NewFake(t0)
	src := newFakeSource(fc)
	src.setErr(errUnavailable)
	c := newTestCache(t, src, withClock(fc), WithFetchTimeout(10*time.Second),
		WithBackoff(backoffFunc(func(int, func() float64) time.Duration { return 3 * time.Second })))
	r, moved := driveUntil(t, fc, c, "db", goGet(context.Background(), c, "db"), time.Minute)
	if !errors.Is(r.err, secretsource.ErrUnavailable) {
		t.Fatalf("err = %v, want the source's ErrUnavailable", r.err)
	}
	// Attempts at 0, 3, 6 and 9 s; a fifth at 12 s would pass the 10 s timeout.
	if n, want := src.Calls(), 4; n != want || moved != 9*time.Second {
		t.Fatalf("source calls = %d after %v, want %d after 9s", n, moved, want)
	}
	// Exhausted: the error is now held for the next delay (3 s, under the 30 s hold).
	if _, err := c.GetSecret(context.Background(), "db"); !errors.Is(err, secretsource.ErrUnavailable) || src.Calls() != 4 {
		t.Fatalf("within the hold: err %v, calls %d", err, src.Calls())
	}
	fc.Advance(3 * time.Second)
	src.setErr(nil)
	if s, err := c.GetSecret(context.Background(), "db"); err != nil || s.VersionID() != "v1" || src.Calls() != 5 {
		t.Fatalf("after the hold: %v, %v, calls %d", s, err, src.Calls())
	}
}

// TestColdRetryStopsWhenNobodyWaits: the retries go on only while a caller
// waits; the last one leaving stops them (and their timer).
func TestColdRetryStopsWhenNobodyWaits(t *testing.T) {
	fc := clock.NewFake(t0)
	src := newFakeSource(fc)
	src.setErr(errUnavailable)
	failures := make(chan RefreshFailedEvent, 10)
	c := newTestCache(t, src, withClock(fc),
		WithBackoff(backoffFunc(func(int, func() float64) time.Duration { return 10 * time.Second })),
		WithHooks(Hooks{RefreshFailed: func(_ context.Context, e RefreshFailedEvent) { failures <- e }}))

	// Two callers; the impatient one leaves, the retries go on for the other.
	ctx1, cancel1 := context.WithCancel(context.Background())
	res1 := goGet(ctx1, c, "db")
	<-failures
	eventually(t, "the backoff timer", func() bool { return fc.Pending() == 1 })
	ctx2, cancel2 := context.WithCancel(context.Background())
	res2 := goGet(ctx2, c, "db") // joins the retrying flight: the error is not held meanwhile
	eventually(t, "both callers to wait", func() bool { return waiters(c, "db") == 2 })
	cancel1()
	if r := <-res1; !errors.Is(r.err, context.Canceled) {
		t.Fatalf("impatient caller: %v", r.err)
	}
	fc.Advance(10 * time.Second)
	<-failures
	if n := src.Calls(); n != 2 {
		t.Fatalf("source calls = %d, want 2: the retry went on for the caller still waiting", n)
	}
	select {
	case r := <-res2:
		t.Fatalf("patient caller got %v before the retries ended", r.err)
	default:
	}

	// The last caller leaves: the retry timer stops, nothing more is fetched.
	eventually(t, "the second backoff timer", func() bool { return fc.Pending() == 1 })
	cancel2()
	if r := <-res2; !errors.Is(r.err, context.Canceled) {
		t.Fatalf("second caller: %v", r.err)
	}
	eventually(t, "the retrying fetch to end", func() bool { return flightIdle(c, "db") })
	if n := fc.Pending(); n != 1 { // the drop of the slot when the hold ends
		t.Fatalf("%d timers left after the retries stopped, want the one that drops the slot", n)
	}
	fc.Advance(time.Hour)
	if n := src.Calls(); n != 2 {
		t.Fatalf("source calls = %d after the callers left, want 2", n)
	}
	// Now exhausted, the error is held (for the drawn delay, 10 s, under the 30 s hold) ...
	fc2 := clock.NewFake(t0)
	src2 := newFakeSource(fc2)
	src2.setErr(errUnavailable)
	c2 := newTestCache(t, src2, withClock(fc2),
		WithBackoff(backoffFunc(func(int, func() float64) time.Duration { return 10 * time.Second })))
	ctx3, cancel3 := context.WithCancel(context.Background())
	res3 := goGet(ctx3, c2, "db")
	eventually(t, "the backoff timer", func() bool { return fc2.Pending() == 1 })
	cancel3()
	<-res3
	eventually(t, "the retrying fetch to end", func() bool { return flightIdle(c2, "db") })
	if n := fc2.Pending(); n != 1 { // the drop of the slot when the hold ends
		t.Fatalf("%d timers left after the retries stopped, want the one that drops the slot", n)
	}
	fc2.Advance(9 * time.Second)
	if _, err := c2.GetSecret(context.Background(), "db"); !errors.Is(err, secretsource.ErrUnavailable) || src2.Calls() != 1 {
		t.Fatalf("within the hold: err %v, calls %d", err, src2.Calls())
	}
	// ... and after it a new caller starts a new fetch.
	fc2.Advance(time.Second)
	src2.setErr(nil)
	if s, err := c2.GetSecret(context.Background(), "db"); err != nil || s.VersionID() != "v1" || src2.Calls() != 2 {
		t.Fatalf("after the hold: %v, %v, calls %d", s, err, src2.Calls())
	}
}

// TestColdRetryHerd: 100 callers on a cold secret during a throttle share one
// retrying fetch.
func TestColdRetryHerd(t *testing.T) {
	fc := clock.NewFake(t0)
	src := &flakySource{clk: fc, n: 2, err: errUnavailable, next: newFakeSource(nil)}
	failures := make(chan struct{}, 10)
	c := newTestCache(t, src, withClock(fc), withRand(constRand(0.5)),
		WithHooks(Hooks{RefreshFailed: func(context.Context, RefreshFailedEvent) { failures <- struct{}{} }}))
	first := goGet(context.Background(), c, "db")
	<-failures
	var wg sync.WaitGroup
	var bad atomic.Int32
	for range 99 {
		wg.Go(func() {
			if s, err := c.GetSecret(context.Background(), "db"); err != nil || s.VersionID() != "v1" {
				bad.Add(1)
			}
		})
	}
	// Let the herd arrive during the backoff (not an assert), then move time.
	time.Sleep(10 * time.Millisecond)
	if r, _ := driveUntil(t, fc, c, "db", first, time.Minute); r.err != nil {
		t.Fatal(r.err)
	}
	wg.Wait()
	if bad.Load() != 0 || src.Calls() != 3 {
		t.Fatalf("%d callers failed, %d source calls (want 0 and 3)", bad.Load(), src.Calls())
	}
}

// TestCloseDuringColdRetry: Close while a cold fetch waits to retry ends it,
// the caller gets ErrClosed, and no goroutine or timer is left.
func TestCloseDuringColdRetry(t *testing.T) {
	t.Run("real clock", func(t *testing.T) {
		defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
		src := newFakeSource(nil)
		src.setErr(errUnavailable)
		failures := make(chan struct{}, 10)
		c, err := New(src, WithBackoff(backoffFunc(func(int, func() float64) time.Duration { return time.Hour })),
			WithFetchTimeout(2*time.Hour),
			WithHooks(Hooks{RefreshFailed: func(context.Context, RefreshFailedEvent) { failures <- struct{}{} }}))
		if err != nil {
			t.Fatal(err)
		}
		res := goGet(context.Background(), c, "db")
		<-failures // the flight now waits an hour to retry
		if err := c.Close(); err != nil {
			t.Fatal(err)
		}
		if r := waitResult(t, res); !errors.Is(r.err, ErrClosed) {
			t.Fatalf("caller during Close: %v, want ErrClosed", r.err)
		}
		if n := src.Calls(); n != 1 {
			t.Errorf("source calls = %d, want 1", n)
		}
	})
	t.Run("fake clock: rate-limit wait", func(t *testing.T) {
		defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
		fc := clock.NewFake(t0)
		src := newFakeSource(fc)
		src.setErr(errUnavailable)
		failures := make(chan struct{}, 10)
		c, err := New(src, withClock(fc), WithRefreshLimit(time.Hour, 1),
			WithBackoff(backoffFunc(func(int, func() float64) time.Duration { return 0 })),
			WithFetchTimeout(2*time.Hour),
			WithHooks(Hooks{RefreshFailed: func(context.Context, RefreshFailedEvent) { failures <- struct{}{} }}))
		if err != nil {
			t.Fatal(err)
		}
		res := goGet(context.Background(), c, "db")
		<-failures
		eventually(t, "the backoff timer", func() bool { return fc.Pending() == 1 })
		fc.Advance(0) // backoff over; now waiting an hour for a token
		eventually(t, "the rate-limit timer", func() bool { return fc.Pending() == 1 })
		if err := c.Close(); err != nil {
			t.Fatal(err)
		}
		if r := waitResult(t, res); !errors.Is(r.err, ErrClosed) {
			t.Fatalf("caller during Close: %v, want ErrClosed", r.err)
		}
		if n := fc.Pending(); n != 0 {
			t.Errorf("%d timers left after Close", n)
		}
		fc.Advance(3 * time.Hour)
		if n := src.Calls(); n != 1 {
			t.Errorf("source calls = %d, want 1", n)
		}
	})
}

// TestColdRetryRateLimitFloor: when the backoff draws zero every time, the
// per-secret rate limit alone spaces the retries: the burst
// (DefaultRefreshBurst), then one per second.
func TestColdRetryRateLimitFloor(t *testing.T) {
	fc := clock.NewFake(t0)
	src := &flakySource{clk: fc, n: 4, err: errUnavailable, next: newFakeSource(nil)}
	c := newTestCache(t, src, withClock(fc), withRand(constRand(0)))
	r, _ := driveUntil(t, fc, c, "db", goGet(context.Background(), c, "db"), time.Minute)
	if r.err != nil {
		t.Fatal(r.err)
	}
	times := src.Times()
	checkGaps(t, times, make([]time.Duration, len(times)), DefaultRefreshEvery)
	// The burst at once, then one a second.
	var want []time.Duration
	for i := range 5 {
		want = append(want, time.Duration(max(0, i-DefaultRefreshBurst+1))*DefaultRefreshEvery)
	}
	if len(times) != len(want) {
		t.Fatalf("%d calls, want %d", len(times), len(want))
	}
	for i, w := range want {
		if d := times[i].Sub(t0); d < w-time.Microsecond || d > w+time.Microsecond {
			t.Errorf("call %d at +%v, want +%v (rate limit)", i+1, d, w)
		}
	}
}

// TestNoSecretInColdRetryOutput: the cold-retry path, its hooks, Info, the
// cache's own formatting and the errors it makes never show the value.
func TestNoSecretInColdRetryOutput(t *testing.T) {
	const value = "hunter2-COLD-RETRY"
	var buf syncbuf.Buffer
	var mu sync.Mutex // guards out
	h := slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug})
	fc := clock.NewFake(t0)
	inner := newFakeSource(nil)
	inner.value = value
	src := &flakySource{clk: fc, n: 2, err: errUnavailable, next: inner}
	var out []string
	record := func(v any) {
		mu.Lock()
		defer mu.Unlock()
		out = append(out, fmt.Sprintf("%v|%+v|%#v|%s", v, v, v, v))
	}
	c := newTestCache(t, src, withClock(fc), withRand(constRand(0.5)), WithLogger(slog.New(h)), WithHooks(Hooks{
		Refreshed:     func(_ context.Context, e RefreshedEvent) { record(e) },
		RefreshFailed: func(_ context.Context, e RefreshFailedEvent) { record(e) },
		ServingStale:  func(_ context.Context, e StaleEvent) { record(e) },
		Evicted:       func(_ context.Context, e EvictedEvent) { record(e) },
	}))
	// A caller that gives up during the retries, then one that waits.
	ctx, cancel := context.WithCancel(context.Background())
	res := goGet(ctx, c, "db")
	eventually(t, "the first failure", func() bool { return src.Calls() == 1 && fc.Pending() == 1 })
	cancel()
	if r := <-res; r.err != nil {
		record(r.err)
	}
	eventually(t, "the retrying fetch to end", func() bool { return flightIdle(c, "db") })
	fc.Advance(time.Minute)
	r, _ := driveUntil(t, fc, c, "db", goGet(context.Background(), c, "db"), time.Minute)
	if r.err != nil || r.s.Text() != value {
		t.Fatalf("GetSecret = %v, %v", r.s, r.err)
	}
	if got := fmt.Sprintf("%#v %d", c, c); got != "cache(secrets=1) cache(secrets=1)" {
		t.Errorf("formatted cache = %q, want its String", got)
	}
	info, _ := c.Info("db")
	record(info)
	record(c)
	record(fmt.Sprintf("%d %x", c, c))
	record(r.s)
	_ = c.Close()
	_, err := c.GetSecret(context.Background(), "db")
	record(err)
	mu.Lock()
	defer mu.Unlock()
	all := buf.String() + strings.Join(out, "\n")
	if strings.Contains(all, "hunter2") {
		t.Fatalf("secret value in output:\n%s", all)
	}
	for _, want := range []string{"fetching secret failed", "stopped retrying", "refreshed secret"} {
		if !strings.Contains(all, want) {
			t.Errorf("output lacks %q", want)
		}
	}
}
