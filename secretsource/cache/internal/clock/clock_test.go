package clock

import (
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestFakeRunsTimersInOrder(t *testing.T) {
	start := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	c := NewFake(start)
	var got []string
	var at []time.Duration
	rec := func(name string) func() {
		return func() { got = append(got, name); at = append(at, c.Now().Sub(start)) }
	}
	c.AfterFunc(3*time.Second, rec("c"))
	c.AfterFunc(time.Second, func() {
		rec("a")()
		c.AfterFunc(time.Second, rec("b")) // scheduled from a timer, due before c
	})
	stopped := c.AfterFunc(2500*time.Millisecond, rec("never"))
	c.AfterFunc(0, rec("zero"))
	if !stopped.Stop() || stopped.Stop() {
		t.Error("Stop should succeed once")
	}
	if d, ok := c.NextDue(); !ok || d != 0 {
		t.Errorf("NextDue = %v, %v", d, ok)
	}
	c.Advance(5 * time.Second)
	want := []string{"zero", "a", "b", "c"}
	wantAt := []time.Duration{0, time.Second, 2 * time.Second, 3 * time.Second}
	if len(got) != len(want) {
		t.Fatalf("ran %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] || at[i] != wantAt[i] {
			t.Errorf("timer %d: %s at %v, want %s at %v", i, got[i], at[i], want[i], wantAt[i])
		}
	}
	if c.Now().Sub(start) != 5*time.Second || c.Pending() != 0 {
		t.Errorf("now %v, pending %d", c.Now().Sub(start), c.Pending())
	}
}

// TestFakeRace: 100 goroutines scheduling, stopping and advancing.
func TestFakeRace(t *testing.T) {
	c := NewFake(time.Unix(0, 0))
	var wg sync.WaitGroup
	var mu sync.Mutex
	fired, stopped := 0, 0
	for i := range 100 {
		wg.Go(func() {
			tm := c.AfterFunc(time.Duration(i)*time.Millisecond, func() { mu.Lock(); fired++; mu.Unlock() })
			// Another goroutine's Advance may fire this timer before Stop:
			// only a Stop that returned true keeps it from firing.
			if i%2 == 0 && tm.Stop() {
				mu.Lock()
				stopped++
				mu.Unlock()
			}
			c.Advance(time.Millisecond)
			_ = c.Now()
			_, _ = c.NextDue()
			_ = c.Added()
		})
	}
	wg.Wait()
	c.Advance(time.Second)
	mu.Lock()
	defer mu.Unlock()
	if stopped == 0 || fired != 100-stopped {
		t.Errorf("%d timers fired and %d were stopped, want the 100 split between them (at least one stopped)", fired, stopped)
	}
}

func TestFakeAdded(t *testing.T) {
	c := NewFake(time.Unix(0, 0))
	added := c.Added()
	c.AfterFunc(time.Second, func() {})
	select {
	case <-added:
	default:
		t.Error("Added not closed by AfterFunc")
	}
}

func TestReal(t *testing.T) {
	done := make(chan struct{})
	Real{}.AfterFunc(time.Millisecond, func() { close(done) })
	<-done
	if !(Real{}).AfterFunc(time.Hour, func() {}).Stop() {
		t.Error("Stop of a pending real timer")
	}
	if (Real{}).Now().IsZero() {
		t.Error("zero time")
	}
}
