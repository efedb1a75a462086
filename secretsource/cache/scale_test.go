package cache

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kmsdb/kmsdb/secretsource"
	"github.com/kmsdb/kmsdb/secretsource/cache/internal/clock"
)

// heapPerSecret returns the heap a cache keeps per secret once n distinct
// secrets are cached (the secrets themselves included, as the source built
// them), measured with runtime.MemStats around the reads.
func heapPerSecret(t testing.TB, n int, opts ...Option) float64 {
	t.Helper()
	names := make([]string, n)
	for i := range names {
		names[i] = fmt.Sprintf("tenant-%d/db-secret", i)
	}
	src := secretsource.SourceFunc(func(_ context.Context, name string) (*secretsource.Secret, error) {
		return benchSecret(name), nil
	})
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	c, err := New(src, opts...)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range names {
		if _, err := c.GetSecret(context.Background(), name); err != nil {
			t.Fatal(err)
		}
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	per := float64(after.HeapAlloc-before.HeapAlloc) / float64(n)
	runtime.KeepAlive(names)
	_ = c.Close()
	return per
}

// TestHeapPerSecret: a cached secret costs at most 1 KB of heap, the secret
// itself included (about 350 B of it here).
//
//	go test -run HeapPerSecret -v ./secretsource/cache/
func TestHeapPerSecret(t *testing.T) {
	per := heapPerSecret(t, 10000)
	t.Logf("heap per cached secret: %.0f B (10,000 secrets)", per)
	if per > 1024 {
		t.Errorf("heap per cached secret %.0f B, want at most 1 KB", per)
	}
}

// TestMissingNamesCostNothing: 20,000 distinct names that do not exist are
// asked for once each. Each error is held (the next caller of that name gets
// it without KMS being asked) for the error hold; once the hold has ended the
// cache keeps nothing of them: no slot, no timer, and the heap is back to
// what it was (within 16 B a name: the fake clock's heap keeps the capacity
// its 20,000 timers needed, 8 B each). Before slots were dropped, each name
// kept ~600 B for ever.
//
//	go test -run MissingNames -v ./secretsource/cache/
func TestMissingNamesCostNothing(t *testing.T) {
	const n = 20000
	fc := clock.NewFake(t0)
	src := newFakeSource(nil) // no clock: it keeps no log of call times
	src.setErr(errNotFound)
	c := newTestCache(t, src, withClock(fc))
	slots := func() int { c.mu.Lock(); defer c.mu.Unlock(); return c.slots.Load().live }
	ctx := context.Background()
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	for i := range n {
		if _, err := c.GetSecret(ctx, fmt.Sprintf("missing-%d", i)); !errors.Is(err, secretsource.ErrNotFound) {
			t.Fatalf("GetSecret of a missing name: %v", err)
		}
	}
	if got := slots(); got != n {
		t.Fatalf("%d slots while the errors are held, want %d", got, n)
	}
	if _, err := c.GetSecret(ctx, "missing-7"); !errors.Is(err, secretsource.ErrNotFound) || src.Calls() != n {
		t.Fatalf("a held name asked again: %v, %d calls for %d names", err, src.Calls(), n)
	}
	fc.Advance(DefaultErrorHold)
	if got, pending := slots(), fc.Pending(); got != 0 || pending != 0 {
		t.Errorf("after the hold: %d slots, %d timers pending, want none", got, pending)
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	kept := int64(after.HeapAlloc) - int64(before.HeapAlloc)
	t.Logf("heap kept after the hold of %d missing names: %d B (%.1f B a name)", n, kept, float64(kept)/n)
	if kept > 16*n {
		t.Errorf("%d B kept for %d names that do not exist", kept, n)
	}
	// The name is asked again afresh, and a name that appeared meanwhile is served.
	src.setErr(nil)
	if s, err := c.GetSecret(ctx, "missing-7"); err != nil || s.VersionID() != "v1" {
		t.Fatalf("after the hold: %v, %v", s, err)
	}
	if got := slots(); got != 1 {
		t.Errorf("%d slots, want the one secret that exists", got)
	}
}

// TestDropRace: callers, Refresh and Invalidate on names that come and go
// (the source fails every other call, errors are not held) while the clock
// runs; slots are dropped and made again under them. Nothing may panic, leak
// (goleak) or leave a dropped slot in the table, and every name that exists
// is served in the end.
func TestDropRace(t *testing.T) {
	fc := clock.NewFake(t0)
	var calls atomic.Int64
	src := secretsource.SourceFunc(func(_ context.Context, name string) (*secretsource.Secret, error) {
		if calls.Add(1)%2 == 0 {
			return nil, errNotFound
		}
		return benchSecret(name), nil
	})
	c := newTestCache(t, src, withClock(fc), WithErrorHold(0), WithTTL(time.Second), WithRefreshLimit(time.Nanosecond, 1000))
	ctx := context.Background()
	stop := make(chan struct{})
	var clockDone sync.WaitGroup
	clockDone.Go(func() {
		for {
			select {
			case <-stop:
				return
			default:
				fc.Advance(100 * time.Millisecond)
				runtime.Gosched()
			}
		}
	})
	var wg sync.WaitGroup
	for g := range 50 {
		wg.Go(func() {
			for i := range 200 {
				name := fmt.Sprintf("n-%d", (g+i)%10)
				switch i % 4 {
				case 0:
					_, _ = c.Refresh(ctx, name)
				case 1:
					c.Invalidate(name, "v1")
				default:
					_, _ = c.GetSecret(ctx, name)
				}
			}
		})
	}
	wg.Wait()
	close(stop)
	clockDone.Wait()
	c.mu.Lock()
	c.slots.Load().each(func(s *slot) {
		s.mu.Lock()
		if s.closed {
			t.Errorf("dropped slot %s still in the table", s.name)
		}
		s.mu.Unlock()
	})
	c.mu.Unlock()
	for i := range 10 {
		name := fmt.Sprintf("n-%d", i)
		for {
			if _, err := c.GetSecret(ctx, name); err == nil {
				break
			}
		}
	}
}
