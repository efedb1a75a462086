package cache

// Helpers of the cold-retry tests (coldretry_test.go) and of the emulator
// tests that drive a fake clock until a caller gets its result.

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/kmsdb/kmsdb/secretsource"
	"github.com/kmsdb/kmsdb/secretsource/cache/internal/clock"
)

// flakySource fails the first n calls with err, then delegates to next. It
// records the cache clock's time of every call.
type flakySource struct {
	mu    sync.Mutex
	clk   clock.Clock
	n     int
	err   error
	next  secretsource.Source
	calls int
	times []time.Time
}

func (f *flakySource) GetSecret(ctx context.Context, name string) (*secretsource.Secret, error) {
	f.mu.Lock()
	f.calls++
	f.times = append(f.times, f.clk.Now())
	fail := f.calls <= f.n
	f.mu.Unlock()
	if fail {
		return nil, f.err
	}
	return f.next.GetSecret(ctx, name)
}

func (f *flakySource) Calls() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls
}

func (f *flakySource) Times() []time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]time.Time(nil), f.times...)
}

type getResult struct {
	s   *secretsource.Secret
	err error
}

// goGet runs GetSecret in a goroutine.
func goGet(ctx context.Context, c *Cache, name string) <-chan getResult {
	ch := make(chan getResult, 1)
	go func() {
		s, err := c.GetSecret(ctx, name)
		ch <- getResult{s, err}
	}()
	return ch
}

// driveUntil advances the fake clock timer by timer until res delivers,
// firing only timers due within maxStep (the backoff and rate-limit waits of a
// retrying fetch), never the far refresh and expiry timers armed on success,
// and only while a fetch of name is in progress (not the timer that drops the
// slot when a held error ends, armed as the fetch gives up).
// It returns the result and how far the clock moved.
func driveUntil(t *testing.T, fc *clock.Fake, c *Cache, name string, res <-chan getResult, maxStep time.Duration) (getResult, time.Duration) {
	t.Helper()
	start := fc.Now()
	deadline := time.Now().Add(20 * time.Second)
	for {
		added := fc.Added()
		select {
		case r := <-res:
			return r, fc.Now().Sub(start)
		default:
		}
		if d, ok := fc.NextDue(); ok && d <= maxStep && fetching(c, name, fc.Now()) {
			fc.Advance(d)
			continue
		}
		select {
		case r := <-res:
			return r, fc.Now().Sub(start)
		case <-added:
		case <-time.After(time.Until(deadline)):
			t.Fatalf("gave up waiting for GetSecret (fake clock moved %v)", fc.Now().Sub(start))
		}
	}
}

// fetching reports whether a fetch of name is in progress and has not given
// up: a flight that gave up has set the error hold (and armed the slot's drop
// at its end) and is about to return; advancing the clock then would only
// move it past the answer the caller is about to get.
func fetching(c *Cache, name string, now time.Time) bool {
	s := c.slots.Load().get(name)
	if s == nil {
		return false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.flights > 0 && !s.holdUntil.After(now)
}

// waitResult waits (not a timed assert: the bound only stops a hung test) for
// a GetSecret that must not need the clock to move.
func waitResult(t *testing.T, res <-chan getResult) getResult {
	t.Helper()
	select {
	case r := <-res:
		return r
	case <-time.After(20 * time.Second):
		t.Fatal("GetSecret blocked: it should have returned without the clock moving")
		return getResult{}
	}
}

// flightIdle reports whether no fetch of name is in flight: it starts a probe
// on the secret's singleflight key, which returns its own marker only if it
// did not join a fetch in progress.
func flightIdle(c *Cache, name string) bool {
	marker := new(int)
	r := <-c.sf.DoChan(name, func() (any, error) { return marker, nil })
	return r.Val == any(marker)
}

// waiters returns how many GetSecret callers wait for a fetch of name.
func waiters(c *Cache, name string) int {
	s := c.slots.Load().get(name)
	if s == nil {
		return 0
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.waiters
}

// checkGaps asserts that consecutive calls are no closer than the backoff
// delays drawn before them, and that no DefaultRefreshBurst+1 calls fall
// within one rate-limit period (one token per every). The check allows 1 µs of rounding
// (x/time/rate, which the cache used before its tokenBucket, kept tokens in a
// float64 and could come due a few nanoseconds early).
func checkGaps(t *testing.T, times []time.Time, delays []time.Duration, every time.Duration) {
	t.Helper()
	const rounding = time.Microsecond
	for i := 1; i < len(times); i++ {
		gap := times[i].Sub(times[i-1])
		t.Logf("attempt %d: %v after the previous one (backoff drew %v)", i+1, gap, delays[i-1])
		if gap < delays[i-1] {
			t.Errorf("attempt %d came %v after the previous one, the backoff drew %v", i+1, gap, delays[i-1])
		}
		if b := DefaultRefreshBurst; i >= b && times[i].Sub(times[i-b]) < every-rounding {
			t.Errorf("attempts %d..%d within %v: the rate limit (burst %d, 1 per %v) allows %d", i-b+1, i+1, times[i].Sub(times[i-b]), b, every, b)
		}
	}
}
