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

// New returns a cache in front of src. It loads the Store, if one is set
// (WithStore), and schedules an immediate refresh of each persisted secret;
// it does not call the source itself. Close it to stop its background work.
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
	t := c.loadStore(newSlotTable(maphash.MakeSeed(), 0))
	c.slots.Store(t)
	t.each(func(s *slot) {
		s.mu.Lock()
		c.armExpiryLocked(s, s.cur.Load())
		c.scheduleLocked(s, 0, ReasonWarmStart)
		s.mu.Unlock()
	})
	return c, nil
}

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
	f := fetch{kind: fetchWaited, reason: ReasonCold}
	switch {
	case e == nil:
	case e.state == stateRejected:
		f.reason = ReasonInvalidated
	case e.state == statePersisted:
		f.reason = ReasonWarmStart
	}
	s.addWaiter()
	defer c.removeWaiter(s)
	ch := c.sf.DoChan(name, c.flight(ctx, s, f))
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
		return nil, waitError(s, ctx, lastError(s))
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
		c.sf.DoChan(name, c.flight(context.Background(), s, fetch{kind: fetchInvalidated, reason: ReasonInvalidated, rejected: e}))
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
	ch := c.sf.DoChan(name, c.flight(ctx, s, fetch{kind: fetchForced, reason: ReasonForced}))
	select {
	case r := <-ch:
		if r.Err != nil {
			return nil, r.Err
		}
		return r.Val.(*secretsource.Secret), nil
	case <-ctx.Done():
		return nil, waitError(s, ctx, lastError(s))
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
