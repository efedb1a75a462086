package cache

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/kmsdb/kmsdb/secretsource"
	"github.com/kmsdb/kmsdb/secretsource/cache/internal/clock"
)

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
