package kmstest

import (
	"bytes"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	openapi "github.com/alibabacloud-go/darabonba-openapi/v2/client"
	kms3 "github.com/alibabacloud-go/kms-20160120/v3/client"
	"github.com/alibabacloud-go/tea/tea"
	"github.com/aliyun/alibaba-cloud-sdk-go/sdk"
	sdkcred "github.com/aliyun/alibaba-cloud-sdk-go/sdk/auth/credentials"
	sdkerr "github.com/aliyun/alibaba-cloud-sdk-go/sdk/errors"
	"github.com/aliyun/alibaba-cloud-sdk-go/sdk/requests"
	"github.com/aliyun/alibaba-cloud-sdk-go/services/kms"
	credgo "github.com/aliyun/credentials-go/credentials"
)

const (
	testAK = "LTAI5tKmsTestKey0001"
	// testSK holds the characters the signature encodings treat specially.
	testSK = "test-secret *~+/=&"

	rdsName     = "db/secret w*~" // a name the encodings treat specially
	rdsValue    = `{"AccountName":"app","AccountPassword":"p@ss=w0rd"}`
	genericName = "generic-secret"
)

func newTestServer(t *testing.T, opts ...Option) *Server {
	t.Helper()
	base := []Option{
		WithAccessKey(testAK, testSK),
		WithSecret(SecretSpec{Name: rdsName, Type: "Rds", Data: rdsValue,
			ExtendedConfig: map[string]any{"SecretSubType": "SingleUser", "DBInstanceId": "rm-test"}}),
		WithSecret(SecretSpec{Name: genericName, Data: "plain value"}),
	}
	return Start(t, append(base, opts...)...)
}

// scheme is one way an official SDK client signs and sends GetSecretValue.
type scheme struct {
	name string
	// fetch gets a secret with the given credentials ("" token for a permanent key) and returns its value and
	// version, or the service error code.
	fetch func(t *testing.T, srv *Server, ak, sk, token, secret string) (value, code string)
	// proxy routes the request through an HTTP proxy (tamper tests); only for plain HTTP schemes.
	fetchVia func(t *testing.T, srv *Server, proxy, secret string) (value, code string)
}

func schemes() []scheme {
	return []scheme{
		{name: "core-sdk-http", fetch: func(t *testing.T, srv *Server, ak, sk, tok, name string) (string, string) {
			return coreFetch(t, coreClient(t, srv, false, ak, sk, tok, ""), name)
		}, fetchVia: func(t *testing.T, srv *Server, proxy, name string) (string, string) {
			return coreFetch(t, coreClient(t, srv, false, testAK, testSK, "", proxy), name)
		}},
		{name: "core-sdk-https", fetch: func(t *testing.T, srv *Server, ak, sk, tok, name string) (string, string) {
			return coreFetch(t, coreClient(t, srv, true, ak, sk, tok, ""), name)
		}},
		{name: "tea-acs3-http", fetch: func(t *testing.T, srv *Server, ak, sk, tok, name string) (string, string) {
			return teaFetch(t, teaClient(t, srv, false, "", staticCred(t, ak, sk, tok), ""), name)
		}, fetchVia: func(t *testing.T, srv *Server, proxy, name string) (string, string) {
			return teaFetch(t, teaClient(t, srv, false, "", staticCred(t, testAK, testSK, ""), proxy), name)
		}},
		{name: "tea-acs3-https", fetch: func(t *testing.T, srv *Server, ak, sk, tok, name string) (string, string) {
			return teaFetch(t, teaClient(t, srv, true, "", staticCred(t, ak, sk, tok), ""), name)
		}},
		{name: "tea-v2-http", fetch: func(t *testing.T, srv *Server, ak, sk, tok, name string) (string, string) {
			return teaFetch(t, teaClient(t, srv, false, "v2", staticCred(t, ak, sk, tok), ""), name)
		}, fetchVia: func(t *testing.T, srv *Server, proxy, name string) (string, string) {
			return teaFetch(t, teaClient(t, srv, false, "v2", staticCred(t, testAK, testSK, ""), proxy), name)
		}},
		{name: "tea-v2-https", fetch: func(t *testing.T, srv *Server, ak, sk, tok, name string) (string, string) {
			return teaFetch(t, teaClient(t, srv, true, "v2", staticCred(t, ak, sk, tok), ""), name)
		}},
	}
}

// coreClient is alibaba-cloud-sdk-go services/kms pointed at the emulator; HTTPS trusts only the emulator CA.
func coreClient(t *testing.T, srv *Server, useTLS bool, ak, sk, token, proxy string) *kms.Client {
	t.Helper()
	cfg := sdk.NewConfig()
	cfg.AutoRetry = false
	domain := srv.KMSAddr()
	if useTLS {
		cfg.Scheme = "HTTPS"
		cfg.HttpTransport = &http.Transport{TLSClientConfig: srv.TLSClientConfig()}
		domain = srv.KMSTLSAddr()
	}
	var cred sdkcred.CredentialsProvider = sdkcred.NewStaticAKCredentialsProvider(ak, sk)
	if token != "" {
		cred = sdkcred.NewStaticSTSCredentialsProvider(ak, sk, token)
	}
	c, err := kms.NewClientWithOptions("cn-hangzhou", cfg, cred)
	if err != nil {
		t.Fatal(err)
	}
	if proxy != "" {
		c.SetHttpProxy(proxy)
	}
	c.Domain = domain
	t.Cleanup(func() {
		c.Shutdown()
		if cfg.HttpTransport != nil {
			cfg.HttpTransport.CloseIdleConnections()
		}
	})
	return c
}

func coreFetch(t *testing.T, c *kms.Client, name string) (value, code string) {
	t.Helper()
	req := kms.CreateGetSecretValueRequest()
	req.SecretName = name
	req.FetchExtendedConfig = requests.NewBoolean(true)
	resp, err := c.GetSecretValue(req)
	if err != nil {
		var se *sdkerr.ServerError
		if !errors.As(err, &se) {
			t.Fatalf("core SDK: want a ServerError, got %T: %v", err, err)
		}
		return "", se.ErrorCode()
	}
	return resp.SecretData, ""
}

func staticCred(t *testing.T, ak, sk, token string) credgo.Credential {
	t.Helper()
	cfg := &credgo.Config{Type: tea.String("access_key"), AccessKeyId: tea.String(ak), AccessKeySecret: tea.String(sk)}
	if token != "" {
		cfg.Type = tea.String("sts")
		cfg.SecurityToken = tea.String(token)
	}
	c, err := credgo.NewCredential(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// teaClient is the Tea kms-20160120/v3 client; alg "" is ACS3-HMAC-SHA256 (its default), "v2" HMAC-SHA1 RPC.
func teaClient(t *testing.T, srv *Server, useTLS bool, alg string, cred credgo.Credential, proxy string) *kms3.Client {
	t.Helper()
	cfg := &openapi.Config{Endpoint: tea.String(srv.KMSAddr()), Protocol: tea.String("http"), Credential: cred,
		RegionId: tea.String("cn-hangzhou")}
	if useTLS {
		cfg.Endpoint = tea.String(srv.KMSTLSAddr())
		cfg.Protocol = tea.String("https")
		cfg.Ca = tea.String(string(srv.CACertPEM()))
		// Tea caches one http.Client per (timeouts, proxy, host:port), not per CA: a port reused by a server with
		// another CA would meet the old client. A unique timeout gives this client a cache entry of its own.
		cfg.ReadTimeout = uniqueReadTimeout()
	}
	if alg != "" {
		cfg.SignatureAlgorithm = tea.String(alg)
	}
	if proxy != "" {
		cfg.HttpProxy = tea.String(proxy)
	}
	c, err := kms3.NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func teaFetch(t *testing.T, c *kms3.Client, name string) (value, code string) {
	t.Helper()
	resp, err := c.GetSecretValue(&kms3.GetSecretValueRequest{SecretName: tea.String(name),
		FetchExtendedConfig: tea.Bool(true)})
	if err != nil {
		var se *tea.SDKError
		if !errors.As(err, &se) {
			t.Fatalf("Tea SDK: want a tea.SDKError, got %T: %v", err, err)
		}
		return "", tea.StringValue(se.Code)
	}
	return tea.StringValue(resp.Body.SecretData), ""
}

// tamperProxy is a forward HTTP proxy that changes every request after the client signed it.
func tamperProxy(t *testing.T, mutate func(r *http.Request, body []byte) []byte) string {
	t.Helper()
	tr := &http.Transport{}
	p := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		body = mutate(r, body)
		out, err := http.NewRequest(r.Method, r.URL.String(), bytes.NewReader(body))
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		out.Header = r.Header.Clone()
		out.Host = r.Host
		resp, err := tr.RoundTrip(out)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		defer resp.Body.Close()
		for k, v := range resp.Header {
			w.Header()[k] = v
		}
		w.WriteHeader(resp.StatusCode)
		_, _ = io.Copy(w, resp.Body)
	}))
	t.Cleanup(func() {
		p.Close()
		tr.CloseIdleConnections()
	})
	return p.URL
}

// tamperQuery replaces one query parameter's value.
func tamperQuery(key, value string) func(r *http.Request, body []byte) []byte {
	return func(r *http.Request, body []byte) []byte {
		q := r.URL.Query()
		if q.Has(key) {
			q.Set(key, value)
			r.URL.RawQuery = q.Encode()
		}
		return body
	}
}

// tamperBody replaces the body with a form setting key=value.
func tamperBody(key, value string) func(r *http.Request, body []byte) []byte {
	return func(r *http.Request, _ []byte) []byte {
		b := []byte(url.Values{key: {value}}.Encode())
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		r.ContentLength = int64(len(b))
		return b
	}
}

func mustContain(t *testing.T, s, sub string) {
	t.Helper()
	if !strings.Contains(s, sub) {
		t.Fatalf("%q does not contain %q", s, sub)
	}
}
