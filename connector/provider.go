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

// Provider serves secrets to connectors and learns from rejected versions.
// *cache.Cache implements it. A Provider that also implements
// secretsource.VersionSource lets connectors try the ACSPrevious version
// during a rotation window.
type Provider interface {
	secretsource.Source
	// Invalidate tells the provider that rejectedVersion of the secret was
	// refused; it acts only if that version is the cached one.
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
// code options, the environment and secretsmanager.properties. A failure is
// not remembered: the next call tries again.
func DefaultProvider(ctx context.Context) (Provider, error) {
	if b := defaultProvider.cur.Load(); b != nil {
		return b.p, nil
	}
	defaultProvider.mu.Lock()
	defer defaultProvider.mu.Unlock()
	if b := defaultProvider.cur.Load(); b != nil {
		return b.p, nil
	}
	src, err := config.Load(ctx)
	if err != nil {
		return nil, fmt.Errorf("connector: no secret source for the default provider (configure secretsmanager.properties "+
			"or the environment as for Alibaba's secrets manager client, or give the connector a source): %w", err)
	}
	c, err := cache.New(src)
	if err != nil {
		if cl, ok := src.(io.Closer); ok {
			_ = cl.Close()
		}
		return nil, fmt.Errorf("connector: default provider: %w", err)
	}
	defaultProvider.cur.Store(&providerBox{c})
	defaultProvider.closer = closers{c, src}
	return c, nil
}

// closers closes a cache, then its source when the source is a Closer.
type closers struct {
	c   *cache.Cache
	src secretsource.Source
}

func (c closers) Close() error {
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
