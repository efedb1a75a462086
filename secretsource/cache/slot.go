package cache

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/kmsdb/kmsdb/secretsource"
)

type entryState uint8

const (
	stateFresh     entryState = iota // fetched, its refresh not yet failed
	stateStale                       // a refresh failed; served until the max staleness
	stateRejected                    // Invalidate named its version; callers wait for the refresh
	statePersisted                   // loaded from the Store; served only if the source fails
	stateEmpty                       // nothing to serve (never fetched, or evicted)
)

// entry is immutable once published in slot.cur.
type entry struct {
	secret    *secretsource.Secret
	fetchedAt time.Time
	serve     bool // the hot path may return secret
	state     entryState
	// replaced is the version this cache served as ACSCurrent before secret
	// (nil if none): during a rotation it is the password the database may
	// still have, at no KMS call (see Replaced).
	replaced *secretsource.Secret
}

// slot holds everything the cache knows of one secret name. It lives as long
// as the secret has a value to serve, someone waits for it or something is
// scheduled for it; a slot with nothing to serve is dropped when its error
// hold ends (armDropLocked), so names that do not exist cost nothing after.
type slot struct {
	name    string
	cur     atomic.Pointer[entry]
	limiter tokenBucket // shared by every fetch of this secret; on the cache's clock

	mu        sync.Mutex
	closed    bool   // Close ran, or the slot was dropped from the cache
	flights   int32  // fetches of this secret in progress (int32: packed with closed, the slot fits 256 B)
	gen       uint64 // generation of the refresh timer; stale callbacks compare it
	refresh   interface{ Stop() bool }
	refreshAt time.Time
	// expiry evicts a value once it exceeds the maximum staleness; it is
	// armed only while that can happen before the next refresh (a refresh
	// failed, a warm start, a TTL beyond the bound). For a slot with nothing
	// to serve it is the timer that drops the slot when its hold ends.
	expiry     interface{ Stop() bool }
	failures   int
	lastErr    error
	staleSince time.Time
	holdUntil  time.Time // a caller with nothing to serve gets lastErr until then
	versions   map[secretsource.VersionRef]*versionEntry

	// waiters counts GetSecret callers blocked on a fetch of this secret; a
	// fetch with nothing to serve retries retryable errors only while some
	// remain. noWaiters is closed when the count drops to zero (a new one is
	// made when it rises again).
	waiters   int
	noWaiters chan struct{}

	saveMu  sync.Mutex
	savedAt time.Time
}

func (c *Cache) newSlot(name string) *slot { return &slot{name: name} }

// addWaiter counts a GetSecret caller blocked on a fetch of s.
func (s *slot) addWaiter() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.waiters == 0 {
		s.noWaiters = make(chan struct{})
	}
	s.waiters++
}

// removeWaiter uncounts a caller; the last one out closes noWaiters, which
// stops the in-flight retries of a fetch nobody waits for any more, and drops
// the slot if it is left with nothing (see dropIfIdle).
func (c *Cache) removeWaiter(s *slot) {
	s.mu.Lock()
	s.waiters--
	last := s.waiters == 0
	if last {
		close(s.noWaiters)
		s.noWaiters = nil // a closed channel per idle secret is 96 bytes of heap
	}
	s.mu.Unlock()
	if last {
		c.dropIfIdle(s)
	}
}

// idleLocked reports whether s can be dropped: nothing to serve, nobody
// waiting, no fetch in progress, no error held, nothing scheduled, no other
// version cached. s.mu is held.
func (c *Cache) idleLocked(s *slot, now time.Time) bool {
	e := s.cur.Load()
	return !s.closed && (e == nil || e.secret == nil) && s.waiters == 0 && s.flights == 0 &&
		!now.Before(s.holdUntil) && (s.refresh == nil || !s.refreshAt.After(now)) && len(s.versions) == 0
}

// dropIfIdle removes s from the cache if it is idle: a name that does not
// exist (or a secret evicted and not fetched again) keeps nothing once its
// error hold has ended. The next caller of the name starts afresh, as on its
// first call. A caller still holding s finds it closed: its operations are
// harmless (nothing is stored or scheduled on a closed slot).
func (c *Cache) dropIfIdle(s *slot) {
	now := c.cfg.clock.Now()
	s.mu.Lock()
	idle := c.idleLocked(s, now)
	s.mu.Unlock()
	if !idle {
		return
	}
	c.mu.Lock() // lock order: c.mu, then s.mu
	defer c.mu.Unlock()
	s.mu.Lock()
	defer s.mu.Unlock()
	if c.closed || !c.idleLocked(s, now) {
		return
	}
	s.closed = true
	if s.refresh != nil {
		s.refresh.Stop()
	}
	if s.expiry != nil {
		s.expiry.Stop()
	}
	if t := c.slots.Load(); t.get(s.name) == s {
		if nt := t.remove(s); nt != t {
			c.slots.Store(nt)
		}
	}
}

// slotFor returns the slot of name, creating it.
func (c *Cache) slotFor(name string) (*slot, error) {
	if s := c.slots.Load().get(name); s != nil {
		return s, nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil, ErrClosed
	}
	t := c.slots.Load()
	if s := t.get(name); s != nil {
		return s, nil
	}
	if name == "" {
		return nil, &secretsource.Error{Kind: secretsource.KindConfig, Source: "cache", Message: "secret name is empty"}
	}
	s := c.newSlot(name)
	if nt := t.insert(s); nt != t {
		c.slots.Store(nt)
	}
	return s, nil
}
