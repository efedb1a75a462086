package connector

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"

	"github.com/kmsdb/kmsdb/secretsource"
	"github.com/kmsdb/kmsdb/secretsource/cache"
	"github.com/kmsdb/kmsdb/secretsource/config"
)

var _ secretsource.Cache = (*cache.Cache)(nil)

var defaultCache struct {
	cur   atomic.Pointer[cacheBox] // fast path: read without locking
	mu    sync.Mutex               // serializes building and replacing
	built *built                   // the cache DefaultCache built, nil when set by SetDefaultCache
}

type cacheBox struct{ c secretsource.Cache }

// SetDefaultCache installs c as the process-wide default cache, used by
// every connector built without WithSource, including those opened by
// driver name (sql.Open("mysqlkms", ...)). A nil c makes the next use build
// the default again from config.Load. A default built from config.Load that
// c replaces is closed.
func SetDefaultCache(c secretsource.Cache) {
	defaultCache.mu.Lock()
	old := defaultCache.built
	defaultCache.built = nil
	if c == nil {
		defaultCache.cur.Store(nil)
	} else {
		defaultCache.cur.Store(&cacheBox{c})
	}
	defaultCache.mu.Unlock()
	if old != nil {
		_ = old.close()
	}
}

// DefaultCache returns the process-wide default cache, building it on
// first use: a *cache.Cache in front of the source config.Load builds from
// code options, the environment and secretsmanager.properties. The cache
// follows the configuration's refresh_secret_ttl (its TTL, instead of
// cache.DefaultTTL) and starts fetching the secrets of secret_names in the
// background at once. A failure is not remembered: the next call tries
// again.
func DefaultCache(ctx context.Context) (secretsource.Cache, error) {
	if b := defaultCache.cur.Load(); b != nil {
		return b.c, nil
	}
	defaultCache.mu.Lock()
	defer defaultCache.mu.Unlock()
	if b := defaultCache.cur.Load(); b != nil {
		return b.c, nil
	}
	var opts []config.Option
	if l := DefaultObserver().Logger; l != nil {
		opts = append(opts, config.WithLogger(l)) // configuration warnings, the sources' lines
	}
	set, err := loadSettings(ctx, opts...)
	var src *config.Source
	if err == nil {
		src, err = set.Source()
	}
	if err != nil {
		return nil, fmt.Errorf("connector: no secret source for the default cache (configure secretsmanager.properties "+
			"or the environment as for Alibaba's secrets manager client, or give the connector a source): %w", err)
	}
	c, err := cache.New(src, defaultCacheOptions(set)...)
	if err != nil {
		_ = src.Close()
		return nil, fmt.Errorf("connector: default cache: %w", err)
	}
	b := &built{c: c}
	b.prefetch(set.SecretNames)
	defaultCache.cur.Store(&cacheBox{c})
	defaultCache.built = b
	return c, nil
}

// loadSettings reads the configuration of the default cache (a variable
// so that tests can add options, such as the emulator's CA).
var loadSettings = func(ctx context.Context, opts ...config.Option) (*config.Settings, error) {
	return config.LoadSettings(ctx, opts...)
}

// defaultCacheOptions are the options of the default cache: those the
// configuration sets, and the hooks and logger of the default Observer.
func defaultCacheOptions(set *config.Settings) []cache.Option {
	opts := []cache.Option{cache.WithHooks(observedHooks()), cache.WithLogger(slog.New(observedHandler{}))}
	if set.RefreshSecretTTL > 0 {
		opts = append(opts, cache.WithTTL(set.RefreshSecretTTL))
	}
	return opts
}

// built is the default cache DefaultCache built (it owns its source, and
// closes it), with the prefetch of secret_names.
type built struct {
	c      *cache.Cache
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// prefetch fetches names into the cache in the background, one after the
// other (a failure is the cache's to log and retry on the next use).
func (b *built) prefetch(names []string) {
	if len(names) == 0 {
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	b.cancel = cancel
	b.wg.Go(func() {
		for _, n := range names {
			if ctx.Err() != nil {
				return
			}
			_, _ = b.c.GetSecret(ctx, n)
		}
	})
}

// close stops the prefetch, then closes the cache and with it the source.
func (b *built) close() error {
	if b.cancel != nil {
		b.cancel()
	}
	b.wg.Wait()
	return b.c.Close()
}
