package cache

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/kmsdb/kmsdb/secretsource"
	"github.com/kmsdb/kmsdb/secretsource/cache/internal/clock"
)

var t0 = time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)

// fakeSource is an in-memory Source and VersionSource whose behaviour a test
// changes as it goes. It counts calls and records when they happened.
type fakeSource struct {
	mu       sync.Mutex
	clk      clock.Clock
	version  int
	value    string
	nextRot  time.Time
	previous *secretsource.Secret
	err      error         // returned instead of a secret when set
	gate     chan struct{} // when set, each call waits for it (or ctx)
	started  chan struct{} // when set, receives one value per call started
	calls    int
	vcalls   int
	times    []time.Time
}

func newFakeSource(clk clock.Clock) *fakeSource {
	return &fakeSource{clk: clk, version: 1, value: "pw-1"}
}

func (f *fakeSource) secretLocked(name string) *secretsource.Secret {
	return secretsource.NewSecret(secretsource.Fields{
		Name: name, VersionID: fmt.Sprintf("v%d", f.version), VersionStages: []string{secretsource.StageCurrent},
		SecretType: secretsource.TypeGeneric, DataType: secretsource.DataText, Value: []byte(f.value),
		NextRotationDate: f.nextRot,
	})
}

func (f *fakeSource) GetSecret(ctx context.Context, name string) (*secretsource.Secret, error) {
	f.mu.Lock()
	f.calls++
	if f.clk != nil {
		f.times = append(f.times, f.clk.Now())
	}
	gate, started := f.gate, f.started
	f.mu.Unlock()
	if started != nil {
		started <- struct{}{}
	}
	if gate != nil {
		select {
		case <-gate:
		case <-ctx.Done():
			return nil, &secretsource.Error{Kind: secretsource.KindTimeout, Secret: name, Source: "fake", Err: ctx.Err()}
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return nil, f.err
	}
	return f.secretLocked(name), nil
}

func (f *fakeSource) GetSecretVersion(ctx context.Context, name string, ref secretsource.VersionRef) (*secretsource.Secret, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.vcalls++
	if f.err != nil {
		return nil, f.err
	}
	if ref.Stage == secretsource.StagePrevious && f.previous != nil {
		return f.previous, nil
	}
	return nil, &secretsource.Error{Kind: secretsource.KindNotFound, Secret: name, Source: "fake", Message: "no such version"}
}

// rotate makes a new current version and keeps the old one as ACSPrevious.
func (f *fakeSource) rotate(name string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	old := f.secretLocked(name)
	fl := old.Fields()
	fl.VersionStages = []string{secretsource.StagePrevious}
	f.previous = secretsource.NewSecret(fl)
	f.version++
	f.value = fmt.Sprintf("pw-%d", f.version)
}

func (f *fakeSource) setErr(err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.err = err
}

func (f *fakeSource) Calls() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls
}

func (f *fakeSource) VCalls() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.vcalls
}

func (f *fakeSource) Times() []time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]time.Time(nil), f.times...)
}

var (
	errUnavailable = &secretsource.Error{Kind: secretsource.KindUnavailable, Source: "fake", Code: "ServiceUnavailableTemporary"}
	errNotFound    = &secretsource.Error{Kind: secretsource.KindNotFound, Source: "fake", Code: "Forbidden.ResourceNotFound"}
)

// constRand returns a goroutine-safe random source that always returns v.
func constRand(v float64) func() float64 { return func() float64 { return v } }

// seqRand returns a goroutine-safe deterministic random source (a linear
// congruential sequence) so tests can replay exactly the draws of the cache.
func seqRand(seed uint64) func() float64 {
	var mu sync.Mutex
	x := seed
	return func() float64 {
		mu.Lock()
		defer mu.Unlock()
		x = x*6364136223846793005 + 1442695040888963407
		return float64(x>>11) / (1 << 53)
	}
}

func newTestCache(t testing.TB, src secretsource.Source, opts ...Option) *Cache {
	t.Helper()
	c, err := New(src, opts...)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// eventually polls cond until it holds; it is a wait, not a timed assert.
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

func mustGet(t testing.TB, c *Cache, name string) *secretsource.Secret {
	t.Helper()
	s, err := c.GetSecret(context.Background(), name)
	if err != nil {
		t.Fatalf("GetSecret(%q): %v", name, err)
	}
	return s
}

// memStore keeps records in memory, so tests can build a cache again (or
// several) and start warm. Secrets are immutable: it holds pointers.
type memStore struct {
	mu sync.Mutex
	m  map[string]Record
}

func newMemStore() *memStore { return &memStore{m: make(map[string]Record)} }

func (s *memStore) Load(context.Context) ([]Record, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Record, 0, len(s.m))
	for _, r := range s.m {
		out = append(out, r)
	}
	return out, nil
}

func (s *memStore) Save(_ context.Context, r Record) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.m[r.Secret.Name()] = r
	return nil
}

func (s *memStore) Delete(_ context.Context, name string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.m, name)
	return nil
}

// backoffFunc and policyFunc adapt functions to Backoff and RefreshPolicy.
type backoffFunc func(attempt int, rnd func() float64) time.Duration

func (f backoffFunc) Delay(attempt int, rnd func() float64) time.Duration { return f(attempt, rnd) }

type policyFunc func(s *secretsource.Secret, now time.Time, rnd func() float64) time.Duration

func (f policyFunc) NextRefresh(s *secretsource.Secret, now time.Time, rnd func() float64) time.Duration {
	return f(s, now, rnd)
}

// recBackoff records every delay the cache asked for.
type recBackoff struct {
	mu     sync.Mutex
	inner  ExponentialBackoff
	delays []time.Duration
	ceils  []time.Duration
}

func (b *recBackoff) Delay(attempt int, rnd func() float64) time.Duration {
	d := b.inner.Delay(attempt, rnd)
	b.mu.Lock()
	defer b.mu.Unlock()
	b.delays = append(b.delays, d)
	b.ceils = append(b.ceils, b.inner.Ceiling(attempt))
	return d
}
