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
	mu    sync.Mutex
	now   func() time.Time // time.Now; tests move it
	s     session
	valid bool
	fetch func() (session, error)
}

func newCached(fetch func() (session, error)) *cached {
	return &cached{now: time.Now, fetch: fetch}
}

// get returns the cached session, fetching one first when there is none or
// when it expires within refreshBefore. A failed fetch returns its error and
// keeps nothing: the next call fetches again.
func (c *cached) get() (session, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.valid && c.s.expires.Sub(c.now()) > refreshBefore {
		return c.s, nil
	}
	s, err := c.fetch()
	if err != nil {
		return session{}, err
	}
	c.s, c.valid = s, true
	return s, nil
}

// credentials is s in credentials-go's shape.
func (s session) credentials(providerName string) *providers.Credentials {
	return &providers.Credentials{AccessKeyId: s.accessKeyID, AccessKeySecret: s.accessKeySecret,
		SecurityToken: s.securityToken, ProviderName: providerName}
}
