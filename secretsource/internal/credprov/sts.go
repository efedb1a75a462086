package credprov

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha1" //nolint:gosec // HMAC-SHA1 is the RPC signature method STS verifies
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/aliyun/credentials-go/credentials/providers"

	"github.com/kmsdb/kmsdb/internal/regfile"
	"github.com/kmsdb/kmsdb/secretsource/internal/wire"
)

// STS request defaults, as credentials-go v1.4.14 has them.
const (
	stsVersion             = "2015-04-01"
	defaultSessionDuration = time.Hour
	minSessionDuration     = 15 * time.Minute
	stsConnectTimeout      = 5 * time.Second
	stsReadTimeout         = 10 * time.Second
)

// STSOptions are the settings the two STS providers share.
type STSOptions struct {
	RoleARN         string        // empty: ALIBABA_CLOUD_ROLE_ARN
	RoleSessionName string        // empty: ALIBABA_CLOUD_ROLE_SESSION_NAME (ram_role_arn only), else credentials-go-<µs>
	Policy          string        // optional session policy
	SessionDuration time.Duration // zero: 1 h; at least 15 min
	// STSEndpoint is host[:port], always reached over HTTPS. Empty:
	// sts[-vpc].<region>.aliyuncs.com when STSRegionID or ALIBABA_CLOUD_STS_REGION
	// names a region (sts-vpc when EnableVPC or
	// ALIBABA_CLOUD_VPC_ENDPOINT_ENABLED=true), else sts.aliyuncs.com.
	STSEndpoint string
	STSRegionID string
	EnableVPC   bool
	HTTP        HTTPOptions
}

// resolve applies the defaults to o, as credentials-go's builders do.
func (o *STSOptions) resolve(provider string, sessionNameEnv bool) error {
	if o.RoleARN == "" {
		o.RoleARN = os.Getenv("ALIBABA_CLOUD_ROLE_ARN")
	}
	if o.RoleARN == "" {
		return configError(provider, "the RoleArn is empty")
	}
	if o.RoleSessionName == "" && sessionNameEnv {
		o.RoleSessionName = os.Getenv("ALIBABA_CLOUD_ROLE_SESSION_NAME")
	}
	if o.RoleSessionName == "" {
		o.RoleSessionName = "credentials-go-" + strconv.FormatInt(time.Now().UnixMicro(), 10)
	}
	if o.SessionDuration == 0 {
		o.SessionDuration = defaultSessionDuration
	}
	if o.SessionDuration < minSessionDuration {
		return configError(provider, "the session duration must be at least 900 s (15 min)")
	}
	o.STSEndpoint = stsEndpoint(o.STSEndpoint, o.STSRegionID, o.EnableVPC)
	return nil
}

// stsEndpoint is credentials-go's choice of STS endpoint.
func stsEndpoint(endpoint, region string, vpc bool) string {
	if endpoint != "" {
		return endpoint
	}
	if !vpc {
		vpc = strings.EqualFold(os.Getenv("ALIBABA_CLOUD_VPC_ENDPOINT_ENABLED"), "true")
	}
	prefix := "sts"
	if vpc {
		prefix = "sts-vpc"
	}
	if region == "" {
		region = os.Getenv("ALIBABA_CLOUD_STS_REGION")
	}
	if region != "" {
		return prefix + "." + region + ".aliyuncs.com"
	}
	return "sts.aliyuncs.com"
}

// stsCall posts one STS action: the common parameters in the query, the
// action's in the form body, as credentials-go sends them. sign, when set,
// adds the signature parameters to the query.
func stsCall(c *client, endpoint, action string, form url.Values, extra http.Header,
	sign func(query url.Values)) (session, error) {
	query := url.Values{"Version": {stsVersion}, "Action": {action}, "Format": {"JSON"},
		"Timestamp": {time.Now().UTC().Format("2006-01-02T15:04:05Z")}}
	if sign != nil {
		sign(query)
	}
	u := url.URL{Scheme: "https", Host: endpoint, Path: "/", RawQuery: query.Encode()}
	req, err := http.NewRequest(http.MethodPost, u.String(), strings.NewReader(form.Encode()))
	if err != nil {
		return session{}, configError(c.provider, fmt.Sprintf("STS endpoint %q is not a host[:port]", endpoint))
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept-Encoding", "identity")
	for k, v := range extra {
		req.Header[k] = v
	}
	status, body, err := c.do(req, action)
	if err != nil {
		return session{}, err
	}
	if status != http.StatusOK {
		return session{}, c.serviceError(action, status, body)
	}
	var answer struct {
		RequestID   string `json:"RequestId"`
		Credentials *credentialsJSON
	}
	if what := decode(body, &answer); what != "" {
		return session{}, c.invalid(action, status, what)
	}
	if answer.Credentials == nil {
		e := c.invalid(action, status, "the answer has no Credentials")
		e.RequestID = wire.Token(answer.RequestID)
		return session{}, e
	}
	s, what := answer.Credentials.session()
	if what != "" {
		e := c.invalid(action, status, what)
		e.RequestID = wire.Token(answer.RequestID)
		return session{}, e
	}
	return s, nil
}

// nonce is a SignatureNonce: 16 random bytes in hex.
func nonce() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// RAMRoleARN assumes a RAM role with STS AssumeRole, signed (HMAC-SHA1 RPC)
// with the credentials of a previous provider, as credentials-go's
// RAMRoleARNCredentialsProvider does.
type RAMRoleARN struct {
	o        STSOptions
	external string
	previous providers.CredentialsProvider
	c        *client
	cache    *cached
	prevName string // the previous provider's name at the last fetch (under cache.mu)
}

// NewRAMRoleARN builds the provider. previous gives the credentials that sign
// AssumeRole (an AccessKey, or an STS token). externalID is optional.
func NewRAMRoleARN(previous providers.CredentialsProvider, externalID string, o STSOptions) (*RAMRoleARN, error) {
	const name = "ram_role_arn"
	if previous == nil {
		return nil, configError(name, "must specify a previous credentials provider to assume role")
	}
	if err := o.resolve(name, true); err != nil {
		return nil, err
	}
	c, err := newClient(name, o.HTTP, stsConnectTimeout, stsReadTimeout)
	if err != nil {
		return nil, configError(name, err.Error())
	}
	p := &RAMRoleARN{o: o, external: externalID, previous: previous, c: c}
	p.cache = newCached(p.fetch)
	return p, nil
}

func (p *RAMRoleARN) fetch() (session, error) {
	prev, err := p.previous.GetCredentials()
	if err != nil {
		return session{}, err
	}
	form := url.Values{"RoleArn": {p.o.RoleARN}, "RoleSessionName": {p.o.RoleSessionName},
		"DurationSeconds": {strconv.Itoa(int(p.o.SessionDuration / time.Second))}}
	if p.o.Policy != "" {
		form.Set("Policy", p.o.Policy)
	}
	if p.external != "" {
		form.Set("ExternalId", p.external)
	}
	sign := func(q url.Values) {
		q.Set("SignatureMethod", "HMAC-SHA1")
		q.Set("SignatureVersion", "1.0")
		q.Set("SignatureNonce", nonce())
		q.Set("AccessKeyId", prev.AccessKeyId)
		if prev.SecurityToken != "" {
			q.Set("SecurityToken", prev.SecurityToken)
		}
		signed := url.Values{}
		for k, v := range q {
			signed[k] = v
		}
		for k, v := range form {
			signed[k] = v
		}
		m := hmac.New(sha1.New, []byte(prev.AccessKeySecret+"&"))
		m.Write([]byte(wire.RPCStringToSign(http.MethodPost, signed)))
		q.Set("Signature", base64.StdEncoding.EncodeToString(m.Sum(nil)))
	}
	s, err := stsCall(p.c, p.o.STSEndpoint, "AssumeRole", form,
		http.Header{"X-Acs-Credentials-Provider": {prev.ProviderName}}, sign)
	if err == nil {
		p.prevName = prev.ProviderName
	}
	return s, err
}

// GetCredentials returns the role's temporary credentials, assuming the role
// again when none are cached or they expire within 180 s.
func (p *RAMRoleARN) GetCredentials() (*providers.Credentials, error) {
	s, err := p.cache.get()
	if err != nil {
		return nil, err
	}
	p.cache.mu.Lock()
	name := p.GetProviderName() + "/" + p.prevName
	p.cache.mu.Unlock()
	return s.credentials(name), nil
}

// GetProviderName is "ram_role_arn".
func (p *RAMRoleARN) GetProviderName() string { return "ram_role_arn" }

// OIDCOptions are the settings of OIDCRoleARN beyond STSOptions.
type OIDCOptions struct {
	OIDCProviderARN string // empty: ALIBABA_CLOUD_OIDC_PROVIDER_ARN
	// OIDCTokenFile is read again before every AssumeRoleWithOIDC (the
	// token is rotated in place). Empty: ALIBABA_CLOUD_OIDC_TOKEN_FILE.
	// ALIBABA_CLOUD_OIDC_TOKEN, when set, is the token itself.
	OIDCTokenFile string
	// OIDCToken, when set, is the token itself, ahead of
	// ALIBABA_CLOUD_OIDC_TOKEN and OIDCTokenFile (a CLI profile's oidc_token).
	OIDCToken string
}

// OIDCRoleARN assumes a RAM role with STS AssumeRoleWithOIDC (unsigned: the
// OIDC token is the proof), as credentials-go's OIDCCredentialsProvider
// does; on ACK this is RRSA.
type OIDCRoleARN struct {
	o     STSOptions
	oidc  OIDCOptions
	c     *client
	cache *cached
}

// NewOIDCRoleARN builds the provider.
func NewOIDCRoleARN(oidc OIDCOptions, o STSOptions) (*OIDCRoleARN, error) {
	const name = "oidc_role_arn"
	noToken := oidc.OIDCToken == "" && os.Getenv("ALIBABA_CLOUD_OIDC_TOKEN") == ""
	if noToken && oidc.OIDCTokenFile == "" {
		oidc.OIDCTokenFile = os.Getenv("ALIBABA_CLOUD_OIDC_TOKEN_FILE")
	}
	if noToken && oidc.OIDCTokenFile == "" {
		return nil, configError(name, "the OIDCTokenFilePath is empty")
	}
	if oidc.OIDCProviderARN == "" {
		oidc.OIDCProviderARN = os.Getenv("ALIBABA_CLOUD_OIDC_PROVIDER_ARN")
	}
	if oidc.OIDCProviderARN == "" {
		return nil, configError(name, "the OIDCProviderARN is empty")
	}
	if err := o.resolve(name, false); err != nil {
		return nil, err
	}
	c, err := newClient(name, o.HTTP, stsConnectTimeout, stsReadTimeout)
	if err != nil {
		return nil, configError(name, err.Error())
	}
	p := &OIDCRoleARN{o: o, oidc: oidc, c: c}
	p.cache = newCached(p.fetch)
	return p, nil
}

// MaxTokenFile bounds the OIDC token file (a service account token is a few
// KiB).
const MaxTokenFile = 64 << 10

// token reads the OIDC token, again at each fetch (the file is rotated
// underneath). The file must be a regular file of at most MaxTokenFile bytes:
// a FIFO is refused at once rather than blocking the fetch. Errors name the
// file, never its content.
func (p *OIDCRoleARN) token() (string, error) {
	if p.oidc.OIDCToken != "" {
		return p.oidc.OIDCToken, nil
	}
	if t := os.Getenv("ALIBABA_CLOUD_OIDC_TOKEN"); t != "" {
		return t, nil
	}
	b, err := regfile.Read(p.oidc.OIDCTokenFile, MaxTokenFile)
	if err != nil {
		return "", configError(p.c.provider, fmt.Sprintf("the OIDC token file %q %s", p.oidc.OIDCTokenFile, regfile.Describe(err, MaxTokenFile)))
	}
	return string(b), nil
}

func (p *OIDCRoleARN) fetch() (session, error) {
	tok, err := p.token()
	if err != nil {
		return session{}, err
	}
	form := url.Values{"RoleArn": {p.o.RoleARN}, "OIDCProviderArn": {p.oidc.OIDCProviderARN}, "OIDCToken": {tok},
		"RoleSessionName": {p.o.RoleSessionName}, "DurationSeconds": {strconv.Itoa(int(p.o.SessionDuration / time.Second))}}
	if p.o.Policy != "" {
		form.Set("Policy", p.o.Policy)
	}
	return stsCall(p.c, p.o.STSEndpoint, "AssumeRoleWithOIDC", form, nil, nil)
}

// GetCredentials returns the role's temporary credentials, assuming the role
// again when none are cached or they expire within 180 s.
func (p *OIDCRoleARN) GetCredentials() (*providers.Credentials, error) {
	s, err := p.cache.get()
	if err != nil {
		return nil, err
	}
	return s.credentials(p.GetProviderName()), nil
}

// GetProviderName is "oidc_role_arn".
func (p *OIDCRoleARN) GetProviderName() string { return "oidc_role_arn" }
