package cache

import (
	"sync"
	"sync/atomic"
	"testing"
)

func TestInvalidate(t *testing.T) {
	t.Run("other version: no-op", func(t *testing.T) {
		src := newFakeSource(nil)
		c := newTestCache(t, src)
		mustGet(t, c, "db")
		if c.Invalidate("db", "v0") || c.Invalidate("unknown", "v1") || c.Invalidate("db", "") {
			t.Error("Invalidate acted on a version that is not cached")
		}
		if src.Calls() != 1 {
			t.Error("fetched")
		}
	})
	t.Run("storm of 500 on one version: one fetch", func(t *testing.T) {
		src := newFakeSource(nil)
		c := newTestCache(t, src)
		mustGet(t, c, "db")
		src.rotate("db")
		src.gate = make(chan struct{})
		var wg sync.WaitGroup
		var acted atomic.Int32
		for range 500 {
			wg.Go(func() {
				if c.Invalidate("db", "v1") {
					acted.Add(1)
				}
			})
		}
		wg.Wait()
		close(src.gate)
		s := mustGet(t, c, "db") // waits for the refresh
		if s.VersionID() != "v2" {
			t.Fatalf("after invalidation got %s", s.VersionID())
		}
		if n := src.Calls(); n != 2 {
			t.Errorf("source calls = %d, want 2 (warm-up + one refresh)", n)
		}
		if acted.Load() == 0 {
			t.Error("no Invalidate acted")
		}
		if c.Invalidate("db", "v1") {
			t.Error("Invalidate of the replaced version acted")
		}
	})
	t.Run("failed refresh serves the old value stale", func(t *testing.T) {
		src := newFakeSource(nil)
		c := newTestCache(t, src)
		mustGet(t, c, "db")
		src.setErr(errUnavailable)
		if !c.Invalidate("db", "v1") {
			t.Fatal("did not act")
		}
		if s := mustGet(t, c, "db"); s.VersionID() != "v1" {
			t.Fatalf("got %v", s)
		}
		if info, _ := c.Info("db"); !info.Stale || !info.Serving {
			t.Errorf("info %+v", info)
		}
	})
}
