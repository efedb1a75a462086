package rotation

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/kmsdb/kmsdb/connector"
	"github.com/kmsdb/kmsdb/secretsource"
	"github.com/kmsdb/kmsdb/secretsource/cache"
)

// events collects the LoginEvents of a Login, and the callerKey value of
// the context each came with.
type events struct {
	mu      sync.Mutex
	got     []connector.LoginEvent
	callers []any
}

// callerKey marks the context a test connects with.
type callerKey struct{}

func (e *events) add(ctx context.Context, ev connector.LoginEvent) {
	e.mu.Lock()
	e.got, e.callers = append(e.got, ev), append(e.callers, ctx.Value(callerKey{}))
	e.mu.Unlock()
}

func (e *events) last(t *testing.T, n int) connector.LoginEvent {
	t.Helper()
	e.mu.Lock()
	defer e.mu.Unlock()
	if len(e.got) != n {
		t.Fatalf("%d LoginEvents, want %d: %+v", len(e.got), n, e.got)
	}
	return e.got[n-1]
}

// TestLoginEvents: one event per Run or Continue, success or failure, with
// the version that logged in, the attempts, the fallback to an older
// version and the scrubbed error; never a password.
func TestLoginEvents(t *testing.T) {
	src := newRotating("v1", "pw-one-1111")
	db := &fakeDB{password: "pw-one-1111"}
	l, c, _ := newTestLogin(t, src, 0)
	var ev events
	l.onLogin = ev.add
	ctx := context.WithValue(context.Background(), callerKey{}, "caller") // the hook gets it: the caller's span

	mustRun(t, l, db, "v1")
	if e := ev.last(t, 1); e.Secret != "db" || e.Version != "v1" || e.User != "app" || e.Attempts != 1 ||
		e.PreviousUsed || e.Err != nil || e.Class != connector.Other || e.Waited != 0 {
		t.Errorf("warm login: %+v", e)
	}

	// The cache learns v2 before the database: v1 stands in.
	src.add("v2", "pw-two-2222")
	if _, err := c.Refresh(ctx, "db"); err != nil {
		t.Fatal(err)
	}
	mustRun(t, l, db, "v1")
	if e := ev.last(t, 2); e.Version != "v1" || e.Attempts != 2 || !e.PreviousUsed || e.Err != nil {
		t.Errorf("login with the replaced version: %+v", e)
	}

	// Continue reports once too: a login made outside Run, then rejected.
	db.set("pw-two-2222")
	acct, _ := l.Match("app", "pw-one-1111")
	_, err := Continue(ctx, l, acct, fmt.Errorf("%w (outside Run)", errAuth), db.attempt)
	if e := ev.last(t, 3); err != nil || e.Version != "v2" || e.Attempts < 2 || e.Err != nil {
		t.Errorf("Continue: %+v (%v)", e, err)
	}

	// The database moves to a password the process does not hold; no grace.
	l.grace = 0
	db.set("pw-unknown-3333")
	_, err = Run(ctx, l, db.attempt)
	e := ev.last(t, 4)
	if !errors.Is(err, connector.ErrCredentialsRejected) || !errors.Is(e.Err, err) || e.Class != connector.AuthFailure || e.Attempts == 0 {
		t.Errorf("rejected login: %+v (Run: %v)", e, err)
	}

	// A secret that cannot be read: no attempt.
	src.mu.Lock()
	src.failWith = &secretsource.Error{Kind: secretsource.KindNotFound, Secret: "other", Message: "no such secret"}
	src.mu.Unlock()
	l2, err := NewLogin(Config{SecretName: "other", Source: c, Classify: classifyFake, OnLogin: ev.add})
	if err != nil {
		t.Fatal(err)
	}
	defer l2.Close()
	_, err = Run(ctx, l2, db.attempt)
	if e := ev.last(t, 5); e.Secret != "other" || e.Class != connector.SecretUnavailable || e.Attempts != 0 || !errors.Is(e.Err, err) {
		t.Errorf("secret unavailable: %+v", e)
	}

	if want := []any{nil, nil, "caller", "caller", "caller"}; !slices.Equal(ev.callers, want) {
		t.Errorf("the events' contexts carry %v, want the caller's (%v)", ev.callers, want)
	}
	for _, e := range ev.got {
		for _, f := range []string{"%v", "%+v", "%#v"} {
			if s := fmt.Sprintf(f, e); strings.Contains(s, "pw-") {
				t.Errorf("an event shows a password: %s", s)
			}
		}
	}
}

// BenchmarkRunEvent: what the LoginEvent costs a warm login (issue 14 asks
// for under 2 µs with an adapter installed): compare the two sub-benchmarks.
func BenchmarkRunEvent(b *testing.B) {
	src := newRotating("v1", "pw-one-1111")
	c, err := cache.New(src)
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	attempt := func(ctx context.Context, acct secretsource.DBAccount) (string, error) { return acct.VersionID, nil }
	for _, bc := range []struct {
		name    string
		onLogin func(context.Context, connector.LoginEvent)
	}{{"none", nil}, {"observer", func(context.Context, connector.LoginEvent) {}}} {
		b.Run(bc.name, func(b *testing.B) {
			l, err := NewLogin(Config{SecretName: "db", Source: c, Classify: classifyFake, OnLogin: bc.onLogin})
			if err != nil {
				b.Fatal(err)
			}
			defer l.Close()
			ctx := context.Background()
			b.ReportAllocs()
			for b.Loop() {
				if _, err := Run(ctx, l, attempt); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
