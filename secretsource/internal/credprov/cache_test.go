package credprov

import (
	"errors"
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
