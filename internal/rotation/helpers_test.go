package rotation

import (
	"context"
	"errors"
	"fmt"
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

// sleepUntil is the refresh goroutine's wait: until the fake clock, moved
// by the connections' waits or the test, reaches until.
func (f *fakeTime) sleepUntil(ctx context.Context, until time.Time) error {
	for f.now().Before(until) {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Microsecond):
		}
	}
	return nil
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
	l.bgSleep = ft.sleepUntil
	return l, c, ft
}

func mustRun(t *testing.T, l *Login, db *fakeDB, want string) {
	t.Helper()
	v, err := Run(context.Background(), l, db.attempt)
	if err != nil || v != want {
		t.Fatalf("Run = %q, %v; want %q", v, err, want)
	}
}
