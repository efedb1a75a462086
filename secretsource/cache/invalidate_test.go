package cache

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kmsdb/kmsdb/secretsource"
	"github.com/kmsdb/kmsdb/secretsource/cache/internal/clock"
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

func TestGetSecretVersion(t *testing.T) {
	fc := clock.NewFake(t0)
	src := newFakeSource(fc)
	c := newTestCache(t, src, withClock(fc), withRand(constRand(0.5)), WithRefreshLimit(time.Second, 10))
	ctx := context.Background()
	mustGet(t, c, "db")
	src.rotate("db")
	if _, err := c.Refresh(ctx, "db"); err != nil {
		t.Fatal(err)
	}
	prev := secretsource.VersionRef{Stage: secretsource.StagePrevious}
	p, err := c.GetSecretVersion(ctx, "db", prev)
	if err != nil || p.VersionID() != "v1" || !p.HasStage(secretsource.StagePrevious) {
		t.Fatalf("ACSPrevious = %v, %v", p, err)
	}
	if _, err := c.GetSecretVersion(ctx, "db", prev); err != nil || src.VCalls() != 1 {
		t.Fatalf("second ACSPrevious read: %v, version calls %d", err, src.VCalls())
	}
	// The current version by stage or id comes from the main entry.
	for _, ref := range []secretsource.VersionRef{{}, {Stage: secretsource.StageCurrent}, {VersionID: "v2"}} {
		if s, err := c.GetSecretVersion(ctx, "db", ref); err != nil || s.VersionID() != "v2" {
			t.Errorf("%+v: %v, %v", ref, s, err)
		}
	}
	// Invalidating the previous version drops it.
	if !c.Invalidate("db", "v1") {
		t.Error("Invalidate of the cached ACSPrevious did not act")
	}
	if _, err := c.GetSecretVersion(ctx, "db", prev); err != nil || src.VCalls() != 2 {
		t.Fatalf("after Invalidate: %v, version calls %d", err, src.VCalls())
	}
	// A rotation seen by a refresh drops stage entries.
	src.rotate("db")
	fc.Advance(5 * time.Minute)
	if p, err := c.GetSecretVersion(ctx, "db", prev); err != nil || p.VersionID() != "v2" || src.VCalls() != 3 {
		t.Fatalf("after rotation: %v, %v, version calls %d", p, err, src.VCalls())
	}
	// A source without versions.
	plain := newTestCache(t, secretsource.SourceFunc(src.GetSecret))
	if _, err := plain.GetSecretVersion(ctx, "db", prev); !errors.Is(err, ErrVersionsUnsupported) {
		t.Errorf("err = %v, want ErrVersionsUnsupported", err)
	}
}
