package connector

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kmsdb/kmsdb/secretsource"
)

// DefaultGracePeriod is how long a login keeps retrying a rejected secret
// version by default: long enough for a rotation that changes the database
// and the secret a few seconds apart, short enough that a wrong password
// shows up quickly.
const DefaultGracePeriod = 30 * time.Second

// Backoff bounds of the polling step (see the package documentation).
const (
	pollMin = 50 * time.Millisecond
	pollMax = time.Second
)

// Config describes a Login. SecretName and Classify are required.
type Config struct {
	// SecretName names the secret holding the database account.
	SecretName string
	// Provider serves the secret. Nil: Source, or the default provider.
	Provider Provider
	// Source is used when Provider is nil: a Source that is already a
	// Provider (a *cache.Cache) is used as is, any other gets a cache of its
	// own, closed by Login.Close.
	Source secretsource.Source
	// GracePeriod bounds how long a rejected version is retried; zero means
	// DefaultGracePeriod, a negative value disables waiting (steps 1-3 only).
	GracePeriod time.Duration
	// Classify tells what a driver error means. Required.
	Classify func(error) Class
	// Redact lists further strings to scrub from errors, for example a
	// password in the base DSN; empty strings are ignored.
	Redact []string
	// Logger receives retries at Debug and fallbacks and failures at Warn,
	// never a password. Nil: discard.
	Logger *slog.Logger
}

// String describes c without the strings of Redact (they are passwords).
func (c Config) String() string {
	return fmt.Sprintf("connector.Config(secret=%q grace=%s redact=%d string(s) REDACTED)", c.SecretName, c.GracePeriod, len(c.Redact))
}

// GoString is String, so %#v cannot print a redacted string.
func (c Config) GoString() string { return c.String() }

// Format prints String for every verb.
func (c Config) Format(st fmt.State, _ rune) { _, _ = io.WriteString(st, c.String()) }

// LogValue makes slog print String.
func (c Config) LogValue() slog.Value { return slog.StringValue(c.String()) }

// Login opens connections with the credentials of one secret and carries
// the rotation state its connections share. It is safe for concurrent use.
type Login struct {
	name     string
	classify func(error) Class
	grace    time.Duration
	redact   []string
	log      *slog.Logger

	fixed  Provider  // given provider, or nil for the default
	closer io.Closer // cache owned by this Login

	decoded  [2]atomic.Pointer[decodedSecret]
	nextSlot atomic.Uint32
	fallback atomic.Pointer[fallbackState] // ACSPrevious in use while ACSCurrent is rejected
	window   atomic.Pointer[rejectWindow]  // the current version rejected since

	stats loginStats

	// test hooks
	now   func() time.Time
	sleep func(ctx context.Context, d time.Duration) error
	rand  func() float64

	closeOnce sync.Once
	closeErr  error
}

type decodedSecret struct {
	secret *secretsource.Secret
	acct   secretsource.DBAccount
	err    error
}

type fallbackState struct {
	rejected string               // the ACSCurrent version id that is rejected
	prev     *secretsource.Secret // the version that logs in instead
	until    time.Time
}

type rejectWindow struct {
	version string
	since   time.Time
}

type loginStats struct {
	logins, authFailures, retries, previousUsed, failed atomic.Int64
}

// Stats counts what a Login did, for metrics and tests.
type Stats struct {
	Logins       int64 // login attempts (for a pgkms.Pool: acquisitions, most of which reuse an idle connection)
	AuthFailures int64 // attempts the database rejected as an authentication failure
	Retries      int64 // attempts after the first within one connection
	PreviousUsed int64 // connections that logged in with ACSPrevious
	Failed       int64 // connections that failed
}

// NewLogin validates cfg and returns a Login. It makes no network call.
func NewLogin(cfg Config) (*Login, error) {
	if cfg.SecretName == "" {
		return nil, errors.New("connector: the secret name is empty")
	}
	if cfg.Classify == nil {
		return nil, errors.New("connector: Config.Classify is nil")
	}
	p, closer, err := providerFor(cfg.Provider, cfg.Source)
	if err != nil {
		return nil, err
	}
	grace := cfg.GracePeriod
	if grace == 0 {
		grace = DefaultGracePeriod
	}
	if grace < 0 {
		grace = 0
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Login{
		name: cfg.SecretName, classify: cfg.Classify, grace: grace, redact: slices.DeleteFunc(slices.Clone(cfg.Redact), func(s string) bool { return s == "" }), log: log,
		fixed: p, closer: closer,
		now: time.Now, sleep: sleepCtx, rand: rand.Float64,
	}, nil
}

// SecretName is the name of the secret the Login uses.
func (l *Login) SecretName() string { return l.name }

// GracePeriod is how long a rejected version is retried.
func (l *Login) GracePeriod() time.Duration { return l.grace }

// Stats returns the counters of the Login.
func (l *Login) Stats() Stats {
	return Stats{
		Logins: l.stats.logins.Load(), AuthFailures: l.stats.authFailures.Load(), Retries: l.stats.retries.Load(),
		PreviousUsed: l.stats.previousUsed.Load(), Failed: l.stats.failed.Load(),
	}
}

// Close closes the cache the Login built in front of a plain Source, if
// any. It is idempotent. A given Provider and the default one stay open.
func (l *Login) Close() error {
	l.closeOnce.Do(func() {
		if l.closer != nil {
			l.closeErr = l.closer.Close()
		}
	})
	return l.closeErr
}

func (l *Login) provider(ctx context.Context) (Provider, error) {
	if l.fixed != nil {
		return l.fixed, nil
	}
	return DefaultProvider(ctx)
}

// Account returns the account a new connection should log in with now: the
// cached ACSCurrent version, or ACSPrevious while it stands in for a rejected
// current version. Hooks that cannot run the retry loop (pgxpool background
// connections) use it.
func (l *Login) Account(ctx context.Context) (secretsource.DBAccount, error) {
	p, err := l.provider(ctx)
	if err != nil {
		return secretsource.DBAccount{}, l.secretError(err, nil)
	}
	cur, err := p.GetSecret(ctx, l.name)
	if err != nil {
		return secretsource.DBAccount{}, l.secretError(err, nil)
	}
	s := cur
	if fb := l.activeFallback(cur); fb != nil {
		s = fb.prev
	}
	acct, err := l.decode(s)
	if err != nil {
		return secretsource.DBAccount{}, l.secretError(err, s)
	}
	return acct, nil
}

// decode returns the account of s, decoding each *Secret once.
func (l *Login) decode(s *secretsource.Secret) (secretsource.DBAccount, error) {
	for i := range l.decoded {
		if d := l.decoded[i].Load(); d != nil && d.secret == s {
			return d.acct, d.err
		}
	}
	acct, err := secretsource.DecodeDBAccount(s)
	l.decoded[l.nextSlot.Add(1)%uint32(len(l.decoded))].Store(&decodedSecret{secret: s, acct: acct, err: err})
	return acct, err
}

func (l *Login) activeFallback(cur *secretsource.Secret) *fallbackState {
	fb := l.fallback.Load()
	if fb == nil || fb.rejected != cur.VersionID() || !l.now().Before(fb.until) {
		return nil
	}
	return fb
}

// Run opens one connection with attempt, under the rotation algorithm of the
// package documentation: attempt is called with the account to log in with,
// and again with other accounts while its error is an AuthFailure and the
// rotation may still heal. Any error returned is an *Error.
func Run[T any](ctx context.Context, l *Login, attempt func(ctx context.Context, acct secretsource.DBAccount) (T, error)) (T, error) {
	var zero T
	p, err := l.provider(ctx)
	if err != nil {
		l.stats.failed.Add(1)
		return zero, l.secretError(err, nil)
	}
	cur, err := p.GetSecret(ctx, l.name)
	if err != nil {
		l.stats.failed.Add(1)
		return zero, l.secretError(err, nil)
	}
	r := run{l: l, p: p, start: l.now(), cur: cur, cand: cur}
	if fb := l.activeFallback(cur); fb != nil {
		r.cand, r.usingPrev, r.triedPrev = fb.prev, true, true
	}
	polled := false
	for {
		acct, err := l.decode(r.cand)
		if err != nil {
			l.stats.failed.Add(1)
			return zero, l.secretError(err, r.cand)
		}
		l.stats.logins.Add(1)
		if r.attempts > 0 {
			l.stats.retries.Add(1)
		}
		r.attempts++
		res, err := attempt(ctx, acct)
		if err == nil {
			r.succeeded()
			return res, nil
		}
		class := l.classify(err)
		if class != AuthFailure {
			l.stats.failed.Add(1)
			return zero, r.fail(ctx, class, acct, err)
		}
		l.stats.authFailures.Add(1)
		r.lastAcct, r.lastErr = acct, err
		if ctx.Err() != nil {
			l.stats.failed.Add(1)
			return zero, r.fail(ctx, AuthFailure, acct, err)
		}
		r.rejected(acct)
		if !polled {
			// 1. A newer current version: try it at once.
			if next := r.refresh(ctx); next != nil {
				r.cur = next
				if !slices.Contains(r.rejectedVersions, next.VersionID()) {
					r.cand, r.usingPrev = next, false
					l.log.LogAttrs(ctx, slog.LevelDebug, "kmsdb connector: rejected version replaced; retrying",
						slog.String("secret", l.name), slog.String("rejected", acct.VersionID), slog.String("version", next.VersionID()))
					continue
				}
			}
			// 2. ACSPrevious, once.
			if !r.triedPrev {
				r.triedPrev = true
				if prev := r.previous(ctx); prev != nil && !slices.Contains(r.rejectedVersions, prev.VersionID()) {
					r.cand, r.usingPrev = prev, true
					continue
				}
			}
		}
		// 3. Poll until the grace period ends.
		if !l.now().Before(r.deadline) {
			l.stats.failed.Add(1)
			return zero, r.fail(ctx, AuthFailure, acct, err)
		}
		r.backoff = min(max(2*r.backoff, pollMin), pollMax)
		d := time.Duration(float64(r.backoff) * (0.5 + 0.5*l.rand()))
		d = min(d, r.deadline.Sub(l.now()))
		l.log.LogAttrs(ctx, slog.LevelDebug, "kmsdb connector: credentials rejected; waiting for the rotation",
			slog.String("secret", l.name), slog.String("version", acct.VersionID), slog.Duration("wait", d))
		if err := l.sleep(ctx, d); err != nil {
			l.stats.failed.Add(1)
			return zero, r.fail(ctx, AuthFailure, acct, r.lastErr)
		}
		if next := r.refresh(ctx); next != nil {
			r.cur = next
		}
		r.cand, r.usingPrev, polled = r.cur, false, true
	}
}

// run is the state of one Run.
type run struct {
	l     *Login
	p     Provider
	start time.Time

	cur       *secretsource.Secret // the freshest ACSCurrent seen
	cand      *secretsource.Secret // the version to try next
	usingPrev bool                 // cand is ACSPrevious
	triedPrev bool

	rejectedVersions []string
	invalidated      []string
	deadline         time.Time
	backoff          time.Duration
	attempts         int
	lastAcct         secretsource.DBAccount
	lastErr          error
}

// rejected records that acct's version was refused.
func (r *run) rejected(acct secretsource.DBAccount) {
	l, v := r.l, acct.VersionID
	if !slices.Contains(r.rejectedVersions, v) {
		r.rejectedVersions = append(r.rejectedVersions, v)
	}
	// Invalidate acts on the cached ACSCurrent only if it is v, and drops a
	// cached ACSPrevious that is v.
	if !slices.Contains(r.invalidated, v) {
		r.invalidated = append(r.invalidated, v)
		r.p.Invalidate(l.name, v)
	}
	if r.usingPrev {
		if fb := l.fallback.Load(); fb != nil && fb.prev.VersionID() == v {
			l.fallback.CompareAndSwap(fb, nil)
		}
	} else {
		// The grace period of a version is shared by every connection of the Login.
		now := l.now()
		for {
			w := l.window.Load()
			if w != nil && w.version == v {
				break
			}
			if l.window.CompareAndSwap(w, &rejectWindow{version: v, since: now}) {
				break
			}
		}
	}
	if r.deadline.IsZero() {
		since := r.start
		if w := l.window.Load(); w != nil && w.version == r.cur.VersionID() && w.since.Before(since) {
			since = w.since
		}
		r.deadline = since.Add(l.grace)
	}
}

// succeeded updates the shared state after a login.
func (r *run) succeeded() {
	l := r.l
	if r.usingPrev {
		if fb := l.fallback.Load(); fb == nil || fb.prev != r.cand || fb.rejected != r.cur.VersionID() {
			l.fallback.Store(&fallbackState{rejected: r.cur.VersionID(), prev: r.cand, until: l.now().Add(max(l.grace, time.Second))})
			l.stats.previousUsed.Add(1)
			l.log.LogAttrs(context.Background(), slog.LevelWarn, "kmsdb connector: ACSCurrent rejected, logged in with ACSPrevious",
				slog.String("secret", l.name), slog.String("current", r.cur.VersionID()), slog.String("previous", r.cand.VersionID()))
		}
		return
	}
	closedWindow := false
	if w := l.window.Load(); w != nil {
		closedWindow = l.window.CompareAndSwap(w, nil)
	}
	if fb := l.fallback.Load(); fb != nil && fb.rejected != r.cand.VersionID() {
		l.fallback.CompareAndSwap(fb, nil)
	}
	if r.attempts > 1 {
		// Info once per rotation (the login that closes the rejection window), Debug for the
		// other connections that waited through it: no Info line per connection.
		level := slog.LevelDebug
		if closedWindow {
			level = slog.LevelInfo
		}
		l.log.LogAttrs(context.Background(), level, "kmsdb connector: logged in after the credentials were rejected",
			slog.String("secret", l.name), slog.String("version", r.cand.VersionID()), slog.Int("attempts", r.attempts),
			slog.Duration("waited", l.now().Sub(r.start)))
	}
}

// refresh returns a version of the secret newer than every rejected one: the
// cached value when another connection's refresh already brought one (no KMS
// call, no wait for the rate limit), otherwise a forced refresh bounded by the
// grace deadline; nil on failure.
func (r *run) refresh(ctx context.Context) *secretsource.Secret {
	ctx, cancel := r.bounded(ctx)
	defer cancel()
	if s, err := r.p.GetSecret(ctx, r.l.name); err == nil && !slices.Contains(r.rejectedVersions, s.VersionID()) {
		return s
	}
	s, err := r.p.Refresh(ctx, r.l.name)
	if err != nil {
		r.l.log.LogAttrs(ctx, slog.LevelDebug, "kmsdb connector: refresh after a rejected login failed",
			slog.String("secret", r.l.name), slog.Any("error", err))
		if s, err := r.p.GetSecret(ctx, r.l.name); err == nil {
			return s
		}
		return nil
	}
	return s
}

// previous fetches ACSPrevious when the provider can; nil otherwise.
func (r *run) previous(ctx context.Context) *secretsource.Secret {
	vs, ok := r.p.(secretsource.VersionSource)
	if !ok {
		return nil
	}
	ctx, cancel := r.bounded(ctx)
	defer cancel()
	s, err := vs.GetSecretVersion(ctx, r.l.name, secretsource.VersionRef{Stage: secretsource.StagePrevious})
	if err != nil {
		r.l.log.LogAttrs(ctx, slog.LevelDebug, "kmsdb connector: no ACSPrevious version to try",
			slog.String("secret", r.l.name), slog.Any("error", err))
		return nil
	}
	return s
}

// bounded limits a provider call to the grace deadline (at least a second,
// so a rate-limited refresh can still answer).
func (r *run) bounded(ctx context.Context) (context.Context, context.CancelFunc) {
	d := max(r.deadline.Sub(r.l.now()), time.Second)
	return context.WithTimeout(ctx, d)
}

func (r *run) fail(ctx context.Context, class Class, acct secretsource.DBAccount, err error) error {
	l := r.l
	err = Scrub(err, l.scrubList(acct, r.lastAcct)...)
	if class == AuthFailure && ctx.Err() != nil {
		err = fmt.Errorf("%w; stopped waiting for the rotation: %w", err, context.Cause(ctx))
	}
	e := &Error{
		Secret: l.name, Version: acct.VersionID, User: acct.Username, Class: class,
		Attempts: r.attempts, Waited: l.now().Sub(r.start), Err: err,
	}
	if class == AuthFailure {
		l.log.LogAttrs(context.Background(), slog.LevelWarn, "kmsdb connector: database rejected the credentials",
			slog.String("secret", l.name), slog.String("version", acct.VersionID), slog.Int("attempts", r.attempts),
			slog.Duration("waited", e.Waited))
	}
	return e
}

func (l *Login) scrubList(accts ...secretsource.DBAccount) []string {
	list := slices.Clone(l.redact)
	for _, a := range accts {
		if a.Password != "" {
			list = append(list, a.Password)
		}
	}
	return list
}

// secretError wraps a failure to get or decode the secret.
func (l *Login) secretError(err error, s *secretsource.Secret) error {
	e := &Error{Secret: l.name, Class: SecretUnavailable, Err: Scrub(err, l.redact...)}
	if s != nil {
		e.Version = s.VersionID()
	}
	return e
}

// Scrub removes the Login's redacted strings and acct's password from err's text.
func (l *Login) Scrub(err error, acct secretsource.DBAccount) error {
	return Scrub(err, l.scrubList(acct)...)
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
