package cache

import (
	"sync"
	"testing"
	"time"

	"golang.org/x/time/rate"
)

// TestTokenBucketMatchesRate replays one sequence of requests against the
// token bucket and against golang.org/x/time/rate with the same limit: both
// must grant and delay the same requests (rate counts tokens in float64, so
// delays may differ by rounding: a microsecond at most).
func TestTokenBucketMatchesRate(t *testing.T) {
	const every, burst = time.Second, 2
	base := time.Unix(1000, 0)
	var b tokenBucket
	lim := rate.NewLimiter(rate.Every(every), burst)
	rnd := seqRand(7)
	now := time.Duration(0)
	for i := range 2000 {
		now += time.Duration(rnd() * float64(1500*time.Millisecond))
		at := base.Add(now)
		switch i % 3 {
		case 0: // take, as a scheduled refresh
			got := b.take(now, every, burst)
			r := lim.ReserveN(at, 1)
			want := r.DelayFrom(at)
			if want > 0 {
				r.CancelAt(at)
			}
			if !near(got, want) {
				t.Fatalf("request %d at %v: take waits %v, rate %v", i, now, got, want)
			}
		default: // reserve, sometimes given back, as a fetch
			got, res := b.reserve(now, every, burst)
			r := lim.ReserveN(at, 1)
			if want := r.DelayFrom(at); !near(got, want) {
				t.Fatalf("request %d at %v: reserve waits %v, rate %v", i, now, got, want)
			}
			if i%5 == 0 {
				b.cancel(res, every)
				r.CancelAt(at)
			}
		}
	}
}

func near(a, b time.Duration) bool { return (a - b).Abs() <= time.Microsecond }

// TestTokenBucketRace: 100 goroutines take tokens at one instant; exactly
// burst succeed.
func TestTokenBucketRace(t *testing.T) {
	var b tokenBucket
	var wg sync.WaitGroup
	var mu sync.Mutex
	granted := 0
	for range 100 {
		wg.Go(func() {
			if b.take(time.Hour, time.Second, 3) == 0 {
				mu.Lock()
				granted++
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if granted != 3 {
		t.Errorf("%d tokens granted at one instant, want the burst of 3", granted)
	}
}
