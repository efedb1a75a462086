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
// The SDK's own retries are turned off: retries and backoff belong to the
// cache above, and failover to the next endpoint happens here only on
// retryable errors (throttled, unavailable, internal, network, timeout).
//
// The Tea runtime under the SDK shares one http.Client per endpoint for the
// whole process and writes its timeout on every call; to stay free of data
// races, requests to one endpoint are serialized process-wide. With a cache in
// front this costs nothing; it also keeps a misbehaving endpoint from piling
// up connections.
package dkms

import (
	"context"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/alibabacloud-go/tea/tea"
	dopenapi "github.com/aliyun/alibabacloud-dkms-gcs-go-sdk/openapi"
	dutil "github.com/aliyun/alibabacloud-dkms-gcs-go-sdk/openapi-util"
	dsdk "github.com/aliyun/alibabacloud-dkms-gcs-go-sdk/sdk"

	"github.com/kmsdb/kmsdb/secretsource"
	"github.com/kmsdb/kmsdb/secretsource/kms"
)

// DefaultTimeout bounds one request to one endpoint when Config.Timeout is zero.
const DefaultTimeout = 5 * time.Second

// Endpoint is one dedicated KMS instance.
type Endpoint struct {
	RegionID string
	// Endpoint is the instance's host[:port] (a leading https:// is accepted).
	Endpoint string
	// ClientKeyFile is the client key JSON file; Password its password, already
	// resolved (the config package reads it from an env var or a file).
	ClientKeyFile string
	Password      string
	// CAFile is the instance CA's PEM file. Empty uses the system roots.
	CAFile string
	// IgnoreSSLCerts turns certificate verification off. Never in production:
	// New logs a warning when it is set.
	IgnoreSSLCerts bool
}

// String shows the endpoint without its password.
func (e Endpoint) String() string {
	return fmt.Sprintf("dkms.Endpoint(region=%q endpoint=%q clientKeyFile=%q caFile=%q ignoreSSLCerts=%v password=REDACTED)",
		e.RegionID, e.Endpoint, e.ClientKeyFile, e.CAFile, e.IgnoreSSLCerts)
}

// GoString is String, so %#v cannot print the password.
func (e Endpoint) GoString() string { return e.String() }

// Format prints String for every verb.
func (e Endpoint) Format(st fmt.State, _ rune) { _, _ = io.WriteString(st, e.String()) }

// LogValue makes slog print the redacted form.
func (e Endpoint) LogValue() slog.Value { return slog.StringValue(e.String()) }

// MarshalJSON shows every field but the password (slog's JSON handler and
// configuration dumps marshal a Config holding endpoints).
func (e Endpoint) MarshalJSON() ([]byte, error) {
	type plain Endpoint
	p := plain(e)
	p.Password = redactedIfSet(p.Password)
	return json.Marshal(p)
}

func redactedIfSet(s string) string {
	if s == "" {
		return ""
	}
	return "REDACTED"
}

// Config configures a Source.
type Config struct {
	// Endpoints are tried in order, the next one only after a retryable failure.
	Endpoints []Endpoint
	// Timeout bounds each request to one endpoint (default DefaultTimeout).
	Timeout time.Duration
	// FetchExtendedConfig asks for the secret's ExtendedConfig.
	FetchExtendedConfig bool
	// Logger receives warnings (IgnoreSSLCerts, odd answers) and failover debug
	// lines, never a secret value or password. Nil discards them.
	Logger *slog.Logger
}

// Source fetches secrets from dedicated KMS instances. It implements
// secretsource.Source and secretsource.VersionSource and is safe for
// concurrent use.
type Source struct {
	endpoints []*endpoint
	timeout   time.Duration
	extended  bool
	logger    *slog.Logger
	closed    atomic.Bool
}

type endpoint struct {
	region string
	host   string
	client *dsdk.Client
	sem    chan struct{}
}

// Process-wide: one semaphore per endpoint host (see the package comment).
var hostSems sync.Map // host -> chan struct{}

func hostSem(host string) chan struct{} {
	s, _ := hostSems.LoadOrStore(host, make(chan struct{}, 1))
	return s.(chan struct{})
}

func configError(msg string) *secretsource.Error {
	return &secretsource.Error{Kind: secretsource.KindConfig, Source: "dkms", Message: msg}
}

// New validates cfg, loads every client key and CA file, and returns a Source.
// It makes no network call. A client key that cannot be read or decrypted is a
// KindConfig error naming the file (never the password).
func New(cfg Config) (*Source, error) {
	if len(cfg.Endpoints) == 0 {
		return nil, configError("no dedicated KMS endpoint configured")
	}
	timeout := cfg.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	logger := cfg.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	s := &Source{timeout: timeout, extended: cfg.FetchExtendedConfig, logger: logger}
	for i, e := range cfg.Endpoints {
		ep, err := newEndpoint(i, e, timeout)
		if err != nil {
			return nil, err
		}
		if e.IgnoreSSLCerts {
			logger.LogAttrs(context.Background(), slog.LevelWarn,
				"dkms: TLS certificate verification is OFF for this endpoint (ignoreSslCerts); anyone on the path can read your secrets",
				slog.String("region", e.RegionID), slog.String("endpoint", ep.host))
		}
		s.endpoints = append(s.endpoints, ep)
	}
	return s, nil
}

func newEndpoint(i int, e Endpoint, timeout time.Duration) (ep *endpoint, err error) {
	name := fmt.Sprintf("dkms endpoint %d", i)
	if e.RegionID != "" {
		name = fmt.Sprintf("dkms endpoint %d (region %s)", i, e.RegionID)
	}
	host := strings.TrimPrefix(strings.TrimSpace(e.Endpoint), "https://")
	if host == "" {
		return nil, configError(name + ": endpoint is empty")
	}
	if strings.Contains(host, "/") || strings.Contains(host, "://") {
		return nil, configError(fmt.Sprintf("%s: endpoint %q must be host[:port]", name, e.Endpoint))
	}
	if e.ClientKeyFile == "" {
		return nil, configError(name + ": clientKeyFile is empty")
	}
	if e.Password == "" {
		return nil, configError(fmt.Sprintf("%s: no password for client key file %q", name, e.ClientKeyFile))
	}
	// Decode the key ourselves first: the SDK's errors are terse and it panics
	// on some malformed PKCS#12 files.
	if _, err := kms.LoadClientKey(e.ClientKeyFile, e.Password); err != nil {
		var se *secretsource.Error
		if errors.As(err, &se) {
			se.Source, se.Message = "dkms", name+": "+se.Message
		}
		return nil, err
	}
	content, err := os.ReadFile(e.ClientKeyFile)
	if err != nil {
		return nil, configError(fmt.Sprintf("%s: client key file %q cannot be read", name, e.ClientKeyFile))
	}
	c := &dopenapi.Config{
		Protocol:         tea.String("https"),
		Endpoint:         tea.String(host),
		RegionId:         nilIfEmpty(e.RegionID),
		ClientKeyContent: tea.String(string(content)),
		Password:         tea.String(e.Password),
		ReadTimeout:      tea.Int(int(timeout / time.Millisecond)),
		ConnectTimeout:   tea.Int(int(timeout / time.Millisecond)),
		IgnoreSSL:        tea.Bool(e.IgnoreSSLCerts),
	}
	if e.CAFile != "" && !e.IgnoreSSLCerts {
		ca, err := os.ReadFile(e.CAFile)
		if err != nil {
			return nil, configError(fmt.Sprintf("%s: CA file %q cannot be read: %v", name, e.CAFile, errors.Unwrap(err)))
		}
		if b, _ := pem.Decode(ca); b == nil || b.Type != "CERTIFICATE" {
			return nil, configError(fmt.Sprintf("%s: CA file %q holds no PEM certificate", name, e.CAFile))
		}
		c.Ca = tea.String(string(ca))
	}
	defer func() {
		if r := recover(); r != nil {
			ep, err = nil, configError(fmt.Sprintf("%s: the SDK cannot load client key file %q", name, e.ClientKeyFile))
		}
	}()
	client, err := dsdk.NewClient(c)
	if err != nil {
		return nil, configError(fmt.Sprintf("%s: the SDK cannot load client key file %q: %s", name, e.ClientKeyFile,
			kms.Scrub(sdkText(err))))
	}
	return &endpoint{region: e.RegionID, host: host, client: client, sem: hostSem(host)}, nil
}

func nilIfEmpty(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

// sdkText is a one-line description of an SDK error without its data dump.
func sdkText(err error) string {
	var te *tea.SDKError
	if errors.As(err, &te) {
		return strings.TrimSpace(tea.StringValue(te.Code) + " " + tea.StringValue(te.Message))
	}
	return err.Error()
}

// GetSecret fetches the ACSCurrent version of the secret.
func (s *Source) GetSecret(ctx context.Context, name string) (*secretsource.Secret, error) {
	return s.GetSecretVersion(ctx, name, secretsource.VersionRef{})
}

// GetSecretVersion fetches the version ref selects; endpoints are tried in
// order, the next only after a retryable failure. Errors are
// *secretsource.Error.
func (s *Source) GetSecretVersion(ctx context.Context, name string, ref secretsource.VersionRef) (*secretsource.Secret, error) {
	if s.closed.Load() {
		return nil, &secretsource.Error{Kind: secretsource.KindConfig, Secret: name, Source: "dkms", Message: "source is closed"}
	}
	if name == "" {
		return nil, &secretsource.Error{Kind: secretsource.KindConfig, Source: "dkms", Message: "empty secret name"}
	}
	var errs []error
	for i, ep := range s.endpoints {
		sec, err := s.fetch(ctx, ep, name, ref)
		if err == nil {
			return sec, nil
		}
		errs = append(errs, err)
		if !secretsource.IsRetryable(err) || ctx.Err() != nil {
			break
		}
		if i+1 < len(s.endpoints) {
			s.logger.LogAttrs(ctx, slog.LevelDebug, "dkms: endpoint failed, trying the next one",
				slog.String("secret", name), slog.String("endpoint", ep.host),
				slog.String("kind", secretsource.KindOf(err).String()), slog.String("next", s.endpoints[i+1].host))
		}
	}
	if len(errs) == 1 {
		return nil, errs[0]
	}
	last := errs[len(errs)-1].(*secretsource.Error)
	return nil, &secretsource.Error{Kind: last.Kind, Secret: name, Source: "dkms", Code: last.Code,
		RequestID: last.RequestID, Region: last.Region,
		Message: fmt.Sprintf("%d of %d endpoints tried, all failed", len(errs), len(s.endpoints)),
		Err:     errors.Join(errs...)}
}

type result struct {
	resp *dsdk.GetSecretValueResponse
	err  error
}

// fetch asks one endpoint. The SDK has no context: the call runs in a
// goroutine and the caller returns as soon as ctx ends; the goroutine ends on
// the SDK's own timeout.
func (s *Source) fetch(ctx context.Context, ep *endpoint, name string, ref secretsource.VersionRef) (*secretsource.Secret, error) {
	where := ep.host
	if ep.region != "" {
		where = ep.region + " (" + ep.host + ")"
	}
	select {
	case ep.sem <- struct{}{}:
	case <-ctx.Done():
		return nil, ctxError(ctx, name, where)
	}
	req := &dsdk.GetSecretValueRequest{SecretName: tea.String(name), FetchExtendedConfig: tea.Bool(s.extended)}
	if ref.Stage != "" {
		req.VersionStage = tea.String(ref.Stage)
	}
	if ref.VersionID != "" {
		req.VersionId = tea.String(ref.VersionID)
	}
	ms := int(s.timeout / time.Millisecond)
	rt := &dutil.RuntimeOptions{Autoretry: tea.Bool(false), ReadTimeout: tea.Int(ms), ConnectTimeout: tea.Int(ms)}
	done := make(chan result, 1)
	go func() {
		defer func() { <-ep.sem }()
		defer func() {
			if r := recover(); r != nil {
				done <- result{err: fmt.Errorf("dkms SDK panic: %v", r)}
			}
		}()
		resp, err := ep.client.GetSecretValueWithOptions(req, rt)
		done <- result{resp, err}
	}()
	var res result
	select {
	case res = <-done:
	case <-ctx.Done():
		return nil, ctxError(ctx, name, where)
	}
	if res.err != nil {
		return nil, mapError(res.err, name, where)
	}
	r := res.resp
	stages := make([]string, 0, len(r.VersionStages))
	for _, st := range r.VersionStages {
		stages = append(stages, tea.StringValue(st))
	}
	sec, warnings, err := kms.Response{
		SecretName: tea.StringValue(r.SecretName), SecretType: tea.StringValue(r.SecretType),
		SecretDataType: tea.StringValue(r.SecretDataType), SecretData: tea.StringValue(r.SecretData),
		VersionID: tea.StringValue(r.VersionId), VersionStages: stages, CreateTime: tea.StringValue(r.CreateTime),
		AutomaticRotation: tea.StringValue(r.AutomaticRotation), RotationInterval: tea.StringValue(r.RotationInterval),
		NextRotationDate: tea.StringValue(r.NextRotationDate), LastRotationDate: tea.StringValue(r.LastRotationDate),
		ExtendedConfig: tea.StringValue(r.ExtendedConfig),
	}.Secret(name)
	if err != nil {
		var e *secretsource.Error
		if errors.As(err, &e) {
			e.Source, e.Region, e.RequestID = "dkms", where, tea.StringValue(r.RequestId)
		}
		return nil, err
	}
	for _, w := range warnings {
		s.logger.LogAttrs(ctx, slog.LevelWarn, "dkms: unexpected field in GetSecretValue answer",
			slog.String("secret", name), slog.String("endpoint", ep.host), slog.String("detail", w))
	}
	return sec, nil
}

func ctxError(ctx context.Context, name, where string) *secretsource.Error {
	e := &secretsource.Error{Secret: name, Source: "dkms", Region: where, Err: ctx.Err()}
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		e.Kind, e.Message = secretsource.KindTimeout, "deadline exceeded before the dedicated KMS answered"
	} else {
		e.Kind, e.Message = secretsource.KindUnknown, "cancelled before the dedicated KMS answered"
	}
	return e
}

// mapError classifies an SDK error. Server errors carry the service's code and
// request id (in the SDKError's Data JSON); transport errors keep their cause,
// never the raw text of the SDK's error dump.
func mapError(err error, name, where string) *secretsource.Error {
	e := &secretsource.Error{Secret: name, Source: "dkms", Region: where}
	var te *tea.SDKError
	var ue *url.Error
	switch {
	case errors.As(err, &te):
		e.Code = tea.StringValue(te.Code)
		var data struct {
			HTTPCode  int    `json:"httpCode"`
			RequestID string `json:"requestId"`
		}
		_ = json.Unmarshal([]byte(tea.StringValue(te.Data)), &data)
		e.RequestID = data.RequestID
		e.Kind = kindOfCode(e.Code, data.HTTPCode)
		e.Message = kms.Scrub(strings.TrimSpace(tea.StringValue(te.Message)))
		if len(e.Message) > 300 {
			e.Message = strings.ToValidUTF8(e.Message[:300], "") + "…"
		}
		if e.Code == "" && e.Kind == secretsource.KindUnknown {
			// Not a service answer: a local failure inside the SDK.
			e.Kind = secretsource.KindNetwork
		}
	case errors.As(err, &ue):
		e.Err = ue.Err // the URL is https://host/ with no secret, but the cause is what matters
		var ne net.Error
		switch {
		case ue.Timeout(), errors.Is(ue.Err, context.DeadlineExceeded), errors.As(ue.Err, &ne) && ne.Timeout():
			e.Kind, e.Message = secretsource.KindTimeout, "request to the dedicated KMS timed out"
		case strings.Contains(ue.Err.Error(), "x509:") || strings.Contains(ue.Err.Error(), "tls:"):
			e.Kind, e.Message = secretsource.KindNetwork, "TLS verification of the dedicated KMS endpoint failed (set caFilePath to the instance CA)"
		default:
			e.Kind, e.Message = secretsource.KindNetwork, "request to the dedicated KMS failed"
		}
	default:
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			e.Kind = secretsource.KindTimeout
		} else {
			e.Kind = secretsource.KindNetwork
		}
		msg := kms.Scrub(err.Error())
		if len(msg) > 300 {
			msg = strings.ToValidUTF8(msg[:300], "") + "…"
		}
		e.Message = "request to the dedicated KMS failed: " + msg
	}
	return e
}

// kindOfCode extends kms.KindOfCode with the instance API's own codes.
func kindOfCode(code string, status int) secretsource.Kind {
	switch code {
	case "SignatureNotMatch", "Unauthorized", "UnauthorizedClientKey":
		return secretsource.KindInvalidCredentials
	case "RequestTimeTooSkewed", "InvalidApiVersion", "InvalidApiName", "InvalidParam", "InvalidContentType":
		return secretsource.KindConfig
	}
	if k := kms.KindOfCode(code); k != secretsource.KindUnknown {
		return k
	}
	if status == 404 {
		// The instance API answers 404 for an unknown client key too, so a 404
		// without a known code does not say the secret is missing.
		return secretsource.KindUnknown
	}
	return kms.KindOfStatus(status)
}

// Close marks the source closed; calls afterwards return a KindConfig error.
// It is idempotent. (The Tea runtime's connection pool is process-wide.)
func (s *Source) Close() error {
	s.closed.Store(true)
	return nil
}

// String describes the source without credentials.
func (s *Source) String() string {
	hosts := make([]string, len(s.endpoints))
	for i, e := range s.endpoints {
		hosts[i] = e.host
	}
	return fmt.Sprintf("dkms(%s)", strings.Join(hosts, ","))
}

var (
	_ secretsource.Source        = (*Source)(nil)
	_ secretsource.VersionSource = (*Source)(nil)
)
