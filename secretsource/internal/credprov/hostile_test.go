package credprov

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/aliyun/credentials-go/credentials/providers"

	"github.com/kmsdb/kmsdb/internal/credtest"
	"github.com/kmsdb/kmsdb/secretsource"
	"github.com/kmsdb/kmsdb/secretsource/internal/wire"
)

const (
	oidcToken     = "oidc-token-secret-7d1e"
	metadataToken = "imds-token-secret-41ab"
	uriSecret     = "uri-query-secret-c3f0"
)

// hostileCase builds one provider aimed at a hostile server.
type hostileCase struct {
	name    string
	tls     bool
	prepare func(h *hostile) // optional: what the hostile server does before the answer under test
	build   func(t *testing.T, h *hostile, http HTTPOptions) providers.CredentialsProvider
	secrets []string // what the provider sends and no error may show
}

func hostileCases() []hostileCase {
	return []hostileCase{
		{name: "ram_role_arn", tls: true, secrets: []string{testSecret, testAK, "Signature="},
			build: func(t *testing.T, h *hostile, o HTTPOptions) providers.CredentialsProvider {
				o.TLSConfig = h.tlsConfig()
				p, err := NewRAMRoleARN(staticAK(t, testAK, testSecret), "ext-id",
					STSOptions{RoleARN: "acs:ram::1:role/r", STSEndpoint: h.host(), HTTP: o})
				if err != nil {
					t.Fatal(err)
				}
				return p
			}},
		{name: "oidc_role_arn", tls: true, secrets: []string{oidcToken},
			build: func(t *testing.T, h *hostile, o HTTPOptions) providers.CredentialsProvider {
				o.TLSConfig = h.tlsConfig()
				p, err := NewOIDCRoleARN(OIDCOptions{OIDCProviderARN: "acs:ram::1:oidc-provider/p",
					OIDCTokenFile: writeFile(t, "token", oidcToken)},
					STSOptions{RoleARN: "acs:ram::1:role/r", STSEndpoint: h.host(), HTTP: o})
				if err != nil {
					t.Fatal(err)
				}
				return p
			}},
		{name: "ecs_ram_role token", build: buildECS},
		{name: "ecs_ram_role credentials", secrets: []string{metadataToken}, build: buildECS,
			prepare: func(h *hostile) {
				// The token request succeeds; what follows is under test.
				next := h.handle.Load().(func(http.ResponseWriter, *http.Request))
				h.set(func(w http.ResponseWriter, r *http.Request) {
					if r.Method == http.MethodPut {
						_, _ = io.WriteString(w, metadataToken)
						return
					}
					next(w, r)
				})
			}},
		{name: "credentials_uri", secrets: []string{uriSecret},
			build: func(t *testing.T, h *hostile, o HTTPOptions) providers.CredentialsProvider {
				p, err := NewURI(h.srv.URL+"/credentials?token="+uriSecret, o)
				if err != nil {
					t.Fatal(err)
				}
				return p
			}},
	}
}

// buildECS reaches the hostile server as the metadata service's proxy.
func buildECS(t *testing.T, h *hostile, o HTTPOptions) providers.CredentialsProvider {
	t.Helper()
	t.Setenv("ALIBABA_CLOUD_ECS_METADATA_DISABLED", "false")
	o.Proxy = h.srv.URL
	p, err := NewECSRAMRole(ECSOptions{RoleName: "role", HTTP: o})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// TestRedirectsNotFollowed: a 302 or 307 from STS, the metadata service or
// a credentials URI is an error naming the provider and the status; the
// request (signed, or carrying the OIDC or metadata token) never reaches the
// Location's host, and no error shows a secret or the Location's query.
func TestRedirectsNotFollowed(t *testing.T) {
	credtest.Hermetic(t)
	for _, c := range hostileCases() {
		for _, status := range []int{http.StatusFound, http.StatusTemporaryRedirect} {
			t.Run(fmt.Sprintf("%s/%d", c.name, status), func(t *testing.T) {
				h := startHostile(t, c.tls)
				h.redirect(status)
				if c.prepare != nil {
					c.prepare(h)
				}
				p := c.build(t, h, HTTPOptions{})
				_, err := p.GetCredentials()
				if h.hits.Load() == 0 {
					t.Fatal("the hostile server was not reached: the test proves nothing")
				}
				if n := h.stolen.Load(); n != 0 {
					t.Errorf("the redirect target got %d requests", n)
				}
				var re *wire.RedirectError
				if !errors.As(err, &re) || re.Status != status {
					t.Fatalf("want a refused redirect, got %v", err)
				}
				if k := secretsource.KindOf(asSecretsourceError(err)); k != secretsource.KindInvalidAnswer {
					t.Errorf("kind %v, want invalid answer", k)
				}
				if msg := err.Error(); !strings.Contains(msg, strings.Fields(c.name)[0]) || !strings.Contains(msg, fmt.Sprint(status)) {
					t.Errorf("the error does not name the provider and the status: %s", msg)
				}
				mustNotShow(t, err, append(c.secrets, "leaked-location-query", "steal")...)
			})
		}
	}
}

// asSecretsourceError converts a provider error for KindOf.
func asSecretsourceError(err error) error {
	var e *Error
	if errors.As(err, &e) {
		return &secretsource.Error{Kind: e.Kind}
	}
	return err
}

// TestOversizedAnswerRefused: an answer over MaxBody is refused, whether
// its length is declared or not.
func TestOversizedAnswerRefused(t *testing.T) {
	credtest.Hermetic(t)
	for _, c := range hostileCases() {
		for _, declared := range []bool{true, false} {
			t.Run(fmt.Sprintf("%s/declared=%v", c.name, declared), func(t *testing.T) {
				h := startHostile(t, c.tls)
				h.set(oversized(declared))
				if c.prepare != nil {
					c.prepare(h)
				}
				_, err := c.build(t, h, HTTPOptions{}).GetCredentials()
				var tl *wire.TooLargeError
				if !errors.As(err, &tl) || tl.Limit != MaxBody {
					t.Fatalf("want the body refused, got %v", err)
				}
				mustNotShow(t, err, append(c.secrets, "AAAAAAAA")...)
			})
		}
	}
}

// TestTimeoutBoundsExchange: a service that accepts the request and never
// answers is a timeout error once connect + read have passed.
func TestTimeoutBoundsExchange(t *testing.T) {
	credtest.Hermetic(t)
	for _, c := range hostileCases() {
		t.Run(c.name, func(t *testing.T) {
			h := startHostile(t, c.tls)
			release := make(chan struct{})
			t.Cleanup(func() { close(release) }) // runs before the servers close
			h.set(func(w http.ResponseWriter, _ *http.Request) {
				w.WriteHeader(http.StatusOK)
				_, _ = io.WriteString(w, "{")
				w.(http.Flusher).Flush() // headers sent: only the body is slow
				<-release
			})
			if c.prepare != nil {
				c.prepare(h)
			}
			p := c.build(t, h, HTTPOptions{ConnectTimeout: 100 * time.Millisecond, ReadTimeout: 150 * time.Millisecond})
			_, err := p.GetCredentials()
			var e *Error
			if !errors.As(err, &e) || e.Kind != secretsource.KindTimeout {
				t.Fatalf("want a timeout, got %v", err)
			}
			mustNotShow(t, err, c.secrets...)
		})
	}
}

// TestServiceErrorsScrubbed: an error document keeps Code and RequestId and
// a scrubbed Message; any other body is described by its length only; an
// unusable 200 answer is an invalid answer that quotes nothing.
func TestServiceErrorsScrubbed(t *testing.T) {
	credtest.Hermetic(t)
	answers := []struct {
		name, code, rid string
		status          int
		body            string
		kind            secretsource.Kind
	}{
		{"error document", "InvalidParameter.RoleArn", "RID-42", 400,
			`{"Code":"InvalidParameter.RoleArn","RequestId":"RID-42","Message":"bad AccessKeySecret=leak-doc-1 given"}`,
			secretsource.KindInvalidCredentials},
		{"throttled", "Throttling.User", "RID-43", 400, `{"Code":"Throttling.User","RequestId":"RID-43","Message":"slow down"}`,
			secretsource.KindThrottled},
		{"not JSON", "", "", 502, "<html>proxy says leak-html-2</html>", secretsource.KindUnavailable},
		{"200 not JSON", "", "", 200, "AccessKeySecret leak-200-3", secretsource.KindInvalidAnswer},
		{"200 missing fields", "", "", 200, `{"Code":"Success","Credentials":{"AccessKeyId":"STS.x","AccessKeySecret":"leak-partial-4"},` +
			`"AccessKeyId":"STS.x","AccessKeySecret":"leak-partial-4"}`, secretsource.KindInvalidAnswer},
	}
	for _, c := range hostileCases() {
		for _, a := range answers {
			t.Run(c.name+"/"+a.name, func(t *testing.T) {
				h := startHostile(t, c.tls)
				h.set(func(w http.ResponseWriter, _ *http.Request) {
					w.WriteHeader(a.status)
					_, _ = io.WriteString(w, a.body)
				})
				if c.prepare != nil {
					c.prepare(h)
				}
				_, err := c.build(t, h, HTTPOptions{}).GetCredentials()
				var e *Error
				if !errors.As(err, &e) {
					t.Fatalf("want *Error, got %T %v", err, err)
				}
				if c.name == "ecs_ram_role token" && a.status != 200 {
					// Without DisableIMDSv1 a failed token request falls back to
					// IMDSv1, and the credentials request meets the same answer.
					if e.Op != "role credentials" {
						t.Errorf("op %q, want the IMDSv1 fallback's role credentials", e.Op)
					}
				}
				if e.Code != a.code || e.RequestID != a.rid || e.Kind != a.kind {
					t.Errorf("got code %q request %q kind %v, want %q %q %v: %v", e.Code, e.RequestID, e.Kind, a.code, a.rid, a.kind, err)
				}
				mustNotShow(t, err, append(c.secrets, "leak-")...)
			})
		}
	}
}
