package dkms

import (
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/alibabacloud-go/tea/tea"
	dcred "github.com/aliyun/alibabacloud-dkms-gcs-go-sdk/openapi-credential"

	"github.com/kmsdb/kmsdb/secretsource"
	"github.com/kmsdb/kmsdb/secretsource/internal/wire"
)

// Endpoint is a dedicated KMS instance.
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

type endpoint struct {
	region string
	host   string
	cred   *dcred.Client // the SDK's signer for the client key
	client *http.Client  // this endpoint's own: its CA, client certificate, no redirects
	base   *http.Transport
}

func newEndpoint(e Endpoint, timeout time.Duration) (ep *endpoint, err error) {
	name := "dkms endpoint"
	region := ""
	if e.RegionID != "" {
		region = " (region " + e.RegionID + ")"
	}
	host := strings.TrimPrefix(strings.TrimSpace(e.Endpoint), "https://")
	if host == "" {
		return nil, wire.ConfigError("dkms", name+region+": endpoint is empty", nil)
	}
	if problem, ok := wire.CheckEndpoint(host); !ok {
		// The value is not quoted: a scheme, path or userinfo may hold a credential.
		return nil, wire.ConfigError("dkms", fmt.Sprintf("%s%s: the endpoint must be host[:port]: %s", name, region, problem), nil)
	}
	name = fmt.Sprintf("dkms endpoint %q%s", host, region)
	if e.ClientKeyFile == "" {
		return nil, wire.ConfigError("dkms", name+": clientKeyFile is empty", nil)
	}
	if e.Password == "" {
		return nil, wire.ConfigError("dkms", fmt.Sprintf("%s: no password for client key file %q", name, e.ClientKeyFile), nil)
	}
	// Decode the key ourselves first: the SDK's errors are terse and it panics
	// on some malformed PKCS#12 files.
	_, content, err := wire.ReadClientKey("dkms", e.ClientKeyFile, e.Password)
	if err != nil {
		var se *secretsource.Error
		if errors.As(err, &se) {
			se.Message = name + ": " + se.Message
		}
		return nil, err
	}
	tlsConf, err := tlsConfig(name, e)
	if err != nil {
		return nil, err
	}
	defer func() {
		if r := recover(); r != nil {
			ep, err = nil, wire.ConfigError("dkms", fmt.Sprintf("%s: the SDK cannot load client key file %q", name, e.ClientKeyFile), nil)
		}
	}()
	cred, err := dcred.NewClient(&dcred.Config{Type: tea.String("rsa_key_pair"),
		ClientKeyContent: tea.String(string(content)), Password: tea.String(e.Password)})
	if err != nil {
		return nil, wire.ConfigError("dkms", fmt.Sprintf("%s: the SDK cannot load client key file %q: %s", name, e.ClientKeyFile,
			wire.Scrub(sdkText(err))), nil)
	}
	// The instance asks for the client key's certificate as a TLS client
	// certificate, as the SDK presents it.
	if cert, key := tea.StringValue(cred.GetPrivateKeyCert()), tea.StringValue(cred.GetAccessKeySecret()); cert != "" && key != "" {
		pair, err := tls.X509KeyPair([]byte(cert), []byte(key))
		if err != nil {
			return nil, wire.ConfigError("dkms", fmt.Sprintf("%s: the certificate in client key file %q does not match its key", name, e.ClientKeyFile), nil)
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

// tlsConfig is the TLS configuration of e: its CA file as the only roots
// when given, verification off only when asked.
func tlsConfig(name string, e Endpoint) (*tls.Config, error) {
	tlsConf := &tls.Config{MinVersion: tls.VersionTLS12, InsecureSkipVerify: e.IgnoreSSLCerts} //nolint:gosec // only when asked, with a warning
	if e.CAFile != "" && !e.IgnoreSSLCerts {
		certs, err := wire.ReadCAFile(name+": caFile", e.CAFile)
		if err != nil {
			return nil, wire.ConfigError("dkms", err.Error(), errors.Unwrap(err))
		}
		tlsConf.RootCAs = wire.CAPool(nil, certs)
	}
	return tlsConf, nil
}

// sdkText is a one-line description of an SDK error without its data dump.
func sdkText(err error) string {
	var te *tea.SDKError
	if errors.As(err, &te) {
		return strings.TrimSpace(tea.StringValue(te.Code) + " " + tea.StringValue(te.Message))
	}
	return err.Error()
}
