package cache

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/kmsdb/kmsdb/secretsource"
	"github.com/kmsdb/kmsdb/secretsource/cache/internal/clock"
)

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
		WithHooks(Hooks{ServingStale: func(_ context.Context, e StaleEvent) { stale = append(stale, e) }, RefreshFailed: func(context.Context, RefreshFailedEvent) { failed++ }}))
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
	for i := DefaultRefreshBurst + 1; i < len(times); i++ { // the first call and the burst aside
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
			WithHooks(Hooks{RefreshFailed: func(_ context.Context, e RefreshFailedEvent) { ev = append(ev, e) }}))
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
		WithHooks(Hooks{Evicted: func(_ context.Context, e EvictedEvent) { evicted = append(evicted, e) }}))
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
