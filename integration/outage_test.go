package integration

// KMS outage under load: after a warm-up, the emulator goes down for the rest
// of the test while 32 goroutines keep querying with connections re-made all
// the time. The cache refreshes often (short TTL) so it really meets the
// outage; every query must still succeed (the cache serves the last value).

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kmsdb/kmsdb/secretsource/cache"
	"github.com/kmsdb/kmsdb/secretsource/kmstest"
)

const (
	outageTTL      = 300 * time.Millisecond
	outageDuration = 3 * time.Second
)

func TestKMSOutageUnderLoad(t *testing.T) {
	type mode struct {
		name  string
		kinds []targetKind
		down  func(srv *kmstest.Server)
	}
	modes := []mode{
		// The whole emulator stops: connections refused.
		{"closed", allKinds, func(srv *kmstest.Server) { srv.Close() }},
		// Every request's connection is dropped without an answer.
		{"dropped", []targetKind{kindMariaDB}, func(srv *kmstest.Server) {
			srv.InjectFault(kmstest.Fault{Action: "*", Drop: true})
		}},
		// Every request answered 503 ServiceUnavailableTemporary.
		{"unavailable", []targetKind{kindPostgres}, func(srv *kmstest.Server) {
			srv.InjectFault(kmstest.Fault{Action: "*", Code: "ServiceUnavailableTemporary", HTTPStatus: 503})
		}},
	}
	for _, m := range modes {
		for _, k := range m.kinds {
			t.Run(m.name+"/"+string(k), func(t *testing.T) {
				runOutage(t, k, m.name, m.down)
			})
		}
	}
}

func runOutage(t *testing.T, k targetKind, mode string, down func(*kmstest.Server)) {
	db := dbServer(t, k) // proves a wrong password is rejected first
	const secretName = "outage-db"
	pw := "outage-" + testdbUnique("pw")
	user := db.CreateUser(t, "outage", pw)

	var failedFetches, staleEvents, evictions atomic.Int64
	hooks := cache.Hooks{
		RefreshFailed: func(context.Context, cache.RefreshFailedEvent) { failedFetches.Add(1) },
		ServingStale:  func(context.Context, cache.StaleEvent) { staleEvents.Add(1) },
		Evicted:       func(context.Context, cache.EvictedEvent) { evictions.Add(1) },
	}
	stack := newKMSStack(t, []cache.Option{cache.WithTTL(outageTTL), cache.WithHooks(hooks)},
		kmstest.SecretSpec{Name: secretName, Type: "Rds", Data: rdsValue(user, pw)})

	conns, lifetime := loadPool(k)
	tg := openTarget(t, k, db, stack.cache, secretName, targetOptions{workers: conns, lifetime: lifetime})
	load := startLoad(loadWorkers, tg.query)
	time.Sleep(loadWarmup)
	load.setPhase(phaseSteady)
	time.Sleep(loadSteady)
	callsBefore := stack.srv.Calls("GetSecretValue", secretName)

	down(stack.srv)
	load.setPhase(phaseRotating) // "rotating" = during the outage here
	loginsBefore := tg.newConns()
	start := time.Now()
	time.Sleep(outageDuration)
	dur := time.Since(start)
	logins := tg.newConns() - loginsBefore
	res := load.finish()

	res.requireNoFailures(t)
	if failedFetches.Load() == 0 {
		t.Errorf("the cache never met the outage (no failed fetch in %v with TTL %v)", dur, outageTTL)
	}
	if logins == 0 {
		t.Errorf("no connection was made during the outage: the test proves nothing")
	}
	if evictions.Load() != 0 {
		t.Errorf("%d evictions during a %v outage", evictions.Load(), dur)
	}
	// The secret is still served from the cache.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := stack.cache.GetSecret(ctx, secretName); err != nil {
		t.Errorf("GetSecret during the outage: %v", err)
	}
	figures(t, "kind=%s outage=%s workers=%d conns=%d lifetime=%v cache_ttl=%v failed=%d | "+
		"before: %d q p50=%s p99=%s kms_calls=%d | during %.1fs outage: %d q (%.0f q/s) p50=%s p99=%s new_conns=%d failed_fetches=%d stale_events=%d",
		k, mode, loadWorkers, conns, lifetime, outageTTL, res.failed(),
		res.queries(phaseSteady), ms(res.pct(phaseSteady, 0.5)), ms(res.pct(phaseSteady, 0.99)), callsBefore,
		dur.Seconds(), res.queries(phaseRotating), float64(res.queries(phaseRotating))/dur.Seconds(),
		ms(res.pct(phaseRotating, 0.5)), ms(res.pct(phaseRotating, 0.99)), logins, failedFetches.Load(), staleEvents.Load())
}
