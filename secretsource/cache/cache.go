package cache

import (
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"io"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/singleflight"

	"github.com/kmsdb/kmsdb/secretsource"
)

// ErrClosed is returned by every method of a Cache after Close.
var ErrClosed = errors.New("cache: closed")

// ErrCloseTimeout is wrapped by the error Close returns when fetches were
// still inside the Source (which ignored the cancellation of its context)
// when the close timeout passed (WithCloseTimeout).
var ErrCloseTimeout = errors.New("cache: Close timed out waiting for the source")

// ErrVersionsUnsupported is returned by GetSecretVersion for a version other
// than ACSCurrent when the source does not implement secretsource.VersionSource.
var ErrVersionsUnsupported = errors.New("cache: the source cannot fetch secret versions other than ACSCurrent")

// Compile-time checks: a Cache is itself a source, so layers above take either.
var (
	_ secretsource.Source        = (*Cache)(nil)
	_ secretsource.VersionSource = (*Cache)(nil)
)

// Fetch reasons, reported in hooks and logs.
const (
	reasonCold        = "cold"
	reasonScheduled   = "scheduled"
	reasonForced      = "forced"
	reasonInvalidated = "invalidated"
	reasonRetry       = "retry"
	reasonWarmStart   = "warm-start"
)

// Cache keeps secrets of a Source in memory and refreshes them ahead of time.
// It is safe for concurrent use; build one per process (or per source) and
// share it. See the package documentation for the behaviour.
type Cache struct {
	src  secretsource.Source
	vsrc secretsource.VersionSource // nil when src cannot fetch versions
	cfg  config
	log  *slog.Logger

	// slots indexes the slots by name (see slotTable): readers do one atomic
	// load and probe atomic cells, without locking or allocating. It is
	// replaced by an empty table on Close, so lookups after Close miss and
	// find the cache closed.
	slots atomic.Pointer[slotTable]

	mu     sync.Mutex // guards closed, writes to slots and wg.Add
	closed bool
	wg     sync.WaitGroup // background work and fetches in progress
	done   chan struct{}  // closed when Close has finished
	ctx    context.Context
	cancel context.CancelFunc

	// Close's bound (WithCloseTimeout).
	inSource map[string]int // secrets whose fetch is inside the Source; guarded by mu
	drained  chan struct{}  // closed when every background goroutine has ended
	closeErr error          // what the first Close returned

	sf    singleflight.Group
	epoch time.Time // origin of the rate limits' times (sinceEpoch)
}

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

// New returns a cache in front of src. It loads the Store (see WithStore) and
// schedules an immediate refresh of each persisted secret; it does not call
// the source itself. Close it to stop its background work.
//
// The cache owns src: when src implements io.Closer (as config.Load's
// source, kms.Source and dkms.Source do), Close closes it after the cache's
// own work stopped. To share one source between caches, or to keep it open
// after the cache closed, give each cache a wrapper without Close:
// secretsource.SourceFunc(src.GetSecret) (versions other than ACSCurrent are
// then not available through it). When New fails, src is left open.
func New(src secretsource.Source, opts ...Option) (*Cache, error) {
	if src == nil {
		return nil, errors.New("cache: New: source is nil")
	}
	cfg := defaultConfig()
	for _, o := range opts {
		if o != nil {
			o(&cfg)
		}
	}
	if err := cfg.err(); err != nil {
		return nil, err
	}
	c := &Cache{src: src, cfg: cfg, log: cfg.logger, done: make(chan struct{}), drained: make(chan struct{}),
		inSource: map[string]int{}, epoch: cfg.clock.Now()}
	c.vsrc, _ = src.(secretsource.VersionSource)
	c.ctx, c.cancel = context.WithCancel(context.Background())
	t := newSlotTable(maphash.MakeSeed(), 0)

	var recs []Record
	var err error
	if cfg.store != nil {
		loadCtx, cancel := context.WithTimeout(c.ctx, cfg.fetchTimeout)
		recs, err = cfg.store.Load(loadCtx)
		cancel()
	}
	if err != nil {
		c.log.LogAttrs(c.ctx, slog.LevelWarn, "cache: store load failed; starting without (some) persisted secrets", slog.Any("error", err))
	}
	now := cfg.clock.Now()
	for _, r := range recs {
		if r.Secret == nil || r.Secret.Name() == "" || now.Sub(r.FetchedAt) >= cfg.maxStale {
			continue
		}
		s := c.newSlot(r.Secret.Name())
		e := &entry{secret: r.Secret, fetchedAt: r.FetchedAt, state: statePersisted}
		s.cur.Store(e)
		s.savedAt = r.FetchedAt
		if t.get(s.name) == nil {
			t = t.insert(s)
		}
	}
	c.slots.Store(t)
	t.each(func(s *slot) {
		s.mu.Lock()
		c.armExpiryLocked(s, s.cur.Load())
		c.scheduleLocked(s, 0, reasonWarmStart)
		s.mu.Unlock()
	})
	return c, nil
}

func (c *Cache) newSlot(name string) *slot { return &slot{name: name} }

// sinceEpoch is the time on the cache's clock, as the rate limits count it.
func (c *Cache) sinceEpoch() time.Duration { return c.cfg.clock.Now().Sub(c.epoch) }

// GetSecret returns the ACSCurrent version of the secret. A warm read is a
// map lookup and an atomic load, with no lock and no allocation. On a miss,
// concurrent callers share one fetch from the source, which retries
// retryable errors with backoff while they wait (within the fetch timeout);
// ctx bounds only this caller's wait, not the fetch. When a refresh fails the
// previous value keeps being served, up to the maximum staleness.
func (c *Cache) GetSecret(ctx context.Context, name string) (*secretsource.Secret, error) {
	if s := c.slots.Load().get(name); s != nil {
		if e := s.cur.Load(); e != nil && e.serve {
			return e.secret, nil
		}
	}
	return c.getSlow(ctx, name)
}

func (c *Cache) getSlow(ctx context.Context, name string) (*secretsource.Secret, error) {
	s, err := c.slotFor(name)
	if err != nil {
		return nil, err
	}
	e := s.cur.Load()
	if e != nil && e.serve {
		return e.secret, nil
	}
	if err := c.held(s); err != nil {
		return nil, err
	}
	reason := reasonCold
	switch {
	case e == nil:
	case e.state == stateRejected:
		reason = reasonInvalidated
	case e.state == statePersisted:
		reason = reasonWarmStart
	}
	s.addWaiter()
	defer c.removeWaiter(s)
	ch := c.sf.DoChan(name, c.flight(ctx, s, reason, true, nil))
	select {
	case r := <-ch:
		if r.Err == nil {
			return r.Val.(*secretsource.Secret), nil
		}
		if e := s.cur.Load(); e != nil && e.serve { // stale if error
			return e.secret, nil
		}
		return nil, r.Err
	case <-ctx.Done():
		if e := s.cur.Load(); e != nil && (e.serve || e.state == statePersisted) {
			return e.secret, nil
		}
		return nil, waitError(name, ctx)
	}
}

// waitError reports a caller that stopped waiting for a fetch.
func waitError(name string, ctx context.Context) error {
	kind := secretsource.KindTimeout
	if !errors.Is(ctx.Err(), context.DeadlineExceeded) {
		kind = secretsource.KindUnknown
	}
	return &secretsource.Error{Kind: kind, Secret: name, Source: "cache",
		Message: "stopped waiting for the fetch from the source (it goes on for other callers)", Err: context.Cause(ctx)}
}

// held returns the last error of a secret that has nothing to serve while the
// cache is holding it, so callers do not hammer the source.
func (c *Cache) held(s *slot) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.lastErr != nil && c.cfg.clock.Now().Before(s.holdUntil) {
		return s.lastErr
	}
	return nil
}

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

// enterSource records that a fetch of name is inside the Source until the
// returned func is called.
func (c *Cache) enterSource(name string) func() {
	c.mu.Lock()
	c.inSource[name]++
	c.mu.Unlock()
	return func() {
		c.mu.Lock()
		if c.inSource[name]--; c.inSource[name] <= 0 {
			delete(c.inSource, name)
		}
		c.mu.Unlock()
	}
}

// enter registers background work; it fails once the cache is closed.
func (c *Cache) enter() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return false
	}
	c.wg.Add(1)
	return true
}

func (c *Cache) isClosed() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.closed
}

// fetchContext is the context of a shared fetch: the caller's values, not its
// cancellation; bounded by the fetch timeout and by Close.
func (c *Cache) fetchContext(parent context.Context) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(parent), c.cfg.fetchTimeout)
	stop := context.AfterFunc(c.ctx, cancel)
	return ctx, func() { stop(); cancel() }
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

// flight returns the function of a shared fetch of the ACSCurrent version.
// waitTok makes it wait for the rate limit; rejected, when set, skips the
// fetch if the rejected entry was already replaced.
//
// When the secret has no value to serve and the fetch fails with a retryable
// error, the flight itself retries (see onFailure for the conditions): it
// waits the backoff delay on the cache's clock, then a token of the rate
// limit, and fetches again, for as long as a GetSecret caller still waits and
// within the fetch timeout. Only when it gives up are later callers held.
func (c *Cache) flight(parent context.Context, s *slot, reason string, waitTok bool, rejected *entry) func() (any, error) {
	return func() (any, error) {
		if !c.enter() {
			return nil, ErrClosed
		}
		defer c.wg.Done()
		s.mu.Lock()
		s.flights++
		s.mu.Unlock()
		defer func() {
			s.mu.Lock()
			s.flights--
			last := s.flights == 0
			s.mu.Unlock()
			if last {
				c.dropIfIdle(s)
			}
		}()
		if rejected != nil {
			if e := s.cur.Load(); e != rejected && e != nil && e.secret != nil {
				return e.secret, nil // someone already refreshed it
			}
		}
		if reason == reasonCold || reason == reasonInvalidated || reason == reasonWarmStart {
			// Re-check after winning the flight: a caller that missed the cache just
			// before the previous flight stored its value must not fetch again
			// (a cold, rejected or persisted entry alike: TestInvalidate's storm).
			if e := s.cur.Load(); e != nil && e.serve {
				return e.secret, nil
			}
		}
		ctx, cancel := c.fetchContext(parent)
		defer cancel()
		deadline := c.cfg.clock.Now().Add(c.cfg.fetchTimeout) // the fetch timeout on the cache's clock
		for attempt := 1; ; attempt++ {
			if waitTok && attempt == 1 {
				if err := c.waitToken(ctx, s); err != nil {
					if c.isClosed() {
						return nil, ErrClosed
					}
					err = &secretsource.Error{Kind: secretsource.KindTimeout, Secret: s.name, Source: "cache",
						Message: "fetch timed out waiting for the secret's refresh rate limit", Err: err}
					c.onFailure(s, reason, err, c.cfg.clock.Now(), time.Time{}, 0) // a rejected or persisted value is served stale
					return nil, err
				}
			}
			start := c.cfg.clock.Now()
			left := c.enterSource(s.name)
			sec, err := c.src.GetSecret(ctx, s.name)
			left()
			if err == nil {
				err = checkFetched(sec, s.name)
			}
			now := c.cfg.clock.Now()
			if c.isClosed() {
				return nil, ErrClosed
			}
			if err == nil {
				c.onSuccess(s, reason, sec, now, now.Sub(start))
				return sec, nil
			}
			if ctx.Err() != nil { // the fetch timeout passed: no time left to retry
				deadline = time.Time{}
			}
			retry := c.onFailure(s, reason, err, now, deadline, attempt)
			if retry == nil {
				return nil, err
			}
			if !c.retryWait(ctx, s, retry, deadline) {
				if c.isClosed() {
					return nil, ErrClosed
				}
				c.stopRetrying(s, retry)
				return nil, err
			}
		}
	}
}

// checkFetched refuses what no Source should return and what must never
// replace a good value: no secret, another secret, or no version id (which
// Invalidate could not name). The error is
// KindInvalidAnswer, so a value in hand is served stale (stale if error holds
// for junk too) and the fetch is retried with backoff. Sources check their
// answers more closely (the stage or version asked for too); this holds for any Source.
func checkFetched(sec *secretsource.Secret, name string) error {
	var msg string
	switch {
	case sec == nil:
		msg = "the source returned neither a secret nor an error"
	case sec.Name() != name:
		msg = fmt.Sprintf("the source returned another secret (%q)", sec.Name())
	case sec.VersionID() == "":
		msg = "the source returned a secret without a version id"
	default:
		return nil
	}
	return &secretsource.Error{Kind: secretsource.KindInvalidAnswer, Secret: name, Source: "cache", Message: msg}
}

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

func (c *Cache) onSuccess(s *slot, reason string, sec *secretsource.Secret, now time.Time, took time.Duration) {
	e := &entry{secret: sec, fetchedAt: now, serve: true, state: stateFresh}
	next := c.cfg.policy.NextRefresh(sec, now, c.cfg.rnd)
	if next < 0 {
		next = 0
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	prev := s.cur.Load()
	var prevVersion string
	if prev != nil && prev.secret != nil {
		prevVersion = prev.secret.VersionID()
	}
	changed := prevVersion != sec.VersionID()
	// A fleet fetches a secret at about the same instant when it starts (or
	// starts warm), when the secret changes (a rotation seen, a rejected
	// password) and when KMS comes back after failures. After those the next
	// refresh is drawn anywhere in the interval the policy allows, so the
	// fleet spreads evenly over it; see "Refresh ahead" in doc.go.
	if prev == nil || prev.secret == nil || prev.state == statePersisted || changed || s.failures > 0 {
		next = time.Duration((1 - c.cfg.rnd()) * float64(next))
	}
	switch {
	case changed && prev != nil && prev.secret != nil:
		e.replaced = prev.secret // the old ACSCurrent: today's ACSPrevious, as far as this cache knows
	case prev != nil:
		e.replaced = prev.replaced
	}
	s.cur.Store(e)
	if changed {
		for ref := range s.versions {
			if ref.Stage != "" { // a stage moves with rotation; a version id does not
				delete(s.versions, ref)
			}
		}
	}
	s.failures, s.lastErr, s.staleSince, s.holdUntil = 0, nil, time.Time{}, time.Time{}
	c.scheduleLocked(s, next, reasonScheduled)
	if next >= c.cfg.maxStale { // the value could exceed the bound before its refresh
		c.armExpiryLocked(s, e)
	} else if s.expiry != nil { // armed again only if this refresh fails
		s.expiry.Stop()
		s.expiry = nil
	}
	s.mu.Unlock()

	c.persist(s)
	c.log.LogAttrs(c.ctx, slog.LevelDebug, "cache: refreshed secret", slog.String("secret", s.name),
		slog.String("version", sec.VersionID()), slog.Bool("changed", changed), slog.String("reason", reason),
		slog.Duration("took", took), slog.Duration("next_refresh", next))
	if h := c.cfg.hooks.Refreshed; h != nil {
		h(RefreshedEvent{Name: s.name, Version: sec.VersionID(), Previous: prevVersion, Changed: changed,
			Took: took, NextRefresh: next, Reason: reason})
	}
}

// onFailure records a failed fetch, reschedules the background refresh of a
// secret that has a value (stale if error), and reports the failure.
//
// For a secret with nothing to serve it decides whether the flight retries in
// place: only for a retryable error, while a GetSecret caller waits, when the
// backoff delay ends before deadline (zero: no retry) and, for an unclassified
// error (KindUnknown, "retryable once"), only once per flight.
// It then returns the plan; otherwise it holds the error (callers get it
// without the source being asked) for WithErrorHold after a permanent error,
// and for the backoff delay, at most WithErrorHold, after a retryable one.
func (c *Cache) onFailure(s *slot, reason string, err error, now, deadline time.Time, flightAttempt int) *coldRetry {
	retryable := secretsource.IsRetryable(err)
	var retry *coldRetry
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.failures++
	s.lastErr = err
	attempt := s.failures
	e := s.cur.Load()
	hasValue := e != nil && e.secret != nil
	var delay time.Duration
	if retryable {
		delay = c.cfg.backoff.Delay(attempt, c.cfg.rnd)
	} else if hasValue {
		delay = c.cfg.policy.NextRefresh(e.secret, now, c.cfg.rnd)
	}
	delay = max(delay, 0)
	var stale *StaleEvent
	if hasValue {
		if !e.serve || e.state != stateStale {
			ne := *e
			ne.serve, ne.state = true, stateStale
			s.cur.Store(&ne)
		}
		if s.staleSince.IsZero() {
			s.staleSince = now
		}
		if s.expiry == nil {
			c.armExpiryLocked(s, e)
		}
		c.scheduleLocked(s, delay, reasonRetry)
		stale = &StaleEvent{Name: s.name, Version: e.secret.VersionID(), Age: now.Sub(e.fetchedAt),
			ExpiresIn: e.fetchedAt.Add(c.cfg.maxStale).Sub(now), Err: err}
	} else {
		hold := c.cfg.errorHold
		if retryable {
			hold = min(delay, c.cfg.errorHold)
		}
		if retryable && !deadline.IsZero() && s.waiters > 0 && !now.Add(delay).After(deadline) &&
			(secretsource.KindOf(err) != secretsource.KindUnknown || flightAttempt == 1) {
			s.holdUntil = time.Time{} // callers arriving meanwhile join the retrying flight
			retry = &coldRetry{delay: delay, hold: now.Add(hold), gone: s.noWaiters, failures: attempt}
		} else {
			s.holdUntil = now.Add(hold)
			delay = 0                                       // nothing scheduled: the next caller after the hold fetches again
			if s.refresh != nil && s.refreshAt.After(now) { // an evicted secret keeps its retry timer
				delay = s.refreshAt.Sub(now)
			} else {
				c.armDropLocked(s)
			}
		}
	}
	s.mu.Unlock()

	level := slog.LevelWarn
	c.log.LogAttrs(c.ctx, level, "cache: fetching secret failed", slog.String("secret", s.name),
		slog.String("reason", reason), slog.Int("attempt", attempt), slog.Bool("retryable", retryable),
		slog.Duration("retry_in", delay), slog.Any("error", err))
	if h := c.cfg.hooks.RefreshFailed; h != nil {
		h(RefreshFailedEvent{Name: s.name, Err: err, Retryable: retryable, Attempt: attempt, RetryIn: delay, Reason: reason})
	}
	if stale != nil {
		c.log.LogAttrs(c.ctx, level, "cache: serving stale secret", slog.String("secret", s.name),
			slog.String("version", stale.Version), slog.Duration("age", stale.Age), slog.Duration("expires_in", stale.ExpiresIn))
		if h := c.cfg.hooks.ServingStale; h != nil {
			h(*stale)
		}
	}
	return retry
}

// scheduleLocked (re)arms the refresh timer of s. s.mu is held.
func (c *Cache) scheduleLocked(s *slot, d time.Duration, reason string) {
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
func (c *Cache) onTimer(s *slot, gen uint64, reason string) {
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
	ch := c.sf.DoChan(s.name, c.flight(context.Background(), s, reason, false, nil))
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

	if c.cfg.store != nil && c.enter() {
		go func() {
			defer c.wg.Done()
			s.saveMu.Lock()
			defer s.saveMu.Unlock()
			if err := c.cfg.store.Delete(c.ctx, s.name); err != nil {
				c.log.LogAttrs(c.ctx, slog.LevelWarn, "cache: store delete failed", slog.String("secret", s.name), slog.Any("error", err))
			}
		}()
	}
	age := now.Sub(fetchedAt)
	c.log.LogAttrs(c.ctx, slog.LevelError, "cache: evicted secret", slog.String("secret", s.name),
		slog.String("version", sec.VersionID()), slog.Duration("age", age), slog.String("reason", string(EvictMaxStaleness)))
	if h := c.cfg.hooks.Evicted; h != nil {
		h(EvictedEvent{Name: s.name, Version: sec.VersionID(), Age: age, Reason: EvictMaxStaleness})
	}
}

// persist saves the latest value of s to the store, in the background.
func (c *Cache) persist(s *slot) {
	if c.cfg.store == nil || !c.enter() {
		return
	}
	go func() {
		defer c.wg.Done()
		s.saveMu.Lock()
		defer s.saveMu.Unlock()
		e := s.cur.Load()
		if e == nil || e.secret == nil || !e.fetchedAt.After(s.savedAt) {
			return
		}
		if err := c.cfg.store.Save(c.ctx, Record{Secret: e.secret, FetchedAt: e.fetchedAt}); err != nil {
			c.log.LogAttrs(c.ctx, slog.LevelWarn, "cache: store save failed", slog.String("secret", s.name), slog.Any("error", err))
			return
		}
		s.savedAt = e.fetchedAt
	}()
}

// Invalidate tells the cache that rejectedVersion of the secret was refused
// (for example a database rejected its password). It acts only if the cached
// version is rejectedVersion: callers of GetSecret then wait for a refresh,
// which starts in the background (or is joined if one is in progress) under
// the secret's rate limit. So N connections failing on one version cause one
// fetch. It reports whether it acted. It never blocks.
func (c *Cache) Invalidate(name, rejectedVersion string) bool {
	s := c.slots.Load().get(name)
	if s == nil || rejectedVersion == "" {
		return false
	}
	acted := false
	s.mu.Lock()
	for ref, v := range s.versions {
		if v.secret.VersionID() == rejectedVersion && ref.Stage != "" {
			delete(s.versions, ref)
			acted = true
		}
	}
	s.mu.Unlock()
	for {
		e := s.cur.Load()
		if e == nil || e.secret == nil || e.secret.VersionID() != rejectedVersion {
			return acted
		}
		if e.state != stateRejected {
			ne := *e
			ne.serve, ne.state = false, stateRejected
			if !s.cur.CompareAndSwap(e, &ne) {
				continue
			}
			e = &ne
		}
		c.sf.DoChan(name, c.flight(context.Background(), s, reasonInvalidated, true, e))
		return true
	}
}

// Replaced returns the version this cache served as ACSCurrent before the
// one it serves now (the value it replaced when a refresh brought a new
// version), or nil if it knows none. It never calls the source and never
// blocks. During a rotation it is usually KMS's ACSPrevious, the password a
// database that has not been changed yet still accepts; but the cache may
// have missed a version in between, so it is a candidate to try, not a
// statement about the secret's stages.
func (c *Cache) Replaced(name string) *secretsource.Secret {
	s := c.slots.Load().get(name)
	if s == nil {
		return nil
	}
	if e := s.cur.Load(); e != nil {
		return e.replaced
	}
	return nil
}

// Refresh fetches the secret now, whatever the cache holds, and returns what
// the source returned. It joins a fetch already in progress, and it waits (up
// to ctx) for the secret's rate limit, which scheduled refreshes share, so a
// loop of Refresh calls cannot storm the source. On error the cache keeps
// serving the previous value through GetSecret. Refresh itself does not
// retry, but when it joins the fetch of a secret with nothing to serve that
// GetSecret callers wait for, it gets the result of that fetch's retries.
func (c *Cache) Refresh(ctx context.Context, name string) (*secretsource.Secret, error) {
	s, err := c.slotFor(name)
	if err != nil {
		return nil, err
	}
	ch := c.sf.DoChan(name, c.flight(ctx, s, reasonForced, true, nil))
	select {
	case r := <-ch:
		if r.Err != nil {
			return nil, r.Err
		}
		return r.Val.(*secretsource.Secret), nil
	case <-ctx.Done():
		return nil, waitError(name, ctx)
	}
}

// Close stops every timer and background fetch and waits for them to end.
// It is idempotent; every call after the first waits for the first to finish
// and returns its result. Later calls of other methods return ErrClosed.
//
// Fetches in progress are cancelled through their context. A Source that
// ignores it cannot make Close hang: after the close timeout
// (WithCloseTimeout, 5 s by default) Close returns an error wrapping
// ErrCloseTimeout that names the secrets still being fetched. Their
// goroutines belong to the Source call by then and end when it returns; the
// cache ignores what it returns. Last, Close closes the source when it is an
// io.Closer (see New).
func (c *Cache) Close() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		<-c.done
		return c.closeErr
	}
	c.closed = true
	old := c.slots.Load()
	c.slots.Store(newSlotTable(old.seed, 0))
	c.mu.Unlock()

	c.cancel()
	old.each(func(s *slot) {
		s.mu.Lock()
		s.closed = true
		if s.refresh != nil {
			s.refresh.Stop()
		}
		if s.expiry != nil {
			s.expiry.Stop()
		}
		s.mu.Unlock()
	})
	go func() {
		c.wg.Wait()
		close(c.drained)
	}()
	t := time.NewTimer(c.cfg.closeWait) // real time: it bounds a real wait, whatever the cache's clock
	defer t.Stop()
	select {
	case <-c.drained:
	case <-t.C:
		c.mu.Lock()
		names := slices.Sorted(maps.Keys(c.inSource))
		c.mu.Unlock()
		what := "a Store or hook call has not returned"
		if len(names) > 0 {
			what = fmt.Sprintf("the source has not returned for secret(s) %q", names)
		}
		c.closeErr = fmt.Errorf("%w: %s %v after cancellation (it ignores its context); those calls end when it returns",
			ErrCloseTimeout, what, c.cfg.closeWait)
		c.log.LogAttrs(context.Background(), slog.LevelWarn, "cache: Close did not wait for calls still in progress",
			slog.Any("secrets", names), slog.Duration("waited", c.cfg.closeWait))
	}
	if cl, ok := c.src.(io.Closer); ok { // the cache owns its source (see New)
		if err := cl.Close(); err != nil {
			c.closeErr = errors.Join(c.closeErr, fmt.Errorf("cache: closing the source: %w", err))
		}
	}
	close(c.done)
	return c.closeErr
}

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
