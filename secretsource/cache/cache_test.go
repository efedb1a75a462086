package cache

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

	"github.com/kmsdb/kmsdb/internal/syncbuf"
	"github.com/kmsdb/kmsdb/secretsource"
	"github.com/kmsdb/kmsdb/secretsource/cache/internal/clock"
)

func TestGetSecretColdThenWarm(t *testing.T) {
	src := newFakeSource(nil)
	c := newTestCache(t, src)
	a := mustGet(t, c, "db")
	b := mustGet(t, c, "db")
	if a != b {
		t.Error("warm read returned a different pointer")
	}
	if a.Text() != "pw-1" || a.VersionID() != "v1" {
		t.Errorf("got %v", a)
	}
	if n := src.Calls(); n != 1 {
		t.Errorf("source calls = %d, want 1", n)
	}
	if _, err := c.GetSecret(context.Background(), ""); !errors.Is(err, secretsource.ErrConfig) {
		t.Errorf("empty name: err = %v, want ErrConfig", err)
	}
}

func TestHotPathDoesNotAllocate(t *testing.T) {
	c := newTestCache(t, newFakeSource(nil))
	mustGet(t, c, "db")
	ctx := context.Background()
	if n := testing.AllocsPerRun(1000, func() { _, _ = c.GetSecret(ctx, "db") }); n != 0 {
		t.Errorf("warm GetSecret allocates %v times per call, want 0", n)
	}
}

// TestHerd100 is the race test of the cold path: 100 goroutines, one fetch.
func TestHerd100(t *testing.T) {
	src := newFakeSource(nil)
	src.gate = make(chan struct{})
	c := newTestCache(t, src)
	var wg sync.WaitGroup
	var failed atomic.Int32
	got := make([]*secretsource.Secret, 100)
	for i := range 100 {
		wg.Go(func() {
			s, err := c.GetSecret(context.Background(), "db")
			if err != nil {
				failed.Add(1)
			}
			got[i] = s
		})
	}
	eventually(t, "the fetch to start", func() bool { return src.Calls() == 1 })
	time.Sleep(10 * time.Millisecond) // let the herd pile up on the flight (not an assert)
	close(src.gate)
	wg.Wait()
	if failed.Load() != 0 {
		t.Fatalf("%d callers failed", failed.Load())
	}
	if n := src.Calls(); n != 1 {
		t.Errorf("source calls = %d, want 1", n)
	}
	for _, s := range got {
		if s != got[0] {
			t.Fatal("callers got different pointers")
		}
	}
}

func TestCallerContextBoundsOnlyItsOwnWait(t *testing.T) {
	src := newFakeSource(nil)
	src.gate = make(chan struct{})
	c := newTestCache(t, src)
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { _, err := c.GetSecret(ctx, "db"); errc <- err }()
	eventually(t, "the fetch to start", func() bool { return src.Calls() == 1 })
	patient := make(chan *secretsource.Secret, 1)
	go func() { s, _ := c.GetSecret(context.Background(), "db"); patient <- s }()
	cancel()
	err := <-errc
	if !errors.Is(err, context.Canceled) || !strings.Contains(err.Error(), `"db"`) {
		t.Fatalf("impatient caller: err = %v, want context.Canceled naming the secret", err)
	}
	if secretsource.IsRetryable(err) {
		t.Error("a cancelled wait must not be retryable")
	}
	close(src.gate)
	if s := <-patient; s == nil || s.VersionID() != "v1" {
		t.Fatalf("patient caller got %v", s)
	}
	if n := src.Calls(); n != 1 {
		t.Errorf("source calls = %d, want 1 (the shared fetch was not cancelled)", n)
	}

	// A deadline is reported as a timeout.
	src2 := newFakeSource(nil)
	src2.gate = make(chan struct{})
	defer close(src2.gate)
	c2 := newTestCache(t, src2)
	dctx, dcancel := context.WithTimeout(context.Background(), 5*time.Millisecond)
	defer dcancel()
	if _, err := c2.GetSecret(dctx, "db"); !errors.Is(err, secretsource.ErrTimeout) || !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("deadline: err = %v, want ErrTimeout wrapping DeadlineExceeded", err)
	}
}

func TestRefreshAhead(t *testing.T) {
	fc := clock.NewFake(t0)
	src := newFakeSource(fc)
	var events []RefreshedEvent
	c := newTestCache(t, src, withClock(fc), withRand(constRand(0.5)),
		WithHooks(Hooks{Refreshed: func(e RefreshedEvent) { events = append(events, e) }}))
	mustGet(t, c, "db")
	// TTL 5 min, jitter 0.02, draw 0.5: the policy says 5m - 0.01*5m = 4m57s;
	// the first refresh after a cold fetch is drawn in (0, 4m57s]: 0.5 of it.
	first := (4*time.Minute + 57*time.Second) / 2
	if info, _ := c.Info("db"); !info.NextRefresh.Equal(t0.Add(first)) {
		t.Fatalf("first refresh at %v, want t0+%v", info.NextRefresh.Sub(t0), first)
	}
	fc.Advance(first)
	if n := src.Calls(); n != 2 {
		t.Fatalf("calls = %d after the first refresh, want 2", n)
	}
	// From then on, the policy's interval.
	if info, _ := c.Info("db"); !info.NextRefresh.Equal(fc.Now().Add(4*time.Minute + 57*time.Second)) {
		t.Fatalf("next refresh in %v, want 4m57s", info.NextRefresh.Sub(fc.Now()))
	}
	src.rotate("db")
	fc.Advance(4*time.Minute + 56*time.Second)
	if n := src.Calls(); n != 2 {
		t.Fatalf("refreshed early: %d calls", n)
	}
	if mustGet(t, c, "db").VersionID() != "v1" {
		t.Fatal("new version before the refresh")
	}
	fc.Advance(time.Second)
	if n := src.Calls(); n != 3 {
		t.Fatalf("calls = %d after the TTL, want 3", n)
	}
	if v := mustGet(t, c, "db").VersionID(); v != "v2" {
		t.Fatalf("served %s after refresh, want v2", v)
	}
	// A new version: the next refresh is drawn anywhere in the interval again.
	if info, _ := c.Info("db"); !info.NextRefresh.Equal(fc.Now().Add(first)) {
		t.Errorf("after a rotation, next refresh in %v, want %v", info.NextRefresh.Sub(fc.Now()), first)
	}
	if len(events) != 3 || events[2].Reason != ReasonScheduled || !events[2].Changed || events[2].Previous != "v1" {
		t.Errorf("events = %+v", events)
	}
}

func TestRefreshPolicyRotationAware(t *testing.T) {
	p := RotationAwareTTL{}
	rnd := constRand(0.5)
	sec := func(nrd time.Time) *secretsource.Secret {
		return secretsource.NewSecret(secretsource.Fields{Name: "db", VersionID: "v1", NextRotationDate: nrd})
	}
	tests := []struct {
		name string
		nrd  time.Time
		want time.Duration
	}{
		{"no rotation: TTL with jitter", time.Time{}, 4*time.Minute + 57*time.Second},
		{"rotation sooner than TTL", t0.Add(2 * time.Minute), 2*time.Minute + 30*time.Second + 15*time.Second},
		{"rotation later than TTL", t0.Add(time.Hour), 4*time.Minute + 57*time.Second},
		{"rotation due, not seen yet: poll", t0.Add(-time.Minute), 45 * time.Second},
		{"rotation long overdue: TTL", t0.Add(-time.Hour), 4*time.Minute + 57*time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := p.NextRefresh(sec(tt.nrd), t0, rnd); got != tt.want {
				t.Errorf("NextRefresh = %v, want %v", got, tt.want)
			}
		})
	}
	// Jitter spans [98%, 100%] of the TTL.
	if got := p.NextRefresh(nil, t0, constRand(0)); got != DefaultTTL {
		t.Errorf("draw 0: %v", got)
	}
	if got := p.NextRefresh(nil, t0, constRand(0.999999)); got < 4*time.Minute+54*time.Second || got > DefaultTTL {
		t.Errorf("draw ~1: %v", got)
	}
}

func TestRotationAwareRefreshInCache(t *testing.T) {
	fc := clock.NewFake(t0)
	src := newFakeSource(fc)
	src.nextRot = t0.Add(2 * time.Minute)
	c := newTestCache(t, src, withClock(fc), withRand(constRand(0.5)))
	mustGet(t, c, "db")
	// The first refresh after the cold fetch is drawn in the interval, (0, 2m45s]:
	// here at 1m22.5s; it sees the same rotation date, so the next is on time.
	fc.Advance(2*time.Minute + 45*time.Second/2)
	if n := src.Calls(); n != 2 {
		t.Fatalf("calls = %d, want the first refresh", n)
	}
	fc.Advance(2*time.Minute + 44*time.Second - (2*time.Minute + 45*time.Second/2))
	if n := src.Calls(); n != 2 {
		t.Fatalf("calls = %d before the rotation refresh", n)
	}
	fc.Advance(time.Second) // t0+2m45s
	if n := src.Calls(); n != 3 {
		t.Fatalf("calls = %d, want the rotation refresh", n)
	}
	// KMS has not rotated yet (same NextRotationDate): poll 45 s later.
	fc.Advance(45 * time.Second)
	if n := src.Calls(); n != 4 {
		t.Fatalf("calls = %d, want a poll for the late rotation", n)
	}
	src.mu.Lock()
	src.nextRot = t0.Add(30 * 24 * time.Hour)
	src.mu.Unlock()
	src.rotate("db")
	fc.Advance(45 * time.Second)
	if v := mustGet(t, c, "db").VersionID(); v != "v2" || src.Calls() != 5 {
		t.Fatalf("after rotation: version %s, calls %d", v, src.Calls())
	}
	// Back to the TTL: after the new version, drawn anywhere in it (half, here).
	fc.Advance((4*time.Minute+57*time.Second)/2 - time.Second)
	if n := src.Calls(); n != 5 {
		t.Fatalf("calls = %d, want none before the drawn point of the TTL", n)
	}
	fc.Advance(time.Second)
	if n := src.Calls(); n != 6 {
		t.Fatalf("calls = %d, want the TTL refresh", n)
	}
}

// recBackoff records every delay the cache asked for.
type recBackoff struct {
	mu     sync.Mutex
	inner  ExponentialBackoff
	delays []time.Duration
	ceils  []time.Duration
}

func (b *recBackoff) Delay(attempt int, rnd func() float64) time.Duration {
	d := b.inner.Delay(attempt, rnd)
	b.mu.Lock()
	defer b.mu.Unlock()
	b.delays = append(b.delays, d)
	b.ceils = append(b.ceils, b.inner.Ceiling(attempt))
	return d
}

// TestOutageServesStale: a warm cache, the source failing every call for a
// simulated hour. Callers see no error; retries follow the backoff exactly;
// the first good answer ends the outage.
func TestOutageServesStale(t *testing.T) {
	fc := clock.NewFake(t0)
	src := newFakeSource(fc)
	bo := &recBackoff{}
	var stale []StaleEvent
	var failed int
	c := newTestCache(t, src, withClock(fc), withRand(seqRand(42)), WithBackoff(bo),
		WithHooks(Hooks{ServingStale: func(e StaleEvent) { stale = append(stale, e) }, RefreshFailed: func(RefreshFailedEvent) { failed++ }}))
	mustGet(t, c, "db")
	src.setErr(errUnavailable)
	outageStart := fc.Now()
	for fc.Now().Sub(outageStart) < time.Hour {
		fc.Advance(time.Second)
		s, err := c.GetSecret(context.Background(), "db")
		if err != nil || s.VersionID() != "v1" {
			t.Fatalf("at +%v: GetSecret = %v, %v", fc.Now().Sub(outageStart), s, err)
		}
	}
	calls := src.Calls() - 1
	times := src.Times()[1:]
	// The first failure is the scheduled refresh; each later call is a retry
	// no sooner than the delay the backoff drew (the rate limit may add to it).
	bo.mu.Lock()
	delays := append([]time.Duration(nil), bo.delays...)
	ceils := append([]time.Duration(nil), bo.ceils...)
	bo.mu.Unlock()
	for i := 1; i < len(times); i++ {
		gap := times[i].Sub(times[i-1])
		if gap < delays[i-1] {
			t.Errorf("retry %d came %v after the previous call, backoff said %v", i, gap, delays[i-1])
		}
		if delays[i-1] < 0 || delays[i-1] >= ceils[i-1] {
			t.Errorf("retry %d: delay %v outside full-jitter range [0, %v)", i, delays[i-1], ceils[i-1])
		}
	}
	// Bound: the calls in one hour cannot exceed what the drawn delays allow:
	// the first failure plus one per delay that fits in the hour.
	var sum time.Duration
	bound := 1
	for _, d := range delays {
		if sum += max(d, 0); sum > time.Hour {
			break
		}
		bound++
	}
	t.Logf("outage of 1 h: %d source calls (bound from the drawn backoff %d; hard floor of the rate limit %d; expected ~31 with defaults)",
		calls, bound, DefaultRefreshBurst+int(time.Hour/DefaultRefreshEvery))
	if calls > bound || calls < 10 || calls > 60 {
		t.Errorf("calls during the outage = %d, want <= %d (and in the expected 10..60)", calls, bound)
	}
	if failed != calls || len(stale) != calls {
		t.Errorf("hooks: %d failures, %d stale events for %d calls", failed, len(stale), calls)
	}
	// The value was fetched at t0; the last stale event came with the last failed call.
	if last := stale[len(stale)-1]; last.Age != times[len(times)-1].Sub(t0) || last.Age < 55*time.Minute ||
		last.Version != "v1" || last.ExpiresIn != DefaultMaxStaleness-last.Age {
		t.Errorf("last stale event %+v", last)
	}
	info, _ := c.Info("db")
	if !info.Stale || info.Failures != calls || !errors.Is(info.LastError, secretsource.ErrUnavailable) {
		t.Errorf("info during outage: %+v", info)
	}

	// Recovery on the first good answer.
	src.setErr(nil)
	src.rotate("db")
	before := src.Calls()
	d, ok := fc.NextDue()
	if !ok {
		t.Fatal("no retry scheduled")
	}
	fc.Advance(d)
	if src.Calls() != before+1 || mustGet(t, c, "db").VersionID() != "v2" {
		t.Fatalf("no recovery: calls %d->%d, version %s", before, src.Calls(), mustGet(t, c, "db").VersionID())
	}
	if info, _ := c.Info("db"); info.Stale || info.Failures != 0 || info.LastError != nil {
		t.Errorf("info after recovery: %+v", info)
	}
}

// TestOutageRateLimitFloor: even if the random source draws zero every time,
// the shared rate limit keeps retries at one per second.
func TestOutageRateLimitFloor(t *testing.T) {
	fc := clock.NewFake(t0)
	src := newFakeSource(fc)
	c := newTestCache(t, src, withClock(fc), withRand(constRand(0)))
	mustGet(t, c, "db") // t0, no further refresh before the TTL (draw 0: exactly 5 min)
	src.setErr(errUnavailable)
	start := fc.Now()
	fc.Advance(time.Hour)
	calls := src.Calls() - 1
	window := time.Hour - DefaultTTL
	bound := DefaultRefreshBurst + int(window/DefaultRefreshEvery)
	t.Logf("zero draws, outage window %v: %d calls, bound %d", window, calls, bound)
	if calls > bound {
		t.Errorf("calls = %d, more than the rate limit allows (%d)", calls, bound)
	}
	times := src.Times()
	for i := 3; i < len(times); i++ {
		if gap := times[i].Sub(times[i-1]); gap < DefaultRefreshEvery {
			t.Fatalf("calls %d and %d only %v apart", i-1, i, gap)
		}
	}
	if _, err := c.GetSecret(context.Background(), "db"); err != nil {
		t.Errorf("GetSecret during outage: %v", err)
	}
	_ = start
}

func TestPermanentErrorNotHammered(t *testing.T) {
	t.Run("warm secret keeps its value and waits for the next TTL", func(t *testing.T) {
		fc := clock.NewFake(t0)
		src := newFakeSource(fc)
		var ev []RefreshFailedEvent
		c := newTestCache(t, src, withClock(fc), withRand(constRand(0.5)),
			WithHooks(Hooks{RefreshFailed: func(e RefreshFailedEvent) { ev = append(ev, e) }}))
		mustGet(t, c, "db")
		src.setErr(&secretsource.Error{Kind: secretsource.KindAccessDenied, Source: "fake", Code: "Forbidden.NoPermission"})
		fc.Advance((4*time.Minute + 57*time.Second) / 2) // the first refresh, drawn in the TTL
		if len(ev) != 1 || ev[0].Retryable || ev[0].RetryIn != 4*time.Minute+57*time.Second {
			t.Fatalf("failure events %+v", ev)
		}
		fc.Advance(4 * time.Minute)
		if n := src.Calls(); n != 2 {
			t.Errorf("calls = %d, want 2 (no retry before the TTL)", n)
		}
		if mustGet(t, c, "db").VersionID() != "v1" {
			t.Error("lost the value")
		}
	})
	t.Run("cold secret: error held, not refetched", func(t *testing.T) {
		fc := clock.NewFake(t0)
		src := newFakeSource(fc)
		src.setErr(errNotFound)
		c := newTestCache(t, src, withClock(fc))
		for range 50 {
			if _, err := c.GetSecret(context.Background(), "gone"); !errors.Is(err, secretsource.ErrNotFound) {
				t.Fatalf("err = %v, want ErrNotFound", err)
			}
		}
		if n := src.Calls(); n != 1 {
			t.Fatalf("calls = %d, want 1", n)
		}
		fc.Advance(DefaultErrorHold)
		src.setErr(nil)
		if _, err := c.GetSecret(context.Background(), "gone"); err != nil || src.Calls() != 2 {
			t.Fatalf("after the hold: err %v, calls %d", err, src.Calls())
		}
	})
	t.Run("Refresh bypasses the hold", func(t *testing.T) {
		fc := clock.NewFake(t0)
		src := newFakeSource(fc)
		src.setErr(errNotFound)
		c := newTestCache(t, src, withClock(fc))
		_, _ = c.GetSecret(context.Background(), "gone")
		src.setErr(nil)
		if s, err := c.Refresh(context.Background(), "gone"); err != nil || s.VersionID() != "v1" {
			t.Fatalf("Refresh = %v, %v", s, err)
		}
		if _, err := c.GetSecret(context.Background(), "gone"); err != nil {
			t.Fatal(err)
		}
	})
}

func TestMaxStaleness(t *testing.T) {
	fc := clock.NewFake(t0)
	src := newFakeSource(fc)
	store := newMemStore()
	var evicted []EvictedEvent
	c := newTestCache(t, src, withClock(fc), withRand(constRand(0.5)), WithMaxStaleness(2*time.Hour), WithStore(store),
		WithHooks(Hooks{Evicted: func(e EvictedEvent) { evicted = append(evicted, e) }}))
	mustGet(t, c, "db")
	eventually(t, "the store save", func() bool { r, _ := store.Load(context.Background()); return len(r) == 1 })
	src.setErr(errUnavailable)
	fc.Advance(2*time.Hour - time.Second)
	if _, err := c.GetSecret(context.Background(), "db"); err != nil {
		t.Fatalf("within the bound: %v", err)
	}
	fc.Advance(time.Second)
	if len(evicted) != 1 || evicted[0].Version != "v1" || evicted[0].Age != 2*time.Hour {
		t.Fatalf("evicted = %+v", evicted)
	}
	before := src.Calls()
	if _, err := c.GetSecret(context.Background(), "db"); !errors.Is(err, secretsource.ErrUnavailable) {
		t.Fatalf("past the bound: err = %v, want the fetch error", err)
	}
	if src.Calls() != before {
		t.Errorf("a caller of an evicted secret triggered a fetch before the next retry")
	}
	eventually(t, "the store delete", func() bool { r, _ := store.Load(context.Background()); return len(r) == 0 })
	// The background retry still restores it.
	src.setErr(nil)
	d, _ := fc.NextDue()
	fc.Advance(d)
	if _, err := c.GetSecret(context.Background(), "db"); err != nil {
		t.Fatalf("after recovery: %v", err)
	}
}

func TestInvalidate(t *testing.T) {
	t.Run("other version: no-op", func(t *testing.T) {
		src := newFakeSource(nil)
		c := newTestCache(t, src)
		mustGet(t, c, "db")
		if c.Invalidate("db", "v0") || c.Invalidate("unknown", "v1") || c.Invalidate("db", "") {
			t.Error("Invalidate acted on a version that is not cached")
		}
		if src.Calls() != 1 {
			t.Error("fetched")
		}
	})
	t.Run("storm of 500 on one version: one fetch", func(t *testing.T) {
		src := newFakeSource(nil)
		c := newTestCache(t, src)
		mustGet(t, c, "db")
		src.rotate("db")
		src.gate = make(chan struct{})
		var wg sync.WaitGroup
		var acted atomic.Int32
		for range 500 {
			wg.Go(func() {
				if c.Invalidate("db", "v1") {
					acted.Add(1)
				}
			})
		}
		wg.Wait()
		close(src.gate)
		s := mustGet(t, c, "db") // waits for the refresh
		if s.VersionID() != "v2" {
			t.Fatalf("after invalidation got %s", s.VersionID())
		}
		if n := src.Calls(); n != 2 {
			t.Errorf("source calls = %d, want 2 (warm-up + one refresh)", n)
		}
		if acted.Load() == 0 {
			t.Error("no Invalidate acted")
		}
		if c.Invalidate("db", "v1") {
			t.Error("Invalidate of the replaced version acted")
		}
	})
	t.Run("failed refresh serves the old value stale", func(t *testing.T) {
		src := newFakeSource(nil)
		c := newTestCache(t, src)
		mustGet(t, c, "db")
		src.setErr(errUnavailable)
		if !c.Invalidate("db", "v1") {
			t.Fatal("did not act")
		}
		if s := mustGet(t, c, "db"); s.VersionID() != "v1" {
			t.Fatalf("got %v", s)
		}
		if info, _ := c.Info("db"); !info.Stale || !info.Serving {
			t.Errorf("info %+v", info)
		}
	})
}

func TestRefreshRateLimit(t *testing.T) {
	fc := clock.NewFake(t0)
	src := newFakeSource(fc)
	c := newTestCache(t, src, withClock(fc), withRand(constRand(0.5)))
	mustGet(t, c, "db") // token 1 of the burst of 2
	if _, err := c.Refresh(context.Background(), "db"); err != nil || src.Calls() != 2 {
		t.Fatalf("first Refresh: %v, calls %d", err, src.Calls())
	}
	// The burst is spent: 100 impatient Refresh calls join one fetch waiting for a token.
	for range 100 {
		ctx, cancel := context.WithTimeout(context.Background(), time.Millisecond)
		if _, err := c.Refresh(ctx, "db"); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("rate-limited Refresh: err = %v", err)
		}
		cancel()
	}
	if n := src.Calls(); n != 2 {
		t.Fatalf("calls = %d while rate-limited, want 2", n)
	}
	fc.Advance(DefaultRefreshEvery)
	eventually(t, "the waiting fetch", func() bool { return src.Calls() == 3 })

	// A Refresh loop over a simulated 20 s: no more than one call per second.
	done := make(chan struct{})
	var loops atomic.Int32
	go func() {
		defer close(done)
		for {
			if _, err := c.Refresh(context.Background(), "db"); err != nil {
				return // ErrClosed at the end
			}
			loops.Add(1)
		}
	}()
	for range 20 {
		// refresh timer + the loop's wait for a token (no expiry timer: the
		// refresh comes well before the maximum staleness)
		eventually(t, "the Refresh loop to wait for the rate limit", func() bool { return fc.Pending() == 2 })
		fc.Advance(DefaultRefreshEvery)
	}
	eventually(t, "the last loop fetch", func() bool { return src.Calls() >= 3+19 })
	_ = c.Close()
	<-done
	if n := src.Calls(); n > 3+20 {
		t.Errorf("calls = %d over 20 s of Refresh loop, rate limit allows %d", n, 3+20)
	}
	t.Logf("Refresh loop: %d loops, %d source calls in 20 simulated seconds", loops.Load(), src.Calls()-3)
}

func TestRefreshJoinsInFlight(t *testing.T) {
	src := newFakeSource(nil)
	src.gate = make(chan struct{})
	c := newTestCache(t, src)
	res := make(chan error, 2)
	go func() { _, err := c.GetSecret(context.Background(), "db"); res <- err }()
	eventually(t, "the fetch to start", func() bool { return src.Calls() == 1 })
	go func() { _, err := c.Refresh(context.Background(), "db"); res <- err }()
	time.Sleep(5 * time.Millisecond) // give Refresh time to join (not an assert)
	close(src.gate)
	for range 2 {
		if err := <-res; err != nil {
			t.Fatal(err)
		}
	}
	if n := src.Calls(); n != 1 {
		t.Errorf("calls = %d, want 1", n)
	}
}

func TestGetSecretVersion(t *testing.T) {
	fc := clock.NewFake(t0)
	src := newFakeSource(fc)
	c := newTestCache(t, src, withClock(fc), withRand(constRand(0.5)), WithRefreshLimit(time.Second, 10))
	ctx := context.Background()
	mustGet(t, c, "db")
	src.rotate("db")
	if _, err := c.Refresh(ctx, "db"); err != nil {
		t.Fatal(err)
	}
	prev := secretsource.VersionRef{Stage: secretsource.StagePrevious}
	p, err := c.GetSecretVersion(ctx, "db", prev)
	if err != nil || p.VersionID() != "v1" || !p.HasStage(secretsource.StagePrevious) {
		t.Fatalf("ACSPrevious = %v, %v", p, err)
	}
	if _, err := c.GetSecretVersion(ctx, "db", prev); err != nil || src.VCalls() != 1 {
		t.Fatalf("second ACSPrevious read: %v, version calls %d", err, src.VCalls())
	}
	// The current version by stage or id comes from the main entry.
	for _, ref := range []secretsource.VersionRef{{}, {Stage: secretsource.StageCurrent}, {VersionID: "v2"}} {
		if s, err := c.GetSecretVersion(ctx, "db", ref); err != nil || s.VersionID() != "v2" {
			t.Errorf("%+v: %v, %v", ref, s, err)
		}
	}
	// Invalidating the previous version drops it.
	if !c.Invalidate("db", "v1") {
		t.Error("Invalidate of the cached ACSPrevious did not act")
	}
	if _, err := c.GetSecretVersion(ctx, "db", prev); err != nil || src.VCalls() != 2 {
		t.Fatalf("after Invalidate: %v, version calls %d", err, src.VCalls())
	}
	// A rotation seen by a refresh drops stage entries.
	src.rotate("db")
	fc.Advance(5 * time.Minute)
	if p, err := c.GetSecretVersion(ctx, "db", prev); err != nil || p.VersionID() != "v2" || src.VCalls() != 3 {
		t.Fatalf("after rotation: %v, %v, version calls %d", p, err, src.VCalls())
	}
	// A source without versions.
	plain := newTestCache(t, secretsource.SourceFunc(src.GetSecret))
	if _, err := plain.GetSecretVersion(ctx, "db", prev); !errors.Is(err, ErrVersionsUnsupported) {
		t.Errorf("err = %v, want ErrVersionsUnsupported", err)
	}
}

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
		c := newTestCache(t, src, withClock(fc), WithStore(store), WithHooks(Hooks{ServingStale: func(e StaleEvent) { stale = append(stale, e) }}))
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
		WithHooks(Hooks{Refreshed: func(RefreshedEvent) {}, RefreshFailed: func(RefreshFailedEvent) {}, ServingStale: func(StaleEvent) {}}))
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
