package credprov

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/aliyun/credentials-go/credentials/providers"

	"github.com/kmsdb/kmsdb/secretsource"
	"github.com/kmsdb/kmsdb/secretsource/kmstest"
)

// emulatorCase builds one provider against the emulator; calls is the
// emulator's count of the request that issues the credentials.
type emulatorCase struct {
	name  string
	calls string
	build func(t *testing.T, srv *kmstest.Server) providers.CredentialsProvider
}

func emulatorCases() []emulatorCase {
	return []emulatorCase{
		{"ram_role_arn", "sts:AssumeRole", func(t *testing.T, srv *kmstest.Server) providers.CredentialsProvider {
			p, err := NewRAMRoleARN(staticAK(t, testAK, testSecret), "", STSOptions{RoleARN: srv.RoleARN(),
				RoleSessionName: "credprov", STSEndpoint: srv.STSAddr(), HTTP: HTTPOptions{TLSConfig: srv.TLSClientConfig()}})
			if err != nil {
				t.Fatal(err)
			}
			return p
		}},
		{"oidc_role_arn", "sts:AssumeRoleWithOIDC", func(t *testing.T, srv *kmstest.Server) providers.CredentialsProvider {
			p, err := NewOIDCRoleARN(OIDCOptions{OIDCProviderARN: srv.OIDCProviderARN(), OIDCTokenFile: srv.OIDCTokenFile()},
				STSOptions{RoleARN: srv.RoleARN(), STSEndpoint: srv.STSAddr(), HTTP: HTTPOptions{TLSConfig: srv.TLSClientConfig()}})
			if err != nil {
				t.Fatal(err)
			}
			return p
		}},
		{"ecs_ram_role", "metadata:Token", func(t *testing.T, srv *kmstest.Server) providers.CredentialsProvider {
			t.Setenv("ALIBABA_CLOUD_ECS_METADATA_DISABLED", "false")
			p, err := NewECSRAMRole(ECSOptions{HTTP: HTTPOptions{Proxy: srv.MetadataURL()}, DisableIMDSv1: true})
			if err != nil {
				t.Fatal(err)
			}
			return p
		}},
		{"credentials_uri", "credentialsURI", func(t *testing.T, srv *kmstest.Server) providers.CredentialsProvider {
			p, err := NewURI(srv.CredentialsURI(), HTTPOptions{})
			if err != nil {
				t.Fatal(err)
			}
			return p
		}},
	}
}

// cacheOf is the credentials cache of a provider of this package.
func cacheOf(p providers.CredentialsProvider) *cached {
	switch p := p.(type) {
	case *RAMRoleARN:
		return p.cache
	case *OIDCRoleARN:
		return p.cache
	case *ECSRAMRole:
		return p.cache
	case *URI:
		return p.cache
	}
	return nil
}

// TestEmulator: each provider gets temporary credentials from the emulator
// (which verifies the AssumeRole signature, the OIDC token, the IMDSv2
// token), keeps them while they are good, and fetches new ones once they
// expire within 180 s. The credentials it returns are real: they sign an
// AssumeRole of their own.
func TestEmulator(t *testing.T) {
	for _, c := range emulatorCases() {
		t.Run(c.name, func(t *testing.T) {
			srv := startEmulator(t)
			p := c.build(t, srv)
			first, err := p.GetCredentials()
			if err != nil {
				t.Fatal(err)
			}
			if !strings.HasPrefix(first.AccessKeyId, "STS.") || first.AccessKeySecret == "" || first.SecurityToken == "" {
				t.Fatalf("not a temporary credential: %q", first.AccessKeyId)
			}
			if !strings.HasPrefix(first.ProviderName, p.GetProviderName()) {
				t.Errorf("provider name %q", first.ProviderName)
			}
			if n := srv.Calls(c.calls, ""); n != 1 {
				t.Fatalf("%d calls of %s, want 1", n, c.calls)
			}
			// Cached while more than 180 s remain (the emulator issues 1 h).
			shift(cacheOf(p), time.Hour-200*time.Second)
			again, err := p.GetCredentials()
			if err != nil || again.AccessKeyId != first.AccessKeyId || srv.Calls(c.calls, "") != 1 {
				t.Fatalf("not served from the cache: %v, %d calls", err, srv.Calls(c.calls, ""))
			}
			// Refreshed once 180 s or less remain.
			shift(cacheOf(p), time.Hour-170*time.Second)
			fresh, err := p.GetCredentials()
			if err != nil {
				t.Fatal(err)
			}
			if fresh.AccessKeyId == first.AccessKeyId || srv.Calls(c.calls, "") != 2 {
				t.Fatalf("not refreshed: same key %v, %d calls", fresh.AccessKeyId == first.AccessKeyId, srv.Calls(c.calls, ""))
			}

			// The temporary credentials (with their security token) sign an
			// AssumeRole the emulator accepts.
			prev, err := providers.NewStaticSTSCredentialsProviderBuilder().WithAccessKeyId(fresh.AccessKeyId).
				WithAccessKeySecret(fresh.AccessKeySecret).WithSecurityToken(fresh.SecurityToken).Build()
			if err != nil {
				t.Fatal(err)
			}
			chained, err := NewRAMRoleARN(prev, "", STSOptions{RoleARN: srv.RoleARN(), STSEndpoint: srv.STSAddr(),
				HTTP: HTTPOptions{TLSConfig: srv.TLSClientConfig()}})
			if err != nil {
				t.Fatal(err)
			}
			cc, err := chained.GetCredentials()
			if err != nil {
				t.Fatal(err)
			}
			if cc.ProviderName != "ram_role_arn/static_sts" {
				t.Errorf("chained provider name %q", cc.ProviderName)
			}
		})
	}
}

// TestSTSRejects: the emulator's refusals keep their Code and RequestId;
// a wrong signature is a SignatureDoesNotMatch (so the emulator does check
// the signature these tests rely on), and no error shows the secret, the
// string to sign or the OIDC token.
func TestSTSRejects(t *testing.T) {
	srv := startEmulator(t)
	tls := HTTPOptions{TLSConfig: srv.TLSClientConfig()}
	role := func(id, secret, arn string) providers.CredentialsProvider {
		p, err := NewRAMRoleARN(staticAK(t, id, secret), "", STSOptions{RoleARN: arn, STSEndpoint: srv.STSAddr(), HTTP: tls})
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	wrongToken := "not-the-oidc-token-5e1"
	oidc, err := NewOIDCRoleARN(OIDCOptions{OIDCProviderARN: srv.OIDCProviderARN(), OIDCTokenFile: writeFile(t, "t", wrongToken)},
		STSOptions{RoleARN: srv.RoleARN(), STSEndpoint: srv.STSAddr(), HTTP: tls})
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name, code string
		p          providers.CredentialsProvider
		secrets    []string
	}{
		{"wrong secret", "SignatureDoesNotMatch", role(testAK, "wrong-"+testSecret, srv.RoleARN()), []string{"wrong-" + testSecret, "POST&"}},
		{"unknown key", "InvalidAccessKeyId.NotFound", role("LTAInobody", testSecret, srv.RoleARN()), []string{testSecret}},
		{"bad role", "InvalidParameter.RoleArn", role(testAK, testSecret, "acs:ram::1:nope"), []string{testSecret}},
		{"wrong OIDC token", "AuthenticationFail.OIDCToken.Invalid", oidc, []string{wrongToken}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := c.p.GetCredentials()
			var e *Error
			if !errors.As(err, &e) || e.Code != c.code || e.RequestID == "" || e.Kind != secretsource.KindInvalidCredentials {
				t.Fatalf("got %v, want %s with a request id, invalid credentials", err, c.code)
			}
			mustNotShow(t, err, c.secrets...)
		})
	}
}

// TestECSFallback: without DisableIMDSv1 a metadata service that refuses
// the token is asked without one; with it, that is an error.
func TestECSFallback(t *testing.T) {
	srv := startEmulator(t)
	t.Setenv("ALIBABA_CLOUD_ECS_METADATA_DISABLED", "false")
	fail := func() {
		srv.InjectFault(kmstest.Fault{Action: "metadata:Token", Code: "ServiceUnavailable", HTTPStatus: 503, Times: 1})
	}
	fail()
	p, err := NewECSRAMRole(ECSOptions{RoleName: srv.MetadataRoleName(), HTTP: HTTPOptions{Proxy: srv.MetadataURL()}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.GetCredentials(); err != nil {
		t.Fatalf("IMDSv1 fallback: %v", err)
	}
	strict, err := NewECSRAMRole(ECSOptions{RoleName: srv.MetadataRoleName(), DisableIMDSv1: true,
		HTTP: HTTPOptions{Proxy: srv.MetadataURL()}})
	if err != nil {
		t.Fatal(err)
	}
	fail()
	_, err = strict.GetCredentials()
	var e *Error
	if !errors.As(err, &e) || e.Op != "metadata token" || e.Status != 503 {
		t.Fatalf("DisableIMDSv1: got %v, want the token request's failure", err)
	}
	if _, err := strict.GetCredentials(); err != nil { // the fault is spent
		t.Fatal(err)
	}
	t.Setenv("ALIBABA_CLOUD_ECS_METADATA_DISABLED", "true")
	if _, err := NewECSRAMRole(ECSOptions{}); err == nil || !strings.Contains(err.Error(), "disabled") {
		t.Errorf("ALIBABA_CLOUD_ECS_METADATA_DISABLED=true: %v", err)
	}
}

// TestChain: the default chain takes the environment's AccessKey first, and
// reaches a credentials URI through this package's provider (so a redirect
// there is refused too).
func TestChain(t *testing.T) {
	srv := startEmulator(t)
	t.Setenv("ALIBABA_CLOUD_CREDENTIALS_URI", srv.CredentialsURI())
	cc, err := NewChain(HTTPOptions{}).GetCredentials()
	if err != nil || cc.ProviderName != "default/credential_uri" || !strings.HasPrefix(cc.AccessKeyId, "STS.") {
		t.Fatalf("credentials URI through the chain: %v %+v", err, cc != nil)
	}
	t.Setenv("ALIBABA_CLOUD_ACCESS_KEY_ID", testAK)
	t.Setenv("ALIBABA_CLOUD_ACCESS_KEY_SECRET", testSecret)
	cc, err = NewChain(HTTPOptions{}).GetCredentials()
	if err != nil || cc.AccessKeyId != testAK || !strings.HasPrefix(cc.ProviderName, "default/") {
		t.Fatalf("environment AccessKey through the chain: %v", err)
	}

	h := startHostile(t, false)
	h.redirect(302)
	t.Setenv("ALIBABA_CLOUD_ACCESS_KEY_ID", "")
	t.Setenv("ALIBABA_CLOUD_ACCESS_KEY_SECRET", "")
	t.Setenv("ALIBABA_CLOUD_CREDENTIALS_URI", h.srv.URL+"/c?token="+uriSecret)
	_, err = NewChain(HTTPOptions{}).GetCredentials()
	if err == nil || !strings.Contains(err.Error(), "redirect") {
		t.Fatalf("want the URI's redirect refused, got %v", err)
	}
	mustNotShow(t, err, uriSecret, "leaked-location-query")
	if h.hits.Load() == 0 || h.stolen.Load() != 0 {
		t.Errorf("hostile hits %d, redirect target hits %d (want >0, 0)", h.hits.Load(), h.stolen.Load())
	}
	credtestEmpty := NewChain(HTTPOptions{})
	t.Setenv("ALIBABA_CLOUD_CREDENTIALS_URI", "")
	if _, err := credtestEmpty.GetCredentials(); err == nil {
		t.Error("a chain whose providers fail returned credentials")
	}
}
