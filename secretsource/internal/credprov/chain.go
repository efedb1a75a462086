package credprov

import (
	"errors"
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
//  3. the Alibaba Cloud CLI profile, ~/.aliyun/config.json (ours: CLIProfile)
//     unless ALIBABA_CLOUD_CLI_PROFILE_DISABLED=true
//  4. the credentials file, ~/.alibabacloud/credentials (ours: Profile)
//  5. the ECS instance's RAM role (ours) unless ALIBABA_CLOUD_ECS_METADATA_DISABLED=true
//  6. ALIBABA_CLOUD_CREDENTIALS_URI (ours)
//
// A profile (3 or 4) that assumes a role, reads the metadata service or
// exchanges an OIDC token does so through this package's providers, so no
// request of the chain follows a redirect. A CLI profile in CloudSSO or
// OAuth mode, which only credentials-go's HTTP client could serve, is an
// error that ends the chain (where credentials-go would have used that
// profile, the next provider would be another identity); any other failure
// of a provider, a missing file or profile included, moves on to the next,
// as in credentials-go.
type Chain struct {
	search sync.Mutex // held while the chain is searched: one search at a time
	mu     sync.Mutex // guards last; never held across a provider's call
	chain  []providers.CredentialsProvider
	last   providers.CredentialsProvider // the provider that last succeeded
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
	if p, err := NewCLIProfile("", "", http); err == nil {
		c.chain = append(c.chain, p)
	}
	c.chain = append(c.chain, NewProfile("", http))
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
	// The provider found is asked without a lock of the chain's: it is safe
	// for concurrent use, and a refresh it runs must not hold every other
	// caller back while it still has a usable session to hand out.
	if last := c.lastProvider(); last != nil {
		return c.ask(last)
	}
	c.search.Lock()
	defer c.search.Unlock()
	if last := c.lastProvider(); last != nil { // found meanwhile
		return c.ask(last)
	}
	var msgs []string
	for _, p := range c.chain {
		cc, err := p.GetCredentials()
		if errors.Is(err, errRefusedMode) {
			return nil, err
		}
		if err != nil {
			msgs = append(msgs, wire.Scrub(err.Error()))
			continue
		}
		if cc != nil {
			c.mu.Lock()
			c.last = p
			c.mu.Unlock()
			return c.wrap(cc, p), nil
		}
	}
	return nil, &ChainError{Messages: msgs}
}

func (c *Chain) lastProvider() providers.CredentialsProvider {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.last
}

func (c *Chain) ask(p providers.CredentialsProvider) (*providers.Credentials, error) {
	cc, err := p.GetCredentials()
	if err != nil {
		return nil, err
	}
	return c.wrap(cc, p), nil
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
