package ramsecret

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/alibabacloud-go/tea/tea"
	"github.com/aliyun/alibaba-cloud-sdk-go/sdk/auth"
	sdkcredentials "github.com/aliyun/alibaba-cloud-sdk-go/sdk/auth/credentials"
	"github.com/aliyun/alibaba-cloud-sdk-go/sdk/auth/credentials/provider"
	"github.com/aliyun/credentials-go/credentials"
	"golang.org/x/sync/singleflight"

	"github.com/kmsdb/kmsdb/secretsource"
)

// Provider hands out the AccessKey held in a RAM secret, always the version
// the cache holds now. It is safe for concurrent use, and the same Provider
// can back any number of SDK clients. Create it with New.
type Provider struct {
	cache secretsource.Cache
	name  string
	cfg   config

	last atomic.Pointer[decodedKey] // the key decoded from the last secret seen
	rec  recovery

	rejected atomic.Int64
	retries  atomic.Int64
}

// decodedKey memoises the decoding of one immutable *Secret.
type decodedKey struct {
	secret *secretsource.Secret
	key    secretsource.AccessKey
}

// The SDK interfaces a Provider satisfies.
var (
	_ credentials.Credential             = (*Provider)(nil) // credentials-go: Tea SDKs
	_ sdkcredentials.CredentialsProvider = (*Provider)(nil) // alibaba-cloud-sdk-go: NewClientWithOptions
	_ provider.Provider                  = (*Provider)(nil) // alibaba-cloud-sdk-go: NewClientWithProvider
)

// New returns a Provider for the RAM secret secretName, read through c.
// It does not contact KMS; the first request does (or call AccessKey to warm
// the cache and check the secret).
func New(c secretsource.Cache, secretName string, opts ...Option) (*Provider, error) {
	if c == nil {
		return nil, errors.New("ramsecret: New: the cache must not be nil")
	}
	if secretName == "" {
		return nil, errors.New("ramsecret: New: the secret name must not be empty")
	}
	cfg, err := newConfig(opts)
	if err != nil {
		return nil, err
	}
	return &Provider{cache: c, name: secretName, cfg: cfg}, nil
}

// SecretName is the name of the RAM secret the provider reads.
func (p *Provider) SecretName() string { return p.name }

// AccessKey returns the current AccessKey pair. It is the plain provider for
// SDKs this package does not adapt to (OSS, SLS, custom signing): sign one
// request with the returned value and ask again for the next one.
// With a warm cache it allocates nothing and does not contact KMS.
func (p *Provider) AccessKey(ctx context.Context) (secretsource.AccessKey, error) {
	s, err := p.cache.GetSecret(ctx, p.name)
	if err != nil {
		return secretsource.AccessKey{}, namedError(p.name, err)
	}
	return p.keyOf(s)
}

// namedError makes sure err names the secret: the sources' *secretsource.Error
// already does; anything else (a closed cache, a context error) is wrapped.
func namedError(name string, err error) error {
	var se *secretsource.Error
	if errors.As(err, &se) && se.Secret == name {
		return err
	}
	return fmt.Errorf("ramsecret: secret %q: %w", name, err)
}

// keyOf decodes s, once per *Secret.
func (p *Provider) keyOf(s *secretsource.Secret) (secretsource.AccessKey, error) {
	if d := p.last.Load(); d != nil && d.secret == s {
		return d.key, nil
	}
	k, err := secretsource.DecodeAccessKey(s)
	if err != nil {
		return secretsource.AccessKey{}, fmt.Errorf("ramsecret: secret %q version %q: %w", s.Name(), s.VersionID(), err)
	}
	p.last.Store(&decodedKey{secret: s, key: k})
	return k, nil
}

// IsRejectedKey reports whether err says the AccessKey was rejected: one of
// RejectedKeyCodes, a code added with WithRejectedKeyCodes, or an error the
// WithRejectedKeyFunc classifier accepts.
func (p *Provider) IsRejectedKey(err error) bool {
	if err == nil {
		return false
	}
	if walk(err, func(e error) bool { return p.cfg.codes[codeOf(e)] }) {
		return true
	}
	return p.cfg.classify != nil && p.cfg.classify(err)
}

// Stats counts what the provider did to recover from rejected keys.
type Stats struct {
	Rejected  int64 // calls that failed because the service rejected the key
	Refreshes int64 // forced refreshes of the secret this provider asked the cache for
	Retries   int64 // calls retried with a newer key
}

// Stats returns the counters since the provider was created.
func (p *Provider) Stats() Stats {
	return Stats{Rejected: p.rejected.Load(), Refreshes: p.rec.refreshes.Load(), Retries: p.retries.Load()}
}

// recoverFrom gets a key newer than the rejected version (see recoverSecret).
// The key returned may still be the rejected version when KMS holds nothing newer.
func (p *Provider) recoverFrom(ctx context.Context, rejectedVersion, code string) (secretsource.AccessKey, error) {
	s, err := p.rec.recover(ctx, p.cache, p.name, rejectedVersion, p.cfg, code)
	if err != nil {
		return secretsource.AccessKey{}, err
	}
	return p.keyOf(s)
}

// noNewerHold is how long a recovery that found no version newer than the
// rejected one is trusted: callers failing on that version meanwhile get the
// same answer at once instead of queueing behind the cache's rate limit.
const noNewerHold = time.Second

// recovery is the shared state of rejected-credential recovery for one secret.
type recovery struct {
	flight    singleflight.Group // one recovery per rejected version
	refreshes atomic.Int64
	noNewer   atomic.Pointer[noNewerEntry]
}

type noNewerEntry struct {
	secret *secretsource.Secret // still the rejected version
	at     time.Time
}

// recover returns a version of secret name newer than rejectedVersion: the
// cache's current one if another caller already refreshed, else the one a
// refresh finds after invalidating the rejected version (which may be the
// rejected version again when KMS holds nothing newer). Concurrent callers
// with the same rejected version share one recovery, which runs on its own
// context so that the first caller giving up does not fail the others; each
// caller's ctx bounds only its own wait.
func (r *recovery) recover(ctx context.Context, c secretsource.Cache, name, rejectedVersion string, cfg config, code string) (*secretsource.Secret, error) {
	if n := r.noNewer.Load(); n != nil && n.secret.VersionID() == rejectedVersion && time.Since(n.at) < noNewerHold {
		return n.secret, nil
	}
	ch := r.flight.DoChan(rejectedVersion, func() (any, error) {
		fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cfg.timeout)
		defer cancel()
		if s, err := c.GetSecret(fctx, name); err == nil && s.VersionID() != rejectedVersion {
			return s, nil // someone refreshed already
		}
		r.refreshes.Add(1)
		// The cache starts a refresh when it drops the rejected version, and its
		// GetSecret waits for that refresh: one fetch. Only when that does not
		// show a newer version is a refresh forced (rate-limited by the cache).
		c.Invalidate(name, rejectedVersion)
		s, err := c.GetSecret(fctx, name)
		if err != nil || s.VersionID() == rejectedVersion {
			s, err = c.Refresh(fctx, name)
		}
		if err != nil {
			cfg.logger.LogAttrs(fctx, slog.LevelWarn, "ramsecret: refreshing a secret after its credential was rejected failed",
				slog.String("secret", name), slog.String("rejected_version", rejectedVersion),
				slog.String("code", code), slog.String("error", err.Error()))
			return nil, err
		}
		if s.VersionID() == rejectedVersion {
			r.noNewer.Store(&noNewerEntry{secret: s, at: time.Now()})
			cfg.logger.LogAttrs(fctx, slog.LevelWarn, "ramsecret: credential rejected and KMS holds no newer version",
				slog.String("secret", name), slog.String("version", rejectedVersion), slog.String("code", code))
			return s, nil
		}
		cfg.logger.LogAttrs(fctx, slog.LevelInfo, "ramsecret: credential rejected, secret refreshed",
			slog.String("secret", name), slog.String("rejected_version", rejectedVersion),
			slog.String("version", s.VersionID()), slog.String("code", code))
		return s, nil
	})
	select {
	case res := <-ch:
		if res.Err != nil {
			return nil, res.Err
		}
		return res.Val.(*secretsource.Secret), nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// credentialContext bounds the SDK entry points that carry no context.
func (p *Provider) credentialContext() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), p.cfg.timeout)
}

func (p *Provider) currentKey() (secretsource.AccessKey, error) {
	ctx, cancel := p.credentialContext()
	defer cancel()
	return p.AccessKey(ctx)
}

// GetCredential implements credentials-go's credentials.Credential, the
// interface of the Tea SDKs (openapi.Config{Credential: p}). Each call
// returns a new model holding one consistent key pair.
func (p *Provider) GetCredential() (*credentials.CredentialModel, error) {
	k, err := p.currentKey()
	if err != nil {
		return nil, err
	}
	return &credentials.CredentialModel{
		AccessKeyId:     tea.String(k.ID),
		AccessKeySecret: tea.String(k.Secret),
		Type:            tea.String("access_key"),
		ProviderName:    tea.String(p.cfg.providerName),
	}, nil
}

// GetAccessKeyId implements the deprecated part of credentials.Credential.
//
// Deprecated: two separate getters can straddle a rotation; use GetCredential.
func (p *Provider) GetAccessKeyId() (*string, error) {
	k, err := p.currentKey()
	if err != nil {
		return nil, err
	}
	return tea.String(k.ID), nil
}

// GetAccessKeySecret implements the deprecated part of credentials.Credential.
//
// Deprecated: two separate getters can straddle a rotation; use GetCredential.
func (p *Provider) GetAccessKeySecret() (*string, error) {
	k, err := p.currentKey()
	if err != nil {
		return nil, err
	}
	return tea.String(k.Secret), nil
}

// GetSecurityToken implements the deprecated part of credentials.Credential:
// a RAM secret holds a permanent AccessKey, so the token is empty.
//
// Deprecated: use GetCredential.
func (p *Provider) GetSecurityToken() (*string, error) { return tea.String(""), nil }

// GetBearerToken implements credentials.Credential; it is always empty.
func (p *Provider) GetBearerToken() *string { return tea.String("") }

// GetType implements credentials.Credential: "access_key".
func (p *Provider) GetType() *string { return tea.String("access_key") }

// GetCredentials implements alibaba-cloud-sdk-go's
// credentials.CredentialsProvider, which NewClientWithOptions accepts as its
// credential: kms.NewClientWithOptions(region, sdk.NewConfig(), p). The core
// SDK calls it once per request and signs with the pair it returns.
func (p *Provider) GetCredentials() (*sdkcredentials.Credentials, error) {
	k, err := p.currentKey()
	if err != nil {
		return nil, err
	}
	return &sdkcredentials.Credentials{
		AccessKeyId:     k.ID,
		AccessKeySecret: k.Secret,
		ProviderName:    p.cfg.providerName,
	}, nil
}

// GetProviderName implements alibaba-cloud-sdk-go's credentials.CredentialsProvider.
func (p *Provider) GetProviderName() string { return p.cfg.providerName }

// Resolve implements alibaba-cloud-sdk-go's provider.Provider, so
// sdk.NewClientWithProvider(region, p) works: it resolves to p itself, and
// the client then asks p for the key on every request.
func (p *Provider) Resolve() (auth.Credential, error) { return p, nil }

// String names the provider's secret; it never shows a key.
func (p *Provider) String() string { return fmt.Sprintf("ramsecret.Provider(secret=%q)", p.name) }

// GoString is the same as String, so %#v cannot dump the provider's state.
func (p *Provider) GoString() string { return p.String() }

// Format prints String for every verb (%d or %x would otherwise walk the fields).
func (p *Provider) Format(f fmt.State, _ rune) { _, _ = fmt.Fprint(f, p.String()) }

// LogValue logs the secret's name, never a key.
func (p *Provider) LogValue() slog.Value { return slog.StringValue(p.String()) }

// MarshalJSON encodes the secret's name, never a key.
func (p *Provider) MarshalJSON() ([]byte, error) {
	return json.Marshal(struct{ Provider string }{p.name})
}
