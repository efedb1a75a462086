package rotation

import (
	"context"
	"log/slog"
	"slices"
	"time"

	"github.com/kmsdb/kmsdb/secretsource"
)

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
		l.logger().LogAttrs(context.Background(), slog.LevelWarn, "kmsdb connector: current version rejected, logged in with an older one",
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
		l.logger().LogAttrs(context.Background(), level, "kmsdb connector: logged in after the credentials were rejected",
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
// the last one started too recently; since is when the current version was
// first refused (zero: unknown). The refreshes of an episode start at once,
// then refreshSecondGap and refreshSecondGap+refreshThirdGap after the
// episode began: the refusal, when the first refresh came less than
// refreshSecondGap after it (a connection first tries the older versions it
// holds, a login each), else the first refresh. Later ones come refreshGap
// apart, and none less than refreshMinGap after the one before. The two
// dense ones the refresh goroutine starts itself when they are due and the
// current version is still refused (see refresh); a waiting connection
// may start them too. The cache adds its own per-secret rate limit; nobody
// waits for it.
func (l *Login) kickRefresh(p secretsource.Cache, since time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.startLocked(since) {
		l.bg.Add(1)
		go l.refresh(p)
	}
}

// startLocked books the start of a background refresh, if one may start
// now: see kickRefresh. l.mu is held.
func (l *Login) startLocked(since time.Time) bool {
	now := l.now()
	if l.closed || l.refreshing || now.Before(l.nextRefresh) {
		return false
	}
	if l.lastRefresh.IsZero() || now.Sub(l.lastRefresh) > refreshQuiet {
		l.episodeN, l.episodeStart = 0, now // a new episode
		if age := now.Sub(since); !since.IsZero() && age >= 0 && age < refreshSecondGap {
			l.episodeStart = since
		}
	}
	l.episodeN++
	var next time.Time
	switch l.episodeN {
	case 1:
		next = l.episodeStart.Add(refreshSecondGap)
	case 2:
		next = l.episodeStart.Add(refreshSecondGap + refreshThirdGap)
	default:
		next = now.Add(refreshGap)
	}
	if soonest := now.Add(refreshMinGap); next.Before(soonest) {
		next = soonest
	}
	l.refreshing, l.lastRefresh, l.nextRefresh = true, now, next
	return true
}

// untilRefresh bounds a wait of d starting at now so that the waiter wakes
// when the next background refresh of the episode is due (and kicks it),
// but not earlier than waitMin/2: a lone waiter, whose waits grow to
// waitMax, would otherwise start the dense refreshes late.
func (l *Login) untilRefresh(now time.Time, d time.Duration) time.Duration {
	l.mu.Lock()
	next, busy := l.nextRefresh, l.refreshing
	l.mu.Unlock()
	if busy || !next.After(now) {
		return d // a refresh runs (its end wakes the waiters) or may start now
	}
	return max(next.Sub(now), waitMin/2)
}

// refresh runs background refreshes: the one kickRefresh booked, then the
// dense ones of the episode (see denseDueLocked) when they are due, so that
// they do not wait for a connection to come back from a login to ask.
func (l *Login) refresh(p secretsource.Cache) {
	defer l.bg.Done()
	for {
		s := l.refreshOnce(p)
		l.mu.Lock()
		l.refreshing = false
		l.wakeLocked()
		at, again := l.denseDueLocked(s)
		l.mu.Unlock()
		if !again || l.bgSleep(l.bgCtx, at) != nil {
			return
		}
		l.mu.Lock()
		_, still := l.denseDueLocked(s)
		started := still && l.startLocked(time.Time{})
		l.mu.Unlock()
		if !started {
			return // healed, closed, or a waiting connection started it
		}
	}
}

// denseDueLocked says when the next refresh of the episode is due, and
// whether the refresh goroutine should start it itself: it is one of the
// dense ones (the second or third), and the version the last refresh
// brought (s; nil when it failed) is still refused with nothing standing
// in for it. l.mu is held.
func (l *Login) denseDueLocked(s *secretsource.Secret) (time.Time, bool) {
	if l.closed || l.episodeN < 1 || l.episodeN > 2 {
		return time.Time{}, false
	}
	t := l.trouble.Load()
	if t == nil || t.good != nil || (s != nil && t.rejection(s.VersionID()) == nil) {
		return time.Time{}, false
	}
	return l.nextRefresh, true
}

// refreshOnce refreshes the secret and, when needed, fetches ACSPrevious;
// it returns the current version (nil when the refresh failed).
func (l *Login) refreshOnce(p secretsource.Cache) *secretsource.Secret {
	ctx, cancel := context.WithTimeout(l.bgCtx, refreshTimeout)
	defer cancel()
	s, err := p.Refresh(ctx, l.name)
	if err != nil {
		l.logger().LogAttrs(ctx, slog.LevelDebug, "kmsdb connector: refresh after a rejected login failed",
			slog.String("secret", l.name), slog.Any("error", err))
		return nil
	}
	if l.needPrevious(p, s) {
		// The process holds no older version: ask KMS for ACSPrevious once
		// per current version.
		vs := p.(secretsource.VersionSource)
		prev, err := vs.GetSecretVersion(ctx, l.name, secretsource.VersionRef{Stage: secretsource.StagePrevious})
		if err != nil {
			l.logger().LogAttrs(ctx, slog.LevelDebug, "kmsdb connector: no ACSPrevious version to try",
				slog.String("secret", l.name), slog.Any("error", err))
			prev = nil
		}
		if prev == nil || prev.VersionID() == s.VersionID() {
			prev = nil
		}
		l.prev.Store(&heldPrevious{forVersion: s.VersionID(), secret: prev})
	}
	return s
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

// refreshBusy reports whether a background refresh runs (for tests).
func (l *Login) refreshBusy() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.refreshing
}
