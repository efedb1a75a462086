// Package dkms is a secretsource.Source for a dedicated KMS instance (the KMS
// instance API, "DKMS"), on github.com/aliyun/alibabacloud-dkms-gcs-go-sdk.
//
// A dedicated instance authenticates callers with a client key of an
// application access point: a JSON file {"KeyId":"KAAP.…","PrivateKeyData":…}
// and its password. The SDK signs each request with the key (RSA, SHA-256) and
// talks HTTPS to the instance endpoint (kst-….cryptoservice.kms.aliyuncs.com),
// whose certificate is issued by the instance's own CA: give its CA file, or
// (only when asked, with a warning) skip verification.
//
// A Source asks one instance endpoint. The SDK's own retries are turned off:
// retries and backoff belong to the cache above, and failover between
// endpoints to secretsource.Failover (config.Load builds one Source per
// endpoint and composes them).
//
// The request itself is sent by this package on its own HTTP client, one per
// Source, with the SDK's signer and wire messages: the Tea
// runtime under the SDK keeps one http.Client per host for the whole process
// (so a second source for the same host got the first one's CA), follows
// redirects with the signed request, reads answers of any size and quotes
// undecodable error bodies in its errors, and none of that can be configured.
// Here each Source has its own transport (its CA, its client certificate),
// redirects are refused, bodies are read up to 1 MiB, the whole exchange is
// bounded by Config.Timeout and the caller's context, and errors carry the
// service's code, message and request id only.
package dkms

import (
	"context"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/kmsdb/kmsdb/secretsource"
	"github.com/kmsdb/kmsdb/secretsource/internal/wire"
)

// DefaultTimeout bounds one request when Config.Timeout is zero.
const DefaultTimeout = 5 * time.Second

// Config configures a Source.
type Config struct {
	// Endpoint is the one instance the Source asks. To fail over between
	// instances, build a Source per endpoint and compose them with
	// secretsource.Failover (config.Load does).
	Endpoint Endpoint
	// Timeout bounds each request (default DefaultTimeout).
	Timeout time.Duration
	// FetchExtendedConfig asks for the secret's ExtendedConfig.
	FetchExtendedConfig bool
	// Logger receives warnings (IgnoreSSLCerts, odd answers), never a secret
	// value or password. Nil discards them.
	Logger *slog.Logger
}

// Source fetches secrets from one dedicated KMS instance. It implements
// secretsource.Source and secretsource.VersionSource and is safe for
// concurrent use.
type Source struct {
	ep       *endpoint
	timeout  time.Duration
	extended bool
	logger   *slog.Logger
	closed   atomic.Bool
}

// New validates cfg, loads the client key and CA file, and returns a Source.
// It makes no network call. A client key that cannot be read or decrypted is a
// KindConfig error naming the file (never the password).
func New(cfg Config) (*Source, error) {
	timeout := cfg.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	logger := cfg.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	e := cfg.Endpoint
	ep, err := newEndpoint(e, timeout)
	if err != nil {
		return nil, err
	}
	if e.IgnoreSSLCerts {
		logger.LogAttrs(context.Background(), slog.LevelWarn,
			"dkms: TLS certificate verification is OFF for this endpoint (ignoreSslCerts); anyone on the path can read your secrets",
			slog.String("region", e.RegionID), slog.String("endpoint", ep.host))
	}
	return &Source{ep: ep, timeout: timeout, extended: cfg.FetchExtendedConfig, logger: logger}, nil
}

// GetSecret fetches the ACSCurrent version of the secret.
func (s *Source) GetSecret(ctx context.Context, name string) (*secretsource.Secret, error) {
	return s.GetSecretVersion(ctx, name, secretsource.VersionRef{})
}

// GetSecretVersion fetches the version ref selects with one signed POST,
// bounded by the source's timeout and ctx. Errors are *secretsource.Error
// naming the endpoint.
func (s *Source) GetSecretVersion(ctx context.Context, name string, ref secretsource.VersionRef) (*secretsource.Secret, error) {
	if err := wire.CheckCall("dkms", s.closed.Load(), name); err != nil {
		return nil, err
	}
	return s.fetch(ctx, s.ep, name, ref)
}

// Close marks the source closed and releases its idle connections; calls
// afterwards return a KindConfig error. It is idempotent.
func (s *Source) Close() error {
	if s.closed.CompareAndSwap(false, true) {
		s.ep.base.CloseIdleConnections()
	}
	return nil
}

// String names the source's endpoint, without credentials.
func (s *Source) String() string { return "dkms(" + s.ep.host + ")" }

var (
	_ secretsource.Source        = (*Source)(nil)
	_ secretsource.VersionSource = (*Source)(nil)
)
