package cache

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kmsdb/kmsdb/secretsource"
	"github.com/kmsdb/kmsdb/secretsource/cache/internal/clock"
)

func TestRefreshAhead(t *testing.T) {
	fc := clock.NewFake(t0)
	src := newFakeSource(fc)
	var events []RefreshedEvent
	c := newTestCache(t, src, withClock(fc), withRand(constRand(0.5)),
		WithHooks(Hooks{Refreshed: func(_ context.Context, e RefreshedEvent) { events = append(events, e) }}))
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

func TestRefreshRateLimit(t *testing.T) {
	fc := clock.NewFake(t0)
	src := newFakeSource(fc)
	c := newTestCache(t, src, withClock(fc), withRand(constRand(0.5)))
	const burst = DefaultRefreshBurst
	mustGet(t, c, "db") // token 1 of the burst
	for i := 2; i <= burst; i++ {
		if _, err := c.Refresh(context.Background(), "db"); err != nil || src.Calls() != i {
			t.Fatalf("Refresh %d within the burst of %d: %v, calls %d", i-1, burst, err, src.Calls())
		}
	}
	// The burst is spent: 100 impatient Refresh calls join one fetch waiting for a token.
	for range 100 {
		ctx, cancel := context.WithTimeout(context.Background(), time.Millisecond)
		if _, err := c.Refresh(ctx, "db"); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("rate-limited Refresh: err = %v", err)
		}
		cancel()
	}
	if n := src.Calls(); n != burst {
		t.Fatalf("calls = %d while rate-limited, want %d", n, burst)
	}
	fc.Advance(DefaultRefreshEvery)
	eventually(t, "the waiting fetch", func() bool { return src.Calls() == burst+1 })

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
	eventually(t, "the last loop fetch", func() bool { return src.Calls() >= burst+1+19 })
	_ = c.Close()
	<-done
	if n := src.Calls(); n > burst+1+20 {
		t.Errorf("calls = %d over 20 s of Refresh loop, rate limit allows %d", n, burst+1+20)
	}
	t.Logf("Refresh loop: %d loops, %d source calls in 20 simulated seconds", loops.Load(), src.Calls()-burst-1)
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
