package rotation

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/kmsdb/kmsdb/connector"
	"github.com/kmsdb/kmsdb/secretsource"
	"github.com/kmsdb/kmsdb/secretsource/cache"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// rotatingSource is a secret source whose current and previous versions the
// test moves; it counts the calls it answers. It is the wire-free source of
// these unit tests: the real cache sits in front of it.
type rotatingSource struct {
	mu       sync.Mutex
	versions []string // version ids in order; the last is ACSCurrent, the one before ACSPrevious
	pw       map[string]string
	calls    atomic.Int64
	prevCall atomic.Int64
	failWith error
}

func newRotating(pairs ...string) *rotatingSource {
	s := &rotatingSource{pw: map[string]string{}}
	for i := 0; i < len(pairs); i += 2 {
		s.add(pairs[i], pairs[i+1])
	}
	return s
}

func (s *rotatingSource) add(version, password string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.versions = append(s.versions, version)
	s.pw[version] = password
}

func (s *rotatingSource) secret(name, v string, stages ...string) *secretsource.Secret {
	return secretsource.NewSecret(secretsource.Fields{
		Name: name, VersionID: v, VersionStages: stages, SecretType: secretsource.TypeRds, DataType: secretsource.DataText,
		Value: fmt.Appendf(nil, `{"AccountName":"app","AccountPassword":%q}`, s.pw[v]),
	})
}

func (s *rotatingSource) GetSecret(ctx context.Context, name string) (*secretsource.Secret, error) {
	s.calls.Add(1)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.failWith != nil {
		return nil, s.failWith
	}
	return s.secret(name, s.versions[len(s.versions)-1], secretsource.StageCurrent), nil
}

func (s *rotatingSource) GetSecretVersion(ctx context.Context, name string, ref secretsource.VersionRef) (*secretsource.Secret, error) {
	s.calls.Add(1)
	s.prevCall.Add(1)
	s.mu.Lock()
	defer s.mu.Unlock()
	if ref.Stage != secretsource.StagePrevious || len(s.versions) < 2 {
		return nil, &secretsource.Error{Kind: secretsource.KindNotFound, Secret: name, Message: "no such version"}
	}
	return s.secret(name, s.versions[len(s.versions)-2], secretsource.StagePrevious), nil
}

// fakeDB accepts one password at a time and counts logins.
type fakeDB struct {
	mu       sync.Mutex
	password string
	logins   atomic.Int64
	perm     error
}

var errAuth = errors.New("fake: access denied")

func (d *fakeDB) set(pw string) { d.mu.Lock(); d.password = pw; d.mu.Unlock() }

func (d *fakeDB) attempt(ctx context.Context, acct secretsource.DBAccount) (string, error) {
	d.logins.Add(1)
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.perm != nil {
		return "", d.perm
	}
	if acct.Password != d.password {
		// Echo the password, as a careless driver might.
		return "", fmt.Errorf("%w for user %s with password %s", errAuth, acct.Username, acct.Password)
	}
	return acct.VersionID, nil
}

var errPerm = errors.New("fake: account locked")

func classifyFake(err error) connector.Class {
	switch {
	case errors.Is(err, errAuth):
		return connector.AuthFailure
	case errors.Is(err, errPerm):
		return connector.Permanent
	}
	return connector.Other
}

// fakeTime makes the Login's waits instant and deterministic: each wait
// first lets a background refresh in progress finish (in real time), then
// moves the fake clock by the wait.
type fakeTime struct {
	mu     sync.Mutex
	t      time.Time
	slept  []time.Duration
	onWait func(n int) // called after each wait, with the number of waits so far
	l      *Login
}

func (f *fakeTime) now() time.Time { f.mu.Lock(); defer f.mu.Unlock(); return f.t }

func (f *fakeTime) advance(d time.Duration) { f.mu.Lock(); f.t = f.t.Add(d); f.mu.Unlock() }

func (f *fakeTime) sleep(ctx context.Context, d time.Duration, _ <-chan struct{}) error {
	f.settle()
	f.mu.Lock()
	f.t = f.t.Add(d)
	f.slept = append(f.slept, d)
	n, hook := len(f.slept), f.onWait
	f.mu.Unlock()
	if hook != nil {
		hook(n)
	}
	return ctx.Err()
}

// settle waits (in real time) for the Login's background refresh to end.
func (f *fakeTime) settle() {
	for i := 0; i < 20000 && f.l.refreshBusy(); i++ {
		time.Sleep(time.Millisecond)
	}
}

func (f *fakeTime) waits() int { f.mu.Lock(); defer f.mu.Unlock(); return len(f.slept) }

func newTestLogin(t *testing.T, src secretsource.Source, grace time.Duration) (*Login, *cache.Cache, *fakeTime) {
	t.Helper()
	c, err := cache.New(src, cache.WithRefreshLimit(time.Microsecond, 1000))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	l, err := NewLogin(Config{SecretName: "db", Source: c, GracePeriod: grace, Classify: classifyFake})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = l.Close() })
	ft := &fakeTime{t: time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC), l: l}
	l.now, l.sleep, l.rand = ft.now, ft.sleep, func() float64 { return 0.5 }
	return l, c, ft
}

func TestRunWarmCacheMakesNoSourceCall(t *testing.T) {
	src := newRotating("v1", "pw-one-1111")
	db := &fakeDB{password: "pw-one-1111"}
	l, _, _ := newTestLogin(t, src, 0)
	ctx := context.Background()
	for range 100 {
		if v, err := Run(ctx, l, db.attempt); err != nil || v != "v1" {
			t.Fatalf("Run = %q, %v", v, err)
		}
	}
	if got := src.calls.Load(); got != 1 {
		t.Errorf("source calls = %d, want 1 (the first fetch)", got)
	}
	if got := db.logins.Load(); got != 100 {
		t.Errorf("logins = %d, want 100", got)
	}
}

func TestRunRotation(t *testing.T) {
	t.Run("stale cache: the refresh brings the new version", func(t *testing.T) {
		// The cache still holds v1; the database and the source already have v2.
		src := newRotating("v1", "pw-one-1111")
		db := &fakeDB{password: "pw-one-1111"}
		l, _, _ := newTestLogin(t, src, 0)
		mustRun(t, l, db, "v1")
		src.add("v2", "pw-two-2222")
		db.set("pw-two-2222")
		before := src.calls.Load()
		mustRun(t, l, db, "v2")
		if got := l.Stats(); got.AuthFailures != 1 || got.Retries != 1 {
			t.Errorf("stats = %+v, want 1 auth failure, 1 retry", got)
		}
		if got := src.calls.Load() - before; got != 1 {
			t.Errorf("source calls = %d, want 1 refresh", got)
		}
	})
	t.Run("cache refreshed before the database: the replaced version, no KMS call", func(t *testing.T) {
		src := newRotating("v1", "pw-one-1111")
		db := &fakeDB{password: "pw-one-1111"}
		l, c, ft := newTestLogin(t, src, 0)
		mustRun(t, l, db, "v1")
		src.add("v2", "pw-two-2222")
		if _, err := c.Refresh(context.Background(), "db"); err != nil { // refresh-ahead learnt v2 first
			t.Fatal(err)
		}
		before := src.calls.Load()
		mustRun(t, l, db, "v1")
		if ft.waits() != 0 {
			t.Errorf("waited %v, want no wait", ft.slept)
		}
		// Later connections use v1 directly: one login each.
		logins := db.logins.Load()
		for range 10 {
			mustRun(t, l, db, "v1")
		}
		if got := db.logins.Load() - logins; got != 10 {
			t.Errorf("10 connections made %d logins, want 10 (no failed login while v1 stands in)", got)
		}
		// The database catches up: v1 is rejected, v2 logs in at once.
		db.set("pw-two-2222")
		mustRun(t, l, db, "v2")
		logins = db.logins.Load()
		mustRun(t, l, db, "v2")
		if got := db.logins.Load() - logins; got != 1 {
			t.Errorf("after the database caught up a connection made %d logins, want 1", got)
		}
		if got := src.calls.Load() - before; got != 0 {
			t.Errorf("the rotation made %d source calls, want 0", got)
		}
		if ft.waits() != 0 {
			t.Errorf("waited %v, want no wait", ft.slept)
		}
		if got := l.Stats().PreviousUsed; got != 1 {
			t.Errorf("PreviousUsed = %d, want 1", got)
		}
	})
	t.Run("cold cache with the new version only: ACSPrevious from KMS", func(t *testing.T) {
		src := newRotating("v1", "pw-one-1111", "v2", "pw-two-2222")
		db := &fakeDB{password: "pw-one-1111"}
		l, _, _ := newTestLogin(t, src, 0)
		mustRun(t, l, db, "v1")
		if got := src.prevCall.Load(); got != 1 {
			t.Errorf("ACSPrevious calls = %d, want 1", got)
		}
		for range 5 {
			mustRun(t, l, db, "v1")
		}
		if got := src.prevCall.Load(); got != 1 {
			t.Errorf("ACSPrevious calls = %d after more connections, want 1", got)
		}
	})
	t.Run("database first, secret later: polling", func(t *testing.T) {
		src := newRotating("v1", "pw-one-1111")
		db := &fakeDB{password: "pw-one-1111"}
		l, _, ft := newTestLogin(t, src, 0)
		mustRun(t, l, db, "v1")
		db.set("pw-two-2222")
		ft.onWait = func(n int) {
			if n == 5 {
				src.add("v2", "pw-two-2222")
			}
		}
		before := src.calls.Load()
		mustRun(t, l, db, "v2")
		if n := ft.waits(); n < 5 {
			t.Errorf("waited %d times, want at least 5", n)
		}
		for i, d := range ft.slept {
			if d < waitMin/2 || d > waitMax {
				t.Errorf("wait %d = %v, outside [%v, %v]", i, d, waitMin/2, waitMax)
			}
		}
		// Refreshes are spaced (0.5 s, then 1 s) on the Login's clock: a
		// few over the waits, not one per wait (plus one ACSPrevious: the
		// cache holds no older version).
		var total time.Duration
		for _, d := range ft.slept {
			total += d
		}
		if got, limit := src.calls.Load()-before, int64(3+total/refreshGap); got > limit {
			t.Errorf("%d source calls over %v of waiting, want at most %d", got, total, limit)
		}
	})
}

func mustRun(t *testing.T, l *Login, db *fakeDB, want string) {
	t.Helper()
	v, err := Run(context.Background(), l, db.attempt)
	if err != nil || v != want {
		t.Fatalf("Run = %q, %v; want %q", v, err, want)
	}
}

func TestRunGracePeriod(t *testing.T) {
	src := newRotating("v1", "pw-one-1111")
	db := &fakeDB{password: "the-database-has-another"}
	l, _, _ := newTestLogin(t, src, 10*time.Second)
	_, err := Run(context.Background(), l, db.attempt)
	var e *connector.Error
	if !errors.As(err, &e) || e.Class != connector.AuthFailure || !errors.Is(err, connector.ErrCredentialsRejected) {
		t.Fatalf("err = %v, want an connector.AuthFailure *connector.Error", err)
	}
	if !errors.Is(err, errAuth) {
		t.Errorf("errors.Is(err, driver error) = false; the driver error must stay reachable")
	}
	if e.Waited < 10*time.Second || e.Waited > 11*time.Second {
		t.Errorf("waited %v, want the 10s grace period", e.Waited)
	}
	if strings.Contains(err.Error(), "pw-one-1111") || strings.Contains(fmt.Sprintf("%+v %#v", err, err), "pw-one-1111") {
		t.Errorf("the password shows in the error: %v", err)
	}
	if !strings.Contains(err.Error(), `secret "db" version "v1" (user "app")`) {
		t.Errorf("error does not name the secret, version and user: %v", err)
	}
	if logins := db.logins.Load(); logins > int64(1+10*time.Second/retryMin) {
		t.Errorf("%d logins during the grace period", logins)
	}
}

// TestRunBrokenRotation: the database was changed and the secret never. Past
// the grace period new connections fail at once, with the error naming the
// secret, version and user; one login per probe interval reaches the
// database; KMS is asked at most once per second; and the first refresh that
// brings a working version heals the next connection.
func TestRunBrokenRotation(t *testing.T) {
	src := newRotating("v1", "pw-one-1111")
	db := &fakeDB{password: "pw-one-1111"}
	l, _, ft := newTestLogin(t, src, 5*time.Second)
	mustRun(t, l, db, "v1")
	db.set("pw-two-2222")
	if _, err := Run(context.Background(), l, db.attempt); !errors.Is(err, connector.ErrCredentialsRejected) {
		t.Fatalf("first Run: %v", err)
	}
	// One simulated minute, a connection every 10 ms.
	waits, logins, calls := ft.waits(), db.logins.Load(), src.calls.Load()
	const step = 10 * time.Millisecond
	for range 6000 {
		ft.advance(step)
		_, err := Run(context.Background(), l, db.attempt)
		var e *connector.Error
		if !errors.As(err, &e) || !errors.Is(err, connector.ErrCredentialsRejected) || e.Secret != "db" || e.Version != "v1" || e.User != "app" {
			t.Fatalf("Run past the grace period = %v, want credentials rejected naming secret, version and user", err)
		}
		if strings.Contains(err.Error(), "pw-one-1111") {
			t.Fatalf("the password shows: %v", err)
		}
		ft.settle()
	}
	if got := ft.waits() - waits; got != 0 {
		t.Errorf("connections past the grace period waited %d times, want none", got)
	}
	if got := db.logins.Load() - logins; got < 55 || got > 61 {
		t.Errorf("%d logins reached the database in a minute, want one per second", got)
	}
	if got := src.calls.Load() - calls; got > 61 {
		t.Errorf("%d source calls in a minute, want at most one per second", got)
	}
	// The secret is fixed: the next refresh brings v2, and the connection after logs in.
	src.add("v2", "pw-two-2222")
	var healed time.Duration
	for healed = 0; healed < 10*time.Second; healed += step {
		ft.advance(step)
		if v, err := Run(context.Background(), l, db.attempt); err == nil {
			if v != "v2" {
				t.Fatalf("healed with %q", v)
			}
			break
		}
		ft.settle()
	}
	if healed > 2*time.Second {
		t.Errorf("healed %v after the secret was fixed, want within 2 s", healed)
	}
	logins = db.logins.Load()
	mustRun(t, l, db, "v2")
	if got := db.logins.Load() - logins; got != 1 {
		t.Errorf("after healing a connection made %d logins, want 1", got)
	}
}

func TestRunStopsWithContext(t *testing.T) {
	src := newRotating("v1", "pw-one-1111")
	db := &fakeDB{password: "other-password"}
	l, _, ft := newTestLogin(t, src, time.Hour)
	ctx, cancel := context.WithCancel(context.Background())
	ft.onWait = func(n int) {
		if n == 3 {
			cancel()
		}
	}
	_, err := Run(ctx, l, db.attempt)
	if !errors.Is(err, context.Canceled) || !errors.Is(err, connector.ErrCredentialsRejected) {
		t.Fatalf("err = %v, want credentials rejected and context canceled", err)
	}
}

func TestRunPermanentErrorsReturnAtOnce(t *testing.T) {
	src := newRotating("v1", "pw-one-1111", "v2", "pw-two-2222")
	db := &fakeDB{password: "pw-two-2222", perm: fmt.Errorf("%w (password pw-two-2222)", errPerm)}
	l, _, ft := newTestLogin(t, src, 0)
	_, err := Run(context.Background(), l, db.attempt)
	if !errors.Is(err, connector.ErrLoginRefused) || !errors.Is(err, errPerm) {
		t.Fatalf("err = %v, want login refused", err)
	}
	if got := db.logins.Load(); got != 1 {
		t.Errorf("logins = %d, want 1", got)
	}
	if got := src.calls.Load(); got != 1 {
		t.Errorf("source calls = %d, want 1 (the cold fetch only)", got)
	}
	if len(ft.slept) != 0 {
		t.Errorf("waited %v", ft.slept)
	}
	if strings.Contains(err.Error(), "pw-two-2222") {
		t.Errorf("password in error: %v", err)
	}
}

func TestRunOtherErrorsReturnAtOnce(t *testing.T) {
	src := newRotating("v1", "pw-one-1111")
	l, _, _ := newTestLogin(t, src, 0)
	boom := errors.New("dial tcp: connection refused")
	var n int
	_, err := Run(context.Background(), l, func(context.Context, secretsource.DBAccount) (int, error) { n++; return 0, boom })
	var e *connector.Error
	if !errors.As(err, &e) || e.Class != connector.Other || !errors.Is(err, boom) || n != 1 {
		t.Fatalf("err = %v after %d attempts", err, n)
	}
}

func TestRunSecretErrors(t *testing.T) {
	t.Run("not found", func(t *testing.T) {
		src := newRotating("v1", "x")
		src.failWith = &secretsource.Error{Kind: secretsource.KindNotFound, Secret: "db", Message: "no such secret"}
		l, _, _ := newTestLogin(t, src, 0)
		_, err := Run(context.Background(), l, (&fakeDB{}).attempt)
		var e *connector.Error
		if !errors.As(err, &e) || e.Class != connector.SecretUnavailable || !errors.Is(err, secretsource.ErrNotFound) {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("not a database secret", func(t *testing.T) {
		src := secretsource.SourceFunc(func(ctx context.Context, name string) (*secretsource.Secret, error) {
			return secretsource.NewSecret(secretsource.Fields{Name: name, VersionID: "v9", Value: []byte("hunter2-plain-text")}), nil
		})
		l, _, _ := newTestLogin(t, src, 0)
		_, err := Run(context.Background(), l, (&fakeDB{}).attempt)
		var e *connector.Error
		if !errors.As(err, &e) || e.Class != connector.SecretUnavailable || e.Version != "v9" {
			t.Fatalf("err = %v", err)
		}
		if strings.Contains(err.Error(), "hunter2") {
			t.Errorf("secret value in error: %v", err)
		}
	})
}

// TestRunConcurrentRejections: many connections failing on one version cause
// a bounded number of fetches, and all succeed once the new version is there.
func TestRunConcurrentRejections(t *testing.T) {
	src := newRotating("v1", "pw-one-1111")
	db := &fakeDB{password: "pw-one-1111"}
	c, err := cache.New(src) // default rate limit: 1 fetch/s, burst 2
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	l, err := NewLogin(Config{SecretName: "db", Source: c, Classify: classifyFake})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Run(context.Background(), l, db.attempt); err != nil {
		t.Fatal(err)
	}
	src.add("v2", "pw-two-2222")
	db.set("pw-two-2222")
	before := src.calls.Load()
	var wg sync.WaitGroup
	errs := make(chan error, 100)
	for range 100 {
		wg.Go(func() {
			if _, err := Run(context.Background(), l, db.attempt); err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if got := src.calls.Load() - before; got != 1 {
		t.Errorf("100 concurrent rejections made %d source calls, want 1", got)
	}
}

func TestScrub(t *testing.T) {
	pw := `p@ss:/?#%&=+'"\ wörd`
	for _, form := range escapedForms(pw) {
		err := Scrub(fmt.Errorf("dsn user:%s@tcp(h)/db failed", form), pw)
		if strings.Contains(err.Error(), form) {
			t.Errorf("form %q not scrubbed: %v", form, err)
		}
	}
	base := errors.New("plain")
	if Scrub(base, pw) != base {
		t.Error("Scrub wrapped an error with nothing to scrub")
	}
	if Scrub(nil, pw) != nil {
		t.Error("Scrub(nil) != nil")
	}
	if got := Scrub(errors.New("abc abc"), "abc").Error(); got != "abc abc" {
		t.Errorf("short secret scrubbed: %q", got)
	}
}

// testDriverError stands for a driver's own error type.
type testDriverError struct{ code int }

func (e *testDriverError) Error() string { return fmt.Sprintf("driver error %d", e.code) }

// TestScrubHidesTheChain: a chain walked with errors.Unwrap (as loggers and
// error reporters do) shows no link holding the secret, while errors.Is and
// errors.As still reach the original errors.
func TestScrubHidesTheChain(t *testing.T) {
	const pw = "hunter2-in-the-middle"
	drv := &testDriverError{code: 1045}
	inner := fmt.Errorf("connect with password %s: %w", pw, drv)
	err := fmt.Errorf("outer: %w", Scrub(fmt.Errorf("dial: %w", inner), pw))
	for e := err; e != nil; e = errors.Unwrap(e) {
		if strings.Contains(e.Error(), pw) {
			t.Errorf("a link of the chain (%T) shows the password: %s", e, e.Error())
		}
	}
	if !errors.Is(err, inner) || !errors.Is(err, drv) {
		t.Error("errors.Is does not reach the original errors")
	}
	var got *testDriverError
	if !errors.As(err, &got) || got.code != 1045 {
		t.Errorf("errors.As = %v, want the driver error", got)
	}
}

// TestAccountAndContinue: a connection made outside Run (pgxpool's
// BeforeConnect) logs in with what Account returns; when the database
// rejects it, Continue goes on from the next version without trying the
// rejected one again, and Match finds the account from its credentials.
func TestAccountAndContinue(t *testing.T) {
	src := newRotating("v1", "pw-one-1111")
	db := &fakeDB{password: "pw-one-1111"}
	l, c, ft := newTestLogin(t, src, 0)
	ctx := context.Background()
	acct, err := l.Account(ctx)
	if err != nil || acct.VersionID != "v1" {
		t.Fatalf("Account = %v, %v", acct.VersionID, err)
	}
	src.add("v2", "pw-two-2222")
	if _, err := c.Refresh(ctx, "db"); err != nil {
		t.Fatal(err)
	}
	acct, err = l.Account(ctx)
	if err != nil || acct.VersionID != "v2" {
		t.Fatalf("Account after the refresh = %v, %v", acct.VersionID, err)
	}
	_, err = db.attempt(ctx, acct)
	m, ok := l.Match(acct.Username, "pw-two-2222")
	if !ok || m.VersionID != "v2" {
		t.Fatalf("Match = %v, %v", m.VersionID, ok)
	}
	if _, ok := l.Match(acct.Username, "no-such-password"); ok {
		t.Error("Match found an account for a password the Login does not hold")
	}
	logins := db.logins.Load()
	v, err := Continue(ctx, l, m, err, db.attempt)
	if err != nil || v != "v1" {
		t.Fatalf("Continue = %q, %v; want v1", v, err)
	}
	if got := db.logins.Load() - logins; got != 1 {
		t.Errorf("Continue made %d logins, want 1 (v1 only)", got)
	}
	if acct, err := l.Account(ctx); err != nil || acct.VersionID != "v1" {
		t.Errorf("Account while v1 stands in = %v, %v", acct.VersionID, err)
	}
	// The database moves on to a version the cache does not know yet: Continue
	// tries what the process holds, then waits for the refresh.
	db.set("pw-three-3333")
	acct, _ = l.Account(ctx)
	_, err = db.attempt(ctx, acct)
	w0 := ft.waits()
	ft.onWait = func(n int) {
		if n == w0+2 {
			src.add("v3", "pw-three-3333")
		}
	}
	if v, err := Continue(ctx, l, acct, err, db.attempt); err != nil || v != "v3" {
		t.Fatalf("Continue = %q, %v; want v3", v, err)
	}
	// Every version refused, within the grace period: Account asks Continue
	// to wait, without a login (one call per retry turn gets a version to try).
	db.set("pw-four-4444")
	cctx, cancel := context.WithCancel(ctx)
	ft.onWait = func(int) { cancel() }
	if _, err := Run(cctx, l, db.attempt); !errors.Is(err, context.Canceled) {
		t.Fatalf("Run = %v, want cancelled while waiting", err)
	}
	ft.onWait = nil
	for i := 0; ; i++ {
		if _, err = l.Account(ctx); err != nil {
			break
		}
		if i == 10 {
			t.Fatal("Account keeps handing out refused versions")
		}
	}
	if !errors.Is(err, connector.ErrCredentialsRejected) {
		t.Fatalf("Account with every version refused = %v", err)
	}
	w := ft.waits()
	ft.onWait = func(n int) {
		if n == w+1 {
			src.add("v4", "pw-four-4444")
		}
	}
	if v, err := Continue(ctx, l, secretsource.DBAccount{}, err, db.attempt); err != nil || v != "v4" {
		t.Fatalf("Continue after Account's error = %q, %v; want v4", v, err)
	}
	// A permanent error is returned as it is.
	db.perm = errPerm
	if _, err := Continue(ctx, l, m, errPerm, db.attempt); !errors.Is(err, connector.ErrLoginRefused) {
		t.Errorf("Continue with a permanent error = %v", err)
	}
}

func TestNewLoginValidates(t *testing.T) {
	if _, err := NewLogin(Config{SecretName: "x", Classify: classifyFake, ProbeInterval: -time.Second}); err == nil ||
		!strings.Contains(err.Error(), "ProbeInterval") {
		t.Errorf("negative ProbeInterval: %v", err)
	}
	if _, err := NewLogin(Config{Classify: classifyFake}); err == nil {
		t.Error("empty secret name accepted")
	}
	if _, err := NewLogin(Config{SecretName: "x"}); err == nil {
		t.Error("nil Classify accepted")
	}
}

func TestSourceGetsOwnCache(t *testing.T) {
	src := newRotating("v1", "pw-one-1111")
	plain := secretsource.SourceFunc(src.GetSecret)
	l, err := NewLogin(Config{SecretName: "db", Source: plain, Classify: classifyFake})
	if err != nil {
		t.Fatal(err)
	}
	db := &fakeDB{password: "pw-one-1111"}
	for range 5 {
		if _, err := Run(context.Background(), l, db.attempt); err != nil {
			t.Fatal(err)
		}
	}
	if got := src.calls.Load(); got != 1 {
		t.Errorf("source calls = %d, want 1: a plain Source gets a cache", got)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Fatal("second Close:", err)
	}
}

// TestRunDuringSourceOutage: once the cache is warm, a source that fails
// changes nothing for new connections, and a rejected login still polls
// (with the stale value) instead of failing on the source's error.
func TestRunDuringSourceOutage(t *testing.T) {
	src := newRotating("v1", "pw-one-1111")
	db := &fakeDB{password: "pw-one-1111"}
	l, _, ft := newTestLogin(t, src, 5*time.Second)
	mustRun(t, l, db, "v1")
	src.mu.Lock()
	src.failWith = &secretsource.Error{Kind: secretsource.KindUnavailable, Secret: "db", Message: "KMS is down"}
	src.mu.Unlock()
	for range 20 {
		mustRun(t, l, db, "v1")
	}
	// The database rotates while KMS is down: the login waits for the grace
	// period and reports the rejection, not the outage.
	db.set("pw-two-2222")
	_, err := Run(context.Background(), l, db.attempt)
	if !errors.Is(err, connector.ErrCredentialsRejected) || len(ft.slept) == 0 {
		t.Fatalf("err = %v after %d waits, want credentials rejected after polling", err, len(ft.slept))
	}
}

// TestConfigNeverPrintsRedactList: Config.Redact holds passwords (from a base
// DSN); printing a Config must not show them.
func TestConfigNeverPrintsRedactList(t *testing.T) {
	cfg := Config{SecretName: "db", Redact: []string{"dsn-password-41"}, Classify: classifyFake}
	var buf bytes.Buffer
	slog.New(slog.NewTextHandler(&buf, nil)).Info("cfg", "v", cfg, "p", &cfg)
	slog.New(slog.NewJSONHandler(&buf, nil)).Info("cfg", "v", cfg)
	outputs := []string{buf.String()}
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q"} {
		outputs = append(outputs, fmt.Sprintf(verb, cfg), fmt.Sprintf(verb, &cfg))
	}
	for _, out := range outputs {
		if strings.Contains(out, "dsn-password-41") {
			t.Errorf("a redacted string shows: %s", out)
		}
	}
	if !strings.Contains(cfg.String(), `"db"`) {
		t.Errorf("String() = %s, want the secret name", cfg.String())
	}
}
