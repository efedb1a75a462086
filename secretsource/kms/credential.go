package kms

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"sync"
	"time"

	sdkcreds "github.com/aliyun/alibaba-cloud-sdk-go/sdk/auth/credentials"
	"github.com/aliyun/credentials-go/credentials"
	"github.com/aliyun/credentials-go/credentials/providers"

	"github.com/kmsdb/kmsdb/secretsource/internal/credprov"
	"github.com/kmsdb/kmsdb/secretsource/internal/wire"
)

// Credential types accepted by CredentialOptions.Type. They are credentials-go's
// names, plus "client_key" (see ClientKey) and "default".
//
//nolint:gosec // not credentials: the names of credential types
const (
	CredentialAccessKey      = "access_key"      // AccessKeyID + AccessKeySecret
	CredentialSTS            = "sts"             // AccessKeyID + AccessKeySecret + SecurityToken
	CredentialRAMRoleARN     = "ram_role_arn"    // AssumeRole with an AccessKey (the seed's "sts" and "ram_role")
	CredentialECSRAMRole     = "ecs_ram_role"    // the ECS instance's RAM role through the metadata service
	CredentialOIDCRoleARN    = "oidc_role_arn"   // AssumeRoleWithOIDC (RRSA on ACK)
	CredentialCredentialsURI = "credentials_uri" // GET a URL that returns temporary credentials
	CredentialClientKey      = "client_key"      // an RSA client key file + password (KAAP.* key id)
	CredentialDefault        = "default"         // the default chain (env, OIDC, profiles, ECS, URI), see NewCredential
)

// CredentialOptions describes a credential in plain values, for code that reads
// them from configuration (the seed's credentials_* keys map onto these
// fields). NewCredential validates them and builds a credentials-go Credential.
// Fields that do not apply to Type are ignored.
type CredentialOptions struct {
	Type string

	AccessKeyID     string
	AccessKeySecret string
	SecurityToken   string

	RoleARN         string        // ram_role_arn, oidc_role_arn
	RoleSessionName string        // optional; credentials-go-<µs> when empty, as credentials-go
	Policy          string        // optional session policy (JSON)
	ExternalID      string        // optional, ram_role_arn
	SessionDuration time.Duration // optional, 15 min .. the role's maximum; default 1 h
	STSEndpoint     string        // optional host[:port]; default sts.aliyuncs.com (always HTTPS)

	RoleName      string // ecs_ram_role; empty asks the metadata service
	DisableIMDSv1 bool   // ecs_ram_role: require the IMDSv2 token

	OIDCProviderARN string // oidc_role_arn
	OIDCTokenFile   string // oidc_role_arn

	URL string // credentials_uri

	ClientKeyFile     string // client_key: JSON {"KeyId","PrivateKeyData"}
	ClientKeyPassword string // client_key: the PKCS#12 password

	// Proxy is an HTTP proxy URL for the credential provider's own requests
	// (STS, metadata service, credentials URI). For ecs_ram_role a proxy is the
	// only way to reach a metadata service other than 100.100.100.200.
	Proxy string
	// ConnectTimeout bounds connecting (TCP and TLS) for the provider's own
	// requests; zero takes credentials-go's default (5 s for STS and a
	// credentials URI, 1 s for the metadata service).
	ConnectTimeout time.Duration
	// ReadTimeout bounds the rest of a provider request, after connecting,
	// to the last byte of the answer; ConnectTimeout + ReadTimeout bounds the
	// whole request. Zero takes credentials-go's default (10 s for STS and a
	// credentials URI, 1 s for the metadata service).
	ReadTimeout time.Duration
}

// String shows the type and the non-secret fields of o. AccessKeySecret,
// SecurityToken and ClientKeyPassword show only whether they are set, and the
// proxy URL without its user information.
func (o CredentialOptions) String() string {
	set := func(v string) string {
		if v == "" {
			return `""`
		}
		return "REDACTED"
	}
	return fmt.Sprintf("kms.CredentialOptions(type=%q accessKeyId=%q accessKeySecret=%s securityToken=%s "+
		"roleArn=%q roleName=%q oidcProviderArn=%q oidcTokenFile=%q url=%q clientKeyFile=%q clientKeyPassword=%s "+
		"stsEndpoint=%q proxy=%q)",
		o.Type, o.AccessKeyID, set(o.AccessKeySecret), set(o.SecurityToken),
		o.RoleARN, o.RoleName, o.OIDCProviderARN, o.OIDCTokenFile, redactURL(o.URL), o.ClientKeyFile,
		set(o.ClientKeyPassword), o.STSEndpoint, redactURL(o.Proxy))
}

// GoString is String, so %#v cannot print a secret.
func (o CredentialOptions) GoString() string { return o.String() }

// Format prints String for every verb.
func (o CredentialOptions) Format(st fmt.State, _ rune) { _, _ = io.WriteString(st, o.String()) }

// LogValue makes slog print the redacted form.
func (o CredentialOptions) LogValue() slog.Value { return slog.StringValue(o.String()) }

// MarshalJSON shows the fields of o with the secrets replaced by REDACTED
// (slog's JSON handler and configuration dumps marshal structs holding it).
func (o CredentialOptions) MarshalJSON() ([]byte, error) {
	type plain CredentialOptions
	p := plain(o)
	for _, f := range []*string{&p.AccessKeySecret, &p.SecurityToken, &p.ClientKeyPassword} {
		if *f != "" {
			*f = "REDACTED"
		}
	}
	p.URL, p.Proxy = redactURL(p.URL), redactURL(p.Proxy)
	return json.Marshal(p)
}

// redactURL hides the password of a URL's user information and its query
// (a credentials URI or proxy may carry a token there).
func redactURL(raw string) string {
	if raw == "" {
		return ""
	}
	u, err := url.Parse(raw)
	if err != nil {
		return "REDACTED(unparsable URL)"
	}
	if u.RawQuery != "" {
		u.RawQuery = "REDACTED"
	}
	return u.Redacted()
}

// NewCredential builds the Credential described by o. Errors are
// *secretsource.Error of KindConfig naming the missing or malformed field; they
// never contain a secret. The result can go into Config.Credential; any other
// credentials-go Credential works there too.
//
// The types that fetch temporary credentials over the network (ram_role_arn,
// oidc_role_arn, ecs_ram_role, credentials_uri, and the default chain's
// OIDC, CLI profile, credentials file, ECS and URI links) use kmsdb's own
// providers, not credentials-go's:
// they send the same requests with the same defaults, but never follow a
// redirect (the AssumeRole request is signed, AssumeRoleWithOIDC carries the
// OIDC token, the metadata requests the IMDSv2 token), read at most 64 KiB
// of an answer and bound each request by ConnectTimeout + ReadTimeout.
// access_key and sts stay credentials-go's static providers.
func NewCredential(o CredentialOptions) (credentials.Credential, error) {
	for _, f := range requiredFields(o) {
		if f.value == "" {
			return nil, wire.ConfigError("kms", fmt.Sprintf("credential type %q needs %s", o.Type, f.name), nil)
		}
	}
	httpOpts := credprov.HTTPOptions{Proxy: o.Proxy, ConnectTimeout: o.ConnectTimeout, ReadTimeout: o.ReadTimeout}
	sts := credprov.STSOptions{RoleARN: o.RoleARN, RoleSessionName: o.RoleSessionName, Policy: o.Policy,
		SessionDuration: o.SessionDuration, STSEndpoint: o.STSEndpoint, HTTP: httpOpts}
	var p providers.CredentialsProvider
	var err error
	switch o.Type {
	case CredentialAccessKey, CredentialSTS:
		cred, err := credentials.NewCredential(credentialsConfig(o))
		if err != nil {
			return nil, wire.ConfigError("kms", o.Type+": "+wire.Scrub(err.Error()), nil)
		}
		return cred, nil
	case CredentialRAMRoleARN:
		var prev providers.CredentialsProvider
		if o.SecurityToken != "" {
			prev, err = providers.NewStaticSTSCredentialsProviderBuilder().WithAccessKeyId(o.AccessKeyID).
				WithAccessKeySecret(o.AccessKeySecret).WithSecurityToken(o.SecurityToken).Build()
		} else {
			prev, err = providers.NewStaticAKCredentialsProviderBuilder().WithAccessKeyId(o.AccessKeyID).
				WithAccessKeySecret(o.AccessKeySecret).Build()
		}
		if err == nil {
			p, err = credprov.NewRAMRoleARN(prev, o.ExternalID, sts)
		}
	case CredentialOIDCRoleARN:
		p, err = credprov.NewOIDCRoleARN(credprov.OIDCOptions{OIDCProviderARN: o.OIDCProviderARN,
			OIDCTokenFile: o.OIDCTokenFile}, sts)
	case CredentialCredentialsURI:
		p, err = credprov.NewURI(o.URL, httpOpts)
	case CredentialECSRAMRole:
		p, err = credprov.NewECSRAMRole(credprov.ECSOptions{RoleName: o.RoleName, DisableIMDSv1: o.DisableIMDSv1,
			HTTP: httpOpts})
	case CredentialClientKey:
		return LoadClientKey(o.ClientKeyFile, o.ClientKeyPassword)
	case CredentialDefault, "":
		return selfLocking{credentials.FromCredentialsProvider(CredentialDefault, credprov.NewChain(httpOpts))}, nil
	default:
		return nil, wire.ConfigError("kms", fmt.Sprintf("unknown credential type %q (want one of access_key, sts, ram_role_arn, "+
			"ecs_ram_role, oidc_role_arn, credentials_uri, client_key, default)", o.Type), nil)
	}
	if err != nil {
		return nil, wire.ConfigError("kms", o.Type+": "+wire.Scrub(err.Error()), nil)
	}
	return selfLocking{credentials.FromCredentialsProvider(o.Type, p)}, nil
}

// selfLocking is a Credential over one of kmsdb's providers (credprov):
// they are safe for concurrent use and hand out a usable session while one
// caller refreshes it, so providerAdapter calls them without its lock, which
// would queue every request behind that refresh's network call.
type selfLocking struct{ credentials.Credential }

// requiredFields lists, in the order they are checked, the options the
// credential type of o cannot do without.
func requiredFields(o CredentialOptions) []struct{ name, value string } {
	type field = struct{ name, value string }
	ak := []field{{"AccessKeyID", o.AccessKeyID}, {"AccessKeySecret", o.AccessKeySecret}}
	switch o.Type {
	case CredentialAccessKey:
		return ak
	case CredentialSTS:
		return append(ak, field{"SecurityToken", o.SecurityToken})
	case CredentialRAMRoleARN:
		return append(ak, field{"RoleARN", o.RoleARN})
	case CredentialOIDCRoleARN:
		return []field{{"RoleARN", o.RoleARN}, {"OIDCProviderARN", o.OIDCProviderARN}, {"OIDCTokenFile", o.OIDCTokenFile}}
	case CredentialCredentialsURI:
		return []field{{"URL", o.URL}}
	case CredentialClientKey:
		return []field{{"ClientKeyFile", o.ClientKeyFile}}
	}
	return nil
}

// credentialsConfig is the credentials-go configuration of the static types
// it still builds: access_key and sts.
func credentialsConfig(o CredentialOptions) *credentials.Config {
	c := &credentials.Config{Type: ptr(o.Type), AccessKeyId: ptr(o.AccessKeyID), AccessKeySecret: ptr(o.AccessKeySecret)}
	if o.Type == CredentialSTS {
		c.SecurityToken = ptr(o.SecurityToken)
	}
	return c
}

func ptr(s string) *string { return &s }

// providerAdapter turns a credentials-go Credential into the core SDK's
// CredentialsProvider: the SDK calls GetCredentials on every request and signs
// with the AccessKeyId/AccessKeySecret it returns, adding SecurityToken (STS
// tokens from sts, ram_role_arn, ecs_ram_role, oidc_role_arn, credentials_uri)
// and BearerToken as query parameters when they are set.
//
// credentials-go providers cache and refresh their session without locks, so
// calls to a Credential passed in code are serialized here. kmsdb's own
// providers (selfLocking, from NewCredential) lock themselves and are called
// without this lock: a refresh must not queue the requests it can serve
// from the session still usable.
type providerAdapter struct {
	mu   sync.Mutex
	cred credentials.Credential
	name string
}

func newProviderAdapter(cred credentials.Credential) *providerAdapter {
	name := "credentials-go"
	if t := cred.GetType(); t != nil && *t != "" {
		name = *t
	}
	return &providerAdapter{cred: cred, name: name}
}

func (p *providerAdapter) GetCredentials() (*sdkcreds.Credentials, error) {
	m, err := p.get()
	if err != nil {
		ce := &credentialError{provider: p.name, msg: wire.Scrub(err.Error())}
		var pe *credprov.Error
		if errors.As(err, &pe) {
			ce.cause = pe
		}
		return nil, ce
	}
	if m == nil || deref(m.AccessKeyId) == "" && deref(m.BearerToken) == "" {
		return nil, &credentialError{provider: p.name, msg: "the provider returned no AccessKeyId"}
	}
	return &sdkcreds.Credentials{
		AccessKeyId:     deref(m.AccessKeyId),
		AccessKeySecret: deref(m.AccessKeySecret),
		SecurityToken:   deref(m.SecurityToken),
		BearerToken:     deref(m.BearerToken),
		ProviderName:    "kmsdb/" + p.name,
	}, nil
}

// get calls the credential, under the lock unless it is selfLocking. A provider that panics on an odd
// answer (credentials-go's network providers, reachable only through a
// credentials-go Credential passed in code, dereference fields they did not
// check) is an error, and leaves the lock
// free for the next call.
func (p *providerAdapter) get() (m *credentials.CredentialModel, err error) {
	if _, ok := p.cred.(selfLocking); !ok {
		p.mu.Lock()
		defer p.mu.Unlock()
	}
	defer func() {
		if r := recover(); r != nil {
			m, err = nil, fmt.Errorf("the credential provider panicked on its service's answer: %s", wire.Scrub(fmt.Sprint(r)))
		}
	}()
	return p.cred.GetCredential()
}

func (p *providerAdapter) GetProviderName() string { return "kmsdb/" + p.name }

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}
