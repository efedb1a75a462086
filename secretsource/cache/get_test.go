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
)

func TestGetSecretColdThenWarm(t *testing.T) {
	src := newFakeSource(nil)
	c := newTestCache(t, src)
	a := mustGet(t, c, "db")
	b := mustGet(t, c, "db")
	if a != b {
		t.Error("warm read returned a different pointer")
	}
	if a.Text() != "pw-1" || a.VersionID() != "v1" {
		t.Errorf("got %v", a)
	}
	if n := src.Calls(); n != 1 {
		t.Errorf("source calls = %d, want 1", n)
	}
	if _, err := c.GetSecret(context.Background(), ""); !errors.Is(err, secretsource.ErrConfig) {
		t.Errorf("empty name: err = %v, want ErrConfig", err)
	}
}

func TestHotPathDoesNotAllocate(t *testing.T) {
	c := newTestCache(t, newFakeSource(nil))
	mustGet(t, c, "db")
	ctx := context.Background()
	if n := testing.AllocsPerRun(1000, func() { _, _ = c.GetSecret(ctx, "db") }); n != 0 {
		t.Errorf("warm GetSecret allocates %v times per call, want 0", n)
	}
}

// TestHerd100 is the race test of the cold path: 100 goroutines, one fetch.
func TestHerd100(t *testing.T) {
	src := newFakeSource(nil)
	src.gate = make(chan struct{})
	c := newTestCache(t, src)
	var wg sync.WaitGroup
	var failed atomic.Int32
	got := make([]*secretsource.Secret, 100)
	for i := range 100 {
		wg.Go(func() {
			s, err := c.GetSecret(context.Background(), "db")
			if err != nil {
				failed.Add(1)
			}
			got[i] = s
		})
	}
	eventually(t, "the fetch to start", func() bool { return src.Calls() == 1 })
	time.Sleep(10 * time.Millisecond) // let the herd pile up on the flight (not an assert)
	close(src.gate)
	wg.Wait()
	if failed.Load() != 0 {
		t.Fatalf("%d callers failed", failed.Load())
	}
	if n := src.Calls(); n != 1 {
		t.Errorf("source calls = %d, want 1", n)
	}
	for _, s := range got {
		if s != got[0] {
			t.Fatal("callers got different pointers")
		}
	}
}

func TestCallerContextBoundsOnlyItsOwnWait(t *testing.T) {
	src := newFakeSource(nil)
	src.gate = make(chan struct{})
	c := newTestCache(t, src)
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { _, err := c.GetSecret(ctx, "db"); errc <- err }()
	eventually(t, "the fetch to start", func() bool { return src.Calls() == 1 })
	patient := make(chan *secretsource.Secret, 1)
	go func() { s, _ := c.GetSecret(context.Background(), "db"); patient <- s }()
	cancel()
	err := <-errc
	if !errors.Is(err, context.Canceled) || !strings.Contains(err.Error(), `"db"`) {
		t.Fatalf("impatient caller: err = %v, want context.Canceled naming the secret", err)
	}
	if secretsource.IsRetryable(err) {
		t.Error("a cancelled wait must not be retryable")
	}
	close(src.gate)
	if s := <-patient; s == nil || s.VersionID() != "v1" {
		t.Fatalf("patient caller got %v", s)
	}
	if n := src.Calls(); n != 1 {
		t.Errorf("source calls = %d, want 1 (the shared fetch was not cancelled)", n)
	}

	// A deadline is reported as a timeout.
	src2 := newFakeSource(nil)
	src2.gate = make(chan struct{})
	defer close(src2.gate)
	c2 := newTestCache(t, src2)
	dctx, dcancel := context.WithTimeout(context.Background(), 5*time.Millisecond)
	defer dcancel()
	if _, err := c2.GetSecret(dctx, "db"); !errors.Is(err, secretsource.ErrTimeout) || !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("deadline: err = %v, want ErrTimeout wrapping DeadlineExceeded", err)
	}
}
