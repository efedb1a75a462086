package cache

import (
	"time"

	"github.com/kmsdb/kmsdb/secretsource"
)

// Defaults of the refresh schedule, the backoff and the forced-refresh rate
// limit. See the package documentation for why each was chosen.
const (
	DefaultTTL            = 5 * time.Minute
	DefaultTTLJitter      = 0.02
	DefaultRotationDelay  = 30 * time.Second
	DefaultRotationJitter = 30 * time.Second
	DefaultRotationWatch  = 15 * time.Minute
	DefaultMaxStaleness   = 24 * time.Hour
	DefaultBackoffBase    = time.Second
	DefaultBackoffMax     = 5 * time.Minute
	DefaultRefreshEvery   = time.Second
	DefaultRefreshBurst   = 3
	DefaultErrorHold      = 30 * time.Second
	DefaultFetchTimeout   = 30 * time.Second
	DefaultCloseTimeout   = 5 * time.Second
)

// RefreshPolicy decides when a secret that was just fetched is fetched again
// in the background. rnd returns a uniform number in [0, 1) from the cache's
// random source; use it for jitter so that tests stay exact.
type RefreshPolicy interface {
	NextRefresh(s *secretsource.Secret, now time.Time, rnd func() float64) time.Duration
}

// RotationAwareTTL is the default RefreshPolicy. A secret is refreshed ahead
// of its TTL, at a random point in the last Jitter fraction of it, so a fleet
// started together does not refresh together. When the secret announces its
// next rotation (NextRotationDate) and that comes sooner, it is refreshed
// RotationDelay plus up to RotationJitter after it; while a rotation is due but
// the secret still shows the old schedule (the rotation is late), it is polled
// at that same pace for up to RotationWatch. Zero fields take the defaults.
type RotationAwareTTL struct {
	TTL            time.Duration // refresh at the latest this long after a fetch (default 5 min)
	Jitter         float64       // fraction of TTL drawn off at random, 0..1 (default 0.02; see "Refresh ahead" in the package doc)
	RotationDelay  time.Duration // wait after NextRotationDate before fetching (default 30 s)
	RotationJitter time.Duration // random extra wait, uniform in [0, RotationJitter) (default 30 s)
	RotationWatch  time.Duration // how long to poll for a late rotation (default 15 min)
}

// NextRefresh implements RefreshPolicy.
func (p RotationAwareTTL) NextRefresh(s *secretsource.Secret, now time.Time, rnd func() float64) time.Duration {
	ttl, jit, rd, rj, rw := p.TTL, p.Jitter, p.RotationDelay, p.RotationJitter, p.RotationWatch
	if ttl <= 0 {
		ttl = DefaultTTL
	}
	if jit <= 0 || jit > 1 {
		jit = DefaultTTLJitter
	}
	if rd <= 0 {
		rd = DefaultRotationDelay
	}
	if rj <= 0 {
		rj = DefaultRotationJitter
	}
	if rw <= 0 {
		rw = DefaultRotationWatch
	}
	next := ttl - time.Duration(jit*rnd()*float64(ttl))
	if s == nil {
		return next
	}
	if nrd := s.NextRotationDate(); !nrd.IsZero() {
		var rot time.Duration
		switch {
		case nrd.After(now):
			// A rotation beyond the TTL changes nothing (the TTL comes first),
			// and adding to a far date (9999-12-31: nrd.Sub saturates) would
			// overflow into a negative delay, that is a refresh at once.
			until := nrd.Sub(now)
			if until >= next {
				return next
			}
			rot = until + rd + time.Duration(rnd()*float64(rj))
		case now.Sub(nrd) < rw: // rotation due but not visible yet: poll
			rot = rd + time.Duration(rnd()*float64(rj))
		default:
			return next
		}
		if rot < next {
			next = rot
		}
	}
	return next
}

// Backoff decides how long to wait before retrying a fetch that failed with a
// retryable error. attempt is 1 for the first retry. rnd returns a uniform
// number in [0, 1) from the cache's random source.
type Backoff interface {
	Delay(attempt int, rnd func() float64) time.Duration
}

// ExponentialBackoff is the default Backoff: exponential growth with full
// jitter, a delay drawn uniformly from [0, min(Max, Base·2^(attempt-1))).
// The per-secret rate limit (WithRefreshLimit) is the floor under it: however
// small the draw, a secret is never fetched more often than that limit allows.
// Zero fields take the defaults (Base 1 s, Max 5 min).
type ExponentialBackoff struct {
	Base time.Duration
	Max  time.Duration
}

// Ceiling returns the upper end of the jitter range for the given attempt.
func (b ExponentialBackoff) Ceiling(attempt int) time.Duration {
	base, maxd := b.Base, b.Max
	if base <= 0 {
		base = DefaultBackoffBase
	}
	if maxd <= 0 {
		maxd = DefaultBackoffMax
	}
	if attempt < 1 {
		attempt = 1
	}
	d := base
	for i := 1; i < attempt && d < maxd; i++ {
		d *= 2
	}
	return min(d, maxd)
}

// Delay implements Backoff.
func (b ExponentialBackoff) Delay(attempt int, rnd func() float64) time.Duration {
	return time.Duration(rnd() * float64(b.Ceiling(attempt)))
}
