package rotation

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

	"github.com/kmsdb/kmsdb/connector"
	"github.com/kmsdb/kmsdb/secretsource"
	"github.com/kmsdb/kmsdb/secretsource/cache"
)

// Pace of the rotation loop (see the package documentation).
const (
	// waitMin and waitMax bound the jittered wait of a connection that has
	// tried every password it holds.
	waitMin = 25 * time.Millisecond
	waitMax = 400 * time.Millisecond
	// retryMin and retryMax bound how often, within the grace period, one
	// connection of the Login retries a password that was rejected: a
	// quarter of the time since the rejection, within these bounds.
	retryMin = 25 * time.Millisecond
	retryMax = 250 * time.Millisecond
	// refreshFirstGap and refreshGap space the KMS refreshes the Login asks
	// for while every password it holds is rejected: the second comes
	// refreshFirstGap after the first, the next ones refreshGap apart. An
	// episode ends after refreshQuiet without a refresh.
	refreshFirstGap = 500 * time.Millisecond
	refreshGap      = time.Second
	refreshQuiet    = 2 * time.Second
	// refreshTimeout bounds one background refresh.
	refreshTimeout = 10 * time.Second
	// maxRejections bounds the rejected versions a Login remembers.
	maxRejections = 4
)

// Config describes a Login. SecretName and Classify are required.
type Config struct {
	// SecretName names the secret holding the database account.
	SecretName string
	// Source serves the secret: a secretsource.Cache (a *cache.Cache) is
	// used as is, any other Source gets a cache of its own, closed by
	// Login.Close. Nil: the default cache (connector.DefaultCache).
	Source secretsource.Source
	// GracePeriod bounds how long a rejected version is retried; zero means
	// DefaultGracePeriod, a negative value disables waiting (the passwords
	// the process holds are tried once, then the login fails).
	GracePeriod time.Duration
	// ProbeInterval is how often one login may reach the database once the
	// secret has been rejected for longer than the grace period (every other
	// connection fails at once); zero means DefaultProbeInterval. It must not
	// be negative.
	ProbeInterval time.Duration
	// Classify tells what a driver error means. Required.
	Classify func(error) connector.Class
	// Redact lists further strings to scrub from errors, for example a
	// password in the base DSN; empty strings are ignored.
	Redact []string
	// Logger receives retries at Debug and fallbacks and failures at Warn,
	// never a password. Nil: discard.
	Logger *slog.Logger
}

// String describes c without the strings of Redact (they are passwords).
func (c Config) String() string {
	return fmt.Sprintf("rotation.Config(secret=%q grace=%s probe=%s redact=%d string(s) REDACTED)", c.SecretName, c.GracePeriod, c.ProbeInterval, len(c.Redact))
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
	name       string
	classify   func(error) connector.Class
	grace      time.Duration
	probeEvery time.Duration
	redact     []string
	log        *slog.Logger

	fixed  secretsource.Cache // given cache, or nil for the default
	closer io.Closer          // cache owned by this Login

	decoded  [4]atomic.Pointer[decodedSecret]
	nextSlot atomic.Uint32

	// trouble is what the connections learnt about rejected passwords; nil
	// while the current version logs in (the fast path reads only this).
	trouble atomic.Pointer[trouble]
	// probeAt (unix nanoseconds) is the earliest time one connection may
	// retry a password the database rejected.
	probeAt atomic.Int64
	// prev is ACSPrevious as fetched for a rejected current version, when
	// the provider holds no version it replaced.
	prev atomic.Pointer[heldPrevious]

	mu          sync.Mutex    // serializes trouble updates; guards the fields below
	changed     chan struct{} // closed when trouble or the cached secret may have changed
	refreshing  bool          // a background refresh runs
	lastRefresh time.Time     // start of the last background refresh
	nextRefresh time.Time     // no background refresh starts before
	closed      bool
	bg          sync.WaitGroup
	bgCtx       context.Context
	bgCancel    context.CancelFunc

	stats loginStats

	// test hooks
	now   func() time.Time
	sleep func(ctx context.Context, d time.Duration, wake <-chan struct{}) error
	rand  func() float64

	closeOnce sync.Once
	closeErr  error
}

type decodedSecret struct {
	secret *secretsource.Secret
	acct   secretsource.DBAccount
	err    error
}

// trouble is an immutable snapshot, replaced as a whole under Login.mu.
type trouble struct {
	rejected []rejection // most recently rejected last; at most maxRejections
	// good logged in while goodFor was the current version and was rejected:
	// it stands in for it until goodUntil, then the current version is
	// checked again by one connection (and good renewed if it still fails).
	good      *secretsource.Secret
	goodFor   string
	goodUntil time.Time
}

// rejection records that the database refused a version.
type rejection struct {
	version string
	user    string
	since   time.Time // first refusal since the Login last logged in with it
	last    time.Time
	err     error // the last refusal, scrubbed
}

type heldPrevious struct {
	forVersion string // the current version it was fetched for
	secret     *secretsource.Secret
}

func (t *trouble) rejection(version string) *rejection {
	if t == nil {
		return nil
	}
	for i := range t.rejected {
		if t.rejected[i].version == version {
			return &t.rejected[i]
		}
	}
	return nil
}

type loginStats struct {
	logins, authFailures, retries, previousUsed, failed atomic.Int64
}

// replacer is implemented by a cache that keeps the version its current
// one replaced (*cache.Cache): the password a database that has not been
// changed yet still accepts, at no KMS call.
type replacer interface {
	Replaced(name string) *secretsource.Secret
}

// NewLogin validates cfg and returns a Login. It makes no network call.
func NewLogin(cfg Config) (*Login, error) {
	if cfg.SecretName == "" {
		return nil, errors.New("connector: the secret name is empty")
	}
	if cfg.Classify == nil {
		return nil, errors.New("connector: Config.Classify is nil")
	}
	if cfg.ProbeInterval < 0 {
		return nil, fmt.Errorf("connector: Config.ProbeInterval must not be negative, got %v", cfg.ProbeInterval)
	}
	p, closer, err := cacheFor(cfg.Source)
	if err != nil {
		return nil, err
	}
	grace := cfg.GracePeriod
	if grace == 0 {
		grace = connector.DefaultGracePeriod
	}
	if grace < 0 {
		grace = 0
	}
	probe := cfg.ProbeInterval
	if probe == 0 {
		probe = connector.DefaultProbeInterval
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	l := &Login{
		name: cfg.SecretName, classify: cfg.Classify, grace: grace, probeEvery: probe,
		redact: slices.DeleteFunc(slices.Clone(cfg.Redact), func(s string) bool { return s == "" }), log: log,
		fixed: p, closer: closer,
		now: time.Now, sleep: sleepCtx, rand: rand.Float64,
	}
	l.bgCtx, l.bgCancel = context.WithCancel(context.Background())
	return l, nil
}

// cacheFor returns the cache a connector uses: src itself when it is a
// secretsource.Cache; else a new cache in front of src, owned by the
// connector (closed by the returned Closer). Without src it returns nil: the
// default cache is resolved on first use.
func cacheFor(src secretsource.Source) (secretsource.Cache, io.Closer, error) {
	if src == nil {
		return nil, nil, nil
	}
	if c, ok := src.(secretsource.Cache); ok {
		return c, nil, nil
	}
	c, err := cache.New(src)
	if err != nil {
		return nil, nil, fmt.Errorf("connector: cache in front of the source: %w", err)
	}
	return c, c, nil
}

// SecretName is the name of the secret the Login uses.
func (l *Login) SecretName() string { return l.name }

// GracePeriod is how long a rejected version is retried.
func (l *Login) GracePeriod() time.Duration { return l.grace }

// ProbeInterval is how often one login may reach the database once the
// secret has been rejected past the grace period.
func (l *Login) ProbeInterval() time.Duration { return l.probeEvery }

// Stats returns the counters of the Login.
func (l *Login) Stats() connector.Stats {
	return connector.Stats{
		Logins: l.stats.logins.Load(), AuthFailures: l.stats.authFailures.Load(), Retries: l.stats.retries.Load(),
		PreviousUsed: l.stats.previousUsed.Load(), Failed: l.stats.failed.Load(),
	}
}

// Close stops the Login's background refresh, if one runs, and closes the
// cache the Login built in front of a plain Source, if any. It is
// idempotent. A given Provider and the default one stay open.
func (l *Login) Close() error {
	l.closeOnce.Do(func() {
		l.mu.Lock()
		l.closed = true
		l.mu.Unlock()
		l.bgCancel()
		l.bg.Wait()
		if l.closer != nil {
			l.closeErr = l.closer.Close()
		}
	})
	return l.closeErr
}

func (l *Login) provider(ctx context.Context) (secretsource.Cache, error) {
	if l.fixed != nil {
		return l.fixed, nil
	}
	return connector.DefaultCache(ctx)
}

// Account returns the account a connection made outside Run should log in
// with now: the cached current version while it logs in, else a version the
// process holds that the database has not refused (an older one standing in
// for a rejected current one). Hooks that cannot run the retry loop
// (pgxpool's BeforeConnect) use it, and hand a failed login to Continue.
//
// While every version the process holds is rejected it returns an
// AuthFailure *Error without a login: within the grace period Continue then
// waits for the rotation; past it the error is final, except that one call
// per probe interval gets a version to try.
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
	if l.trouble.Load() != nil {
		r := &run{l: l, p: p, start: l.now(), cur: cur}
		s = r.first(ctx)
		if s == nil {
			s, err = r.await(ctx, false)
			if err != nil {
				return secretsource.DBAccount{}, err
			}
		}
	}
	acct, err := l.decode(s)
	if err != nil {
		return secretsource.DBAccount{}, l.secretError(err, s)
	}
	return acct, nil
}

// Match returns the account of a version the Login holds (the current one,
// the one it replaced, ACSPrevious, a stand-in) whose user name and password
// are user and password, so that a login made with what Account returned can
// be handed to Continue; ok is false if none matches.
func (l *Login) Match(user, password string) (acct secretsource.DBAccount, ok bool) {
	p, err := l.provider(context.Background())
	if err != nil {
		return acct, false
	}
	cur, err := p.GetSecret(context.Background(), l.name)
	if err != nil {
		return acct, false
	}
	cands := l.held(p, cur)
	if t := l.trouble.Load(); t != nil && t.good != nil {
		cands = append(cands, t.good)
	}
	for _, s := range cands {
		if a, err := l.decode(s); err == nil && a.Username == user && a.Password == password {
			return a, true
		}
	}
	return acct, false
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

// held lists the versions the process holds for a login, newest first: the
// current one, the one the provider replaced, ACSPrevious fetched for it.
func (l *Login) held(p secretsource.Cache, cur *secretsource.Secret) []*secretsource.Secret {
	out := make([]*secretsource.Secret, 1, 4)
	out[0] = cur
	add := func(s *secretsource.Secret) {
		if s != nil && !slices.ContainsFunc(out, func(o *secretsource.Secret) bool { return o.VersionID() == s.VersionID() }) {
			out = append(out, s)
		}
	}
	if rp, ok := p.(replacer); ok {
		add(rp.Replaced(l.name))
	}
	if hp := l.prev.Load(); hp != nil && hp.forVersion == cur.VersionID() {
		add(hp.secret)
	}
	return out
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
	r := &run{l: l, p: p, start: l.now(), cur: cur}
	cand := cur
	if l.trouble.Load() != nil {
		cand = r.first(ctx)
	}
	return loop(ctx, r, cand, attempt)
}

// Continue goes on with the rotation loop for a connection whose first
// attempt was made outside Run with an account Account returned, and failed
// with err: acct is that account (Match finds it from the credentials a
// driver reports; a zero account when unknown). An error of Account itself
// is returned as it is, except the one that asks to wait for the rotation.
// It returns what Run would have: the connection of a later attempt, or an
// *Error.
func Continue[T any](ctx context.Context, l *Login, acct secretsource.DBAccount, err error, attempt func(ctx context.Context, acct secretsource.DBAccount) (T, error)) (T, error) {
	var zero T
	var ce *connector.Error
	if errors.As(err, &ce) {
		if _, wait := ce.Err.(*waitErr); !wait {
			l.stats.failed.Add(1)
			return zero, err
		}
	}
	p, perr := l.provider(ctx)
	if perr != nil {
		l.stats.failed.Add(1)
		return zero, l.secretError(perr, nil)
	}
	cur, perr := p.GetSecret(ctx, l.name)
	if perr != nil {
		l.stats.failed.Add(1)
		return zero, l.secretError(perr, nil)
	}
	r := &run{l: l, p: p, start: l.now(), cur: cur}
	if ce != nil { // Account found nothing to try: wait for the rotation
		return loop(ctx, r, nil, attempt)
	}
	l.stats.logins.Add(1)
	r.attempts = 1
	class := l.classify(err)
	if class != connector.AuthFailure {
		l.stats.failed.Add(1)
		return zero, r.fail(ctx, class, acct, err)
	}
	l.stats.authFailures.Add(1)
	r.lastAcct, r.lastErr = acct, err
	if ctx.Err() != nil {
		l.stats.failed.Add(1)
		return zero, r.fail(ctx, connector.AuthFailure, acct, err)
	}
	if acct.VersionID == "" {
		return loop(ctx, r, r.first(ctx), attempt)
	}
	r.rejected(acct, err)
	return loop(ctx, r, r.next(ctx), attempt)
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
				l.stats.failed.Add(1)
				return zero, err
			}
		}
		acct, err := l.decode(cand)
		if err != nil {
			l.stats.failed.Add(1)
			return zero, l.secretError(err, cand)
		}
		l.stats.logins.Add(1)
		if r.attempts > 0 {
			l.stats.retries.Add(1)
		}
		r.attempts++
		res, err := attempt(ctx, acct)
		if err == nil {
			r.succeeded(cand)
			return res, nil
		}
		class := l.classify(err)
		if class != connector.AuthFailure {
			l.stats.failed.Add(1)
			return zero, r.fail(ctx, class, acct, err)
		}
		l.stats.authFailures.Add(1)
		r.lastAcct, r.lastErr = acct, err
		if ctx.Err() != nil {
			l.stats.failed.Add(1)
			return zero, r.fail(ctx, connector.AuthFailure, acct, err)
		}
		r.rejected(acct, err)
		cand = r.next(ctx)
		if cand != nil {
			l.log.LogAttrs(ctx, slog.LevelDebug, "kmsdb connector: credentials rejected; trying another version",
				slog.String("secret", l.name), slog.String("rejected", acct.VersionID), slog.String("version", cand.VersionID()))
		}
	}
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
	lastAcct secretsource.DBAccount
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
		l.kickRefresh(r.p)
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
			e := r.failRejected(ctx, rej).(*connector.Error)
			e.Err = &waitErr{e.Err}
			return nil, e
		}
		r.wait = min(max(2*r.wait, waitMin), waitMax)
		d := time.Duration(float64(r.wait) * (0.5 + 0.5*l.rand()))
		d = min(d, deadline.Sub(now))
		if err := l.sleep(ctx, d, ch); err != nil {
			return nil, r.failRejected(ctx, rej)
		}
	}
}

// rejected records that the database refused acct's version.
func (r *run) rejected(acct secretsource.DBAccount, err error) {
	l, v := r.l, acct.VersionID
	if !slices.Contains(r.tried, v) {
		r.tried = append(r.tried, v)
	}
	err = Scrub(err, l.scrubList(acct)...)
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	old := l.trouble.Load()
	t := &trouble{}
	if old != nil {
		*t = *old
		t.rejected = slices.Clone(old.rejected)
	}
	if t.good != nil && t.good.VersionID() == v {
		// The stand-in is refused now: the database changed, so what was
		// refused before may log in now.
		t.good, t.goodFor, t.goodUntil, t.rejected = nil, "", time.Time{}, nil
	}
	// Nobody retries a refused version before retryMin has passed.
	for at := now.Add(retryMin).UnixNano(); ; {
		old := l.probeAt.Load()
		if old >= at || l.probeAt.CompareAndSwap(old, at) {
			break
		}
	}
	if rej := t.rejection(v); rej != nil {
		rej.last, rej.err, rej.user = now, err, acct.Username
	} else {
		t.rejected = append(t.rejected, rejection{version: v, user: acct.Username, since: now, last: now, err: err})
		if len(t.rejected) > maxRejections {
			slices.SortStableFunc(t.rejected, func(a, b rejection) int { return a.last.Compare(b.last) })
			t.rejected = t.rejected[len(t.rejected)-maxRejections:]
		}
	}
	l.trouble.Store(t)
}

// succeeded updates the shared state after a login with cand.
func (r *run) succeeded(cand *secretsource.Secret) {
	l := r.l
	old := l.trouble.Load()
	if old == nil {
		return // the fast path: nothing to update
	}
	v := cand.VersionID()
	now := l.now()
	if v != r.cur.VersionID() {
		if old.good == cand && old.goodFor == r.cur.VersionID() && now.Before(old.goodUntil) {
			return
		}
	}
	l.mu.Lock()
	old = l.trouble.Load()
	var standIn bool
	switch {
	case old == nil:
	case v == r.cur.VersionID():
		l.trouble.Store(nil)
	default:
		t := &trouble{rejected: slices.DeleteFunc(slices.Clone(old.rejected), func(rj rejection) bool { return rj.version == v })}
		t.good, t.goodFor, t.goodUntil = cand, r.cur.VersionID(), now.Add(max(l.grace, l.probeEvery))
		standIn = old.good == nil || old.good.VersionID() != v || old.goodFor != r.cur.VersionID()
		l.trouble.Store(t)
	}
	l.wakeLocked()
	l.mu.Unlock()
	if old == nil {
		return
	}
	if standIn {
		l.stats.previousUsed.Add(1)
		l.log.LogAttrs(context.Background(), slog.LevelWarn, "kmsdb connector: current version rejected, logged in with an older one",
			slog.String("secret", l.name), slog.String("current", r.cur.VersionID()), slog.String("version", v))
		return
	}
	if r.attempts > 1 || v == r.cur.VersionID() {
		// Info once per rotation (the login that clears the trouble), Debug
		// for the other connections that went through it.
		level := slog.LevelDebug
		if v == r.cur.VersionID() {
			level = slog.LevelInfo
		}
		l.log.LogAttrs(context.Background(), level, "kmsdb connector: logged in after the credentials were rejected",
			slog.String("secret", l.name), slog.String("version", v), slog.Int("attempts", r.attempts),
			slog.Duration("waited", now.Sub(r.start)))
	}
}

// takeProbe takes the shared turn to retry a refused version, if it is free
// at now; the next turn is every later.
func (l *Login) takeProbe(now time.Time, every time.Duration) bool {
	for {
		at := l.probeAt.Load()
		if now.UnixNano() < at {
			return false
		}
		if l.probeAt.CompareAndSwap(at, now.Add(every).UnixNano()) {
			return true
		}
	}
}

// changedChan returns a channel closed at the next change of the trouble
// state or of the cached secret (by the Login's refresh).
func (l *Login) changedChan() <-chan struct{} {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.changed == nil {
		l.changed = make(chan struct{})
	}
	return l.changed
}

// wakeLocked wakes every connection waiting for a change. l.mu is held.
func (l *Login) wakeLocked() {
	if l.changed != nil {
		close(l.changed)
		l.changed = nil
	}
}

// kickRefresh starts a background refresh of the secret unless one runs or
// the last one started too recently (the second of an episode
// refreshFirstGap after the first, later ones refreshGap apart). The cache
// adds its own per-secret rate limit; nobody waits for it.
func (l *Login) kickRefresh(p secretsource.Cache) {
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed || l.refreshing || now.Before(l.nextRefresh) {
		return
	}
	gap := refreshGap
	if l.lastRefresh.IsZero() || now.Sub(l.lastRefresh) > refreshQuiet {
		gap = refreshFirstGap
	}
	l.refreshing, l.lastRefresh, l.nextRefresh = true, now, now.Add(gap)
	l.bg.Add(1)
	go l.refresh(p)
}

func (l *Login) refresh(p secretsource.Cache) {
	defer l.bg.Done()
	ctx, cancel := context.WithTimeout(l.bgCtx, refreshTimeout)
	defer cancel()
	s, err := p.Refresh(ctx, l.name)
	if err != nil {
		l.log.LogAttrs(ctx, slog.LevelDebug, "kmsdb connector: refresh after a rejected login failed",
			slog.String("secret", l.name), slog.Any("error", err))
	} else if l.needPrevious(p, s) {
		// The process holds no older version: ask KMS for ACSPrevious once
		// per current version.
		vs := p.(secretsource.VersionSource)
		prev, err := vs.GetSecretVersion(ctx, l.name, secretsource.VersionRef{Stage: secretsource.StagePrevious})
		if err != nil {
			l.log.LogAttrs(ctx, slog.LevelDebug, "kmsdb connector: no ACSPrevious version to try",
				slog.String("secret", l.name), slog.Any("error", err))
			prev = nil
		}
		if prev == nil || prev.VersionID() == s.VersionID() {
			prev = nil
		}
		l.prev.Store(&heldPrevious{forVersion: s.VersionID(), secret: prev})
	}
	l.mu.Lock()
	l.refreshing = false
	l.wakeLocked()
	l.mu.Unlock()
}

// needPrevious says whether s, the current version, is rejected while the
// process holds nothing older to try, and ACSPrevious was not asked for it.
func (l *Login) needPrevious(p secretsource.Cache, s *secretsource.Secret) bool {
	if _, ok := p.(secretsource.VersionSource); !ok {
		return false
	}
	if l.trouble.Load().rejection(s.VersionID()) == nil {
		return false
	}
	if hp := l.prev.Load(); hp != nil && hp.forVersion == s.VersionID() {
		return false
	}
	return len(l.held(p, s)) == 1
}

// failRejected is the error of a connection that gives up on a rejected
// version: its own last refusal, or the Login's when it made no attempt.
func (r *run) failRejected(ctx context.Context, rej *rejection) error {
	l := r.l
	if r.attempts > 0 {
		return r.fail(ctx, connector.AuthFailure, r.lastAcct, r.lastErr)
	}
	err := rej.err
	if ctx.Err() != nil {
		err = fmt.Errorf("%w; stopped waiting for the rotation: %w", err, context.Cause(ctx))
	}
	e := &connector.Error{Secret: l.name, Version: rej.version, User: rej.user, Class: connector.AuthFailure,
		Waited: l.now().Sub(r.start), Err: err}
	l.log.LogAttrs(context.Background(), slog.LevelDebug, "kmsdb connector: the secret is rejected; failing without a login",
		slog.String("secret", l.name), slog.String("version", rej.version))
	return e
}

func (r *run) fail(ctx context.Context, class connector.Class, acct secretsource.DBAccount, err error) error {
	l := r.l
	err = Scrub(err, l.scrubList(acct, r.lastAcct)...)
	if class == connector.AuthFailure && ctx.Err() != nil {
		err = fmt.Errorf("%w; stopped waiting for the rotation: %w", err, context.Cause(ctx))
	}
	e := &connector.Error{
		Secret: l.name, Version: acct.VersionID, User: acct.Username, Class: class,
		Attempts: r.attempts, Waited: l.now().Sub(r.start), Err: err,
	}
	if class == connector.AuthFailure {
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
	e := &connector.Error{Secret: l.name, Class: connector.SecretUnavailable, Err: Scrub(err, l.redact...)}
	if s != nil {
		e.Version = s.VersionID()
	}
	return e
}

// Scrub removes the Login's redacted strings and acct's password from err's text.
func (l *Login) Scrub(err error, acct secretsource.DBAccount) error {
	return Scrub(err, l.scrubList(acct)...)
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

// refreshBusy reports whether a background refresh runs (for tests).
func (l *Login) refreshBusy() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.refreshing
}
