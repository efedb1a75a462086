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
// The request itself is sent by this package on its own HTTP client, one per
// endpoint of each Source, with the SDK's signer and wire messages: the Tea
// runtime under the SDK keeps one http.Client per host for the whole process
// (so a second source for the same host got the first one's CA), follows
// redirects with the signed request, reads answers of any size and quotes
// undecodable error bodies in its errors, and none of that can be configured.
// Here each endpoint has its own transport (its CA, its client certificate),
// redirects are refused, bodies are read up to 1 MiB, the whole exchange is
// bounded by Config.Timeout and the caller's context, and errors carry the
// service's code, message and request id only.
package dkms

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/alibabacloud-go/tea/tea"
	dcred "github.com/aliyun/alibabacloud-dkms-gcs-go-sdk/openapi-credential"
	dutil "github.com/aliyun/alibabacloud-dkms-gcs-go-sdk/openapi-util"
	"github.com/aliyun/alibabacloud-dkms-gcs-go-sdk/openapi-util/protobuf/api"
	"google.golang.org/protobuf/proto"

	"github.com/kmsdb/kmsdb/secretsource"
	"github.com/kmsdb/kmsdb/secretsource/internal/wire"
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
	cred   *dcred.Client // the SDK's signer for the client key
	client *http.Client  // this endpoint's own: its CA, client certificate, no redirects
	base   *http.Transport
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
	tlsConf := &tls.Config{MinVersion: tls.VersionTLS12, InsecureSkipVerify: e.IgnoreSSLCerts} //nolint:gosec // only when asked, with a warning
	if e.CAFile != "" && !e.IgnoreSSLCerts {
		ca, err := os.ReadFile(e.CAFile)
		if err != nil {
			return nil, configError(fmt.Sprintf("%s: CA file %q cannot be read: %v", name, e.CAFile, errors.Unwrap(err)))
		}
		if b, _ := pem.Decode(ca); b == nil || b.Type != "CERTIFICATE" {
			return nil, configError(fmt.Sprintf("%s: CA file %q holds no PEM certificate", name, e.CAFile))
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(ca) {
			return nil, configError(fmt.Sprintf("%s: CA file %q holds no certificate this client can parse", name, e.CAFile))
		}
		tlsConf.RootCAs = pool
	}
	defer func() {
		if r := recover(); r != nil {
			ep, err = nil, configError(fmt.Sprintf("%s: the SDK cannot load client key file %q", name, e.ClientKeyFile))
		}
	}()
	cred, err := dcred.NewClient(&dcred.Config{Type: tea.String("rsa_key_pair"),
		ClientKeyContent: tea.String(string(content)), Password: tea.String(e.Password)})
	if err != nil {
		return nil, configError(fmt.Sprintf("%s: the SDK cannot load client key file %q: %s", name, e.ClientKeyFile,
			wire.Scrub(sdkText(err))))
	}
	// The instance asks for the client key's certificate as a TLS client
	// certificate, as the SDK presents it.
	if cert, key := tea.StringValue(cred.GetPrivateKeyCert()), tea.StringValue(cred.GetAccessKeySecret()); cert != "" && key != "" {
		pair, err := tls.X509KeyPair([]byte(cert), []byte(key))
		if err != nil {
			return nil, configError(fmt.Sprintf("%s: the certificate in client key file %q does not match its key", name, e.ClientKeyFile))
		}
		tlsConf.Certificates = []tls.Certificate{pair}
	}
	base := &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           (&net.Dialer{Timeout: timeout, KeepAlive: 30 * time.Second}).DialContext,
		TLSClientConfig:       tlsConf,
		TLSHandshakeTimeout:   timeout,
		ResponseHeaderTimeout: timeout,
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          4,
		MaxIdleConnsPerHost:   4,
		IdleConnTimeout:       90 * time.Second,
	}
	return &endpoint{region: e.RegionID, host: host, cred: cred, base: base,
		client: &http.Client{Transport: base, CheckRedirect: wire.NoRedirect}}, nil
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

// Wire constants of the instance API (PROTOCOLS.md, section 3).
const (
	apiVersion      = "dkms-gcs-0.2"
	signatureMethod = "RSA_PKCS1_SHA_256"
	protobufType    = "application/x-protobuf"
)

// userAgent is the SDK's, so the service sees the same client.
var userAgent = tea.StringValue(dutil.GetUserAgent(nil))

// fetch asks one endpoint: one signed POST, bounded by the source's timeout
// and ctx, on the endpoint's own client.
func (s *Source) fetch(ctx context.Context, ep *endpoint, name string, ref secretsource.VersionRef) (*secretsource.Secret, error) {
	where := ep.host
	if ep.region != "" {
		where = ep.region + " (" + ep.host + ")"
	}
	rctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	body, err := proto.Marshal(&api.GetSecretValueRequest{SecretName: name, VersionStage: ref.Stage,
		VersionId: ref.VersionID, FetchExtendedConfig: s.extended})
	if err != nil {
		return nil, &secretsource.Error{Kind: secretsource.KindConfig, Secret: name, Source: "dkms", Region: where,
			Message: "cannot encode the request"}
	}
	req, err := ep.request(rctx, "GetSecretValue", body)
	if err != nil {
		return nil, &secretsource.Error{Kind: secretsource.KindConfig, Secret: name, Source: "dkms", Region: where,
			Message: "cannot sign the request with the client key: " + wire.Scrub(sdkText(err))}
	}
	resp, err := ep.client.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctxError(ctx, name, where)
		}
		return nil, mapError(err, name, where)
	}
	defer resp.Body.Close()
	data, err := wire.ReadBody(resp.Body)
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctxError(ctx, name, where)
		}
		return nil, mapError(err, name, where)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return nil, errorAnswer(resp.StatusCode, data, name, where)
	}
	var r api.GetSecretValueResponse
	if err := proto.Unmarshal(data, &r); err != nil {
		return nil, &secretsource.Error{Kind: secretsource.KindInvalidAnswer, Secret: name, Source: "dkms", Region: where,
			Message: fmt.Sprintf("the dedicated KMS answered HTTP %d with a body that is not a GetSecretValue answer (%d bytes, not shown)",
				resp.StatusCode, len(data))}
	}
	sec, warnings, err := wire.Response{
		SecretName: r.SecretName, SecretType: r.SecretType, SecretDataType: r.SecretDataType, SecretData: r.SecretData,
		VersionID: r.VersionId, VersionStages: r.VersionStages, CreateTime: r.CreateTime,
		AutomaticRotation: r.AutomaticRotation, RotationInterval: r.RotationInterval,
		NextRotationDate: r.NextRotationDate, LastRotationDate: r.LastRotationDate, ExtendedConfig: r.ExtendedConfig,
	}.Secret(name, ref)
	if err != nil {
		var e *secretsource.Error
		if errors.As(err, &e) {
			e.Source, e.Region, e.RequestID = "dkms", where, wire.Token(r.RequestId)
		}
		return nil, err
	}
	for _, w := range warnings {
		s.logger.LogAttrs(ctx, slog.LevelWarn, "dkms: unexpected field in GetSecretValue answer",
			slog.String("secret", name), slog.String("endpoint", ep.host), slog.String("detail", w))
	}
	return sec, nil
}

// request builds the signed POST the SDK would send: the same headers, the
// SDK's string to sign and its RSA signer.
func (ep *endpoint) request(ctx context.Context, apiName string, body []byte) (*http.Request, error) {
	sum := sha256.Sum256(body)
	headers := map[string]*string{
		"accept":                tea.String(protobufType),
		"host":                  tea.String(ep.host),
		"date":                  tea.String(time.Now().UTC().Format(http.TimeFormat)),
		"user-agent":            tea.String(userAgent),
		"x-kms-apiversion":      tea.String(apiVersion),
		"x-kms-apiname":         tea.String(apiName),
		"x-kms-signaturemethod": tea.String(signatureMethod),
		"x-kms-acccesskeyid":    ep.cred.GetAccessKeyId(), // sic, as the SDK spells it
		"content-type":          tea.String(protobufType),
		"content-length":        tea.String(strconv.Itoa(len(body))),
		"content-sha256":        tea.String(strings.ToUpper(hex.EncodeToString(sum[:]))),
	}
	toSign, err := dutil.GetStringToSign(tea.String(http.MethodPost), tea.String("/"), headers, nil)
	if err != nil {
		return nil, err
	}
	sig, err := ep.cred.GetSignature(toSign)
	if err != nil {
		return nil, err
	}
	headers["authorization"] = sig
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "https://"+ep.host+"/", bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	for k, v := range headers {
		switch k {
		case "host", "content-length":
		default:
			req.Header[k] = []string{tea.StringValue(v)} // lower-case keys, as the SDK sends them
		}
	}
	return req, nil
}

// errorAnswer maps an error answer (4xx/5xx). Only the service's protobuf
// error document is read: its code, message (scrubbed, bounded) and request
// id. Any other body is counted, never shown.
func errorAnswer(status int, body []byte, name, where string) *secretsource.Error {
	e := &secretsource.Error{Secret: name, Source: "dkms", Region: where}
	// Protobuf carries no schema: another message (a GetSecretValue answer
	// sent with an error status) decodes as an Error with its fields shifted
	// (the secret data as ErrorMessage), except that its other fields, and a
	// string where StatusCode is an integer, are left unknown. A body with
	// unknown fields is therefore not an error document.
	var ae api.Error
	if err := proto.Unmarshal(body, &ae); err != nil || len(ae.ProtoReflect().GetUnknown()) > 0 {
		e.Kind = kindOfCode("", status)
		if e.Kind == secretsource.KindUnknown {
			e.Kind = secretsource.KindInvalidAnswer
		}
		e.Message = fmt.Sprintf("HTTP %d with a body that is not the service's error document (%d bytes, not shown)", status, len(body))
		return e
	}
	e.Code, e.RequestID = wire.Token(ae.ErrorCode), wire.Token(ae.RequestId)
	e.Kind = kindOfCode(e.Code, status)
	if e.Code == "" && e.Kind == secretsource.KindUnknown {
		e.Kind = secretsource.KindInvalidAnswer
	}
	e.Message = wire.Truncate(wire.Scrub(strings.TrimSpace(ae.ErrorMessage)), 200)
	if e.Message == "" {
		e.Message = "HTTP " + strconv.Itoa(status)
	}
	return e
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

// mapError classifies a failed exchange: a refused redirect or oversized
// body, a timeout, a TLS failure or another network error. The URL (no
// secret on this gateway, but no use either) is dropped; the cause is kept.
func mapError(err error, name, where string) *secretsource.Error {
	e := &secretsource.Error{Secret: name, Source: "dkms", Region: where}
	if msg, ok := wire.Describe(err); ok {
		e.Kind, e.Message = secretsource.KindInvalidAnswer, "dedicated KMS answer refused: "+msg
		return e
	}
	cause := err
	var ue *url.Error
	if errors.As(err, &ue) {
		cause = ue.Err
	}
	e.Err = cause
	var ne net.Error
	switch {
	case errors.Is(cause, context.DeadlineExceeded), errors.As(cause, &ne) && ne.Timeout():
		e.Kind, e.Message = secretsource.KindTimeout, "request to the dedicated KMS timed out"
	case strings.Contains(cause.Error(), "x509:") || strings.Contains(cause.Error(), "tls:"):
		e.Kind, e.Message = secretsource.KindNetwork, "TLS verification of the dedicated KMS endpoint failed (set caFilePath to the instance CA)"
	default:
		e.Kind, e.Message = secretsource.KindNetwork, "request to the dedicated KMS failed"
	}
	return e
}

// kindOfCode extends wire.KindOfCode with the instance API's own codes.
func kindOfCode(code string, status int) secretsource.Kind {
	switch code {
	case "SignatureNotMatch", "Unauthorized", "UnauthorizedClientKey":
		return secretsource.KindInvalidCredentials
	case "RequestTimeTooSkewed", "InvalidApiVersion", "InvalidApiName", "InvalidParam", "InvalidContentType":
		return secretsource.KindConfig
	}
	if k := wire.KindOfCode(code); k != secretsource.KindUnknown {
		return k
	}
	if status == 404 {
		// The instance API answers 404 for an unknown client key too, so a 404
		// without a known code does not say the secret is missing.
		return secretsource.KindUnknown
	}
	return wire.KindOfStatus(status)
}

// Close marks the source closed and releases its idle connections; calls
// afterwards return a KindConfig error. It is idempotent.
func (s *Source) Close() error {
	if s.closed.CompareAndSwap(false, true) {
		for _, ep := range s.endpoints {
			ep.base.CloseIdleConnections()
		}
	}
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
