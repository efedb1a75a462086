package cache

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kmsdb/kmsdb/secretsource"
	"github.com/kmsdb/kmsdb/secretsource/cache/internal/clock"
)

// TestJunkFromASourceNeverReplacesAValue: whatever a custom Source returns
// without an error (no secret, another secret, no version id), the good value
// stays and is served stale; the junk is an invalid-answer error.
func TestJunkFromASourceNeverReplacesAValue(t *testing.T) {
	good := secretsource.NewSecret(secretsource.Fields{Name: "db", VersionID: "v1", Value: []byte("pw-1"),
		VersionStages: []string{secretsource.StageCurrent}})
	junk := map[string]*secretsource.Secret{
		"no secret":      nil,
		"another secret": secretsource.NewSecret(secretsource.Fields{Name: "other", VersionID: "v7", Value: []byte("x")}),
		"no version id":  secretsource.NewSecret(secretsource.Fields{Name: "db", Value: []byte("")}),
	}
	for what, bad := range junk {
		t.Run(what, func(t *testing.T) {
			var serveJunk atomic.Bool
			src := secretsource.SourceFunc(func(context.Context, string) (*secretsource.Secret, error) {
				if serveJunk.Load() {
					return bad, nil
				}
				return good, nil
			})
			c := newTestCache(t, src, WithRefreshLimit(time.Millisecond, 100))
			mustGet(t, c, "db")
			serveJunk.Store(true)
			for range 3 {
				_, err := c.Refresh(context.Background(), "db")
				if !errors.Is(err, secretsource.ErrInvalidAnswer) || !secretsource.IsRetryable(err) {
					t.Fatalf("Refresh: got %v, want a retryable invalid answer", err)
				}
				if s := mustGet(t, c, "db"); s != good {
					t.Fatalf("GetSecret serves %v after junk, want the good value", s)
				}
			}
			if info, _ := c.Info("db"); !info.Stale || info.Version != "v1" || !errors.Is(info.LastError, secretsource.ErrInvalidAnswer) {
				t.Errorf("Info = %+v", info)
			}
			if c.Invalidate("db", "") {
				t.Error("Invalidate of an empty version acted")
			}
		})
	}
}

// junkVersionSource answers every version request with junk.
type junkVersionSource struct {
	secretsource.SourceFunc
	junk *secretsource.Secret
}

func (j junkVersionSource) GetSecretVersion(context.Context, string, secretsource.VersionRef) (*secretsource.Secret, error) {
	return j.junk, nil
}

// TestJunkVersionsRefused: GetSecretVersion refuses junk as GetSecret does,
// and caches none of it.
func TestJunkVersionsRefused(t *testing.T) {
	for what, junk := range map[string]*secretsource.Secret{
		"no secret":      nil,
		"another secret": secretsource.NewSecret(secretsource.Fields{Name: "other", VersionID: "v7"}),
		"no version id":  secretsource.NewSecret(secretsource.Fields{Name: "db"}),
	} {
		t.Run(what, func(t *testing.T) {
			c := newTestCache(t, junkVersionSource{junk: junk}, WithRefreshLimit(time.Millisecond, 100))
			for range 2 {
				_, err := c.GetSecretVersion(context.Background(), "db", secretsource.VersionRef{Stage: secretsource.StagePrevious})
				if !errors.Is(err, secretsource.ErrInvalidAnswer) {
					t.Fatalf("got %v, want an invalid answer", err)
				}
			}
		})
	}
}

// TestFarNextRotationDate: a NextRotationDate of 9999-12-31 leaves the TTL in
// charge; it overflowed the delay into a refresh about every second.
func TestFarNextRotationDate(t *testing.T) {
	fc := clock.NewFake(t0)
	src := newFakeSource(fc)
	src.nextRot = time.Date(9999, 12, 31, 0, 0, 0, 0, time.UTC)
	c := newTestCache(t, src, withClock(fc), withRand(constRand(0.5)))
	mustGet(t, c, "db")
	// After the first fetch the refresh is drawn in (0, TTL-based delay]: half of 4m57s.
	first := (4*time.Minute + 57*time.Second) / 2
	if info, _ := c.Info("db"); !info.NextRefresh.Equal(t0.Add(first)) {
		t.Fatalf("next refresh in %v, want half the TTL's 4m57s", info.NextRefresh.Sub(t0))
	}
	fc.Advance(first)
	if info, _ := c.Info("db"); src.Calls() != 2 || !info.NextRefresh.Equal(fc.Now().Add(4*time.Minute+57*time.Second)) {
		t.Fatalf("%d fetches, next refresh in %v, want 2 and the TTL's 4m57s", src.Calls(), info.NextRefresh.Sub(fc.Now()))
	}
	for range 29 { // 4m50s in 10 s steps
		fc.Advance(10 * time.Second)
	}
	if n := src.Calls(); n != 2 {
		t.Fatalf("%d fetches within the TTL, want 2", n)
	}
	fc.Advance(10 * time.Second)
	if n := src.Calls(); n != 3 {
		t.Fatalf("%d fetches after the TTL, want 3", n)
	}
	// The policy alone, at the limits of time.Time.
	p := RotationAwareTTL{}
	for _, nrd := range []time.Time{time.Date(9999, 12, 31, 23, 59, 59, 0, time.UTC), time.Unix(1<<62, 0)} {
		s := secretsource.NewSecret(secretsource.Fields{Name: "db", VersionID: "v1", NextRotationDate: nrd})
		if d := p.NextRefresh(s, t0, constRand(0.999)); d <= 0 || d > DefaultTTL {
			t.Errorf("NextRotationDate %v: next refresh in %v", nrd, d)
		}
	}
}

// stuckSource ignores its context: a call returns only when release is
// closed.
type stuckSource struct {
	release chan struct{}
	entered chan string
}

func (s *stuckSource) GetSecret(_ context.Context, name string) (*secretsource.Secret, error) {
	s.entered <- name
	<-s.release
	return secretsource.NewSecret(secretsource.Fields{Name: name, VersionID: "v1", Value: []byte("late")}), nil
}

// TestCloseBoundedWhenTheSourceIgnoresItsContext: Close returns after the
// close timeout with an error naming the secrets still in the source; the
// stuck calls end when the source returns (goleak checks they do).
func TestCloseBoundedWhenTheSourceIgnoresItsContext(t *testing.T) {
	src := &stuckSource{release: make(chan struct{}), entered: make(chan string, 2)}
	c, err := New(src, WithCloseTimeout(50*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for _, name := range []string{"db/a", "db/b"} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := c.GetSecret(context.Background(), name)
			if !errors.Is(err, ErrClosed) {
				t.Errorf("GetSecret(%s) during Close: %v, want ErrClosed", name, err)
			}
		}()
	}
	<-src.entered
	<-src.entered
	err = c.Close()
	if !errors.Is(err, ErrCloseTimeout) || !strings.Contains(err.Error(), `"db/a"`) || !strings.Contains(err.Error(), `"db/b"`) {
		t.Fatalf("Close: %v, want ErrCloseTimeout naming both secrets", err)
	}
	if again := c.Close(); !errors.Is(again, ErrCloseTimeout) {
		t.Errorf("second Close: %v", again)
	}
	select {
	case <-c.drained:
		t.Fatal("drained while the source still holds the calls")
	default:
	}
	close(src.release) // the user's source returns at last
	<-c.drained
	wg.Wait()
	if _, err := c.GetSecret(context.Background(), "db/a"); !errors.Is(err, ErrClosed) {
		t.Errorf("after Close: %v", err)
	}
}

// TestCloseWithinTheTimeoutReturnsNil: a source that honours its context
// lets Close finish cleanly.
func TestCloseWithinTheTimeoutReturnsNil(t *testing.T) {
	src := newFakeSource(nil)
	src.gate = make(chan struct{})
	src.started = make(chan struct{}, 1)
	c, err := New(src, WithCloseTimeout(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		_, _ = c.GetSecret(context.Background(), "db")
	}()
	<-src.started
	if err := c.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	<-done
}
