package credprov

import (
	"errors"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/aliyun/credentials-go/credentials/providers"

	"github.com/kmsdb/kmsdb/secretsource"
)

// The ECS instance metadata service, as credentials-go v1.4.14 reaches it.
//
//nolint:gosec // paths and header names, not credentials
const (
	metadataHost         = "100.100.100.200"
	metadataCredPath     = "/latest/meta-data/ram/security-credentials/"
	metadataTokenPath    = "/latest/api/token"
	metadataTokenTTL     = 21600 // seconds, 6 h
	metadataTimeout      = time.Second
	metadataTokenTTLName = "X-aliyun-ecs-metadata-token-ttl-seconds"
	metadataTokenName    = "X-aliyun-ecs-metadata-token"
)

// ECSOptions are the settings of ECSRAMRole.
type ECSOptions struct {
	// RoleName is the instance's RAM role. Empty: ALIBABA_CLOUD_ECS_METADATA,
	// else the metadata service is asked on every refresh.
	RoleName string
	// DisableIMDSv1 requires the IMDSv2 token: without it (or with
	// ALIBABA_CLOUD_IMDSV1_DISABLED=true) a failed token request is an error.
	// Otherwise, as in credentials-go, the provider falls back to plain
	// (IMDSv1) requests when the token request fails or a request with the
	// token does.
	DisableIMDSv1 bool
	// HTTP: the metadata service is http://100.100.100.200; a Proxy is the
	// only way to reach another one. Timeouts default to 1 s and 1 s.
	HTTP HTTPOptions
}

// ECSRAMRole gets the ECS instance's RAM role credentials from the metadata
// service, as credentials-go's ECSRAMRoleCredentialsProvider does: PUT the
// IMDSv2 token, GET the role name when none is configured, GET the role's
// credentials.
type ECSRAMRole struct {
	o     ECSOptions
	c     *client
	cache *cached
}

// NewECSRAMRole builds the provider. ALIBABA_CLOUD_ECS_METADATA_DISABLED=true
// refuses it, as credentials-go does.
func NewECSRAMRole(o ECSOptions) (*ECSRAMRole, error) {
	const name = "ecs_ram_role"
	if strings.EqualFold(os.Getenv("ALIBABA_CLOUD_ECS_METADATA_DISABLED"), "true") {
		return nil, configError(name, "IMDS credentials is disabled (ALIBABA_CLOUD_ECS_METADATA_DISABLED=true)")
	}
	if o.RoleName == "" {
		o.RoleName = os.Getenv("ALIBABA_CLOUD_ECS_METADATA")
	}
	if !o.DisableIMDSv1 {
		o.DisableIMDSv1 = strings.EqualFold(os.Getenv("ALIBABA_CLOUD_IMDSV1_DISABLED"), "true")
	}
	c, err := newClient(name, o.HTTP, metadataTimeout, metadataTimeout)
	if err != nil {
		return nil, configError(name, err.Error())
	}
	p := &ECSRAMRole{o: o, c: c}
	p.cache = newCached(p.fetch)
	return p, nil
}

// metadataToken asks for an IMDSv2 token. Without DisableIMDSv1, a failure
// other than a refused answer (a redirect, an oversized body) gives no token
// and no error: the requests then go without one.
func (p *ECSRAMRole) metadataToken() (string, error) {
	const op = "metadata token"
	req, err := http.NewRequest(http.MethodPut, "http://"+metadataHost+metadataTokenPath, http.NoBody)
	if err != nil {
		return "", err
	}
	req.Header.Set(metadataTokenTTLName, strconv.Itoa(metadataTokenTTL))
	status, body, err := p.c.do(req, op)
	switch {
	case err != nil:
		if p.o.DisableIMDSv1 || refusedAnswer(err) {
			return "", err
		}
		return "", nil
	case status != http.StatusOK:
		if p.o.DisableIMDSv1 {
			return "", p.c.serviceError(op, status, body)
		}
		return "", nil
	}
	return string(body), nil
}

// refusedAnswer reports whether err is a redirect or an oversized body: never
// a reason to fall back, always an error.
func refusedAnswer(err error) bool {
	var e *Error
	return errors.As(err, &e) && e.Kind == secretsource.KindInvalidAnswer
}

// get GETs a metadata path, with the token when there is one, and once more
// without it when that fails and IMDSv1 is allowed (credentials-go's
// getWithFallback).
func (p *ECSRAMRole) get(path, token, op string) (int, []byte, error) {
	status, body, err := p.getOnce(path, token, op)
	if (err != nil && !refusedAnswer(err) || err == nil && status != http.StatusOK) && token != "" && !p.o.DisableIMDSv1 {
		return p.getOnce(path, "", op)
	}
	return status, body, err
}

func (p *ECSRAMRole) getOnce(path, token, op string) (int, []byte, error) {
	req, err := http.NewRequest(http.MethodGet, "http://"+metadataHost+path, http.NoBody)
	if err != nil {
		return 0, nil, err
	}
	if token != "" {
		req.Header.Set(metadataTokenName, token)
	}
	return p.c.do(req, op)
}

func (p *ECSRAMRole) fetch() (session, error) {
	token, err := p.metadataToken()
	if err != nil {
		return session{}, err
	}
	role := p.o.RoleName
	if role == "" {
		const op = "role name"
		status, body, err := p.get(metadataCredPath, token, op)
		if err != nil {
			return session{}, err
		}
		if status != http.StatusOK {
			return session{}, p.c.serviceError(op, status, body)
		}
		role = strings.TrimSpace(string(body))
		if role == "" || strings.ContainsAny(role, "/?#% \t\r\n") {
			return session{}, p.c.invalid(op, status, "the metadata service named no usable role")
		}
	}
	const op = "role credentials"
	status, body, err := p.get(metadataCredPath+role, token, op)
	if err != nil {
		return session{}, err
	}
	if status != http.StatusOK {
		return session{}, p.c.serviceError(op, status, body)
	}
	var answer struct {
		Code *string
		credentialsJSON
	}
	if what := decode(body, &answer); what != "" {
		return session{}, p.c.invalid(op, status, what)
	}
	if answer.Code == nil || *answer.Code != "Success" {
		return session{}, p.c.invalid(op, status, "the answer's Code is not Success")
	}
	s, what := answer.session()
	if what != "" {
		return session{}, p.c.invalid(op, status, what)
	}
	return s, nil
}

// GetCredentials returns the role's temporary credentials, asking the
// metadata service again when none are cached or they expire within 180 s.
func (p *ECSRAMRole) GetCredentials() (*providers.Credentials, error) {
	s, err := p.cache.get()
	if err != nil {
		return nil, err
	}
	return s.credentials(p.GetProviderName()), nil
}

// GetProviderName is "ecs_ram_role".
func (p *ECSRAMRole) GetProviderName() string { return "ecs_ram_role" }
