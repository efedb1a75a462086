package cache

// The in-place retries of a cold fetch: a secret with nothing to serve whose
// fetch fails with a retryable error is fetched again, under the backoff and
// the rate limit, while a GetSecret caller waits (fetchRetrying, onFailure).

import (
	"context"
	"log/slog"
	"time"
)

// coldRetry is the plan of a flight that retries in place: wait delay, and
// if the retry is abandoned, hold the error for callers until hold.
type coldRetry struct {
	delay    time.Duration
	hold     time.Time
	gone     <-chan struct{} // closed when the last waiting caller leaves
	failures int             // the slot's failure count it was planned at
}

// retryWait waits out the backoff delay of r, then a token of the secret's
// rate limit, on the cache's clock. It reports false, having stopped its
// timers and returned any token it reserved, if the fetch context ends (fetch
// timeout or Close), no GetSecret caller is left waiting, or the rate limit
// would push the retry past deadline.
func (c *Cache) retryWait(ctx context.Context, s *slot, r *coldRetry, deadline time.Time) bool {
	gone := r.gone
	if !c.waitWhileWanted(ctx, s, r.delay, &gone) {
		return false
	}
	now := c.cfg.clock.Now()
	d, res := s.limiter.reserve(now.Sub(c.epoch), c.cfg.limitEvery, c.cfg.limitBurst)
	if d <= 0 {
		return true
	}
	if now.Add(d).After(deadline) || !c.waitWhileWanted(ctx, s, d, &gone) {
		s.limiter.cancel(res, c.cfg.limitEvery)
		return false
	}
	return true
}

// waitWhileWanted waits d on the cache's clock; it stops early (false) when
// ctx ends or the last GetSecret caller waiting for s leaves. *gone is the
// slot's noWaiters channel, updated when callers came and went meanwhile.
func (c *Cache) waitWhileWanted(ctx context.Context, s *slot, d time.Duration, gone *<-chan struct{}) bool {
	ready := make(chan struct{})
	t := c.cfg.clock.AfterFunc(d, func() { close(ready) })
	for {
		select {
		case <-ready:
			return true
		case <-ctx.Done():
			t.Stop()
			return false
		case <-*gone:
			s.mu.Lock()
			n, next := s.waiters, s.noWaiters
			s.mu.Unlock()
			if n == 0 {
				t.Stop()
				return false
			}
			*gone = next // the last caller left, but others came since
		}
	}
}

// stopRetrying ends the in-flight retries of a secret with no value: callers
// get the last error without the source being asked until r.hold (unless
// something else fetched the secret meanwhile).
func (c *Cache) stopRetrying(s *slot, r *coldRetry) {
	s.mu.Lock()
	if s.closed || s.failures != r.failures {
		s.mu.Unlock()
		return
	}
	if e := s.cur.Load(); e == nil || e.secret == nil {
		s.holdUntil = r.hold
		c.armDropLocked(s)
	}
	s.mu.Unlock()
	c.log.LogAttrs(c.ctx, slog.LevelDebug, "cache: stopped retrying the fetch of a secret with no value",
		slog.String("secret", s.name), slog.Time("error_held_until", r.hold))
}
