package credprov

import (
	"sync"
	"time"

	"github.com/aliyun/credentials-go/credentials/providers"
)

// cached keeps a provider's session until refreshBefore its expiry and
// fetches a new one then. Calls are serialized: one fetch at a time, the
// others wait for it and share its result.
type cached struct {
	mu     sync.Mutex
	now    func() time.Time // time.Now; tests move it
	s      session
	valid  bool
	failed time.Time // when the last fetch failed while s was still usable
	fetch  func() (session, error)
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
	return &cached{now: time.Now, fetch: fetch}
}

// get returns the cached session, fetching one first when there is none or
// when it expires within refreshBefore. When that fetch fails and the cached
// session still has more than keepUsable left, get returns the cached session
// and tries again no sooner than retryPause later (credentials-go returns the
// error). Otherwise a failed fetch returns its error: the next call fetches
// again.
func (c *cached) get() (session, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.now()
	if c.valid && c.s.expires.Sub(now) > refreshBefore {
		return c.s, nil
	}
	usable := c.valid && c.s.expires.Sub(now) > keepUsable
	if usable && !c.failed.IsZero() && now.Sub(c.failed) < retryPause {
		return c.s, nil
	}
	s, err := c.fetch()
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

// credentials is s in credentials-go's shape.
func (s session) credentials(providerName string) *providers.Credentials {
	return &providers.Credentials{AccessKeyId: s.accessKeyID, AccessKeySecret: s.accessKeySecret,
		SecurityToken: s.securityToken, ProviderName: providerName}
}
