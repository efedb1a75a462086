package cache

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/kmsdb/kmsdb/secretsource"
	"github.com/kmsdb/kmsdb/secretsource/cache/internal/clock"
)

// TestHookReasons drives every kind of fetch once and checks the Reason its
// hook event carries (and the VersionRef of a failed version fetch).
func TestHookReasons(t *testing.T) {
	fc := clock.NewFake(t0)
	store := newMemStore()
	warm := secretsource.NewSecret(secretsource.Fields{Name: "warm", VersionID: "w0", Value: []byte("pw-w")})
	_ = store.Save(context.Background(), Record{Secret: warm, FetchedAt: t0.Add(-time.Minute)})
	src := newFakeSource(fc)
	var mu sync.Mutex
	var ok, failed []Reason
	var refs []secretsource.VersionRef
	hooks := Hooks{
		Refreshed: func(_ context.Context, e RefreshedEvent) { mu.Lock(); ok = append(ok, e.Reason); mu.Unlock() },
		RefreshFailed: func(_ context.Context, e RefreshFailedEvent) {
			mu.Lock()
			failed, refs = append(failed, e.Reason), append(refs, e.VersionRef)
			mu.Unlock()
		},
	}
	c := newTestCache(t, src, withClock(fc), withRand(constRand(0.5)), WithStore(store),
		WithRefreshLimit(time.Nanosecond, 100), WithHooks(hooks))
	seen := func(list *[]Reason, r Reason) func() bool {
		return func() bool { mu.Lock(); defer mu.Unlock(); return slices.Contains(*list, r) }
	}

	fc.Advance(0) // the warm start's refresh of the persisted secret
	mustGet(t, c, "db")
	if _, err := c.Refresh(context.Background(), "db"); err != nil {
		t.Fatal(err)
	}
	src.rotate("db")
	if !c.Invalidate("db", "v1") {
		t.Fatal("Invalidate did not act on the served version")
	}
	eventually(t, "the invalidated refresh", seen(&ok, ReasonInvalidated))
	fc.Advance(5 * time.Minute) // every refresh falls due within one TTL
	src.setErr(errUnavailable)
	fc.Advance(5 * time.Minute) // fails; its retry is due within a second (backoff 1 s, draw 0.5)
	fc.Advance(time.Minute)
	ref := secretsource.VersionRef{Stage: secretsource.StagePrevious}
	if _, err := c.GetSecretVersion(context.Background(), "db", ref); err == nil {
		t.Fatal("GetSecretVersion succeeded against a failing source")
	}

	mu.Lock()
	defer mu.Unlock()
	for _, r := range []Reason{ReasonWarmStart, ReasonCold, ReasonForced, ReasonInvalidated, ReasonScheduled} {
		if !slices.Contains(ok, r) {
			t.Errorf("no RefreshedEvent with reason %q: %v", r, ok)
		}
	}
	for _, r := range []Reason{ReasonScheduled, ReasonRetry, ReasonVersion} {
		if !slices.Contains(failed, r) {
			t.Errorf("no RefreshFailedEvent with reason %q: %v", r, failed)
		}
	}
	for i, r := range failed {
		if want := (r == ReasonVersion); (refs[i] == ref) != want {
			t.Errorf("failure %d (reason %q) has VersionRef %+v", i, r, refs[i])
		}
	}
}

// slowFailing fails every fetch after a pause.
type slowFailing struct {
	*fakeSource
	pause time.Duration
}

func (s slowFailing) GetSecret(ctx context.Context, name string) (*secretsource.Secret, error) {
	time.Sleep(s.pause)
	return s.fakeSource.GetSecret(ctx, name)
}

func (s slowFailing) GetSecretVersion(ctx context.Context, name string, ref secretsource.VersionRef) (*secretsource.Secret, error) {
	time.Sleep(s.pause)
	return s.fakeSource.GetSecretVersion(ctx, name, ref)
}

// A failed fetch reports how long it took, as a successful one does, so that
// an adapter can time (and trace) failed KMS calls too.
func TestRefreshFailedEventTook(t *testing.T) {
	const pause = 20 * time.Millisecond
	src := newFakeSource(nil)
	src.setErr(&secretsource.Error{Kind: secretsource.KindAccessDenied, Secret: "db", Source: "fake", Code: "Forbidden.NoPermission"})
	var mu sync.Mutex
	var took []time.Duration
	c := newTestCache(t, slowFailing{src, pause}, WithHooks(Hooks{RefreshFailed: func(_ context.Context, e RefreshFailedEvent) {
		mu.Lock()
		took = append(took, e.Took)
		mu.Unlock()
	}}))
	if _, err := c.GetSecret(context.Background(), "db"); err == nil {
		t.Fatal("GetSecret succeeded against a failing source")
	}
	if _, err := c.GetSecretVersion(context.Background(), "db", secretsource.VersionRef{Stage: secretsource.StagePrevious}); err == nil {
		t.Fatal("GetSecretVersion succeeded against a failing source")
	}
	mu.Lock()
	defer mu.Unlock()
	if len(took) != 2 {
		t.Fatalf("got %d RefreshFailedEvents, want 2: %v", len(took), took)
	}
	for i, d := range took {
		if d < pause {
			t.Errorf("event %d: Took = %v, want at least the source's %v", i, d, pause)
		}
	}
}

// hookKey marks the context of a caller.
type hookKey struct{}

// TestHookContext: a hook gets the context of the fetch it ends, with the
// values of the caller that started it (GetSecret, GetSecretVersion), and
// none for the cache's own refreshes; a successful GetSecretVersion fetch
// is a RefreshedEvent with ReasonVersion, its VersionRef and the Origin the
// source gave.
func TestHookContext(t *testing.T) {
	fc := clock.NewFake(t0)
	src := newFakeSource(fc)
	type seen struct {
		e      RefreshedEvent
		caller any
	}
	var mu sync.Mutex
	var got []seen
	hooks := Hooks{Refreshed: func(ctx context.Context, e RefreshedEvent) {
		mu.Lock()
		got = append(got, seen{e, ctx.Value(hookKey{})})
		mu.Unlock()
	}}
	c := newTestCache(t, src, withClock(fc), withRand(constRand(0.5)), WithRefreshLimit(time.Nanosecond, 100), WithHooks(hooks))
	ctx := context.WithValue(context.Background(), hookKey{}, "caller")
	if _, err := c.GetSecret(ctx, "db"); err != nil {
		t.Fatal(err)
	}
	src.rotate("db")
	ref := secretsource.VersionRef{Stage: secretsource.StagePrevious}
	prev, err := c.GetSecretVersion(ctx, "db", ref)
	if err != nil {
		t.Fatal(err)
	}
	fc.Advance(10 * time.Minute) // the scheduled refresh falls due within one TTL
	eventually(t, "the scheduled refresh", func() bool { mu.Lock(); defer mu.Unlock(); return len(got) >= 3 })

	mu.Lock()
	defer mu.Unlock()
	if g := got[0]; g.e.Reason != ReasonCold || g.caller != "caller" {
		t.Errorf("cold fetch: reason %q, caller's value %v", g.e.Reason, g.caller)
	}
	g := got[1]
	if g.e.Reason != ReasonVersion || g.caller != "caller" || g.e.VersionRef != ref || g.e.Version != prev.VersionID() ||
		g.e.Previous != "" || g.e.Changed || g.e.NextRefresh != 0 {
		t.Errorf("version fetch: %+v, caller's value %v", g.e, g.caller)
	}
	if g := got[2]; g.e.Reason != ReasonScheduled || g.caller != nil {
		t.Errorf("scheduled refresh: reason %q, caller's value %v (want none)", g.e.Reason, g.caller)
	}
}
