package credprov

import (
	"os"
	"strings"
	"sync"

	"github.com/aliyun/credentials-go/credentials/providers"

	"github.com/kmsdb/kmsdb/secretsource/internal/wire"
)

// Chain is credentials-go's default credential chain with this package's
// providers in place of its network ones, in credentials-go's order:
//
//  1. ALIBABA_CLOUD_ACCESS_KEY_ID/_SECRET[/SECURITY_TOKEN] (credentials-go)
//  2. OIDC from ALIBABA_CLOUD_ROLE_ARN, _OIDC_PROVIDER_ARN, _OIDC_TOKEN_FILE (ours)
//  3. the Alibaba Cloud CLI profile, ~/.aliyun/config.json (credentials-go)
//  4. the credentials file, ~/.alibabacloud/credentials (credentials-go)
//  5. the ECS instance's RAM role (ours) unless ALIBABA_CLOUD_ECS_METADATA_DISABLED=true
//  6. ALIBABA_CLOUD_CREDENTIALS_URI (ours)
//
// A profile (3 or 4) that assumes a role or reads the metadata service still
// does so through credentials-go's HTTP client, which follows redirects: set
// the credential type explicitly to avoid that.
type Chain struct {
	mu    sync.Mutex
	chain []providers.CredentialsProvider
	last  providers.CredentialsProvider // the provider that last succeeded
}

// NewChain builds the chain from the environment, as
// credentials-go's NewDefaultCredentialsProvider does. http applies to the
// network providers of this package.
func NewChain(http HTTPOptions) *Chain {
	c := &Chain{}
	if p, err := providers.NewEnvironmentVariableCredentialsProviderBuilder().Build(); err == nil {
		c.chain = append(c.chain, p)
	}
	if p, err := NewOIDCRoleARN(OIDCOptions{}, STSOptions{HTTP: http}); err == nil {
		c.chain = append(c.chain, p)
	}
	if p, err := providers.NewCLIProfileCredentialsProviderBuilder().Build(); err == nil {
		c.chain = append(c.chain, p)
	}
	if p, err := providers.NewProfileCredentialsProviderBuilder().Build(); err == nil {
		c.chain = append(c.chain, p)
	}
	if p, err := NewECSRAMRole(ECSOptions{HTTP: http}); err == nil {
		c.chain = append(c.chain, p)
	}
	if os.Getenv("ALIBABA_CLOUD_CREDENTIALS_URI") != "" {
		if p, err := NewURI("", http); err == nil {
			c.chain = append(c.chain, p)
		}
	}
	return c
}

// GetCredentials asks the provider that succeeded last; until one has, every
// provider in order, returning the first credentials found. Unlike
// credentials-go, a chain whose providers all failed tries them all again
// next time rather than only the last one.
func (c *Chain) GetCredentials() (*providers.Credentials, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.last != nil {
		cc, err := c.last.GetCredentials()
		if err != nil {
			return nil, err
		}
		return c.wrap(cc, c.last), nil
	}
	var msgs []string
	for _, p := range c.chain {
		cc, err := p.GetCredentials()
		if err != nil {
			msgs = append(msgs, wire.Scrub(err.Error()))
			continue
		}
		if cc != nil {
			c.last = p
			return c.wrap(cc, p), nil
		}
	}
	return nil, &ChainError{Messages: msgs}
}

func (c *Chain) wrap(cc *providers.Credentials, p providers.CredentialsProvider) *providers.Credentials {
	name := cc.ProviderName
	if name == "" {
		name = p.GetProviderName()
	}
	return &providers.Credentials{AccessKeyId: cc.AccessKeyId, AccessKeySecret: cc.AccessKeySecret,
		SecurityToken: cc.SecurityToken, ProviderName: c.GetProviderName() + "/" + name}
}

// GetProviderName is "default".
func (c *Chain) GetProviderName() string { return "default" }

// ChainError is the failure of every provider of the chain: their scrubbed
// messages in order.
type ChainError struct {
	Messages []string
}

func (e *ChainError) Error() string {
	if len(e.Messages) == 0 {
		return "default credential chain: no provider is configured (no ALIBABA_CLOUD_* credentials in the environment, " +
			"no OIDC, CLI profile or credentials file, ECS metadata disabled)"
	}
	return "unable to get credentials from any of the providers in the chain: " + strings.Join(e.Messages, ", ")
}
