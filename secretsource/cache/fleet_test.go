package cache

import (
	"context"
	"fmt"
	"math"
	"sync"
	"testing"
	"time"

	"github.com/kmsdb/kmsdb/secretsource"
	"github.com/kmsdb/kmsdb/secretsource/cache/internal/clock"
)

// fleetSource is KMS as a fleet sees it: it counts GetSecretValue calls per
// 100 ms of the fake clock, and serves version v1 until rotate.
type fleetSource struct {
	clk     *clock.Fake
	mu      sync.Mutex
	version string
	bins    map[int]int // calls per 100 ms since the start
	total   int
}

const fleetBin = 100 * time.Millisecond

func (f *fleetSource) GetSecret(_ context.Context, name string) (*secretsource.Secret, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.bins[int(f.clk.Now().Sub(t0)/fleetBin)]++
	f.total++
	return secretsource.NewSecret(secretsource.Fields{Name: name, VersionID: f.version, Value: []byte("pw")}), nil
}

func (f *fleetSource) rotate() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.version = "v2"
}

// mix scrambles a process number into a seed (splitmix64's finalizer), so the
// processes' random sources are independent rather than neighbours.
func mix(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ x>>30) * 0xbf58476d1ce4e5b9
	x = (x ^ x>>27) * 0x94d049bb133111eb
	return x ^ x>>31
}

// TestFleetSpreadsRefreshes simulates a fleet of 500 processes started at the
// same instant, each with a cache of 10 secrets (TTL 3 s), on one fake clock,
// for 30 TTLs. From the first TTL on, the busiest 100 ms must see at most
// 1.5x the even rate (5,000 secrets / 30 bins), the calls must stay within
// 1.05x one per secret per TTL, and a rotation made at the end must reach
// every secret of every process within one TTL. Before the first-refresh
// spread (refreshes in [80%, 100%] of the TTL from a synchronized start) the
// same run gave a peak of 4.6x and 1.10x the calls.
//
// Why 10 secrets a process (the example of doc.go): processes that do not
// coordinate can at best draw their phases independently, so a bin holds a
// binomial count. With one secret each (500 draws in 30 bins: 16.7 a bin, sd
// 4) the busiest bin of a run is 1.6-1.9x by chance alone, whatever the
// schedule; with 5,000 draws (167 a bin, sd 13) the bound tests the schedule.
//
//	go test -run FleetSpreads -v ./secretsource/cache/
func TestFleetSpreadsRefreshes(t *testing.T) {
	if raceEnabled {
		t.Skip("the simulation takes 25 s under the race detector; run it without -race")
	}
	const (
		processes = 500
		perCache  = 10
		ttl       = 3 * time.Second
		ttls      = 30
	)
	fc := clock.NewFake(t0)
	src := &fleetSource{clk: fc, version: "v1", bins: map[int]int{}}
	type key struct{ p, s int }
	var mu sync.Mutex
	sawV2 := map[key]time.Time{}
	caches := make([]*Cache, processes)
	for p := range caches {
		caches[p] = newTestCache(t, src, withClock(fc), withRand(seqRand(mix(uint64(p)))), WithTTL(ttl),
			WithHooks(Hooks{Refreshed: func(_ context.Context, e RefreshedEvent) {
				if e.Version == "v2" && e.Changed {
					var s int
					fmt.Sscanf(e.Name, "secret-%d", &s)
					mu.Lock()
					sawV2[key{p, s}] = fc.Now()
					mu.Unlock()
				}
			}}))
	}
	for _, c := range caches { // everyone starts at t0
		for s := range perCache {
			mustGet(t, c, fmt.Sprintf("secret-%d", s))
		}
	}
	for fc.Now().Sub(t0) < ttls*ttl {
		fc.Advance(fleetBin)
	}

	secrets := processes * perCache
	even := float64(secrets) * float64(fleetBin) / float64(ttl)
	first, last := int(ttl/fleetBin), int(ttls*ttl/fleetBin)
	peak, calls := 0, 0
	for b := first; b < last; b++ {
		peak = max(peak, src.bins[b])
		calls += src.bins[b]
	}
	ideal := secrets * (ttls - 1)
	if testing.Verbose() {
		logSpread(t, src.bins, first, last)
	}
	t.Logf("fleet of %d processes x %d secrets, TTL %v, %d TTLs: peak %d calls per 100 ms from the first TTL on = %.2fx the even %.1f; "+
		"calls %d = %.3fx one per secret per TTL (%d); whole run with the cold start %d = %.3fx",
		processes, perCache, ttl, ttls, peak, float64(peak)/even, even, calls, float64(calls)/float64(ideal), ideal,
		src.total, float64(src.total)/float64(secrets*ttls))
	if float64(peak) > 1.5*even {
		t.Errorf("peak %d calls per 100 ms, want at most 1.5x the even rate %.1f", peak, even)
	}
	if float64(calls) > 1.05*float64(ideal) {
		t.Errorf("%d calls from the first TTL on, want at most 1.05x the ideal %d", calls, ideal)
	}

	// A rotation reaches every process within one TTL.
	rotatedAt := fc.Now()
	src.rotate()
	for fc.Now().Sub(rotatedAt) < ttl {
		fc.Advance(fleetBin)
	}
	mu.Lock()
	defer mu.Unlock()
	var slowest time.Duration
	for p := range processes {
		for s := range perCache {
			at, ok := sawV2[key{p, s}]
			if !ok {
				t.Fatalf("process %d secret %d has not seen the rotation one TTL later", p, s)
			}
			slowest = max(slowest, at.Sub(rotatedAt))
		}
	}
	t.Logf("rotation seen by all %d secrets within %v (TTL %v)", secrets, slowest, ttl)
}

// logSpread logs the mean and standard deviation of the calls per bin in
// [first, last).
func logSpread(t *testing.T, bins map[int]int, first, last int) {
	var sum, sq float64
	for b := first; b < last; b++ {
		x := float64(bins[b])
		sum += x
		sq += x * x
	}
	n := float64(last - first)
	mean := sum / n
	t.Logf("calls per 100 ms from the first TTL on: mean %.1f, sd %.1f", mean, math.Sqrt(sq/n-mean*mean))
}
