package kms

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"regexp"
	"strings"
	"sync/atomic"
	"time"

	"github.com/aliyun/alibaba-cloud-sdk-go/sdk"
	"github.com/aliyun/alibaba-cloud-sdk-go/sdk/requests"
	"github.com/aliyun/alibaba-cloud-sdk-go/services/kms"
	"github.com/aliyun/credentials-go/credentials"

	"github.com/kmsdb/kmsdb/secretsource"
	"github.com/kmsdb/kmsdb/secretsource/internal/wire"
)

// DefaultTimeout bounds one request (connect + TLS + answer) when
// Config.Timeout is zero.
const DefaultTimeout = 5 * time.Second

// Region is the KMS region a Source asks. Endpoint, when set, overrides the host
// derived from ID ("host" or "host:port", no scheme); otherwise VPC selects
// kms-vpc.<ID>.aliyuncs.com instead of kms.<ID>.aliyuncs.com.
type Region struct {
	ID       string
	Endpoint string
	VPC      bool
	// CAFile names a PEM file of CA certificates that verify this region's
	// endpoint (a private gateway, an emulator), in addition to the system
	// roots (or to Config.RootCAs). The process's other TLS clients are not
	// affected.
	CAFile string
}

// Host is the host[:port] requests to r go to.
func (r Region) Host() string {
	switch {
	case r.Endpoint != "":
		return r.Endpoint
	case r.VPC:
		return "kms-vpc." + r.ID + ".aliyuncs.com"
	}
	return "kms." + r.ID + ".aliyuncs.com"
}

// Config configures a Source.
type Config struct {
	// Region is the one region the Source asks; its ID is required. To fail
	// over between regions, build a Source per region and compose them with
	// secretsource.Failover (config.Load does).
	Region Region
	// Credential is any credentials-go Credential (see NewCredential for the
	// usual types, and ClientKey). Nil: New uses
	// NewCredential(CredentialOptions{Type: CredentialDefault}), kmsdb's
	// default chain (see NewCredential).
	Credential credentials.Credential
	// Scheme is "https" (default) or "http".
	Scheme string
	// RootCAs verifies the endpoints' certificates; nil uses the system roots.
	// Certificates are always verified.
	RootCAs *x509.CertPool
	// Timeout bounds each request, connection included (default
	// DefaultTimeout). The caller's context bounds the whole call.
	Timeout time.Duration
	// FetchExtendedConfig asks KMS for the secret's ExtendedConfig.
	FetchExtendedConfig bool
	// Logger receives warnings on odd answers, never a secret value. Nil
	// discards them.
	Logger *slog.Logger
}

// Source fetches secrets from one region of the KMS OpenAPI (the shared
// gateway) through alibaba-cloud-sdk-go. It implements secretsource.Source
// and secretsource.VersionSource and is safe for concurrent use.
type Source struct {
	region    Region
	scheme    string
	timeout   time.Duration
	extended  bool
	logger    *slog.Logger
	provider  *providerAdapter
	transport http.RoundTripper // shared by every request; signs them for a ClientKey
	base      *http.Transport   // its connection pool, for Close
	closed    atomic.Bool
}

var reRegionID = regexp.MustCompile(`^[a-zA-Z0-9_-]+$`)

// New validates cfg and returns a Source. It makes no network call: a wrong
// credential shows on the first GetSecret.
func New(cfg Config) (*Source, error) {
	r := cfg.Region
	if r.ID == "" {
		return nil, wire.ConfigError("kms", "no region configured: set the region id", nil)
	}
	if !reRegionID.MatchString(r.ID) {
		return nil, wire.ConfigError("kms", fmt.Sprintf("region id %q may hold only letters, digits, '-' and '_'", r.ID), nil)
	}
	if r.Endpoint != "" {
		if problem, ok := wire.CheckEndpoint(r.Endpoint); !ok {
			// The value is not quoted: a scheme, path or userinfo may hold a credential.
			return nil, wire.ConfigError("kms", fmt.Sprintf("region %q: the endpoint must be a host or host:port: %s", r.ID, problem), nil)
		}
	}
	scheme := strings.ToLower(cfg.Scheme)
	switch scheme {
	case "":
		scheme = "https"
	case "https", "http":
	default:
		return nil, wire.ConfigError("kms", fmt.Sprintf("scheme %q: want https or http", cfg.Scheme), nil)
	}
	timeout := cfg.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	cred := cfg.Credential
	if cred == nil {
		var err error
		if cred, err = NewCredential(CredentialOptions{Type: CredentialDefault}); err != nil {
			return nil, wire.ConfigError("kms", "default credential chain: "+wire.Scrub(err.Error()), nil)
		}
	}
	logger := cfg.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	base := &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           (&net.Dialer{Timeout: timeout, KeepAlive: 30 * time.Second}).DialContext,
		TLSClientConfig:       &tls.Config{RootCAs: cfg.RootCAs, MinVersion: tls.VersionTLS12},
		TLSHandshakeTimeout:   timeout,
		ResponseHeaderTimeout: timeout,
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          16,
		MaxIdleConnsPerHost:   4,
		IdleConnTimeout:       90 * time.Second,
	}
	if r.CAFile != "" {
		pool, err := rootsWithCAFile(cfg.RootCAs, r.ID, r.CAFile)
		if err != nil {
			return nil, wire.ConfigError("kms", err.Error(), errors.Unwrap(err))
		}
		base.TLSClientConfig.RootCAs = pool
	}
	s := &Source{
		region:    r,
		scheme:    scheme,
		timeout:   timeout,
		extended:  cfg.FetchExtendedConfig,
		logger:    logger,
		provider:  newProviderAdapter(cred),
		transport: base,
		base:      base,
	}
	if key, signed := clientKeyOf(cred); signed {
		s.transport = &rsaSigningTransport{key: key, next: base}
	}
	return s, nil
}

// GetSecret fetches the ACSCurrent version of the secret.
func (s *Source) GetSecret(ctx context.Context, name string) (*secretsource.Secret, error) {
	return s.GetSecretVersion(ctx, name, secretsource.VersionRef{})
}

// GetSecretVersion fetches the version of the secret that ref selects (a
// stage such as ACSPrevious, a version id, or both; the zero ref is
// ACSCurrent). Errors are *secretsource.Error naming the region.
func (s *Source) GetSecretVersion(ctx context.Context, name string, ref secretsource.VersionRef) (*secretsource.Secret, error) {
	if err := wire.CheckCall("kms", s.closed.Load(), name); err != nil {
		return nil, err
	}
	region := s.region.ID
	rctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	x, sdkErr, err := s.call(ctx, rctx, name, ref)
	if err != nil {
		return nil, err
	}
	// The exchange parsed the answer itself (see exchange); the SDK's own
	// outcome matters only when no answer came back.
	switch {
	case x.fail != nil:
		return nil, x.fail.toSecretError(s.failure(name))
	case sdkErr != nil:
		// rctx covers the per-request timeout as well as the caller's context.
		return nil, mapError(rctx, sdkErr, s.failure(name))
	case x.answer == nil:
		e := s.failure(name)
		e.Kind, e.Message = secretsource.KindInvalidAnswer, "the SDK reported success without an answer from KMS"
		return nil, e
	}
	resp := x.answer.response()
	resp.Origin = secretsource.Origin{Source: "kms", Region: region, Endpoint: s.region.Host(), RequestID: wire.Token(x.answer.RequestID)}
	sec, warnings, err := resp.Secret(name, ref)
	if err != nil {
		var e *secretsource.Error
		if errors.As(err, &e) {
			e.Source, e.Region, e.Endpoint, e.RequestID = "kms", region, s.region.Host(), wire.Token(x.answer.RequestID)
		}
		return nil, err
	}
	for _, w := range warnings {
		s.logger.LogAttrs(ctx, slog.LevelWarn, "kms: unexpected field in GetSecretValue answer",
			slog.String("secret", name), slog.String("region", region), slog.String("detail", w))
	}
	return sec, nil
}

// failure is the *secretsource.Error of a request for the secret name, naming
// the region and its endpoint, for the caller to fill in.
func (s *Source) failure(name string) *secretsource.Error {
	return &secretsource.Error{Secret: name, Source: "kms", Region: s.region.ID, Endpoint: s.region.Host()}
}

// call sends one GetSecretValue through the core SDK. The SDK takes no
// context, so the call runs in its own goroutine, with a transport that binds
// every HTTP request to rctx (ctx plus the per-request timeout): cancelling
// ctx aborts the request on the wire and the goroutine ends with it, while
// call returns at once (err says so) even if the SDK is still busy elsewhere
// (for example a credential provider talking to STS, which has no context
// either and ends on its own timeout). Otherwise it returns the exchange and
// the SDK's own error.
func (s *Source) call(ctx, rctx context.Context, name string, ref secretsource.VersionRef) (x *exchange, sdkErr, err error) {
	// A client per request: the core SDK client writes its http.Client's
	// Timeout and its transport's fields on every call, so sharing one between
	// goroutines is a data race. Clients are cheap; the transport (and its
	// connection pool) is shared.
	cfg := sdk.NewConfig()
	cfg.AutoRetry = false // retries belong to the caller (cache, Failover)
	cfg.Scheme = strings.ToUpper(s.scheme)
	x = &exchange{ctx: rctx, next: s.transport}
	cfg.Transport = x
	client, err := kms.NewClientWithOptions(s.region.ID, cfg, s.provider)
	if err != nil {
		e := s.failure(name)
		e.Kind, e.Message, e.Err = secretsource.KindConfig, "cannot build the KMS client", wire.Safe(err)
		return nil, nil, e
	}
	client.Domain = s.region.Host()
	client.SetConnectTimeout(s.timeout)
	client.SetReadTimeout(s.timeout)

	req := kms.CreateGetSecretValueRequest()
	req.Scheme = s.scheme
	req.SecretName = name
	req.VersionStage = ref.Stage
	req.VersionId = ref.VersionID
	if s.extended {
		req.FetchExtendedConfig = requests.NewBoolean(true)
	}

	done := make(chan error, 1)
	go func() {
		defer func() {
			if p := recover(); p != nil { // the SDK must not take the process down on an odd answer
				done <- fmt.Errorf("alibaba-cloud-sdk-go panicked: %s", wire.Scrub(fmt.Sprint(p)))
			}
		}()
		_, err := client.GetSecretValue(req)
		done <- err
	}()
	select {
	case sdkErr = <-done:
		return x, sdkErr, nil
	case <-ctx.Done():
		return nil, nil, mapError(ctx, ctx.Err(), s.failure(name))
	}
}

// Close releases idle connections. The Source must not be used afterwards;
// calls return a KindConfig error. Close is idempotent.
func (s *Source) Close() error {
	if s.closed.CompareAndSwap(false, true) {
		s.base.CloseIdleConnections()
	}
	return nil
}

// String names the source's region, without credentials.
func (s *Source) String() string { return "kms(" + s.region.ID + ")" }

// rootsWithCAFile returns a new pool: a copy of base (the system roots when
// base is nil) plus the certificates of the CA file at path, read by the rule
// every CA file follows (wire.ReadCAFile).
func rootsWithCAFile(base *x509.CertPool, region, path string) (*x509.CertPool, error) {
	certs, err := wire.ReadCAFile(fmt.Sprintf("region %q: caFilePath", region), path)
	if err != nil {
		return nil, err
	}
	if base == nil {
		if base, err = x509.SystemCertPool(); err != nil {
			base = nil // no system roots on this platform: the file's only
		}
	}
	return wire.CAPool(base, certs), nil
}

var (
	_ secretsource.Source        = (*Source)(nil)
	_ secretsource.VersionSource = (*Source)(nil)
)
