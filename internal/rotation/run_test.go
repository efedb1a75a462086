package rotation

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kmsdb/kmsdb/connector"
	"github.com/kmsdb/kmsdb/secretsource"
	"github.com/kmsdb/kmsdb/secretsource/cache"
)

func TestRunWarmCacheMakesNoSourceCall(t *testing.T) {
	src := newRotating("v1", "pw-one-1111")
	db := &fakeDB{password: "pw-one-1111"}
	l, _, _ := newTestLogin(t, src, 0)
	ctx := context.Background()
	for range 100 {
		if v, err := Run(ctx, l, db.attempt); err != nil || v != "v1" {
			t.Fatalf("Run = %q, %v", v, err)
		}
	}
	if got := src.calls.Load(); got != 1 {
		t.Errorf("source calls = %d, want 1 (the first fetch)", got)
	}
	if got := db.logins.Load(); got != 100 {
		t.Errorf("logins = %d, want 100", got)
	}
}

// TestRunRotation: the rotation orders, one subtest each.
// long: a table of independent scenarios (stale cache, cache ahead of the
// database, ...) that share nothing but the helpers.
func TestRunRotation(t *testing.T) {
	t.Run("stale cache: the refresh brings the new version", func(t *testing.T) {
		// The cache still holds v1; the database and the source already have v2.
		src := newRotating("v1", "pw-one-1111")
		db := &fakeDB{password: "pw-one-1111"}
		l, _, _ := newTestLogin(t, src, 0)
		mustRun(t, l, db, "v1")
		src.add("v2", "pw-two-2222")
		db.set("pw-two-2222")
		before := src.calls.Load()
		mustRun(t, l, db, "v2")
		if got := l.Stats(); got.AuthFailures != 1 || got.Retries != 1 {
			t.Errorf("stats = %+v, want 1 auth failure, 1 retry", got)
		}
		if got := src.calls.Load() - before; got != 1 {
			t.Errorf("source calls = %d, want 1 refresh", got)
		}
	})
	t.Run("cache refreshed before the database: the replaced version, no KMS call", func(t *testing.T) {
		src := newRotating("v1", "pw-one-1111")
		db := &fakeDB{password: "pw-one-1111"}
		l, c, ft := newTestLogin(t, src, 0)
		mustRun(t, l, db, "v1")
		src.add("v2", "pw-two-2222")
		if _, err := c.Refresh(context.Background(), "db"); err != nil { // refresh-ahead learnt v2 first
			t.Fatal(err)
		}
		before := src.calls.Load()
		mustRun(t, l, db, "v1")
		if ft.waits() != 0 {
			t.Errorf("waited %v, want no wait", ft.slept)
		}
		// Later connections use v1 directly: one login each.
		logins := db.logins.Load()
		for range 10 {
			mustRun(t, l, db, "v1")
		}
		if got := db.logins.Load() - logins; got != 10 {
			t.Errorf("10 connections made %d logins, want 10 (no failed login while v1 stands in)", got)
		}
		// The database catches up: v1 is rejected, v2 logs in at once.
		db.set("pw-two-2222")
		mustRun(t, l, db, "v2")
		logins = db.logins.Load()
		mustRun(t, l, db, "v2")
		if got := db.logins.Load() - logins; got != 1 {
			t.Errorf("after the database caught up a connection made %d logins, want 1", got)
		}
		if got := src.calls.Load() - before; got != 0 {
			t.Errorf("the rotation made %d source calls, want 0", got)
		}
		if ft.waits() != 0 {
			t.Errorf("waited %v, want no wait", ft.slept)
		}
		if got := l.Stats().PreviousUsed; got != 1 {
			t.Errorf("PreviousUsed = %d, want 1", got)
		}
	})
	t.Run("cold cache with the new version only: ACSPrevious from KMS", func(t *testing.T) {
		src := newRotating("v1", "pw-one-1111", "v2", "pw-two-2222")
		db := &fakeDB{password: "pw-one-1111"}
		l, _, _ := newTestLogin(t, src, 0)
		mustRun(t, l, db, "v1")
		if got := src.prevCall.Load(); got != 1 {
			t.Errorf("ACSPrevious calls = %d, want 1", got)
		}
		for range 5 {
			mustRun(t, l, db, "v1")
		}
		if got := src.prevCall.Load(); got != 1 {
			t.Errorf("ACSPrevious calls = %d after more connections, want 1", got)
		}
	})
	t.Run("database first, secret later: polling", func(t *testing.T) {
		src := newRotating("v1", "pw-one-1111")
		db := &fakeDB{password: "pw-one-1111"}
		l, _, ft := newTestLogin(t, src, 0)
		mustRun(t, l, db, "v1")
		db.set("pw-two-2222")
		ft.onWait = func(n int) {
			if n == 5 {
				src.add("v2", "pw-two-2222")
			}
		}
		before := src.calls.Load()
		mustRun(t, l, db, "v2")
		if n := ft.waits(); n < 5 {
			t.Errorf("waited %d times, want at least 5", n)
		}
		for i, d := range ft.slept {
			if d < waitMin/2 || d > waitMax {
				t.Errorf("wait %d = %v, outside [%v, %v]", i, d, waitMin/2, waitMax)
			}
		}
		// Refreshes are spaced (0.3 s, 0.35 s, then 1 s) on the Login's
		// clock: a few over the waits, not one per wait (plus one
		// ACSPrevious: the cache holds no older version).
		var total time.Duration
		for _, d := range ft.slept {
			total += d
		}
		dense := refreshSecondGap + refreshThirdGap
		if got, limit := src.calls.Load()-before, 1+3+int64(max(total-dense, 0)/refreshGap); got > limit {
			t.Errorf("%d source calls over %v of waiting, want at most %d", got, total, limit)
		}
	})
}

// TestRefreshSchedule: the background refreshes of an episode start at once,
// refreshSecondGap later, refreshThirdGap after that, then refreshGap apart,
// whoever asks in between; after refreshQuiet without one the next episode
// starts dense again. When the first comes soon after the refusal, the
// schedule counts from the refusal. On the Login's fake clock, so the times
// are exact.
func TestRefreshSchedule(t *testing.T) {
	src := newRotating("v1", "pw-one-1111")
	l, c, ft := newTestLogin(t, src, 0)
	start := ft.now()
	second := refreshSecondGap
	third := second + refreshThirdGap
	quietEnd := third + 2*refreshGap + refreshQuiet + time.Millisecond
	steps := []struct {
		at      time.Duration // since start
		refresh bool          // a refresh starts
	}{
		{0, true}, {time.Millisecond, false}, {second - time.Millisecond, false}, {second, true},
		{third - time.Millisecond, false}, {third, true},
		{third + refreshGap - time.Millisecond, false}, {third + refreshGap, true},
		{third + 2*refreshGap, true},
		// quiet: a new episode, dense again
		{quietEnd, true}, {quietEnd + second, true}, {quietEnd + third, true}, {quietEnd + third + refreshGap/2, false},
	}
	// Another quiet period; the current version was refused 0.2 s before the
	// first refresh: the second comes at the refusal + refreshSecondGap (but
	// refreshMinGap after the first at least), the third at the refusal +
	// third.
	refused := quietEnd + third + refreshQuiet + 2*time.Millisecond
	steps = append(steps, []struct {
		at      time.Duration
		refresh bool
	}{
		{refused + 200*time.Millisecond, true},
		{refused + 200*time.Millisecond + refreshMinGap - time.Millisecond, false},
		{refused + max(second, 200*time.Millisecond+refreshMinGap), true},
		{refused + third - time.Millisecond, false},
		{refused + third, true},
	}...)
	for _, st := range steps {
		ft.advance(start.Add(st.at).Sub(ft.now()))
		before := src.calls.Load()
		var since time.Time
		if st.at > refused {
			since = start.Add(refused)
		}
		l.kickRefresh(c, since)
		ft.settle()
		if got := src.calls.Load() - before; got != map[bool]int64{true: 1, false: 0}[st.refresh] {
			t.Errorf("at +%v: %d refreshes, want refresh=%v", st.at, got, st.refresh)
		}
	}
	// Three refreshes within refreshSecondGap+refreshThirdGap (under a
	// second): the cache's default rate limit must let them through at once.
	if cache.DefaultRefreshBurst < 3 {
		t.Errorf("the cache's default burst %d (1 per %v) does not let 3 refreshes through within %v",
			cache.DefaultRefreshBurst, cache.DefaultRefreshEvery, third)
	}
}

// timedSource records, on the Login's fake clock, when ACSCurrent is fetched.
type timedSource struct {
	*rotatingSource
	ft    *fakeTime
	mu    sync.Mutex
	times []time.Time
}

func (s *timedSource) GetSecret(ctx context.Context, name string) (*secretsource.Secret, error) {
	s.mu.Lock()
	s.times = append(s.times, s.ft.now())
	s.mu.Unlock()
	return s.rotatingSource.GetSecret(ctx, name)
}

// since returns the times of the fetches of ACSCurrent, counted from start.
func (s *timedSource) since(start time.Time) []time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []time.Duration
	for _, at := range s.times {
		out = append(out, at.Sub(start))
	}
	return out
}

// newTimedLogin returns a Login in front of a timedSource holding pairs
// (the last "v1", "pw-one-1111"), after one login with v1; then the database
// moves to "pw-two-2222". The fetch times recorded so far are dropped; start
// is the fake clock's time at the database change.
func newTimedLogin(t *testing.T, pairs ...string) (l *Login, db *fakeDB, src *timedSource, ft *fakeTime, start time.Time) {
	t.Helper()
	src = &timedSource{rotatingSource: newRotating(pairs...)}
	db = &fakeDB{password: "pw-one-1111"}
	l, _, ft = newTestLogin(t, src, 0)
	src.ft = ft
	mustRun(t, l, db, "v1")
	db.set("pw-two-2222")
	src.mu.Lock()
	src.times = nil
	src.mu.Unlock()
	return l, db, src, ft, ft.now()
}

// TestRefreshScheduleLoneWaiter: a single connection waiting for a secret
// that follows the database by 0.5 s wakes for each refresh of the episode
// (its own waits grow to waitMax), so the third, 0.65 s after the rejection,
// brings the new version.
func TestRefreshScheduleLoneWaiter(t *testing.T) {
	l, db, src, ft, start := newTimedLogin(t, "v1", "pw-one-1111")
	const lag = 500 * time.Millisecond
	added := false
	ft.onWait = func(int) {
		if !added && !ft.now().Before(start.Add(lag)) {
			src.add("v2", "pw-two-2222")
			added = true
		}
	}
	mustRun(t, l, db, "v2")
	got := src.since(start)
	want := []time.Duration{0, refreshSecondGap, refreshSecondGap + refreshThirdGap}
	if len(got) != len(want) {
		t.Fatalf("%d fetches of ACSCurrent at %v, want %d", len(got), got, len(want))
	}
	for i, w := range want {
		if got[i] != w {
			t.Errorf("fetch %d at +%v, want +%v", i+1, got[i], w)
		}
	}
}

// TestDenseRefreshesWithoutAsking: the refresh goroutine starts the second
// and third refreshes of an episode itself when they are due and the
// current version is still refused, with no connection waiting to ask (they
// are all busy in logins, or the pool gave up); the first refresh that
// brings a version nobody has refused ends them, and the later, sparse ones
// wait for a connection to ask.
func TestDenseRefreshesWithoutAsking(t *testing.T) {
	l, db, src, ft, start := newTimedLogin(t, "v0", "pw-zero-000", "v1", "pw-one-1111")
	// One connection meets the refusal, tries v0 (ACSPrevious), and gives
	// up at its first wait.
	ctx, cancel := context.WithCancel(context.Background())
	ft.onWait = func(int) { cancel() }
	if _, err := Run(ctx, l, db.attempt); !errors.Is(err, context.Canceled) {
		t.Fatalf("Run = %v, want cancelled at its first wait", err)
	}
	ft.onWait = nil
	fetches := func() []time.Duration { return src.since(start) }
	awaitFetches := func(n int) {
		t.Helper()
		for deadline := time.Now().Add(5 * time.Second); len(fetches()) < n; {
			if time.Now().After(deadline) {
				t.Fatalf("fetches of ACSCurrent at %v, want %d", fetches(), n)
			}
			time.Sleep(time.Millisecond)
		}
		ft.settle()
	}
	awaitFetches(1)
	ft.advance(start.Add(refreshSecondGap).Sub(ft.now()))
	awaitFetches(2)
	src.add("v2", "pw-two-2222") // the secret follows the database
	ft.advance(start.Add(refreshSecondGap + refreshThirdGap).Sub(ft.now()))
	awaitFetches(3)
	// v2 is refused by nobody: no more refreshes without a connection asking.
	ft.advance(2 * refreshGap)
	time.Sleep(20 * time.Millisecond)
	ft.settle()
	want := []time.Duration{0, refreshSecondGap, refreshSecondGap + refreshThirdGap}
	if got := fetches(); !slices.Equal(got, want) {
		t.Errorf("fetches of ACSCurrent at %v, want %v", got, want)
	}
	mustRun(t, l, db, "v2")
}

func TestRunGracePeriod(t *testing.T) {
	src := newRotating("v1", "pw-one-1111")
	db := &fakeDB{password: "the-database-has-another"}
	l, _, _ := newTestLogin(t, src, 10*time.Second)
	_, err := Run(context.Background(), l, db.attempt)
	var e *connector.Error
	if !errors.As(err, &e) || e.Class != connector.AuthFailure || !errors.Is(err, connector.ErrCredentialsRejected) {
		t.Fatalf("err = %v, want an connector.AuthFailure *connector.Error", err)
	}
	if !errors.Is(err, errAuth) {
		t.Errorf("errors.Is(err, driver error) = false; the driver error must stay reachable")
	}
	if e.Waited < 10*time.Second || e.Waited > 11*time.Second {
		t.Errorf("waited %v, want the 10s grace period", e.Waited)
	}
	if strings.Contains(err.Error(), "pw-one-1111") || strings.Contains(fmt.Sprintf("%+v %#v", err, err), "pw-one-1111") {
		t.Errorf("the password shows in the error: %v", err)
	}
	if !strings.Contains(err.Error(), `secret "db" version "v1" (user "app")`) {
		t.Errorf("error does not name the secret, version and user: %v", err)
	}
	if logins := db.logins.Load(); logins > int64(1+10*time.Second/retryMin) {
		t.Errorf("%d logins during the grace period", logins)
	}
}

// TestRunBrokenRotation: the database was changed and the secret never. Past
// the grace period new connections fail at once, with the error naming the
// secret, version and user; one login per probe interval reaches the
// database; KMS is asked at most once per second; and the first refresh that
// brings a working version heals the next connection.
func TestRunBrokenRotation(t *testing.T) {
	src := newRotating("v1", "pw-one-1111")
	db := &fakeDB{password: "pw-one-1111"}
	l, _, ft := newTestLogin(t, src, 5*time.Second)
	mustRun(t, l, db, "v1")
	db.set("pw-two-2222")
	if _, err := Run(context.Background(), l, db.attempt); !errors.Is(err, connector.ErrCredentialsRejected) {
		t.Fatalf("first Run: %v", err)
	}
	// One simulated minute, a connection every 10 ms.
	waits, logins, calls := ft.waits(), db.logins.Load(), src.calls.Load()
	const step = 10 * time.Millisecond
	for range 6000 {
		ft.advance(step)
		_, err := Run(context.Background(), l, db.attempt)
		var e *connector.Error
		if !errors.As(err, &e) || !errors.Is(err, connector.ErrCredentialsRejected) || e.Secret != "db" || e.Version != "v1" || e.User != "app" {
			t.Fatalf("Run past the grace period = %v, want credentials rejected naming secret, version and user", err)
		}
		if strings.Contains(err.Error(), "pw-one-1111") {
			t.Fatalf("the password shows: %v", err)
		}
		ft.settle()
	}
	if got := ft.waits() - waits; got != 0 {
		t.Errorf("connections past the grace period waited %d times, want none", got)
	}
	if got := db.logins.Load() - logins; got < 55 || got > 61 {
		t.Errorf("%d logins reached the database in a minute, want one per second", got)
	}
	if got := src.calls.Load() - calls; got > 61 {
		t.Errorf("%d source calls in a minute, want at most one per second", got)
	}
	// The secret is fixed: the next refresh brings v2, and the connection after logs in.
	src.add("v2", "pw-two-2222")
	var healed time.Duration
	for healed = 0; healed < 10*time.Second; healed += step {
		ft.advance(step)
		if v, err := Run(context.Background(), l, db.attempt); err == nil {
			if v != "v2" {
				t.Fatalf("healed with %q", v)
			}
			break
		}
		ft.settle()
	}
	if healed > 2*time.Second {
		t.Errorf("healed %v after the secret was fixed, want within 2 s", healed)
	}
	logins = db.logins.Load()
	mustRun(t, l, db, "v2")
	if got := db.logins.Load() - logins; got != 1 {
		t.Errorf("after healing a connection made %d logins, want 1", got)
	}
}

func TestRunStopsWithContext(t *testing.T) {
	src := newRotating("v1", "pw-one-1111")
	db := &fakeDB{password: "other-password"}
	l, _, ft := newTestLogin(t, src, time.Hour)
	ctx, cancel := context.WithCancel(context.Background())
	ft.onWait = func(n int) {
		if n == 3 {
			cancel()
		}
	}
	_, err := Run(ctx, l, db.attempt)
	if !errors.Is(err, context.Canceled) || !errors.Is(err, connector.ErrCredentialsRejected) {
		t.Fatalf("err = %v, want credentials rejected and context canceled", err)
	}
}

// TestRunConcurrentRejections: many connections failing on one version cause
// a bounded number of fetches, and all succeed once the new version is there.
func TestRunConcurrentRejections(t *testing.T) {
	src := newRotating("v1", "pw-one-1111")
	db := &fakeDB{password: "pw-one-1111"}
	c, err := cache.New(src) // default rate limit: 1 fetch/s, burst 3
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	l, err := NewLogin(Config{SecretName: "db", Source: c, Classify: classifyFake})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Run(context.Background(), l, db.attempt); err != nil {
		t.Fatal(err)
	}
	src.add("v2", "pw-two-2222")
	db.set("pw-two-2222")
	before := src.calls.Load()
	var wg sync.WaitGroup
	errs := make(chan error, 100)
	for range 100 {
		wg.Go(func() {
			if _, err := Run(context.Background(), l, db.attempt); err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if got := src.calls.Load() - before; got != 1 {
		t.Errorf("100 concurrent rejections made %d source calls, want 1", got)
	}
}

// TestRunDuringSourceOutage: once the cache is warm, a source that fails
// changes nothing for new connections, and a rejected login still polls
// (with the stale value) instead of failing on the source's error.
func TestRunDuringSourceOutage(t *testing.T) {
	src := newRotating("v1", "pw-one-1111")
	db := &fakeDB{password: "pw-one-1111"}
	l, _, ft := newTestLogin(t, src, 5*time.Second)
	mustRun(t, l, db, "v1")
	src.mu.Lock()
	src.failWith = &secretsource.Error{Kind: secretsource.KindUnavailable, Secret: "db", Message: "KMS is down"}
	src.mu.Unlock()
	for range 20 {
		mustRun(t, l, db, "v1")
	}
	// The database rotates while KMS is down: the login waits for the grace
	// period and reports the rejection, not the outage.
	db.set("pw-two-2222")
	_, err := Run(context.Background(), l, db.attempt)
	if !errors.Is(err, connector.ErrCredentialsRejected) || len(ft.slept) == 0 {
		t.Fatalf("err = %v after %d waits, want credentials rejected after polling", err, len(ft.slept))
	}
}
