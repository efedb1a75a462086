// Package credprov holds kmsdb's own providers of the credential types that
// fetch temporary credentials over the network: ram_role_arn (STS
// AssumeRole), oidc_role_arn (STS AssumeRoleWithOIDC), ecs_ram_role (the ECS
// instance metadata service) and credentials_uri, readers of the Alibaba
// Cloud CLI profile and of the credentials file that serve their profiles
// with these providers, and the default chain built from them all. They satisfy credentials-go's providers.CredentialsProvider
// and send the same requests as credentials-go v1.4.14's providers, with the
// same defaults, but over an HTTP client of their own that never follows a
// redirect (the STS request is signed, the OIDC request carries the token,
// the metadata requests carry the IMDSv2 token), reads at most MaxBody bytes
// of an answer, bounds the whole exchange by the connect + read timeouts, and
// never puts a secret, a token or a body into an error.
package credprov

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"runtime"
	"strings"
	"time"

	"github.com/kmsdb/kmsdb/secretsource"
	"github.com/kmsdb/kmsdb/secretsource/internal/wire"
)

// MaxBody bounds the body of one answer of STS, the metadata service or a
// credentials URI. Their answers are a few hundred bytes (an STS token is
// about 1 KiB); 64 KiB leaves room for anything legitimate.
const MaxBody = 64 << 10

// refreshBefore is how long before their expiry credentials are fetched
// again, as credentials-go does (180 s).
const refreshBefore = 180 * time.Second

// userAgent names kmsdb's providers to the services.
var userAgent = fmt.Sprintf("kmsdb-credentials (%s; %s) Golang/%s", runtime.GOOS, runtime.GOARCH,
	strings.TrimPrefix(runtime.Version(), "go"))

// HTTPOptions are the HTTP settings of one provider.
type HTTPOptions struct {
	// Proxy is an HTTP proxy URL for every request of the provider. Empty uses
	// the proxy of the environment (HTTP_PROXY, HTTPS_PROXY, NO_PROXY), as
	// credentials-go does.
	Proxy string
	// ConnectTimeout bounds connecting (TCP and TLS); ReadTimeout bounds the
	// rest. Their sum bounds each request from start to the last byte of the
	// answer. Zero takes credentials-go's defaults: 5 s and 10 s for STS and
	// a credentials URI, 1 s and 1 s for the metadata service.
	ConnectTimeout time.Duration
	ReadTimeout    time.Duration
	// TLSConfig, when set, replaces the TLS configuration (tests pass the
	// emulator's CA). Nil keeps http.DefaultTransport's, as credentials-go.
	TLSConfig *tls.Config
}

// client is the HTTP client of one provider.
type client struct {
	provider string
	hc       *http.Client
}

// newClient builds the client of provider. It starts from a clone of
// http.DefaultTransport, as credentials-go does (so SSL_CERT_FILE and a
// process-wide TLS configuration still apply), keeps no idle connection (a
// provider asks rarely and has no Close: nothing may outlive an exchange),
// refuses every redirect and bounds each exchange by connect + read.
func newClient(provider string, o HTTPOptions, defConnect, defRead time.Duration) (*client, error) {
	connect, read := o.ConnectTimeout, o.ReadTimeout
	if connect <= 0 {
		connect = defConnect
	}
	if read <= 0 {
		read = defRead
	}
	var tr *http.Transport
	if dt, ok := http.DefaultTransport.(*http.Transport); ok {
		tr = dt.Clone()
	} else {
		tr = &http.Transport{Proxy: http.ProxyFromEnvironment, ForceAttemptHTTP2: true}
	}
	if o.Proxy != "" {
		u, err := url.Parse(o.Proxy)
		if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https" && u.Scheme != "socks5" && u.Scheme != "socks5h") {
			return nil, errors.New("the proxy is not an http://, https:// or socks5:// URL")
		}
		tr.Proxy = http.ProxyURL(u)
	}
	if o.TLSConfig != nil {
		tr.TLSClientConfig = o.TLSConfig.Clone()
	}
	tr.DialContext = (&net.Dialer{Timeout: connect, KeepAlive: 30 * time.Second}).DialContext
	tr.TLSHandshakeTimeout = connect
	tr.ResponseHeaderTimeout = read
	tr.DisableKeepAlives = true
	tr.MaxResponseHeaderBytes = MaxBody
	return &client{provider: provider, hc: &http.Client{Transport: tr, CheckRedirect: wire.NoRedirect,
		Timeout: connect + read}}, nil
}

// do sends req and returns the status and the body of the answer, read up
// to MaxBody. op names the request in errors. Every failure is an *Error
// holding no URL (the STS query holds the signature and the AccessKeyId) and
// no byte of the body.
func (c *client) do(req *http.Request, op string) (int, []byte, error) {
	req.Header.Set("User-Agent", userAgent)
	resp, err := c.hc.Do(req)
	if err != nil {
		return 0, nil, c.transportError(op, err)
	}
	defer resp.Body.Close()
	if wire.IsRedirect(resp.StatusCode) {
		return 0, nil, c.refused(op, resp.StatusCode, &wire.RedirectError{Status: resp.StatusCode})
	}
	if resp.ContentLength > MaxBody {
		return 0, nil, c.refused(op, resp.StatusCode, &wire.TooLargeError{Limit: MaxBody})
	}
	body, err := wire.ReadBodyLimit(resp.Body, MaxBody)
	if err != nil {
		var tl *wire.TooLargeError
		if errors.As(err, &tl) {
			return 0, nil, c.refused(op, resp.StatusCode, err)
		}
		return 0, nil, c.transportError(op, err)
	}
	return resp.StatusCode, body, nil
}

// refused is the error of an answer that is not read further: a redirect
// or an oversized body.
func (c *client) refused(op string, status int, cause error) *Error {
	return &Error{Provider: c.provider, Op: op, Status: status, Kind: secretsource.KindInvalidAnswer,
		Message: "answer refused: " + cause.Error(), cause: cause}
}

// transportError drops the *url.Error around err (it quotes the URL, whose
// query is signed, or a redirect's Location) and keeps its cause.
func (c *client) transportError(op string, err error) *Error {
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	if msg, ok := wire.Describe(err); ok { // a redirect refused by CheckRedirect
		return &Error{Provider: c.provider, Op: op, Kind: secretsource.KindInvalidAnswer,
			Message: "answer refused: " + msg, cause: err}
	}
	e := &Error{Provider: c.provider, Op: op, Kind: secretsource.KindNetwork,
		Message: "request failed: " + wire.Truncate(wire.Scrub(err.Error()), 200), cause: safeCause(err)}
	var ne net.Error
	switch {
	case wire.IsTLSVerification(err):
		e.Kind = secretsource.KindTLS
	case errors.Is(err, context.DeadlineExceeded) || errors.As(err, &ne) && ne.Timeout():
		e.Kind = secretsource.KindTimeout
	}
	return e
}

// safeCause keeps the causes that carry no URL and no answer text: network
// errors and the context's. Anything else is reduced to its scrubbed text.
func safeCause(err error) error {
	var oe *net.OpError
	var cv *tls.CertificateVerificationError
	switch {
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled):
		return err
	case errors.As(err, &oe):
		return oe
	case errors.As(err, &cv):
		return cv
	}
	return errors.New(wire.Scrub(err.Error()))
}

// Error is the failure of a provider's request. It holds the service's
// error Code, RequestId and a scrubbed, shortened Message when the service
// sent an error document, never a body, a URL, a secret or a token.
type Error struct {
	Provider  string // ram_role_arn, oidc_role_arn, ecs_ram_role, credentials_uri
	Op        string // the request: AssumeRole, AssumeRoleWithOIDC, metadata token, ...
	Status    int    // HTTP status of the answer, 0 when none came
	Code      string // the service's error code, if it sent one
	RequestID string
	Message   string
	// Kind classifies the failure: the code's kind (a missing role or OIDC
	// provider counts as invalid credentials), else the status's, network
	// and timeout failures, an answer refused or unusable (KindInvalidAnswer),
	// a configuration that cannot work (KindConfig).
	Kind  secretsource.Kind
	cause error
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(e.Provider)
	if e.Op != "" {
		b.WriteString(": " + e.Op)
	}
	if e.Status != 0 {
		fmt.Fprintf(&b, ": HTTP %d", e.Status)
	}
	if e.Code != "" {
		b.WriteString(" " + e.Code)
	}
	if e.RequestID != "" {
		b.WriteString(" (request id " + e.RequestID + ")")
	}
	if e.Message != "" {
		b.WriteString(": " + e.Message)
	}
	return b.String()
}

// Unwrap returns the cause: a network error, the context's error,
// *wire.RedirectError or *wire.TooLargeError.
func (e *Error) Unwrap() error { return e.cause }

// serviceError is the error of a non-200 answer: Code, RequestId and Message
// of a JSON error document, or only the status and length of any other body.
func (c *client) serviceError(op string, status int, body []byte) *Error {
	e := &Error{Provider: c.provider, Op: op, Status: status}
	var doc map[string]json.RawMessage
	if json.Unmarshal(body, &doc) == nil {
		str := func(key string) string {
			var v string
			if json.Unmarshal(doc[key], &v) != nil {
				return ""
			}
			return v
		}
		e.Code, e.RequestID = wire.Token(str("Code")), wire.Token(str("RequestId"))
		e.Message = wire.CleanMessage(str("Message"))
	} else if len(body) > 0 {
		e.Message = fmt.Sprintf("the answer is not a JSON error document (%d bytes, not shown)", len(body))
	}
	e.Kind = wire.KindOfCode(e.Code)
	switch e.Kind {
	case secretsource.KindNotFound, secretsource.KindConfig:
		// A missing role, OIDC provider or parameter is a credential problem,
		// not a missing secret.
		e.Kind = secretsource.KindInvalidCredentials
	case secretsource.KindUnknown:
		e.Kind = wire.KindOfStatus(status)
		if e.Kind == secretsource.KindNotFound || e.Kind == secretsource.KindUnknown {
			e.Kind = secretsource.KindInvalidCredentials
		}
	}
	return e
}

// invalid is the error of a 200 answer the provider cannot use. what says
// why without quoting the body.
func (c *client) invalid(op string, status int, what string) *Error {
	return &Error{Provider: c.provider, Op: op, Status: status, Kind: secretsource.KindInvalidAnswer, Message: what}
}

// configError is the error of a provider that cannot be built.
func configError(provider, msg string) *Error {
	return &Error{Provider: provider, Kind: secretsource.KindConfig, Message: msg}
}

// session is a set of temporary credentials and when they expire.
type session struct {
	accessKeyID, accessKeySecret, securityToken string
	expires                                     time.Time
}

// expiration parses an Expiration as the services send it
// (2006-01-02T15:04:05Z), or any RFC 3339 time.
func expiration(s string) (time.Time, error) {
	if t, err := time.Parse("2006-01-02T15:04:05Z", s); err == nil {
		return t, nil
	}
	return time.Parse(time.RFC3339, s)
}

// credentialsJSON is the credential part of every answer: STS's Credentials
// object, the metadata service's and a credentials URI's whole document.
type credentialsJSON struct {
	AccessKeyID     *string `json:"AccessKeyId"`
	AccessKeySecret *string `json:"AccessKeySecret"`
	SecurityToken   *string `json:"SecurityToken"`
	Expiration      *string `json:"Expiration"`
}

// session checks that every field is there and converts them, or says what
// is missing (by name only).
func (j *credentialsJSON) session() (session, string) {
	var missing []string
	for _, f := range []struct {
		name string
		v    *string
	}{{"AccessKeyId", j.AccessKeyID}, {"AccessKeySecret", j.AccessKeySecret}, {"SecurityToken", j.SecurityToken},
		{"Expiration", j.Expiration}} {
		if f.v == nil || *f.v == "" {
			missing = append(missing, f.name)
		}
	}
	if len(missing) > 0 {
		return session{}, "the answer has no " + strings.Join(missing, ", ")
	}
	exp, err := expiration(*j.Expiration)
	if err != nil {
		return session{}, fmt.Sprintf("the answer's Expiration (%d bytes) is not a time", len(*j.Expiration))
	}
	return session{accessKeyID: *j.AccessKeyID, accessKeySecret: *j.AccessKeySecret,
		securityToken: *j.SecurityToken, expires: exp}, ""
}

// decode unmarshals a 200 answer into v, or says what is wrong with it
// without quoting it.
func decode(body []byte, v any) string {
	if err := json.Unmarshal(body, v); err != nil {
		return "the answer is not the expected JSON: " + wire.DescribeJSONError(err, len(body))
	}
	return ""
}
