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

// Pace of the rotation loop (see the documentation of package connector).
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
	// refreshSecondGap, refreshThirdGap and refreshGap space the KMS
	// refreshes the Login asks for while every password it holds is
	// rejected (an episode): the first at once, the second refreshSecondGap
	// after the episode began (the refusal; see kickRefresh), the third
	// refreshThirdGap after that (0.65 s after the start), the next ones
	// refreshGap apart, none closer than refreshMinGap. So a secret that
	// follows the database by up to 0.65 s is picked up within about 0.35 s
	// of its change at 3 KMS calls, and a broken secret costs one call a
	// second. An episode ends after refreshQuiet without a refresh. The
	// cache's per-secret rate limit (burst cache.DefaultRefreshBurst, 3) lets
	// the first three through at once, and has refilled them when the next
	// episode starts; in a process's first episode the one ACSPrevious fetch
	// (see needPrevious) takes a token too, so the third refresh waits for
	// one until about 1 s after the first: 4 calls.
	refreshSecondGap = 300 * time.Millisecond
	refreshThirdGap  = 350 * time.Millisecond
	refreshGap       = time.Second
	refreshMinGap    = 100 * time.Millisecond
	refreshQuiet     = 2 * time.Second
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
	// never a password. Nil: the Logger of connector.DefaultObserver at
	// the time of each line (none: discard).
	Logger *slog.Logger
	// OnLogin receives the connector.LoginEvent that ends each connection
	// attempt sequence. Nil: the Login hook of connector.DefaultObserver at
	// the time of the event.
	OnLogin func(context.Context, connector.LoginEvent)
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
	log        *slog.Logger                                // nil: the default Observer's
	onLogin    func(context.Context, connector.LoginEvent) // nil: the default Observer's

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

	mu           sync.Mutex    // serializes trouble updates; guards the fields below
	changed      chan struct{} // closed when trouble or the cached secret may have changed
	refreshing   bool          // a background refresh runs
	lastRefresh  time.Time     // start of the last background refresh
	nextRefresh  time.Time     // no background refresh starts before
	episodeN     int           // background refreshes started in this episode
	episodeStart time.Time     // the schedule of this episode counts from
	closed       bool
	bg           sync.WaitGroup
	bgCtx        context.Context
	bgCancel     context.CancelFunc

	stats loginStats

	// test hooks
	now   func() time.Time
	sleep func(ctx context.Context, d time.Duration, wake <-chan struct{}) error
	rand  func() float64
	// bgSleep waits until the time until on the Login's clock (for the
	// refresh goroutine's dense refreshes), or until ctx ends (its error).
	bgSleep func(ctx context.Context, until time.Time) error

	closeOnce sync.Once
	closeErr  error
}

type decodedSecret struct {
	secret *secretsource.Secret
	acct   secretsource.DBAccount
	err    error
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
	l := &Login{
		name: cfg.SecretName, classify: cfg.Classify, grace: grace, probeEvery: probe,
		redact: slices.DeleteFunc(slices.Clone(cfg.Redact), func(s string) bool { return s == "" }), log: cfg.Logger, onLogin: cfg.OnLogin,
		fixed: p, closer: closer,
		now: time.Now, sleep: sleepCtx, rand: rand.Float64,
	}
	l.bgSleep = func(ctx context.Context, until time.Time) error { return sleepCtx(ctx, until.Sub(l.now()), nil) }
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

// logger is the Login's logger: its own, else the default Observer's, else
// one that discards.
func (l *Login) logger() *slog.Logger {
	if l.log != nil {
		return l.log
	}
	if lg := connector.DefaultObserver().Logger; lg != nil {
		return lg
	}
	return discard
}

var discard = slog.New(slog.DiscardHandler)

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
