package cache

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/kmsdb/kmsdb/secretsource"
)

// fetchKind says who started a fetch of the ACSCurrent version, which decides
// how it treats the rate limit and a value stored meanwhile (the model is
// aws-sdk-go-v2's refreshType).
type fetchKind uint8

const (
	// fetchWaited: a GetSecret caller found nothing to serve and waits. The
	// fetch waits for a token of the rate limit; callers that keep waiting
	// let it retry in place (coldRetry).
	fetchWaited fetchKind = iota
	// fetchTimer: the refresh timer fired; it took its token already
	// (tryToken), so the fetch does not wait for one.
	fetchTimer
	// fetchInvalidated: Invalidate marked the served version rejected. The
	// fetch is skipped if the rejected entry was replaced meanwhile.
	fetchInvalidated
	// fetchForced: Refresh. The fetch waits for a token and always asks the
	// source.
	fetchForced
)

// fetch describes one shared fetch of the ACSCurrent version.
type fetch struct {
	kind     fetchKind
	reason   Reason // reported in hooks and logs
	rejected *entry // fetchInvalidated: the entry Invalidate marked
}

// waitsForToken reports whether the fetch takes a token of the rate limit
// before its first attempt (a timer took its token before it started).
func (f fetch) waitsForToken() bool { return f.kind != fetchTimer }

// unneeded returns the value that makes the fetch unnecessary, if any: the
// fetch won the single flight after another one stored what it was started
// for. An invalidation is answered by any entry other than the rejected one;
// a fetch started because nothing was served (a caller's miss, a rejected or
// persisted entry: TestInvalidate's storm) by a served value.
func (f fetch) unneeded(s *slot) *secretsource.Secret {
	e := s.cur.Load()
	if e == nil {
		return nil
	}
	if f.kind == fetchInvalidated && e != f.rejected && e.secret != nil {
		return e.secret // someone already refreshed it
	}
	switch f.reason {
	case ReasonCold, ReasonInvalidated, ReasonWarmStart:
		if e.serve {
			return e.secret
		}
	}
	return nil
}

// waitError reports a caller that stopped waiting for a fetch of s. When an
// attempt failed meanwhile (last: the fetch is retrying), the error wraps its
// cause too: "...: context deadline exceeded (last attempt: ...)", with errors.Is
// and errors.As reaching both.
func waitError(s *slot, ctx context.Context, last error) error {
	kind := secretsource.KindTimeout
	if !errors.Is(ctx.Err(), context.DeadlineExceeded) {
		kind = secretsource.KindUnknown
	}
	err := context.Cause(ctx)
	if last != nil {
		err = &lastAttemptError{err: err, last: last, secret: s.name}
	}
	return &secretsource.Error{Kind: kind, Secret: s.name, Source: "cache",
		Message: "stopped waiting for the fetch from the source (it goes on for other callers)", Err: err}
}

// lastAttemptError is the end of a caller's wait (err) during a fetch whose
// last attempt failed with last.
type lastAttemptError struct {
	err, last error
	secret    string // named by the enclosing error already
}

func (e *lastAttemptError) Error() string {
	return e.err.Error() + " (last attempt: " + withoutSecret(e.last, e.secret) + ")"
}

func (e *lastAttemptError) Unwrap() []error { return []error{e.err, e.last} }

// withoutSecret renders err for a message that already names the secret and
// says "secretsource": a *secretsource.Error of that secret loses both.
func withoutSecret(err error, name string) string {
	// Only err itself: a *secretsource.Error deeper in the chain keeps the
	// secret's name, or the text of the errors wrapping it would be lost.
	if se, ok := err.(*secretsource.Error); ok && se.Secret == name { //nolint:errorlint // the outermost error only, see above
		c := *se
		c.Secret = ""
		return strings.TrimPrefix(c.Error(), "secretsource: ")
	}
	return err.Error()
}

// lastError returns the last failure of the fetch of s, nil after a success.
func lastError(s *slot) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.lastErr
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

// fetchContext is the context of a shared fetch: the caller's values, not its
// cancellation; bounded by the fetch timeout and by Close.
func (c *Cache) fetchContext(parent context.Context) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(parent), c.cfg.fetchTimeout)
	stop := context.AfterFunc(c.ctx, cancel)
	return ctx, func() { stop(); cancel() }
}

// flight returns the function of a shared fetch f of the ACSCurrent version
// of s, run under the cache's single flight for s.
func (c *Cache) flight(parent context.Context, s *slot, f fetch) func() (any, error) {
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
		if sec := f.unneeded(s); sec != nil {
			return sec, nil
		}
		ctx, cancel := c.fetchContext(parent)
		defer cancel()
		sec, err := c.fetchRetrying(ctx, s, f)
		if err != nil {
			return nil, err
		}
		return sec, nil
	}
}

// fetchRetrying asks the source for s, taking a token of the rate limit first
// unless f's timer took it.
//
// When the secret has no value to serve and the fetch fails with a retryable
// error, it retries in place (see onFailure for the conditions): it waits
// the backoff delay on the cache's clock, then a token of the rate limit, and
// fetches again, for as long as a GetSecret caller still waits and within the
// fetch timeout. Only when it gives up are later callers held.
func (c *Cache) fetchRetrying(ctx context.Context, s *slot, f fetch) (*secretsource.Secret, error) {
	deadline := c.cfg.clock.Now().Add(c.cfg.fetchTimeout) // the fetch timeout on the cache's clock
	if f.waitsForToken() {
		if err := c.waitToken(ctx, s); err != nil {
			if c.isClosed() {
				return nil, ErrClosed
			}
			err = &secretsource.Error{Kind: secretsource.KindTimeout, Secret: s.name, Source: "cache",
				Message: "fetch timed out waiting for the secret's refresh rate limit", Err: err}
			c.onFailure(ctx, s, f.reason, err, c.cfg.clock.Now(), time.Time{}, 0, 0) // no fetch made; a rejected or persisted value is served stale
			return nil, err
		}
	}
	for attempt := 1; ; attempt++ {
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
			c.onSuccess(ctx, s, f.reason, sec, now, now.Sub(start))
			return sec, nil
		}
		if ctx.Err() != nil { // the fetch timeout passed: no time left to retry
			deadline = time.Time{}
		}
		retry := c.onFailure(ctx, s, f.reason, err, now, deadline, attempt, now.Sub(start))
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

// onSuccess stores sec as the value of s, keeps the version it replaced
// (Replaced), schedules the next refresh and reports it.
func (c *Cache) onSuccess(ctx context.Context, s *slot, reason Reason, sec *secretsource.Secret, now time.Time, took time.Duration) {
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
	c.scheduleLocked(s, next, ReasonScheduled)
	if next >= c.cfg.maxStale { // the value could exceed the bound before its refresh
		c.armExpiryLocked(s, e)
	} else if s.expiry != nil { // armed again only if this refresh fails
		s.expiry.Stop()
		s.expiry = nil
	}
	s.mu.Unlock()

	c.persist(s)
	c.log.LogAttrs(c.ctx, slog.LevelDebug, "cache: refreshed secret", slog.String("secret", s.name),
		slog.String("version", sec.VersionID()), slog.Bool("changed", changed), slog.String("reason", string(reason)),
		slog.Duration("took", took), slog.Duration("next_refresh", next))
	if h := c.cfg.hooks.Refreshed; h != nil {
		h(ctx, RefreshedEvent{Name: s.name, Version: sec.VersionID(), Previous: prevVersion, Changed: changed,
			Took: took, NextRefresh: next, Reason: reason, Origin: sec.Origin()})
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
func (c *Cache) onFailure(ctx context.Context, s *slot, reason Reason, err error, now, deadline time.Time, flightAttempt int, took time.Duration) *coldRetry {
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
		stale = c.serveStaleLocked(s, e, err, now, delay)
	} else {
		retry, delay = c.failEmptyLocked(s, err, now, deadline, delay, flightAttempt)
	}
	s.mu.Unlock()

	level := slog.LevelWarn
	c.log.LogAttrs(c.ctx, level, "cache: fetching secret failed", slog.String("secret", s.name),
		slog.String("reason", string(reason)), slog.Int("attempt", attempt), slog.Bool("retryable", retryable),
		slog.Duration("retry_in", delay), slog.Any("error", err))
	if h := c.cfg.hooks.RefreshFailed; h != nil {
		h(ctx, RefreshFailedEvent{Name: s.name, Err: err, Retryable: retryable, Attempt: attempt, RetryIn: delay, Reason: reason,
			Took: took})
	}
	if stale != nil {
		c.log.LogAttrs(c.ctx, level, "cache: serving stale secret", slog.String("secret", s.name),
			slog.String("version", stale.Version), slog.Duration("age", stale.Age), slog.Duration("expires_in", stale.ExpiresIn))
		if h := c.cfg.hooks.ServingStale; h != nil {
			h(ctx, *stale)
		}
	}
	return retry
}

// serveStaleLocked keeps serving e, the value of s, after a failed refresh
// (stale if error): it marks it stale, arms its eviction at the maximum
// staleness and schedules the retry in delay. s.mu is held.
func (c *Cache) serveStaleLocked(s *slot, e *entry, err error, now time.Time, delay time.Duration) *StaleEvent {
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
	c.scheduleLocked(s, delay, ReasonRetry)
	return &StaleEvent{Name: s.name, Version: e.secret.VersionID(), Age: now.Sub(e.fetchedAt),
		ExpiresIn: e.fetchedAt.Add(c.cfg.maxStale).Sub(now), Err: err}
}

// failEmptyLocked handles a failed fetch of a secret with nothing to serve
// (see onFailure): it returns the plan of an in-place retry, or holds the
// error and returns no plan and when the next attempt is due (0: the next
// caller after the hold). s.mu is held.
func (c *Cache) failEmptyLocked(s *slot, err error, now, deadline time.Time, delay time.Duration, flightAttempt int) (*coldRetry, time.Duration) {
	retryable := secretsource.IsRetryable(err)
	hold := c.cfg.errorHold
	if retryable {
		hold = min(delay, c.cfg.errorHold)
	}
	if retryable && !deadline.IsZero() && s.waiters > 0 && !now.Add(delay).After(deadline) &&
		(secretsource.KindOf(err) != secretsource.KindUnknown || flightAttempt == 1) {
		s.holdUntil = time.Time{} // callers arriving meanwhile join the retrying flight
		return &coldRetry{delay: delay, hold: now.Add(hold), gone: s.noWaiters, failures: s.failures}, delay
	}
	s.holdUntil = now.Add(hold)
	if s.refresh != nil && s.refreshAt.After(now) { // an evicted secret keeps its retry timer
		return nil, s.refreshAt.Sub(now)
	}
	c.armDropLocked(s)
	return nil, 0 // nothing scheduled: the next caller after the hold fetches again
}
