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

var _ secretsource.Cache = (*cache.Cache)(nil)

var defaultCache struct {
	cur    atomic.Pointer[cacheBox] // fast path: read without locking
	mu     sync.Mutex               // serializes building and replacing
	closer io.Closer                // the cache built by DefaultCache, nil when set by SetDefaultCache
}

type cacheBox struct{ c secretsource.Cache }

// SetDefaultCache installs c as the process-wide default cache, used by
// every connector built without WithSource, including those opened by
// driver name (sql.Open("mysqlkms", ...)). A nil c makes the next use build
// the default again from config.Load. A default built from config.Load that
// c replaces is closed.
func SetDefaultCache(c secretsource.Cache) {
	defaultCache.mu.Lock()
	old := defaultCache.closer
	defaultCache.closer = nil
	if c == nil {
		defaultCache.cur.Store(nil)
	} else {
		defaultCache.cur.Store(&cacheBox{c})
	}
	defaultCache.mu.Unlock()
	if old != nil {
		_ = old.Close()
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
	set, err := loadSettings(ctx)
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
	cl := &closers{c: c, src: src}
	cl.prefetch(set.SecretNames)
	defaultCache.cur.Store(&cacheBox{c})
	defaultCache.closer = cl
	return c, nil
}

// loadSettings reads the configuration of the default cache (a variable
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
