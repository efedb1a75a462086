// Package cache keeps KMS secrets in memory, refreshes them before they are
// due, and keeps serving them when KMS fails. A *Cache is itself a
// secretsource.Source (and VersionSource), so anything that takes a source
// takes a cache.
//
//	src, _ := kms.New(kms.Config{...})
//	c, err := cache.New(src)
//	defer c.Close()
//	s, err := c.GetSecret(ctx, "db-secret")
//
// # Hot path
//
// A warm GetSecret is one atomic load of the slot table (an open-addressing
// hash table of atomic cells), a probe of it, then one atomic load of the
// secret's immutable entry: no lock, no allocation, no parsing, no clock
// read. Secrets are immutable, so every caller gets the same pointer safely.
// Adding a secret to the table costs O(1) (amortized), so reading N distinct
// secrets costs O(N); BenchmarkLookup and BenchmarkColdDistinct show both.
//
// # Cold path
//
// Concurrent callers of a secret that is not cached share one fetch
// (golang.org/x/sync/singleflight). The fetch runs on a context that keeps the
// first caller's values but not its cancellation, bounded by the fetch timeout
// (WithFetchTimeout, 30 s) and by Close; each caller's own context bounds only
// its own wait.
//
// A cold fetch rides out a transient failure (throttling, unavailable,
// network, timeout: secretsource.IsRetryable) instead of handing it to the
// caller at once: it waits the Backoff delay (full jitter) and a token of the
// secret's rate limit, both on the cache's clock, and fetches again, in place,
// for as long as at least one GetSecret caller is still waiting and the next
// attempt starts within the fetch timeout. Callers arriving meanwhile join it.
// An unclassified error (secretsource.KindUnknown) is retried once. A
// permanent error (not found, access denied, bad credentials) ends the fetch at
// once. Every attempt is reported through the RefreshFailed hook and the log.
// Close stops a fetch waiting to retry, with its timers; its callers get
// ErrClosed.
//
// # Negative cache (error hold)
//
// A caller of a secret with no value to serve gets the last error back,
// without the source being asked again, for WithErrorHold (30 s by default)
// after a permanent error, and after a retryable one only once the retries
// above are over (the callers left, or the fetch timeout came), then for the
// backoff delay the cache drew next, at most WithErrorHold (so a new fetch
// comes no sooner than the backoff allows, unless the hold is set shorter).
// While a cold fetch is still
// retrying nothing is held: new callers join it. A secret evicted for
// staleness holds its error until its next background retry. Refresh ignores
// the hold.
//
// Once its hold has ended, a name with nothing to serve (one that does not
// exist, or a secret evicted whose retries failed) is forgotten, unless a
// caller or a fetch is still at it: the next caller starts afresh, as on a
// first call. So a stream of names that do not exist costs memory only for
// those within their hold (TestMissingNamesCostNothing); a cached secret
// costs about 0.9 KB of heap, the secret itself included (TestHeapPerSecret).
//
// # Refresh ahead
//
// After each fetch the RefreshPolicy schedules the next one in the
// background. The default, RotationAwareTTL, refreshes at a random point
// between 98% and 100% of the TTL, and shortly after the secret's
// NextRotationDate when that comes first (30 s plus up to 30 s of jitter, then
// polling at that pace for up to 15 minutes while the rotation is late). A
// NextRotationDate beyond the TTL (9999-12-31 included) leaves the TTL in
// charge.
//
// A fleet of processes fetches a secret at about the same instant on four
// occasions: when it starts (or starts warm from a Store), when the secret
// changes (every process sees the rotation, or the rejected password, within
// the same minute), and when KMS answers again after failing. After those the
// cache draws the next refresh anywhere in the interval the policy allows,
// (0, TTL] instead of [98%, 100%]: the fleet is then spread evenly over one
// TTL, and the small jitter keeps it so at a cost of 1% more calls than one
// per TTL. The 20% jitter used before spread a synchronized fleet only slowly
// (500 processes started together, TTL 3 s: 4.6x the even rate of calls in
// the busiest 100 ms after 30 TTLs, where it is now 1.3x) and cost 11% more
// calls; the spread costs about one call per secret per occasion, and every
// refresh still comes within one TTL of the last, so a rotation reaches every
// process within one TTL (TestFleetSpreadsRefreshes). The spread applies
// whatever the RefreshPolicy.
//
// The default TTL is 5 minutes. Rotations on KMS's schedule are picked up by
// the rotation-aware part within about a minute, and a database that rejects a
// password triggers Invalidate at once, so the TTL only bounds how long a
// change made outside the schedule (RotateSecret, PutSecretValue by hand) goes
// unseen by code that never reports a rejection. Alibaba's client uses 1 hour,
// which is too long for that case; at 5 minutes a process with 10 secrets
// makes 2 calls a minute, and a fleet of 1,000 such processes about 33 calls
// a second spread evenly, far below KMS's request quotas.
//
// # Stale if error, backoff, rate limit
//
// A failed refresh never replaces a good value: callers keep getting it, the
// ServingStale hook and Info report how old it is, and it is evicted (Evicted
// hook) only once no refresh has succeeded for the maximum staleness (24 h by
// default, WithMaxStaleness). Retryable failures (secretsource.IsRetryable)
// are retried in the background with exponential backoff and full jitter
// (ExponentialBackoff: uniform in [0, min(5 min, 1 s·2^(n-1)))); permanent
// ones (not found, access denied, bad credentials) are reported at once
// through the hooks and retried only at the next scheduled refresh. The
// failure count, and with it the backoff, runs on across cold attempts, stale
// refreshes and retries until a fetch succeeds.
//
// Every fetch of a secret, cold or scheduled, a retry, forced or caused by
// Invalidate, takes a token from one per-secret token bucket (one per second
// after a burst of 3 by default, WithRefreshLimit; 8 bytes in the secret's
// slot, checked against golang.org/x/time/rate in the tests). That limit is
// also the hard floor under the jittered backoff: over any period T a secret
// is fetched at most burst + T/every times. The burst is 3 so that a
// connector whose every password is refused (the database changed before
// the secret) can refresh at once, 0.3 s and 0.65 s later without waiting
// for a token: a secret that lags the database by up to 0.65 s then costs
// one wait of about 0.35 s, not 1 s. In a process's first such rotation the
// connector also fetches ACSPrevious once (it holds no older version), which
// takes one of the three tokens: the 0.65 s refresh then waits for a token
// until about 1 s after the first, and the rotation costs 4 calls.
//
// Nor does junk: whatever a Source returns, a secret without a version id or
// another secret's is a failed fetch of secretsource.KindInvalidAnswer (retryable), so the good
// value stays and is served stale like after any other failure. The sources
// of this module check their answers more closely (the stage or version asked for too).
//
// # Forced refresh
//
// Invalidate(name, rejectedVersion) acts only if the cached version is the
// rejected one, so N connections failing on one version cause one fetch.
// Refresh joins a fetch in progress and waits for the rate limit, so a broken
// database cannot turn into a KMS storm.
//
// # Close
//
// Close cancels the context of every fetch in progress and waits for them,
// at most WithCloseTimeout (5 s) in real time. A Source that ignores its
// context cannot make Close hang: Close then returns an error wrapping
// ErrCloseTimeout that names the secrets still inside the Source; those
// calls end, their results ignored, whenever the Source returns.
//
// # Secrets stay secret
//
// Logs, hook events, Info, errors made by the cache and String never carry a
// secret value: they name the secret and its version id. Errors from the
// source are passed on as they are, so a Source must keep values out of its
// errors, as secretsource.Error does. The FileStore never puts file contents
// in its errors.
//
// # Plug-in points
//
// Store (none by default: a cache without one loads nothing, saves nothing
// and starts no goroutine for it; FileStore encrypts with AES-GCM for
// restarts while KMS is down, in a directory private to the process's user,
// which it checks as ssh checks ~/.ssh), RefreshPolicy, Backoff, Hooks and a
// *slog.Logger (quiet by default; nothing is logged on the hot path). Hook
// events say why the cache fetched (a Reason: ReasonCold, ReasonScheduled,
// ReasonForced, ReasonInvalidated, ReasonRetry, ReasonWarmStart, and
// ReasonVersion for GetSecretVersion).
package cache
