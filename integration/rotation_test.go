package integration

// Rotation under load: 32 goroutines query without pause through each kind of
// pool while the secret rotates, connections re-made all the time (short max
// lifetime). Three orders of the secret and the database change:
//
//	secret-first:  the secret moves to the new version and the application's
//	               cache learns it at once (forced refresh); the database
//	               password changes a moment later. New connections meet a
//	               rejected current version and must use ACSPrevious.
//	db-first:      the database password changes first; the secret follows up
//	               to a few seconds later (within the grace period). New
//	               connections are rejected with every version KMS has and must
//	               wait for the secret.
//	double-users:  Rds DoubleUsers: two database accounts; each rotation gives
//	               the account that becomes current a new password (as RDS
//	               does) and makes it current. Old connections' account stays
//	               valid until the rotation after.
//	secret-cached: the secret moves, the application's cache learns the new
//	               version 0.1 s later (as refresh-ahead on NextRotationDate
//	               does), the database follows 1 s after the secret. New
//	               connections must fall back to the version the cache
//	               replaced, at no KMS call.
//	outage-restart: KMS goes down and the secret rotates meanwhile; the
//	               cache's refreshes fail (using up its rate limit); KMS comes
//	               back 1 s later, the cache learns the new version 0.1 s
//	               after that and the database follows 1 s after KMS is back.
//
// Every scenario fails on a single failed query, on more KMS calls than
// maxKMSCallsPerRotation per rotation (the calls KMS failed during an outage
// aside) and on more rejected logins than maxRejectedPerRotation per rotation. Figures (latency p50/p99 with
// and without rotation, KMS calls, logins) are logged as KMSDB_FIGURES lines.
// KMSDB_LOAD_ROTATIONS raises the number of rotations per scenario (default 10);
// KMSDB_LOAD_REFRESH_EVERY sets the cache's refresh rate limit (default: the
// cache's own, one per second) to see how much of the latency it accounts for;
// KMSDB_LOAD_GAP sets the pause between rotations (see rotationGap).

import (
	"context"
	"fmt"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/kmsdb/kmsdb/connector"
	"github.com/kmsdb/kmsdb/internal/testdb"
	"github.com/kmsdb/kmsdb/secretsource/cache"
	"github.com/kmsdb/kmsdb/secretsource/kmstest"
)

const (
	loadWorkers = 32 // goroutines querying without pause
	loadWarmup  = 500 * time.Millisecond
	loadSteady  = time.Second
)

// loadPool is the pool size and connection max lifetime for kind k: short
// enough that connections are re-made all the time (several logins per
// second per connection), sized so that a 2-core machine keeps up: a
// PostgreSQL login (backend fork + scram-sha-256) costs tens of milliseconds
// of CPU, a MariaDB one well under a millisecond. The pool has a connection
// per goroutine: database/sql hands a released connection straight to a
// waiting query without checking its lifetime, so a smaller pool under this
// load would hardly ever re-make connections.
func loadPool(k targetKind) (conns int, lifetime time.Duration) {
	if k == kindMariaDB {
		return loadWorkers, 150 * time.Millisecond
	}
	return loadWorkers, time.Second
}

type rotationOrder string

const (
	orderSecretFirst rotationOrder = "secret-first"
	orderDBFirst     rotationOrder = "db-first"
	orderDoubleUsers rotationOrder = "double-users"
	orderSecretCache rotationOrder = "secret-cached"
	orderOutage      rotationOrder = "outage-restart"
)

var allOrders = []rotationOrder{orderSecretFirst, orderDBFirst, orderDoubleUsers, orderSecretCache, orderOutage}

// Bounds the rotation scenarios assert (counts, not times).
const (
	// maxKMSCallsPerRotation: GetSecretValue calls per rotation by the
	// process (its cache's refresh that learns the new version included),
	// plus one ACSPrevious call in the whole run.
	maxKMSCallsPerRotation = 3
	// secretCachedLag: the cache learns the new version this long after the
	// secret moved (secret-cached) or KMS came back (outage-restart).
	secretCachedLag = 100 * time.Millisecond
	// databaseLag: the database follows this long after the secret moved
	// (secret-cached) or KMS came back (outage-restart).
	databaseLag = time.Second
	// outageLength: how long KMS is down in outage-restart.
	outageLength = time.Second
)

// maxRejectedPerRotation bounds the logins the database rejects per
// rotation: the connections in flight when a version stops working (at most
// one per pool connection, twice: the current version and the one standing
// in), and the shared retries while the process waits for the secret (at
// most one per 25 ms, db-first's longest lag being 2 s).
func maxRejectedPerRotation(conns int) int64 {
	return int64(2*conns) + int64(2*time.Second/(25*time.Millisecond))
}

// dbFirstLags are how long the secret lags behind the database in the
// db-first order, cycled over the rotations: "up to a few seconds".
var dbFirstLags = []time.Duration{100 * time.Millisecond, 250 * time.Millisecond, 500 * time.Millisecond,
	time.Second, 2 * time.Second}

// secretFirstLag is how long the database lags behind the secret in the
// secret-first order.
const secretFirstLag = 300 * time.Millisecond

// rotationGap is the pause between the end of one rotation (hook included)
// and the next.
//
// Real rotations are hours apart; here they come every second or so. The
// gap keeps two rotations further apart than the cache's default refresh
// rate limit (one fetch per second per secret), else connections rejected
// with one version can meet the next rotation before their refresh is
// allowed and chase versions for several rotations (long tails of seconds).
// KMSDB_LOAD_GAP (a duration) overrides it for every order.
func rotationGap(o rotationOrder) time.Duration {
	if d, err := time.ParseDuration(os.Getenv("KMSDB_LOAD_GAP")); err == nil && d > 0 {
		return d
	}
	switch o {
	case orderSecretFirst:
		return 500 * time.Millisecond // its hook already takes a forced refresh and secretFirstLag
	case orderDBFirst:
		return time.Second
	}
	return 500 * time.Millisecond
}

func TestRotationUnderLoad(t *testing.T) {
	rotations := envInt(t, "KMSDB_LOAD_ROTATIONS", 10)
	for _, k := range allKinds {
		for _, o := range allOrders {
			t.Run(string(k)+"/"+string(o), func(t *testing.T) {
				runRotationScenario(t, k, o, rotations)
			})
		}
	}
}

func runRotationScenario(t *testing.T, k targetKind, order rotationOrder, rotations int) {
	db := dbServer(t, k) // proves a wrong password is rejected first
	const secretName = "rotation-db"
	ctx := context.Background()

	// Accounts and the secret's first value(s).
	pw1 := "init-1-" + testdb.UniqueName("pw")
	user1 := db.CreateUser(t, "rot", pw1)
	spec := kmstest.SecretSpec{Name: secretName, Type: "Rds", Data: rdsValue(user1, pw1),
		ExtendedConfig: map[string]any{"SecretSubType": "SingleUser"}}
	var user2 string
	if order == orderDoubleUsers {
		// ACSPrevious names the second account, ACSCurrent the first: the
		// emulator swaps between the two, as RDS does.
		pw2 := "init-2-" + testdb.UniqueName("pw")
		user2 = db.CreateUser(t, "rot2", pw2)
		spec.Data = rdsValue(user2, pw2)
		spec.ExtendedConfig = map[string]any{"SecretSubType": "DoubleUsers"}
	}
	tr := newRotationTrace()
	stack := newKMSStack(t, append(rotationCacheOptions(t), tr.cacheOption()), spec)
	if order == orderDoubleUsers {
		if err := stack.srv.PutSecretValue(secretName, rdsValue(user1, pw1), "v-user1"); err != nil {
			t.Fatal(err)
		}
	}

	// The rotation hook changes the database in step with the secret.
	var hookMu sync.Mutex
	var hookErrs []error
	setPassword := func(value string) {
		u, p, err := decodeAccount(value)
		if err == nil {
			sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
			err = db.SetPassword(sctx, u, p)
			cancel()
		}
		if err != nil {
			hookMu.Lock()
			hookErrs = append(hookErrs, fmt.Errorf("set the password of %s: %w", u, err))
			hookMu.Unlock()
		}
	}
	refresh := func() {
		rctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		_, err := stack.cache.Refresh(rctx, secretName)
		cancel()
		if err != nil {
			hookMu.Lock()
			hookErrs = append(hookErrs, fmt.Errorf("refresh: %w", err))
			hookMu.Unlock()
		}
	}
	// learnThenFollow: the cache learns the new version secretCachedLag from
	// now, the database follows databaseLag from now.
	learnThenFollow := func(value string) {
		start := time.Now()
		dbDone := make(chan struct{})
		go func() {
			defer close(dbDone)
			time.Sleep(time.Until(start.Add(databaseLag)))
			setPassword(value)
		}()
		time.Sleep(secretCachedLag)
		refresh()
		<-dbDone
	}
	var lag time.Duration // db-first: set before each rotation by the rotating goroutine
	// outage-restart: set by the rotating goroutine when KMS goes down; the
	// calls KMS received (and failed) while down are added up by the hook.
	var outageStart time.Time
	var outageCalls0, outageCalls int
	stack.srv.OnRotate(func(ev kmstest.RotationEvent) {
		if ev.SecretName != secretName {
			return
		}
		switch {
		case order == orderSecretFirst && ev.Phase == "after":
			// The database follows secretFirstLag after the secret moved;
			// meanwhile the application learns the new version (a forced
			// refresh: the worst case, every new connection meets it).
			dbDone := make(chan struct{})
			go func() {
				defer close(dbDone)
				time.Sleep(secretFirstLag)
				setPassword(ev.NewValue)
			}()
			rctx, cancel := context.WithTimeout(ctx, 30*time.Second)
			_, err := stack.cache.Refresh(rctx, secretName)
			cancel()
			if err != nil {
				hookMu.Lock()
				hookErrs = append(hookErrs, fmt.Errorf("refresh: %w", err))
				hookMu.Unlock()
			}
			<-dbDone
		case order == orderDBFirst && ev.Phase == "before":
			tr.note("db-change")
			setPassword(ev.NewValue)
			tr.note("db-changed")
			time.Sleep(lag) // the secret's stages move when the hook returns
			tr.note("secret-moves")
		case order == orderDoubleUsers && ev.Phase == "before":
			setPassword(ev.NewValue) // the account becoming current gets its new password
		case order == orderSecretCache && ev.Phase == "after":
			learnThenFollow(ev.NewValue)
		case order == orderOutage && ev.Phase == "after":
			// KMS is down (since before the rotation): the cache's refreshes
			// fail, using up its rate limit.
			for range cache.DefaultRefreshBurst {
				rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
				_, _ = stack.cache.Refresh(rctx, secretName)
				cancel()
			}
			time.Sleep(time.Until(outageStart.Add(outageLength)))
			outageCalls += stack.srv.Calls("", "") - outageCalls0
			stack.srv.ClearFaults()
			learnThenFollow(ev.NewValue)
		}
	})

	conns, lifetime := loadPool(k)
	tg := openTarget(t, k, db, stack.cache, secretName, targetOptions{workers: conns, lifetime: lifetime})
	load := startLoad(loadWorkers, tg.query)
	tr.watchRejections(tg.stats)
	stopped := false
	defer func() {
		if !stopped {
			load.finish()
		}
	}()

	time.Sleep(loadWarmup)
	load.setPhase(phaseSteady)
	steadyCalls0 := stack.srv.Calls("", "")
	steadyLogins0 := tg.newConns()
	steadyStart := time.Now()
	time.Sleep(loadSteady)
	steadyDur := time.Since(steadyStart)
	steadyCalls := stack.srv.Calls("", "") - steadyCalls0
	steadyLogins := tg.newConns() - steadyLogins0

	load.setPhase(phaseRotating)
	rotCalls0 := stack.srv.Calls("", "")
	rotLogins0 := tg.newConns()
	rotStart := time.Now()
	accounts := map[string]bool{}
	for i := range rotations {
		load.setRound(i)
		tr.start()
		lag = dbFirstLags[i%len(dbFirstLags)]
		if order == orderOutage {
			outageStart, outageCalls0 = time.Now(), stack.srv.Calls("", "")
			stack.srv.InjectFault(kmstest.Fault{Action: "*", Code: "ServiceUnavailableTemporary", HTTPStatus: 503})
		}
		if _, err := stack.srv.RotateSecret(secretName); err != nil {
			t.Fatal(err)
		}
		if st, ok := stack.srv.Secret(secretName); ok {
			u, _ := account(t, st.CurrentValue)
			accounts[u] = true
		}
		time.Sleep(rotationGap(order))
	}
	// Let connections made with the last version be re-made once more.
	time.Sleep(2 * lifetime)
	rotDur := time.Since(rotStart)
	rotCalls := stack.srv.Calls("", "") - rotCalls0
	getCalls := stack.srv.Calls("GetSecretValue", secretName)
	stats := tg.stats()
	rotLogins := tg.newConns() - rotLogins0

	res := load.finish()
	stopped = true
	tr.stop()

	hookMu.Lock()
	for _, err := range hookErrs {
		t.Error(err)
	}
	hookMu.Unlock()
	res.requireNoFailures(t)
	if st, _ := stack.srv.Secret(secretName); st.Rotations < rotations {
		t.Errorf("the secret rotated %d times, want %d", st.Rotations, rotations)
	}
	if order == orderDoubleUsers && (!accounts[user1] || !accounts[user2]) {
		t.Errorf("DoubleUsers rotations did not alternate between the two accounts: %v", accounts)
	}
	kmsCalls := rotCalls - outageCalls
	if limit := maxKMSCallsPerRotation*rotations + 1; kmsCalls > limit {
		t.Errorf("%d KMS calls for %d rotations (%d more failed during outages), want at most %d",
			kmsCalls, rotations, outageCalls, limit)
	}
	if limit := int64(rotations) * maxRejectedPerRotation(conns); stats.AuthFailures > limit {
		t.Errorf("%d logins rejected for %d rotations, want at most %d", stats.AuthFailures, rotations, limit)
	}
	if steadyLogins+rotLogins < int64(rotations) {
		t.Errorf("only %d connections were made in the whole run: connections are not re-made, the test proves little",
			steadyLogins+rotLogins)
	}
	if res.queries(phaseRotating) == 0 || res.queries(phaseSteady) == 0 {
		t.Errorf("no queries ran (steady %d, rotating %d)", res.queries(phaseSteady), res.queries(phaseRotating))
	}

	tr.log(t)
	figures(t, "kind=%s order=%s workers=%d conns=%d lifetime=%v rotations=%d failed=%d | "+
		"steady: %d q in %.1fs (%.0f q/s) p50=%s p99=%s max=%s new_conns=%d kms_calls=%d | "+
		"rotating: %d q in %.1fs (%.0f q/s) p50=%s p99=%s max=%s new_conns=%d auth_failures=%d previous_used=%d kms_calls=%d (GetSecretValue total %d, failed in outages %d) gap=%v worst_by_rotation=%s",
		k, order, loadWorkers, conns, lifetime, rotations, res.failed(),
		res.queries(phaseSteady), steadyDur.Seconds(), float64(res.queries(phaseSteady))/steadyDur.Seconds(),
		ms(res.pct(phaseSteady, 0.50)), ms(res.pct(phaseSteady, 0.99)), ms(res.pct(phaseSteady, 1)), steadyLogins, steadyCalls,
		res.queries(phaseRotating), rotDur.Seconds(), float64(res.queries(phaseRotating))/rotDur.Seconds(),
		ms(res.pct(phaseRotating, 0.50)), ms(res.pct(phaseRotating, 0.99)), ms(res.pct(phaseRotating, 1)),
		rotLogins, stats.AuthFailures, stats.PreviousUsed, kmsCalls, getCalls, outageCalls, rotationGap(order), res.worstByRound())
}

// rotationCacheOptions: the cache's defaults, unless KMSDB_LOAD_REFRESH_EVERY
// (a duration) sets its per-secret refresh rate limit, to compare.
func rotationCacheOptions(t *testing.T) []cache.Option {
	v := os.Getenv("KMSDB_LOAD_REFRESH_EVERY")
	if v == "" {
		return nil
	}
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 {
		t.Fatalf("KMSDB_LOAD_REFRESH_EVERY=%q: want a positive duration", v)
	}
	return []cache.Option{cache.WithRefreshLimit(d, cache.DefaultRefreshBurst)}
}

// rotationTrace records, with KMSDB_LOAD_TRACE set, when each step of a
// rotation happened (database changed, secret moved, the cache's fetches
// ended), relative to the start of the rotation, and logs it as
// KMSDB_TRACE lines: where the time of the worst query went.
type rotationTrace struct {
	on    bool
	done  chan struct{}
	wg    sync.WaitGroup
	mu    sync.Mutex
	t0    time.Time
	round int
	lines []string
}

func newRotationTrace() *rotationTrace {
	return &rotationTrace{on: os.Getenv("KMSDB_LOAD_TRACE") != "", done: make(chan struct{})}
}

// watchRejections notes the first rejected login of each round (polling
// stats every 5 ms) until stop.
func (r *rotationTrace) watchRejections(stats func() connector.Stats) {
	if !r.on {
		return
	}
	r.wg.Go(func() {
		last, noted := stats().AuthFailures, -1
		for {
			select {
			case <-r.done:
				return
			case <-time.After(5 * time.Millisecond):
			}
			n := stats().AuthFailures
			r.mu.Lock()
			round := r.round
			r.mu.Unlock()
			if n != last && noted != round {
				r.note("first rejected login")
				noted = round
			}
			last = n
		}
	})
}

func (r *rotationTrace) stop() {
	close(r.done)
	r.wg.Wait()
}

func (r *rotationTrace) start() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.t0.IsZero() {
		r.round++
	}
	r.t0 = time.Now()
}

func (r *rotationTrace) note(what string) {
	if !r.on {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.t0.IsZero() {
		return
	}
	r.lines = append(r.lines, fmt.Sprintf("r%d +%4dms %s", r.round, time.Since(r.t0).Milliseconds(), what))
}

func (r *rotationTrace) cacheOption() cache.Option {
	return cache.WithHooks(cache.Hooks{
		Refreshed: func(_ context.Context, ev cache.RefreshedEvent) {
			r.note(fmt.Sprintf("fetch %s took %dms version %s changed=%v", ev.Reason, ev.Took.Milliseconds(), ev.Version, ev.Changed))
		},
		RefreshFailed: func(_ context.Context, ev cache.RefreshFailedEvent) {
			r.note("fetch failed: " + ev.Err.Error())
		},
	})
}

func (r *rotationTrace) log(t *testing.T) {
	if !r.on {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, l := range r.lines {
		t.Logf("KMSDB_TRACE %s", l)
	}
}
