package cache

import (
	"context"
	"testing"
	"time"
)

// TestReplacedKeepsTheOldCurrent: after a refresh brings a new version, the
// cache still holds the one it replaced (the password a database that has not
// been changed yet accepts), without any call to the source; a refresh that
// brings the same version, a failed refresh and Invalidate keep it.
func TestReplacedKeepsTheOldCurrent(t *testing.T) {
	src := newFakeSource(nil)
	c := newTestCache(t, src, WithRefreshLimit(time.Microsecond, 100))
	ctx := context.Background()
	if r := c.Replaced("db"); r != nil {
		t.Fatalf("Replaced of an unknown secret = %v, want nil", r.VersionID())
	}
	v1 := mustGet(t, c, "db")
	if r := c.Replaced("db"); r != nil {
		t.Fatalf("Replaced after the first fetch = %v, want nil", r.VersionID())
	}
	src.rotate("db")
	if _, err := c.Refresh(ctx, "db"); err != nil {
		t.Fatal(err)
	}
	calls := src.Calls()
	check := func(when, want string) {
		t.Helper()
		r := c.Replaced("db")
		if r == nil || r.VersionID() != want {
			t.Fatalf("%s: Replaced = %v, want %s", when, r, want)
		}
	}
	check("after the rotation", v1.VersionID())
	if got := c.Replaced("db"); got != v1 {
		t.Errorf("Replaced is not the very value the cache served")
	}
	if src.Calls() != calls || src.VCalls() != 0 {
		t.Errorf("Replaced called the source")
	}
	if _, err := c.Refresh(ctx, "db"); err != nil {
		t.Fatal(err)
	}
	check("after a refresh with the same version", "v1")
	src.setErr(errUnavailable)
	_, _ = c.Refresh(ctx, "db")
	check("after a failed refresh", "v1")
	src.setErr(nil)
	c.Invalidate("db", "v2")
	eventually(t, "the refresh Invalidate starts", func() bool { i, _ := c.Info("db"); return i.Serving })
	check("after Invalidate", "v1")
	src.rotate("db")
	if _, err := c.Refresh(ctx, "db"); err != nil {
		t.Fatal(err)
	}
	check("after the next rotation", "v2")
}
