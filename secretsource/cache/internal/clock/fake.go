package clock

import (
	"container/heap"
	"sync"
	"time"
)

// Fake is a manual clock for tests. Time moves only with Advance, which runs
// the functions that fell due, in order of due time, in the caller's goroutine.
// A function scheduled with a non-positive delay runs on the next Advance
// (Advance(0) included). Timers are kept in a heap, so a test can run
// hundreds of thousands of them (a simulated fleet) in seconds.
type Fake struct {
	mu     sync.Mutex
	now    time.Time
	seq    int
	timers timerHeap
	// added is closed and replaced each time a timer is scheduled, so tests can
	// wait for a goroutine to reach a timer.
	added chan struct{}
}

type fakeTimer struct {
	c    *Fake
	when time.Time
	seq  int
	f    func()
	done bool
	idx  int // position in the heap
}

// timerHeap orders timers by due time, then by the order they were made.
type timerHeap []*fakeTimer

func (h timerHeap) Len() int { return len(h) }
func (h timerHeap) Less(i, j int) bool {
	if !h[i].when.Equal(h[j].when) {
		return h[i].when.Before(h[j].when)
	}
	return h[i].seq < h[j].seq
}
func (h timerHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].idx, h[j].idx = i, j
}
func (h *timerHeap) Push(x any) {
	t := x.(*fakeTimer)
	t.idx = len(*h)
	*h = append(*h, t)
}
func (h *timerHeap) Pop() any {
	old := *h
	t := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	return t
}

// NewFake returns a fake clock set to start.
func NewFake(start time.Time) *Fake {
	return &Fake{now: start, added: make(chan struct{})}
}

// Now returns the fake time.
func (c *Fake) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// AfterFunc schedules f at Now()+d.
func (c *Fake) AfterFunc(d time.Duration, f func()) Timer {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.seq++
	t := &fakeTimer{c: c, when: c.now.Add(d), seq: c.seq, f: f}
	heap.Push(&c.timers, t)
	close(c.added)
	c.added = make(chan struct{})
	return t
}

// Stop cancels the timer.
func (t *fakeTimer) Stop() bool {
	t.c.mu.Lock()
	defer t.c.mu.Unlock()
	if t.done {
		return false
	}
	t.done = true
	heap.Remove(&t.c.timers, t.idx)
	return true
}

// Advance moves time forward by d, running every timer that falls due (and
// those they schedule, if due too) at its own due time.
func (c *Fake) Advance(d time.Duration) {
	c.mu.Lock()
	end := c.now.Add(d)
	c.mu.Unlock()
	for {
		c.mu.Lock()
		if len(c.timers) == 0 || c.timers[0].when.After(end) {
			c.now = end
			c.mu.Unlock()
			return
		}
		t := heap.Pop(&c.timers).(*fakeTimer)
		t.done = true
		if t.when.After(c.now) {
			c.now = t.when
		}
		c.mu.Unlock()
		t.f()
	}
}

// NextDue returns the delay until the earliest pending timer, and false when
// none is pending.
func (c *Fake) NextDue() (time.Duration, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.timers) == 0 {
		return 0, false
	}
	return c.timers[0].when.Sub(c.now), true
}

// Pending returns how many timers are scheduled.
func (c *Fake) Pending() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.timers)
}

// Added returns a channel closed the next time a timer is scheduled.
func (c *Fake) Added() <-chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.added
}
