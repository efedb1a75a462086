package ramsecret

import (
	"errors"
	"io"
	"log/slog"
	"time"
)

// Option configures a Provider or an ECS.
type Option func(*config)

type config struct {
	logger       *slog.Logger
	timeout      time.Duration
	providerName string
	codes        map[string]bool
	classify     func(error) bool
	err          error
}

// DefaultTimeout bounds the calls that come without a context (the SDK
// interfaces GetCredential and GetCredentials): a cold cache fetches from KMS.
const DefaultTimeout = 10 * time.Second

// DefaultProviderName is what the SDKs send in the x-acs-credentials-provider header.
const DefaultProviderName = "kmsdb/ramsecret"

func defaultConfig() config {
	c := config{
		logger:       slog.New(slog.NewTextHandler(io.Discard, nil)),
		timeout:      DefaultTimeout,
		providerName: DefaultProviderName,
		codes:        map[string]bool{},
	}
	for code := range defaultCodes {
		c.codes[code] = true
	}
	return c
}

func newConfig(opts []Option) (config, error) {
	c := defaultConfig()
	for _, o := range opts {
		if o != nil {
			o(&c)
		}
	}
	return c, c.err
}

// WithLogger logs refreshes caused by rejected keys (secret name, versions and
// error code; never a key). The default discards.
func WithLogger(l *slog.Logger) Option {
	return func(c *config) {
		if l != nil {
			c.logger = l
		}
	}
}

// WithTimeout bounds the SDK entry points that take no context
// (GetCredential, GetCredentials, the deprecated getters). Default DefaultTimeout.
func WithTimeout(d time.Duration) Option {
	return func(c *config) {
		if d <= 0 {
			c.err = errors.Join(c.err, errors.New("ramsecret: WithTimeout: the timeout must be positive"))
			return
		}
		c.timeout = d
	}
}

// WithProviderName sets the name the SDKs report for this credentials
// provider (x-acs-credentials-provider). Default DefaultProviderName.
func WithProviderName(name string) Option {
	return func(c *config) {
		if name == "" {
			c.err = errors.Join(c.err, errors.New("ramsecret: WithProviderName: the name must not be empty"))
			return
		}
		c.providerName = name
	}
}

// WithRejectedKeyCodes adds service error codes that mean "this AccessKey is
// no longer valid", beside RejectedKeyCodes. Use it for a service whose code
// for a deleted or disabled key is not in the list.
func WithRejectedKeyCodes(codes ...string) Option {
	return func(c *config) {
		for _, code := range codes {
			if code == "" {
				c.err = errors.Join(c.err, errors.New("ramsecret: WithRejectedKeyCodes: a code must not be empty"))
				continue
			}
			c.codes[code] = true
		}
	}
}

// WithRejectedKeyFunc adds a classifier for errors this package cannot read
// a code from: f reports whether err says the AccessKey was rejected. It is
// consulted after the codes. Classify by type (errors.As), not by message.
func WithRejectedKeyFunc(f func(err error) bool) Option {
	return func(c *config) {
		if f == nil {
			c.err = errors.Join(c.err, errors.New("ramsecret: WithRejectedKeyFunc: the function must not be nil"))
			return
		}
		c.classify = f
	}
}
