package cache

import (
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"time"

	"github.com/kmsdb/kmsdb/secretsource/cache/internal/clock"
)

// Option configures a Cache. Options that receive an invalid value make New
// return an error naming the option.
type Option func(*config)

type config struct {
	policy       RefreshPolicy
	backoff      Backoff
	maxStale     time.Duration
	errorHold    time.Duration
	fetchTimeout time.Duration
	closeWait    time.Duration
	limitEvery   time.Duration
	limitBurst   int
	store        Store
	hooks        Hooks
	logger       *slog.Logger
	clock        clock.Clock
	rnd          func() float64
	errs         []error
}

func defaultConfig() config {
	return config{
		policy:       RotationAwareTTL{},
		backoff:      ExponentialBackoff{},
		maxStale:     DefaultMaxStaleness,
		errorHold:    DefaultErrorHold,
		fetchTimeout: DefaultFetchTimeout,
		closeWait:    DefaultCloseTimeout,
		limitEvery:   DefaultRefreshEvery,
		limitBurst:   DefaultRefreshBurst,
		logger:       slog.New(slog.DiscardHandler),
		clock:        clock.Real{},
		rnd:          rand.Float64,
	}
}

func (c *config) fail(format string, args ...any) {
	c.errs = append(c.errs, fmt.Errorf("cache: "+format, args...))
}

func (c *config) err() error { return errors.Join(c.errs...) }

// WithTTL sets the TTL of the default refresh policy: every secret is fetched
// again at a random point between 98% and 100% of d after its last fetch
// (anywhere in d after a first fetch, a new version or a recovery; earlier if
// it rotates sooner). Default 5 minutes.
func WithTTL(d time.Duration) Option {
	return func(c *config) {
		if d <= 0 {
			c.fail("WithTTL: TTL must be positive, got %v", d)
			return
		}
		c.policy = RotationAwareTTL{TTL: d}
	}
}

// WithRefreshPolicy replaces the refresh policy (default RotationAwareTTL{}).
func WithRefreshPolicy(p RefreshPolicy) Option {
	return func(c *config) {
		if p == nil {
			c.fail("WithRefreshPolicy: policy is nil")
			return
		}
		c.policy = p
	}
}

// WithBackoff replaces the retry backoff (default ExponentialBackoff{}: full
// jitter, 1 s doubling up to 5 min).
func WithBackoff(b Backoff) Option {
	return func(c *config) {
		if b == nil {
			c.fail("WithBackoff: backoff is nil")
			return
		}
		c.backoff = b
	}
}

// WithMaxStaleness bounds how long a value is served after its last
// successful fetch when refreshes keep failing (default 24 h). Past the bound
// the value is evicted and callers get the fetch error.
func WithMaxStaleness(d time.Duration) Option {
	return func(c *config) {
		if d <= 0 {
			c.fail("WithMaxStaleness: bound must be positive, got %v", d)
			return
		}
		c.maxStale = d
	}
}

// WithErrorHold sets how long a permanent error (not found, access denied,
// bad credentials) of a secret with no value to serve is returned to callers
// without asking the source again (default 30 s). It also caps the hold of a
// retryable error, which starts only once a cold fetch has stopped retrying
// (see the package documentation); 0 disables holding. Refresh bypasses it.
func WithErrorHold(d time.Duration) Option {
	return func(c *config) {
		if d < 0 {
			c.fail("WithErrorHold: duration must not be negative, got %v", d)
			return
		}
		c.errorHold = d
	}
}

// WithFetchTimeout bounds one fetch from the source, whoever waits for it,
// including the retries of a cold fetch and their waits (default 30 s).
// Callers' contexts bound only their own wait.
func WithFetchTimeout(d time.Duration) Option {
	return func(c *config) {
		if d <= 0 {
			c.fail("WithFetchTimeout: timeout must be positive, got %v", d)
			return
		}
		c.fetchTimeout = d
	}
}

// WithCloseTimeout bounds how long Close waits, after cancelling them, for
// fetches still inside the Source (and Store or hook calls) to return
// (default 5 s, in real time). A Source that ignores its context cannot
// make Close hang: Close returns an error wrapping ErrCloseTimeout that names
// the secrets still being fetched, and those calls end, unobserved, whenever
// the Source returns.
func WithCloseTimeout(d time.Duration) Option {
	return func(c *config) {
		if d <= 0 {
			c.fail("WithCloseTimeout: timeout must be positive, got %v", d)
			return
		}
		c.closeWait = d
	}
}

// WithRefreshLimit sets the per-secret rate limit shared by every fetch of
// that secret: scheduled refreshes, retries, Invalidate and Refresh. At most
// burst fetches at once, then one per every (default one per second, burst 3).
func WithRefreshLimit(every time.Duration, burst int) Option {
	return func(c *config) {
		if every <= 0 || burst < 1 {
			c.fail("WithRefreshLimit: need every > 0 and burst >= 1, got %v and %d", every, burst)
			return
		}
		c.limitEvery, c.limitBurst = every, burst
	}
}

// WithStore sets where values are persisted for warm starts (default none:
// nothing is loaded, saved or deleted; use a FileStore for restarts without
// KMS, or any Store shared by caches built one after another in a process).
func WithStore(s Store) Option {
	return func(c *config) {
		if s == nil {
			c.fail("WithStore: store is nil")
			return
		}
		c.store = s
	}
}

// WithHooks sets callbacks for refreshes, failures, stale serving and evictions.
func WithHooks(h Hooks) Option { return func(c *config) { c.hooks = h } }

// WithLogger sets the logger (default: discard). The cache logs refreshes at
// Debug, failures and stale serving at Warn, evictions at Error; nothing on
// the hot path.
func WithLogger(l *slog.Logger) Option {
	return func(c *config) {
		if l == nil {
			c.fail("WithLogger: logger is nil")
			return
		}
		c.logger = l
	}
}

// withClock and withRand make time and randomness exact in tests.
func withClock(k clock.Clock) Option   { return func(c *config) { c.clock = k } }
func withRand(r func() float64) Option { return func(c *config) { c.rnd = r } }
