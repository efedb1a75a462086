package credprov

import (
	"sync"
	"time"

	"github.com/aliyun/credentials-go/credentials/providers"
)

// cached keeps a provider's session until refreshBefore its expiry and
// fetches a new one then. One fetch runs at a time (fetch is never called
// concurrently), and never under mu: while the session held is usable, the
// callers that come during a refresh get it at once instead of waiting
// behind a network call (a blackholed STS endpoint holds it for the whole
// timeout); only when there is no usable session do they wait for the
// fetch under way.
type cached struct {
	mu         sync.Mutex
	done       *sync.Cond       // signalled when a fetch ends
	now        func() time.Time // time.Now; tests move it
	s          session
	valid      bool
	refreshing bool      // a fetch runs (outside mu)
	failed     time.Time // when the last fetch failed while s was still usable
	fetch      func() (session, error)
}

// keepUsable: a session that expires later than this is still handed out
// when a refresh fails (STS or the metadata service briefly down), rather
// than failing every KMS request of the minutes it has left. retryPause
// spaces the refreshes tried meanwhile, so that a service that is down is not
// asked again by every request.
const (
	keepUsable = 30 * time.Second
	retryPause = 5 * time.Second
)

func newCached(fetch func() (session, error)) *cached {
	c := &cached{now: time.Now, fetch: fetch}
	c.done = sync.NewCond(&c.mu)
	return c
}

// get returns the cached session, fetching one first when there is none or
// when it expires within refreshBefore. When that fetch fails and the cached
// session still has more than keepUsable left, get returns the cached session
// and tries again no sooner than retryPause later (credentials-go returns the
// error). Otherwise a failed fetch returns its error: the next call fetches
// again. While a fetch runs, a caller gets the usable session at once, or,
// when there is none, waits for that fetch and then decides again.
func (c *cached) get() (session, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	var now time.Time
	var usable bool
	for {
		now = c.now()
		if c.valid && c.s.expires.Sub(now) > refreshBefore {
			return c.s, nil
		}
		usable = c.valid && c.s.expires.Sub(now) > keepUsable
		if usable && (c.refreshing || !c.failed.IsZero() && now.Sub(c.failed) < retryPause) {
			return c.s, nil
		}
		if !c.refreshing {
			break
		}
		c.done.Wait()
	}
	s, err := c.fetchUnlocked()
	if err != nil {
		if usable {
			c.failed = now
			return c.s, nil
		}
		return session{}, err
	}
	c.s, c.valid, c.failed = s, true, time.Time{}
	return s, nil
}

// fetchUnlocked runs fetch with mu released and refreshing set; it is
// called and returns with mu held, and wakes the callers waiting for it,
// even when fetch panics.
func (c *cached) fetchUnlocked() (session, error) {
	c.refreshing = true
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		c.refreshing = false
		c.done.Broadcast()
	}()
	return c.fetch()
}

// credentials is s in credentials-go's shape.
func (s session) credentials(providerName string) *providers.Credentials {
	return &providers.Credentials{AccessKeyId: s.accessKeyID, AccessKeySecret: s.accessKeySecret,
		SecurityToken: s.securityToken, ProviderName: providerName}
}
