package cache

import (
	"context"
	"time"

	"github.com/kmsdb/kmsdb/secretsource"
)

// Hooks are called by the cache from its fetches and timers (never from the
// hot path of GetSecret). They run synchronously: keep them fast and do not
// call back into the cache from them. Any field may be nil. Events carry
// names, version ids and where a fetch went, never secret values.
//
// ctx is the context of the fetch the event ends: for a fetch a caller
// started (a GetSecret that found nothing to serve, Refresh,
// GetSecretVersion) it carries the values of that caller's context, such as
// its trace span, without its cancellation; callers arriving while a fetch
// runs share it, and its events carry the values of whoever started it (the
// first caller, or none for the cache's own). For the
// cache's own refreshes, retries and evictions it carries none. It may be
// done by the time of the call: use it for its values, not to start work.
type Hooks struct {
	// Refreshed is called after every successful fetch, of the current
	// version (GetSecret, Refresh, the refresh timer) or of another one
	// (GetSecretVersion: Reason is ReasonVersion).
	Refreshed func(ctx context.Context, e RefreshedEvent)
	// RefreshFailed is called after every failed fetch.
	RefreshFailed func(ctx context.Context, e RefreshFailedEvent)
	// ServingStale is called when a fetch failed and callers keep getting an
	// older value; Age says how old it is.
	ServingStale func(ctx context.Context, e StaleEvent)
	// Evicted is called when a value stops being served because it exceeded
	// the maximum staleness (WithMaxStaleness) without a successful refresh.
	Evicted func(ctx context.Context, e EvictedEvent)
}

// Reason says what made the cache fetch a secret; hook events and log lines
// carry it.
type Reason string

// Reasons of a fetch.
const (
	ReasonCold        Reason = "cold"        // a GetSecret caller found nothing to serve
	ReasonScheduled   Reason = "scheduled"   // the refresh policy's refresh ahead of expiry
	ReasonForced      Reason = "forced"      // Refresh
	ReasonInvalidated Reason = "invalidated" // Invalidate named the served version
	ReasonRetry       Reason = "retry"       // the background retry after a failed refresh of a served value
	ReasonWarmStart   Reason = "warm-start"  // the first fetch of a value loaded from the Store
	ReasonVersion     Reason = "version"     // GetSecretVersion asked for a version other than the current one (see VersionRef)
)

// RefreshedEvent describes a successful fetch. A fetch of another version
// than the current one (Reason ReasonVersion) leaves Previous, Changed and
// NextRefresh zero: it replaces nothing and schedules nothing.
type RefreshedEvent struct {
	Name        string
	Version     string
	Previous    string        // version served before, empty on a cold fetch
	Changed     bool          // Version differs from Previous
	Took        time.Duration // how long the fetch took
	NextRefresh time.Duration // when the next background refresh is due
	Reason      Reason        // what triggered the fetch
	// VersionRef is the version GetSecretVersion asked for when Reason is
	// ReasonVersion (zero otherwise).
	VersionRef secretsource.VersionRef
	// Origin is the source, region, endpoint and request id of the call
	// that answered (Secret.Origin; zero when the source does not say).
	Origin secretsource.Origin
}

// RefreshFailedEvent describes a failed fetch.
type RefreshFailedEvent struct {
	Name      string
	Err       error // a *secretsource.Error or a context error; never holds a secret value
	Retryable bool  // whether the error is retryable (secretsource.IsRetryable): retried with backoff
	Attempt   int   // consecutive failures so far, 1 for the first
	// RetryIn is when the next attempt is due: the background retry of a
	// secret being served, or the in-place retry of a cold fetch that callers
	// wait for; 0 when nothing is scheduled (a secret with nothing to serve
	// is fetched again by the next caller once its error hold has passed).
	RetryIn time.Duration
	Reason  Reason // what triggered the fetch, as in RefreshedEvent
	// VersionRef is the version GetSecretVersion asked for when Reason is
	// ReasonVersion (zero otherwise).
	VersionRef secretsource.VersionRef
	// Took is how long the failed fetch took; 0 when the source was not
	// asked (the wait for the refresh rate limit timed out).
	Took time.Duration
}

// StaleEvent says callers are being served a value that could not be refreshed.
type StaleEvent struct {
	Name      string
	Version   string
	Age       time.Duration // time since the value was last fetched successfully
	ExpiresIn time.Duration // time left before it exceeds the maximum staleness
	Err       error         // the last fetch error
}

// EvictedEvent says a value is no longer served: it exceeded the maximum
// staleness (WithMaxStaleness) without a successful refresh, the only reason
// the cache evicts a value.
type EvictedEvent struct {
	Name    string
	Version string
	Age     time.Duration // time since the value was last fetched successfully
}
