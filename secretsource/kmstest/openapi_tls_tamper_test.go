package kmstest

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"testing"

	openapi "github.com/alibabacloud-go/darabonba-openapi/v2/client"
	kms3 "github.com/alibabacloud-go/kms-20160120/v3/client"
	"github.com/alibabacloud-go/tea/tea"
	"github.com/aliyun/alibaba-cloud-sdk-go/sdk"
	sdkcred "github.com/aliyun/alibaba-cloud-sdk-go/sdk/auth/credentials"
	"github.com/aliyun/alibaba-cloud-sdk-go/services/kms"
)

// newKMSTLSTamperProxy is a TLS-terminating reverse proxy in front of the shared gateway's HTTPS listener: the
// client trusts the proxy's certificate, the proxy trusts the emulator's, and mutate changes each request in
// between. The Host header is kept (ACS3 signs it), as a transparent TLS interceptor does.
func newKMSTLSTamperProxy(t *testing.T, srv *Server, mutate func(*testing.T, *http.Request, []byte) []byte) *httptest.Server {
	t.Helper()
	target, _ := url.Parse("https://" + srv.KMSTLSAddr())
	base := &http.Transport{TLSClientConfig: srv.TLSClientConfig()}
	rp := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(target)
			pr.Out.Host = pr.In.Host
		},
		Transport: roundTripFunc(func(r *http.Request) (*http.Response, error) {
			var body []byte
			if r.Body != nil { // the proxy passes a nil Body for an empty request
				b, err := io.ReadAll(r.Body)
				if err != nil {
					return nil, err
				}
				_ = r.Body.Close()
				body = b
			}
			r = r.Clone(r.Context())
			if mutate != nil {
				body = mutate(t, r, body)
			}
			r.Body = io.NopCloser(bytes.NewReader(body))
			r.ContentLength = int64(len(body))
			return base.RoundTrip(r)
		}),
	}
	ps := httptest.NewTLSServer(rp)
	t.Cleanup(func() {
		ps.Close()
		base.CloseIdleConnections()
	})
	return ps
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// httpsVia fetches rdsName over HTTPS through a TLS proxy with one SDK scheme; it returns the value or the code.
func httpsVia(t *testing.T, scheme string, ps *httptest.Server) (value, code string) {
	t.Helper()
	host := strings.TrimPrefix(ps.URL, "https://")
	switch scheme {
	case "core-sdk":
		pool := x509.NewCertPool()
		pool.AddCert(ps.Certificate())
		cfg := sdk.NewConfig()
		cfg.AutoRetry = false
		cfg.Scheme = "HTTPS"
		tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}
		cfg.HttpTransport = tr
		c, err := kms.NewClientWithOptions("cn-hangzhou", cfg, sdkcred.NewStaticAKCredentialsProvider(testAK, testSK))
		if err != nil {
			t.Fatal(err)
		}
		defer func() { c.Shutdown(); tr.CloseIdleConnections() }()
		c.Domain = host
		return coreFetch(t, c, rdsName)
	default: // "tea-acs3", "tea-v2"
		cfg := &openapi.Config{Endpoint: tea.String(host), Protocol: tea.String("https"),
			Ca: tea.String(proxyCAPEM(ps)), Credential: staticCred(t, testAK, testSK, ""), RegionId: tea.String("cn-hangzhou"),
			ReadTimeout: uniqueReadTimeout()} // Tea caches clients per host:port, not per CA: one entry per proxy
		if scheme == "tea-v2" {
			cfg.SignatureAlgorithm = tea.String("v2")
		}
		c, err := kms3.NewClient(cfg)
		if err != nil {
			t.Fatal(err)
		}
		return teaFetch(t, c, rdsName)
	}
}

// TestTamperedRequestsOverHTTPS: a request changed after signing by a TLS-terminating proxy is rejected with
// SignatureDoesNotMatch in every scheme, and an honest proxy passes.
func TestTamperedRequestsOverHTTPS(t *testing.T) {
	srv := newTestServer(t)
	type mutation func(*testing.T, *http.Request, []byte) []byte
	wrap := func(f func(*http.Request, []byte) []byte) mutation {
		return func(_ *testing.T, r *http.Request, b []byte) []byte { return f(r, b) }
	}
	// changeSigned alters a signed value wherever the scheme put it: a query parameter (RPC) or a header (ACS3).
	changeSigned := func(param, header string) mutation {
		return func(_ *testing.T, r *http.Request, b []byte) []byte {
			q := r.URL.Query()
			if q.Has(param) {
				q.Set(param, q.Get(param)+"0")
				r.URL.RawQuery = q.Encode()
			}
			if v := r.Header.Get(header); v != "" {
				r.Header.Set(header, v+"0")
			}
			return b
		}
	}
	cases := []struct {
		name   string
		mutate mutation
	}{
		{"parameter changed", wrap(tamperQuery("SecretName", genericName))},
		{"parameter added", func(_ *testing.T, r *http.Request, b []byte) []byte {
			q := r.URL.Query()
			q.Set("VersionStage", "ACSPrevious")
			r.URL.RawQuery = q.Encode()
			return b
		}},
		{"body replaced", wrap(tamperBody("SecretName", genericName))},
		{"nonce changed", changeSigned("SignatureNonce", "x-acs-signature-nonce")},
		{"signature changed", func(_ *testing.T, r *http.Request, b []byte) []byte {
			q := r.URL.Query()
			if sig := q.Get("Signature"); sig != "" {
				first := "A"
				if sig[0] == 'A' {
					first = "B"
				}
				q.Set("Signature", first+sig[1:])
				r.URL.RawQuery = q.Encode()
			}
			if a := r.Header.Get("Authorization"); a != "" {
				i := strings.LastIndex(a, "Signature=") + len("Signature=")
				flip := "0"
				if a[i] == '0' {
					flip = "1"
				}
				r.Header.Set("Authorization", a[:i]+flip+a[i+1:])
			}
			return b
		}},
	}
	for _, scheme := range []string{"core-sdk", "tea-acs3", "tea-v2"} {
		t.Run(scheme, func(t *testing.T) {
			if v, code := httpsVia(t, scheme, newKMSTLSTamperProxy(t, srv, nil)); code != "" || v != rdsValue {
				t.Fatalf("honest TLS proxy: code %q", code)
			}
			for _, tc := range cases {
				t.Run(tc.name, func(t *testing.T) {
					if _, code := httpsVia(t, scheme, newKMSTLSTamperProxy(t, srv, tc.mutate)); code != "SignatureDoesNotMatch" {
						t.Errorf("code %q, want SignatureDoesNotMatch", code)
					}
				})
			}
		})
	}
}
