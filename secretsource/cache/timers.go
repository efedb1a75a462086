package cache

import (
	"context"
	"log/slog"
	"time"

	"github.com/kmsdb/kmsdb/secretsource"
)

// armDropLocked drops s when its error hold ends, if it is idle by then (a
// caller or a fetch that comes meanwhile keeps it; the last one to leave
// checks again). It uses the expiry timer, which a slot with nothing to serve
// does not need. s.mu is held.
func (c *Cache) armDropLocked(s *slot) {
	if s.closed {
		return
	}
	if s.expiry != nil {
		s.expiry.Stop()
	}
	s.expiry = c.cfg.clock.AfterFunc(s.holdUntil.Sub(c.cfg.clock.Now()), func() {
		if c.enter() {
			defer c.wg.Done()
			c.dropIfIdle(s)
		}
	})
}

// waitToken takes a token of the secret's rate limit, waiting for it on the
// cache's clock.
func (c *Cache) waitToken(ctx context.Context, s *slot) error {
	d, r := s.limiter.reserve(c.sinceEpoch(), c.cfg.limitEvery, c.cfg.limitBurst)
	if d <= 0 {
		return nil
	}
	ready := make(chan struct{})
	t := c.cfg.clock.AfterFunc(d, func() { close(ready) })
	select {
	case <-ready:
		return nil
	case <-ctx.Done():
		t.Stop()
		s.limiter.cancel(r, c.cfg.limitEvery)
		return ctx.Err()
	}
}

// tryToken takes a token if one is available now; otherwise it returns how
// long until one is.
func (c *Cache) tryToken(s *slot) time.Duration {
	return s.limiter.take(c.sinceEpoch(), c.cfg.limitEvery, c.cfg.limitBurst)
}

// scheduleLocked (re)arms the refresh timer of s. s.mu is held.
func (c *Cache) scheduleLocked(s *slot, d time.Duration, reason Reason) {
	if s.closed {
		return
	}
	if s.refresh != nil {
		s.refresh.Stop()
	}
	s.gen++
	gen := s.gen
	s.refreshAt = c.cfg.clock.Now().Add(d)
	s.refresh = c.cfg.clock.AfterFunc(d, func() { c.onTimer(s, gen, reason) })
}

// onTimer runs a scheduled refresh or retry.
func (c *Cache) onTimer(s *slot, gen uint64, reason Reason) {
	if !c.enter() {
		return
	}
	defer c.wg.Done()
	s.mu.Lock()
	if s.closed || s.gen != gen {
		s.mu.Unlock()
		return
	}
	if d := c.tryToken(s); d > 0 { // the rate limit is shared with forced refreshes
		c.scheduleLocked(s, d, reason)
		s.mu.Unlock()
		return
	}
	s.mu.Unlock()
	ch := c.sf.DoChan(s.name, c.flight(context.Background(), s, fetch{kind: fetchTimer, reason: reason}))
	select {
	case <-ch:
	case <-c.ctx.Done():
	}
}

// armExpiryLocked evicts e when it exceeds the maximum staleness. s.mu is held.
func (c *Cache) armExpiryLocked(s *slot, e *entry) {
	if s.closed || e == nil || e.secret == nil {
		return
	}
	if s.expiry != nil {
		s.expiry.Stop()
	}
	d := e.fetchedAt.Add(c.cfg.maxStale).Sub(c.cfg.clock.Now())
	s.expiry = c.cfg.clock.AfterFunc(d, func() { c.onExpire(s, e.secret, e.fetchedAt) })
}

// onExpire evicts the value of s if it is still sec as fetched at fetchedAt:
// callers get an error until the next retry succeeds.
func (c *Cache) onExpire(s *slot, sec *secretsource.Secret, fetchedAt time.Time) {
	if !c.enter() {
		return
	}
	defer c.wg.Done()
	s.mu.Lock()
	cur := s.cur.Load()
	if s.closed || cur == nil || cur.secret != sec || !cur.fetchedAt.Equal(fetchedAt) {
		s.mu.Unlock()
		return
	}
	now := c.cfg.clock.Now()
	s.cur.Store(&entry{state: stateEmpty})
	if s.lastErr == nil {
		s.lastErr = &secretsource.Error{Kind: secretsource.KindUnavailable, Secret: s.name, Source: "cache",
			Message: "cached value exceeded the maximum staleness and could not be refreshed"}
	}
	s.holdUntil = s.refreshAt // callers get the error until the next retry
	s.mu.Unlock()

	c.unpersist(s)
	age := now.Sub(fetchedAt)
	c.log.LogAttrs(c.ctx, slog.LevelError, "cache: evicted secret", slog.String("secret", s.name),
		slog.String("version", sec.VersionID()), slog.Duration("age", age), slog.String("reason", "max staleness exceeded"))
	if h := c.cfg.hooks.Evicted; h != nil {
		h(c.ctx, EvictedEvent{Name: s.name, Version: sec.VersionID(), Age: age})
	}
}
