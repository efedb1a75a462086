package credprov

import (
	"errors"
	"sync"
	"testing"
	"time"
)

// TestCachedKeepsUsableSessionOnFailure: a refresh that fails while the
// session still has minutes left hands out that session (STS briefly down
// must not fail every KMS request), asks again only after retryPause, and
// returns the error once the session is about to expire.
func TestCachedKeepsUsableSessionOnFailure(t *testing.T) {
	t0 := time.Date(2026, 11, 30, 0, 0, 0, 0, time.UTC)
	now := t0
	calls, fail := 0, false
	c := newCached(func() (session, error) {
		calls++
		if fail {
			return session{}, errors.New("sts down")
		}
		return session{accessKeyID: "STS.k" + string(rune('0'+calls)), expires: now.Add(time.Hour)}, nil
	})
	c.now = func() time.Time { return now }

	first, err := c.get()
	if err != nil || calls != 1 {
		t.Fatalf("first get: %v, %d calls", err, calls)
	}
	fail = true
	now = t0.Add(time.Hour - 170*time.Second) // inside refreshBefore: a refresh is due
	got, err := c.get()
	if err != nil || got != first || calls != 2 {
		t.Fatalf("failed refresh: got %q, %v, %d calls; want the cached session", got.accessKeyID, err, calls)
	}
	now = now.Add(retryPause / 2)
	if got, err = c.get(); err != nil || got != first || calls != 2 {
		t.Fatalf("within retryPause: %v, %d calls; want the cached session and no new fetch", err, calls)
	}
	now = now.Add(retryPause)
	if _, err = c.get(); err != nil || calls != 3 {
		t.Fatalf("after retryPause: %v, %d calls; want a new fetch", err, calls)
	}
	now = t0.Add(time.Hour - keepUsable + time.Second) // about to expire: no longer handed out
	if _, err = c.get(); err == nil || calls != 4 {
		t.Fatalf("expiring session: err %v, %d calls; want the fetch's error", err, calls)
	}
	fail = false
	got, err = c.get()
	if err != nil || got == first || calls != 5 {
		t.Fatalf("recovered: %q, %v, %d calls", got.accessKeyID, err, calls)
	}
}

// TestCachedRefreshDoesNotBlockUsable: while a refresh hangs (a blackholed
// STS endpoint), another caller gets the usable session at once; with no
// usable session, callers wait for the one fetch under way and share it.
func TestCachedRefreshDoesNotBlockUsable(t *testing.T) {
	t0 := time.Date(2026, 11, 30, 0, 0, 0, 0, time.UTC)
	var mu sync.Mutex
	now := t0
	entered := make(chan struct{}, 4)
	release := make(chan struct{})
	fetches := 0
	c := newCached(func() (session, error) {
		mu.Lock()
		fetches++
		n := fetches
		mu.Unlock()
		if n > 1 {
			entered <- struct{}{}
			<-release
		}
		return session{accessKeyID: "STS.k" + string(rune('0'+n)), expires: t0.Add(time.Hour)}, nil
	})
	c.now = func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	first, err := c.get()
	if err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	now = t0.Add(time.Hour - refreshBefore/2) // a refresh is due; the session is usable
	mu.Unlock()

	refreshed := make(chan session)
	go func() {
		s, _ := c.get()
		refreshed <- s
	}()
	<-entered // the refresh is in fetch, blocked
	// This call must return while the fetch is blocked: it would deadlock
	// the test (fetch waits for release, sent after it) if it waited.
	got, err := c.get()
	if err != nil || got != first {
		t.Fatalf("during the refresh: %q, %v; want the held session at once", got.accessKeyID, err)
	}
	close(release)
	if s := <-refreshed; s.accessKeyID != "STS.k2" {
		t.Fatalf("refresh got %q", s.accessKeyID)
	}
	mu.Lock()
	defer mu.Unlock()
	if fetches != 2 {
		t.Errorf("%d fetches, want 2", fetches)
	}
}

// TestCachedWaitsWithoutUsable: with no usable session, concurrent callers
// wait for one fetch and share its result.
func TestCachedWaitsWithoutUsable(t *testing.T) {
	release := make(chan struct{})
	entered := make(chan struct{}, 8)
	var mu sync.Mutex
	fetches := 0
	c := newCached(func() (session, error) {
		mu.Lock()
		fetches++
		mu.Unlock()
		entered <- struct{}{}
		<-release
		return session{accessKeyID: "STS.only", expires: time.Now().Add(time.Hour)}, nil
	})
	var wg sync.WaitGroup
	results := make(chan session, 3)
	for range 3 {
		wg.Go(func() {
			s, err := c.get()
			if err != nil {
				t.Error(err)
			}
			results <- s
		})
	}
	<-entered
	close(release)
	wg.Wait()
	close(results)
	for s := range results {
		if s.accessKeyID != "STS.only" {
			t.Errorf("got %q", s.accessKeyID)
		}
	}
	if fetches != 1 {
		t.Errorf("%d fetches, want 1", fetches)
	}
}
