package rotation

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"time"

	"github.com/kmsdb/kmsdb/connector"
	"github.com/kmsdb/kmsdb/secretsource"
)

// Run opens one connection with attempt, under the rotation algorithm that
// the documentation of package connector describes: attempt is called with
// the account to log in with, and again with other accounts while its error
// is an AuthFailure and the rotation may still heal. Any error returned is a
// *connector.Error. It ends with one connector.LoginEvent.
func Run[T any](ctx context.Context, l *Login, attempt func(ctx context.Context, acct secretsource.DBAccount) (T, error)) (T, error) {
	r := &run{l: l}
	res, err := runFirst(ctx, r, attempt)
	r.done(ctx, err)
	return res, err
}

func runFirst[T any](ctx context.Context, r *run, attempt func(ctx context.Context, acct secretsource.DBAccount) (T, error)) (T, error) {
	var zero T
	if err := r.begin(ctx); err != nil {
		return zero, err
	}
	cand := r.cur
	if r.l.trouble.Load() != nil {
		cand = r.first(ctx)
	}
	return loop(ctx, r, cand, attempt)
}

// begin reads the current version of the secret and starts the clock.
func (r *run) begin(ctx context.Context) error {
	l := r.l
	p, err := l.provider(ctx)
	if err != nil {
		return l.secretError(err, nil)
	}
	cur, err := p.GetSecret(ctx, l.name)
	if err != nil {
		return l.secretError(err, nil)
	}
	r.p, r.cur, r.start = p, cur, l.now()
	return nil
}

// Continue goes on with the rotation loop for a connection whose first
// attempt was made outside Run with an account Account returned, and failed
// with err: acct is that account (Match finds it from the credentials a
// driver reports; a zero account when unknown). An error of Account itself
// is returned as it is, except the one that asks to wait for the rotation.
// It returns what Run would have: the connection of a later attempt, or a
// *connector.Error, and ends with one connector.LoginEvent as Run does.
func Continue[T any](ctx context.Context, l *Login, acct secretsource.DBAccount, err error, attempt func(ctx context.Context, acct secretsource.DBAccount) (T, error)) (T, error) {
	r := &run{l: l}
	res, err := runAfter(ctx, r, acct, err, attempt)
	r.done(ctx, err)
	return res, err
}

func runAfter[T any](ctx context.Context, r *run, acct secretsource.DBAccount, err error, attempt func(ctx context.Context, acct secretsource.DBAccount) (T, error)) (T, error) {
	var zero T
	var ce *connector.Error
	if errors.As(err, &ce) {
		var we *waitErr
		if !errors.As(ce.Err, &we) {
			return zero, err
		}
	}
	if err := r.begin(ctx); err != nil {
		return zero, err
	}
	if ce != nil { // Account found nothing to try: wait for the rotation
		return loop(ctx, r, nil, attempt)
	}
	r.l.stats.logins.Add(1)
	r.attempts, r.acct = 1, acct
	cand, e := r.refused(ctx, acct, err, acct.VersionID != "")
	if e != nil {
		return zero, e
	}
	return loop(ctx, r, cand, attempt)
}

// loop tries cand, then the next candidate after each rejection, waiting
// when there is none (cand nil: wait first).
func loop[T any](ctx context.Context, r *run, cand *secretsource.Secret, attempt func(ctx context.Context, acct secretsource.DBAccount) (T, error)) (T, error) {
	var zero T
	l := r.l
	for {
		if cand == nil {
			var err error
			if cand, err = r.await(ctx, true); err != nil {
				return zero, err
			}
		}
		acct, err := l.decode(cand)
		if err != nil {
			return zero, l.secretError(err, cand)
		}
		l.stats.logins.Add(1)
		if r.attempts > 0 {
			l.stats.retries.Add(1)
		}
		r.attempts++
		r.acct = acct
		res, err := attempt(ctx, acct)
		if err == nil {
			r.succeeded(cand)
			return res, nil
		}
		var e *connector.Error
		if cand, e = r.refused(ctx, acct, err, true); e != nil {
			return zero, e
		}
	}
}

// refused handles the failed login of an attempt with acct: it returns the
// error the connection ends with, or the version to try next (nil: wait for
// one). An attempt whose account is not known (a login made outside Run
// that Match could not place) records no rejection and goes on with the
// version first would choose.
func (r *run) refused(ctx context.Context, acct secretsource.DBAccount, err error, known bool) (*secretsource.Secret, *connector.Error) {
	l := r.l
	class := l.classify(err)
	if class != connector.AuthFailure {
		if ctx.Err() != nil {
			if rej := r.rejectedBefore(acct); rej != nil {
				// The caller stopped waiting for the rotation and this
				// attempt died with it (a dial cut short by the
				// deadline): what went wrong is the rejection.
				return nil, r.failRejected(ctx, rej)
			}
		}
		return nil, r.fail(ctx, class, acct, err)
	}
	l.stats.authFailures.Add(1)
	r.lastAcct, r.lastErr = acct, err
	if ctx.Err() != nil {
		return nil, r.fail(ctx, connector.AuthFailure, acct, err)
	}
	if !known {
		return r.first(ctx), nil
	}
	r.rejected(acct, err)
	cand := r.next(ctx)
	if cand != nil {
		l.logger().LogAttrs(ctx, slog.LevelDebug, "kmsdb connector: credentials rejected; trying another version",
			slog.String("secret", l.name), slog.String("rejected", acct.VersionID), slog.String("version", cand.VersionID()))
	}
	return cand, nil
}

// rejectedBefore returns the rejection an attempt with acct was waiting out:
// this run's own last refusal, else the Login's record of acct's version (or
// of the current one) being refused. Nil when nothing was refused.
func (r *run) rejectedBefore(acct secretsource.DBAccount) *rejection {
	if r.lastErr != nil {
		return &rejection{version: r.lastAcct.VersionID, user: r.lastAcct.Username, err: r.lastErr}
	}
	t := r.l.trouble.Load()
	if rej := t.rejection(acct.VersionID); rej != nil {
		return rej
	}
	return t.rejection(r.cur.VersionID()) // r.cur: begin read it
}

// run is the state of one connection's login.
type run struct {
	l     *Login
	p     secretsource.Cache
	start time.Time

	cur      *secretsource.Secret // the freshest ACSCurrent seen
	tried    []string             // versions this run was refused with
	wait     time.Duration
	attempts int
	acct     secretsource.DBAccount // of the last attempt (that logged in, on success)
	lastAcct secretsource.DBAccount // of the last rejected attempt
	lastErr  error
}

// first is the version a new connection tries while the Login is in
// trouble: the current version when the Login is not known to be refused
// with it, else a version standing in for it (but the current version again
// once its stand-in's time is up, for one connection per probe interval);
// nil when every version held was refused.
func (r *run) first(ctx context.Context) *secretsource.Secret {
	l := r.l
	t := l.trouble.Load()
	if t != nil && t.good != nil && t.goodFor == r.cur.VersionID() && !l.now().Before(t.goodUntil) &&
		l.takeProbe(l.now(), l.probeEvery) {
		return r.cur // is the current version accepted by now?
	}
	return r.next(ctx)
}

// next returns a version to try at once: a stand-in another connection has
// just logged in with, or a held version neither this run nor (since the
// Login last logged in with the current version) any other connection was
// refused with. It re-reads the cache, so a version a refresh just brought
// is used at once. Nil when there is none.
func (r *run) next(ctx context.Context) *secretsource.Secret {
	l := r.l
	if s, err := r.p.GetSecret(ctx, l.name); err == nil {
		r.cur = s
	}
	t := l.trouble.Load()
	if t == nil {
		return r.cur // the current version logged in since
	}
	if g := t.good; g != nil && t.goodFor == r.cur.VersionID() && !slices.Contains(r.tried, g.VersionID()) {
		return g
	}
	for _, s := range l.held(r.p, r.cur) {
		if v := s.VersionID(); !slices.Contains(r.tried, v) && t.rejection(v) == nil {
			return s
		}
	}
	return nil
}

// probe is the held version to try again when every one was refused: the one
// refused longest ago.
func (r *run) probe() *secretsource.Secret {
	t := r.l.trouble.Load()
	var best *secretsource.Secret
	var bestAt time.Time
	for _, s := range r.l.held(r.p, r.cur) {
		var at time.Time
		if rej := t.rejection(s.VersionID()); rej != nil {
			at = rej.last
		}
		if best == nil || at.Before(bestAt) {
			best, bestAt = s, at
		}
	}
	return best
}

// await waits until there is a version to try: the cache brings a new one,
// another connection logs in, or this connection wins the shared turn to
// retry a refused one. Meanwhile the Login refreshes the secret from KMS in
// the background. Past the grace period it returns an error at once, except
// for one connection per probe interval. Without block it does not wait:
// where it would, it returns an error that asks the caller to (see Continue).
func (r *run) await(ctx context.Context, block bool) (*secretsource.Secret, error) {
	l := r.l
	for {
		ch := l.changedChan()
		if c := r.next(ctx); c != nil {
			return c, nil
		}
		t := l.trouble.Load()
		rej := t.rejection(r.cur.VersionID())
		if rej == nil {
			return r.cur, nil
		}
		l.kickRefresh(r.p, rej.since)
		now := l.now()
		deadline := rej.since.Add(l.grace)
		if !now.Before(deadline) {
			if l.takeProbe(now, l.probeEvery) {
				return r.probe(), nil
			}
			return nil, r.failRejected(ctx, rej)
		}
		if l.takeProbe(now, min(max(now.Sub(rej.since)/4, retryMin), retryMax)) {
			return r.probe(), nil
		}
		if !block {
			e := r.failRejected(ctx, rej)
			e.Err = &waitErr{e.Err}
			return nil, e
		}
		r.wait = min(max(2*r.wait, waitMin), waitMax)
		d := time.Duration(float64(r.wait) * (0.5 + 0.5*l.rand()))
		d = min(d, deadline.Sub(now), l.untilRefresh(now, d))
		if err := l.sleep(ctx, d, ch); err != nil {
			return nil, r.failRejected(ctx, rej)
		}
	}
}

// waitErr marks the Err of the *connector.Error Account returns when there
// is nothing to try now: Continue then waits for the rotation. It adds
// nothing to the text; errors.Is and errors.As reach what it wraps.
type waitErr struct{ err error }

func (w *waitErr) Error() string {
	if w.err == nil {
		return ""
	}
	return w.err.Error()
}

func (w *waitErr) Unwrap() error { return w.err }

// sleepCtx waits d, or until wake is closed or ctx ends (its error).
func sleepCtx(ctx context.Context, d time.Duration, wake <-chan struct{}) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-wake:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
