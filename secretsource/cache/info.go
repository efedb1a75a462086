package cache

import (
	"fmt"
	"time"
)

// EntryInfo describes the cached state of one secret, for metrics and
// health checks. It never holds the value.
type EntryInfo struct {
	Name        string
	Version     string        // the version served, empty if none
	Serving     bool          // GetSecret returns it without waiting
	FetchedAt   time.Time     // last successful fetch of Version
	Age         time.Duration // since FetchedAt
	Stale       bool          // the last refresh failed; Version is served stale
	StaleSince  time.Time     // first failure since the last success
	Failures    int           // consecutive failed fetches
	LastError   error         // the last fetch error, nil after a success
	NextRefresh time.Time     // next scheduled refresh or retry
}

// Info reports the cached state of a secret, and false if the cache does not
// know it (or is closed).
func (c *Cache) Info(name string) (EntryInfo, bool) {
	s := c.slots.Load().get(name)
	if s == nil {
		return EntryInfo{}, false
	}
	now := c.cfg.clock.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	info := EntryInfo{Name: name, StaleSince: s.staleSince, Failures: s.failures, LastError: s.lastErr, NextRefresh: s.refreshAt}
	if e := s.cur.Load(); e != nil && e.secret != nil {
		info.Version, info.Serving, info.FetchedAt = e.secret.VersionID(), e.serve, e.fetchedAt
		info.Age = now.Sub(e.fetchedAt)
		info.Stale = e.state == stateStale
	}
	return info, true
}

// String describes the cache without any secret: the number of secrets it knows.
func (c *Cache) String() string {
	c.mu.Lock()
	n := c.slots.Load().live
	c.mu.Unlock()
	return fmt.Sprintf("cache(secrets=%d)", n)
}

// GoString is the same as String, so %#v neither dumps (nor races on) the
// cache's internals.
func (c *Cache) GoString() string { return c.String() }

// Format makes every fmt verb print String: formatting a Cache never reads
// its internals without their locks.
func (c *Cache) Format(st fmt.State, _ rune) { _, _ = fmt.Fprint(st, c.String()) }
