package kmstest

import (
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/alibabacloud-go/tea/tea"
	credgo "github.com/aliyun/credentials-go/credentials"
	"github.com/aliyun/credentials-go/credentials/providers"
)

// trustEmulatorInDefaultTransport makes credentials-go's STS calls trust the emulator CA. credentials-go clones
// http.DefaultTransport for every request and has no CA option; its STS scheme is fixed to https.
func trustEmulatorInDefaultTransport(t *testing.T, srv *Server) {
	t.Helper()
	dt := http.DefaultTransport.(*http.Transport)
	old := dt.TLSClientConfig
	dt.TLSClientConfig = srv.TLSClientConfig()
	t.Cleanup(func() {
		dt.TLSClientConfig = old
		dt.CloseIdleConnections()
	})
}

func fetchWith(t *testing.T, srv *Server, cred credgo.Credential) (string, string) {
	t.Helper()
	return teaFetch(t, teaClient(t, srv, true, "", cred, ""), rdsName)
}

func TestCredentialsProviders(t *testing.T) {
	srv := newTestServer(t)
	trustEmulatorInDefaultTransport(t, srv)
	newCred := func(cfg *credgo.Config) credgo.Credential {
		t.Helper()
		c, err := credgo.NewCredential(cfg)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	cases := []struct {
		name string
		cred func() credgo.Credential
	}{
		{"ram_role_arn", func() credgo.Credential {
			return newCred(&credgo.Config{Type: tea.String("ram_role_arn"), AccessKeyId: tea.String(testAK),
				AccessKeySecret: tea.String(testSK), RoleArn: tea.String(srv.RoleARN()),
				RoleSessionName: tea.String("kmstest"), STSEndpoint: tea.String(srv.STSAddr())})
		}},
		{"oidc_role_arn", func() credgo.Credential {
			return newCred(&credgo.Config{Type: tea.String("oidc_role_arn"), RoleArn: tea.String(srv.RoleARN()),
				OIDCProviderArn: tea.String(srv.OIDCProviderARN()), OIDCTokenFilePath: tea.String(srv.OIDCTokenFile()),
				RoleSessionName: tea.String("kmstest"), STSEndpoint: tea.String(srv.STSAddr())})
		}},
		{"ecs_ram_role via proxy", func() credgo.Credential {
			p, err := providers.NewECSRAMRoleCredentialsProviderBuilder().
				WithHttpOptions(&providers.HttpOptions{Proxy: srv.MetadataURL()}).Build()
			if err != nil {
				t.Fatal(err)
			}
			return credgo.FromCredentialsProvider("ecs_ram_role", p)
		}},
		{"credentials_uri", func() credgo.Credential {
			return newCred(&credgo.Config{Type: tea.String("credentials_uri"), Url: tea.String(srv.CredentialsURI())})
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cred := c.cred()
			m, err := cred.GetCredential()
			if err != nil {
				t.Fatal(err)
			}
			if !strings.HasPrefix(tea.StringValue(m.AccessKeyId), "STS.") || tea.StringValue(m.SecurityToken) == "" {
				t.Fatalf("not a temporary credential: %s", tea.StringValue(m.AccessKeyId))
			}
			v, code := fetchWith(t, srv, cred)
			if code != "" || v != rdsValue {
				t.Fatalf("fetch: code %q", code)
			}
			// The same temporary key is rejected once the emulator clock passes its expiry.
			st := staticCred(t, tea.StringValue(m.AccessKeyId), tea.StringValue(m.AccessKeySecret), tea.StringValue(m.SecurityToken))
			srv.Advance(2 * time.Hour)
			if _, code := fetchWith(t, srv, st); code != "InvalidSecurityToken.Expired" {
				t.Fatalf("after expiry: code %q", code)
			}
		})
	}
	for _, a := range []string{"sts:AssumeRole", "sts:AssumeRoleWithOIDC", "metadata:Token", "metadata:Credentials", "credentialsURI"} {
		if srv.Calls(a, "") == 0 {
			t.Errorf("no call counted for %s", a)
		}
	}
}

func TestSTSRejects(t *testing.T) {
	srv := newTestServer(t)
	trustEmulatorInDefaultTransport(t, srv)
	bad := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(bad, []byte("not-the-token"), 0o600); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name, code string
		cfg        *credgo.Config
	}{
		{"AssumeRole wrong secret", "SignatureDoesNotMatch", &credgo.Config{Type: tea.String("ram_role_arn"),
			AccessKeyId: tea.String(testAK), AccessKeySecret: tea.String("wrong"), RoleArn: tea.String(srv.RoleARN()),
			RoleSessionName: tea.String("s"), STSEndpoint: tea.String(srv.STSAddr())}},
		{"AssumeRole unknown key", "InvalidAccessKeyId.NotFound", &credgo.Config{Type: tea.String("ram_role_arn"),
			AccessKeyId: tea.String("LTAInobody"), AccessKeySecret: tea.String("x"), RoleArn: tea.String(srv.RoleARN()),
			RoleSessionName: tea.String("s"), STSEndpoint: tea.String(srv.STSAddr())}},
		{"AssumeRole bad role", "InvalidParameter.RoleArn", &credgo.Config{Type: tea.String("ram_role_arn"),
			AccessKeyId: tea.String(testAK), AccessKeySecret: tea.String(testSK), RoleArn: tea.String("role"),
			RoleSessionName: tea.String("s"), STSEndpoint: tea.String(srv.STSAddr())}},
		{"OIDC wrong token", "AuthenticationFail.OIDCToken.Invalid", &credgo.Config{Type: tea.String("oidc_role_arn"),
			RoleArn: tea.String(srv.RoleARN()), OIDCProviderArn: tea.String(srv.OIDCProviderARN()),
			OIDCTokenFilePath: tea.String(bad), RoleSessionName: tea.String("s"), STSEndpoint: tea.String(srv.STSAddr())}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cred, err := credgo.NewCredential(c.cfg)
			if err == nil {
				_, err = cred.GetCredential()
			}
			if err == nil || !strings.Contains(err.Error(), c.code) {
				t.Fatalf("err %v, want %s", err, c.code)
			}
			if strings.Contains(err.Error(), testSK) {
				t.Fatal("error shows the secret")
			}
		})
	}
}

func TestMetadataDirect(t *testing.T) {
	srv := newTestServer(t)
	get := func(path, token string) (int, string) {
		req, _ := http.NewRequest(http.MethodGet, srv.MetadataURL()+path, nil)
		if token != "" {
			req.Header.Set("X-aliyun-ecs-metadata-token", token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	t.Cleanup(http.DefaultClient.CloseIdleConnections)
	if code, body := get("/latest/meta-data/ram/security-credentials/", ""); code != 200 || body != srv.MetadataRoleName() {
		t.Fatalf("role list: %d", code)
	}
	if code, _ := get("/latest/meta-data/ram/security-credentials/other-role", ""); code != 404 {
		t.Fatalf("other role: %d", code)
	}
	if code, _ := get("/latest/meta-data/ram/security-credentials/", "bogus"); code != 401 {
		t.Fatalf("bad token: %d", code)
	}
	if code, body := get("/latest/meta-data/ram/security-credentials/"+srv.MetadataRoleName(), ""); code != 200 ||
		!strings.Contains(body, `"Code":"Success"`) {
		t.Fatalf("credentials: %d", code)
	}
}
