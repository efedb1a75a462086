package credprov

import (
	"net/http"
	"net/url"
	"os"

	"github.com/aliyun/credentials-go/credentials/providers"
)

// URI gets temporary credentials with a GET of a URL answering
// {"AccessKeyId","AccessKeySecret","SecurityToken","Expiration"}, as
// credentials-go's URLCredentialsProvider does.
type URI struct {
	url   string
	c     *client
	cache *cached
}

// NewURI builds the provider. An empty rawURL takes
// ALIBABA_CLOUD_CREDENTIALS_URI. Timeouts default to 5 s and 10 s.
func NewURI(rawURL string, o HTTPOptions) (*URI, error) {
	const name = "credentials_uri"
	if rawURL == "" {
		rawURL = os.Getenv("ALIBABA_CLOUD_CREDENTIALS_URI")
	}
	if rawURL == "" {
		return nil, configError(name, "the url is empty")
	}
	if u, err := url.Parse(rawURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, configError(name, "the url is not an http:// or https:// URL")
	}
	c, err := newClient(name, o, stsConnectTimeout, stsReadTimeout)
	if err != nil {
		return nil, configError(name, err.Error())
	}
	p := &URI{url: rawURL, c: c}
	p.cache = newCached(p.fetch)
	return p, nil
}

func (p *URI) fetch() (session, error) {
	const op = "GET"
	req, err := http.NewRequest(http.MethodGet, p.url, http.NoBody)
	if err != nil {
		return session{}, configError(p.c.provider, "the url is not usable")
	}
	status, body, err := p.c.do(req, op)
	if err != nil {
		return session{}, err
	}
	if status != http.StatusOK {
		return session{}, p.c.serviceError(op, status, body)
	}
	var answer credentialsJSON
	if what := decode(body, &answer); what != "" {
		return session{}, p.c.invalid(op, status, what)
	}
	s, what := answer.session()
	if what != "" {
		return session{}, p.c.invalid(op, status, what)
	}
	return s, nil
}

// GetCredentials returns the temporary credentials, asking the URL again
// when none are cached or they expire within 180 s.
func (p *URI) GetCredentials() (*providers.Credentials, error) {
	s, err := p.cache.get()
	if err != nil {
		return nil, err
	}
	return s.credentials(p.GetProviderName()), nil
}

// GetProviderName is "credential_uri", credentials-go's spelling.
func (p *URI) GetProviderName() string { return "credential_uri" }
