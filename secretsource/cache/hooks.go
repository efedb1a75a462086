package cache

import "time"

// Hooks are called by the cache from its background work (never from the hot
// path of GetSecret). They run synchronously: keep them fast and do not call
// back into the cache from them. Any field may be nil. Events carry names and
// version ids, never secret values.
type Hooks struct {
	// Refreshed is called after every successful fetch.
	Refreshed func(RefreshedEvent)
	// RefreshFailed is called after every failed fetch.
	RefreshFailed func(RefreshFailedEvent)
	// ServingStale is called when a fetch failed and callers keep getting an
	// older value; Age says how old it is.
	ServingStale func(StaleEvent)
	// Evicted is called when a value stops being served (see EvictReason).
	Evicted func(EvictedEvent)
}

// RefreshedEvent describes a successful fetch.
type RefreshedEvent struct {
	Name        string
	Version     string
	Previous    string        // version served before, empty on a cold fetch
	Changed     bool          // Version differs from Previous
	Took        time.Duration // how long the fetch took
	NextRefresh time.Duration // when the next background refresh is due
	Reason      string        // "cold", "scheduled", "forced", "invalidated", "retry", "warm-start"
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
	Reason  string // what triggered the fetch, as in RefreshedEvent
}

// StaleEvent says callers are being served a value that could not be refreshed.
type StaleEvent struct {
	Name      string
	Version   string
	Age       time.Duration // time since the value was last fetched successfully
	ExpiresIn time.Duration // time left before it exceeds the maximum staleness
	Err       error         // the last fetch error
}

// EvictReason says why a value stopped being served.
type EvictReason string

// Reasons for eviction.
const (
	EvictMaxStaleness EvictReason = "max staleness exceeded" // no successful fetch for longer than the bound
)

// EvictedEvent says a value is no longer served.
type EvictedEvent struct {
	Name    string
	Version string
	Age     time.Duration
	Reason  EvictReason
}
