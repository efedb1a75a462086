package connector

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"

	"github.com/kmsdb/kmsdb/secretsource"
	"github.com/kmsdb/kmsdb/secretsource/cache"
	"github.com/kmsdb/kmsdb/secretsource/config"
)

// Provider serves secrets to connectors. *cache.Cache implements it. The
// rotation loop calls Refresh in the background when every version it holds
// is rejected. A Provider that also has a method
// Replaced(name string) *secretsource.Secret (as *cache.Cache does) lets
// connectors fall back to the version it replaced at no KMS call; one that
// implements secretsource.VersionSource lets them fetch ACSPrevious when it
// holds no such version.
type Provider interface {
	secretsource.Source
	// Invalidate tells the provider that rejectedVersion of the secret was
	// refused; it acts only if that version is the cached one. The rotation
	// loop does not call it (its callers would wait for the refresh it
	// starts); other users of a shared provider may.
	Invalidate(name, rejectedVersion string) bool
	// Refresh fetches the secret now (rate-limited, joining a fetch in progress).
	Refresh(ctx context.Context, name string) (*secretsource.Secret, error)
}

var _ Provider = (*cache.Cache)(nil)

var defaultProvider struct {
	cur    atomic.Pointer[providerBox] // fast path: read without locking
	mu     sync.Mutex                  // serializes building and replacing
	closer io.Closer                   // the cache built by DefaultProvider, nil when set by SetDefaultProvider
}

type providerBox struct{ p Provider }

// SetDefaultProvider installs p as the process-wide default provider, used by
// every connector built without WithProvider or WithSource, including those
// opened by driver name (sql.Open("mysqlkms", ...)). A nil p makes the next
// use build the default again from config.Load. A default built from
// config.Load that p replaces is closed.
func SetDefaultProvider(p Provider) {
	defaultProvider.mu.Lock()
	old := defaultProvider.closer
	defaultProvider.closer = nil
	if p == nil {
		defaultProvider.cur.Store(nil)
	} else {
		defaultProvider.cur.Store(&providerBox{p})
	}
	defaultProvider.mu.Unlock()
	if old != nil {
		_ = old.Close()
	}
}

// DefaultProvider returns the process-wide default provider, building it on
// first use: a *cache.Cache in front of the source config.Load builds from
// code options, the environment and secretsmanager.properties. The cache
// follows the configuration's refresh_secret_ttl (its TTL, instead of
// cache.DefaultTTL) and starts fetching the secrets of secret_names in the
// background at once. A failure is not remembered: the next call tries
// again.
func DefaultProvider(ctx context.Context) (Provider, error) {
	if b := defaultProvider.cur.Load(); b != nil {
		return b.p, nil
	}
	defaultProvider.mu.Lock()
	defer defaultProvider.mu.Unlock()
	if b := defaultProvider.cur.Load(); b != nil {
		return b.p, nil
	}
	set, err := loadSettings(ctx)
	var src *config.Source
	if err == nil {
		src, err = set.Source()
	}
	if err != nil {
		return nil, fmt.Errorf("connector: no secret source for the default provider (configure secretsmanager.properties "+
			"or the environment as for Alibaba's secrets manager client, or give the connector a source): %w", err)
	}
	c, err := cache.New(src, defaultCacheOptions(set)...)
	if err != nil {
		_ = src.Close()
		return nil, fmt.Errorf("connector: default provider: %w", err)
	}
	cl := &closers{c: c, src: src}
	cl.prefetch(set.SecretNames)
	defaultProvider.cur.Store(&providerBox{c})
	defaultProvider.closer = cl
	return c, nil
}

// loadSettings reads the configuration of the default provider (a variable
// so that tests can add options, such as the emulator's CA).
var loadSettings = func(ctx context.Context) (*config.Settings, error) { return config.LoadSettings(ctx) }

// defaultCacheOptions are the cache options the configuration sets.
func defaultCacheOptions(set *config.Settings) []cache.Option {
	var opts []cache.Option
	if set.RefreshSecretTTL > 0 {
		opts = append(opts, cache.WithTTL(set.RefreshSecretTTL))
	}
	if set.Logger != nil {
		opts = append(opts, cache.WithLogger(set.Logger))
	}
	return opts
}

// closers closes a cache, then its source when the source is a Closer,
// after stopping the prefetch of secret_names.
type closers struct {
	c      *cache.Cache
	src    secretsource.Source
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// prefetch fetches names into the cache in the background, one after the
// other (a failure is the cache's to log and retry on the next use).
func (c *closers) prefetch(names []string) {
	if len(names) == 0 {
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	c.cancel = cancel
	c.wg.Go(func() {
		for _, n := range names {
			if ctx.Err() != nil {
				return
			}
			_, _ = c.c.GetSecret(ctx, n)
		}
	})
}

func (c *closers) Close() error {
	if c.cancel != nil {
		c.cancel()
	}
	c.wg.Wait()
	err := c.c.Close()
	if cl, ok := c.src.(io.Closer); ok {
		err = errors.Join(err, cl.Close())
	}
	return err
}

// providerFor returns the provider a connector uses: p when given; else src
// itself when it is a Provider; else a new cache in front of src, owned by
// the connector (closed by the returned Closer). With neither, it returns nil:
// the default provider is resolved on first use.
func providerFor(p Provider, src secretsource.Source) (Provider, io.Closer, error) {
	if p != nil {
		return p, nil, nil
	}
	if src == nil {
		return nil, nil, nil
	}
	if pp, ok := src.(Provider); ok {
		return pp, nil, nil
	}
	c, err := cache.New(src)
	if err != nil {
		return nil, nil, fmt.Errorf("connector: cache in front of the source: %w", err)
	}
	return c, c, nil
}
