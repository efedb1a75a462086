package cache

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"

	"github.com/kmsdb/kmsdb/secretsource"
	"github.com/kmsdb/kmsdb/secretsource/cache/internal/clock"
)

// closingSource is a fakeSource with a Close that counts its calls.
type closingSource struct {
	*fakeSource
	closes atomic.Int32
	err    error
}

func (s *closingSource) Close() error { s.closes.Add(1); return s.err }

// TestCloseClosesTheSource: a cache owns its source; closing the cache closes
// a source that is an io.Closer, once, after the cache's own work stopped. A
// source wrapped in secretsource.SourceFunc (how a source is shared) is not
// closed.
func TestCloseClosesTheSource(t *testing.T) {
	src := &closingSource{fakeSource: newFakeSource(clock.Real{})}
	c, err := New(src)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.GetSecret(context.Background(), "db"); err != nil {
		t.Fatal(err)
	}
	if n := src.closes.Load(); n != 0 {
		t.Fatalf("source closed %d times before the cache", n)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if n := src.closes.Load(); n != 1 {
		t.Errorf("source closed %d times, want once", n)
	}

	shared := &closingSource{fakeSource: newFakeSource(clock.Real{})}
	for range 2 {
		c, err := New(secretsource.SourceFunc(shared.GetSecret))
		if err != nil {
			t.Fatal(err)
		}
		if err := c.Close(); err != nil {
			t.Fatal(err)
		}
	}
	if n := shared.closes.Load(); n != 0 {
		t.Errorf("a source shared through SourceFunc was closed %d times", n)
	}

	failing := &closingSource{fakeSource: newFakeSource(clock.Real{}), err: errors.New("close failed")}
	c, err = New(failing)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Close(); !errors.Is(err, failing.err) {
		t.Errorf("Close = %v, want the source's close error", err)
	}
}
