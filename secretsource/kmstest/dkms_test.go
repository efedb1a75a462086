package kmstest

import (
	"bytes"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/alibabacloud-go/tea/tea"
	dopenapi "github.com/aliyun/alibabacloud-dkms-gcs-go-sdk/openapi"
	dutil "github.com/aliyun/alibabacloud-dkms-gcs-go-sdk/openapi-util"
	"github.com/aliyun/alibabacloud-dkms-gcs-go-sdk/openapi-util/protobuf/api"
	dsdk "github.com/aliyun/alibabacloud-dkms-gcs-go-sdk/sdk"
	"google.golang.org/protobuf/proto"
	pkcs12 "software.sslmate.com/src/go-pkcs12"
)

const (
	dkmsText    = "dkms-text"
	dkmsBinary  = "dkms-binary"
	dkmsRds     = "dkms-rds"
	dkmsRdsData = `{"AccountName":"app","AccountPassword":"p@ss=w0rd"}`
	dkmsBinData = "AAECAwQFBgcICf8=" // base64, as KMS returns binary secrets
)

func newDKMSServer(t *testing.T, opts ...Option) *Server {
	t.Helper()
	base := []Option{
		WithSecret(SecretSpec{Name: dkmsText, Data: "text value v1"}),
		WithSecret(SecretSpec{Name: dkmsBinary, Data: dkmsBinData, DataType: "binary"}),
		WithSecret(SecretSpec{Name: dkmsRds, Type: "Rds", Data: dkmsRdsData,
			ExtendedConfig:    map[string]any{"SecretSubType": "SingleUser", "DBInstanceId": "rm-test"},
			AutomaticRotation: true, RotationInterval: 24 * time.Hour}),
	}
	return Start(t, append(base, opts...)...)
}

func newClientKey(t *testing.T, srv *Server) ClientKey {
	t.Helper()
	ck, err := srv.NewClientKey()
	if err != nil {
		t.Fatal(err)
	}
	return ck
}

// teaTransportTag makes every test client's Tea transport its own. The Tea runtime caches one transport per
// host:port and timeouts for the whole process, built with the CA and client certificate of its first user; a
// port reused by a later test's server would otherwise meet a transport that trusts an earlier server's CA.
var teaTransportTag atomic.Int64

// uniqueReadTimeout is a read timeout (ms, about 30 s) no other test client uses.
func uniqueReadTimeout() *int { return tea.Int(30000 + int(teaTransportTag.Add(1))) }

// dkmsClient builds the unmodified dedicated-gateway SDK client for endpoint (host:port) with the server's CA.
func dkmsClient(t *testing.T, endpoint string, ck ClientKey, caPEM string) *dsdk.Client {
	t.Helper()
	cfg := &dopenapi.Config{
		ReadTimeout:   uniqueReadTimeout(),
		Protocol:      tea.String("https"),
		Endpoint:      tea.String(endpoint),
		ClientKeyFile: tea.String(ck.File),
		Password:      tea.String(ck.Password),
		Ca:            tea.String(caPEM),
	}
	c, err := dsdk.NewClient(cfg)
	if err != nil {
		t.Fatalf("dkms NewClient: %v", err)
	}
	return c
}

func noRetry() *dutil.RuntimeOptions {
	return &dutil.RuntimeOptions{Autoretry: tea.Bool(false), ConnectTimeout: tea.Int(5000)}
}

func dkmsGet(c *dsdk.Client, name, stage, versionID string, ext bool) (*dsdk.GetSecretValueResponse, error) {
	req := &dsdk.GetSecretValueRequest{SecretName: tea.String(name), FetchExtendedConfig: tea.Bool(ext)}
	if stage != "" {
		req.VersionStage = tea.String(stage)
	}
	if versionID != "" {
		req.VersionId = tea.String(versionID)
	}
	return c.GetSecretValueWithOptions(req, noRetry())
}

// sdkCode returns the service error code and HTTP status the SDK reports, or fails t.
func sdkCode(t *testing.T, err error) (string, int) {
	t.Helper()
	var se *tea.SDKError
	if !errors.As(err, &se) {
		t.Fatalf("want *tea.SDKError, got %T: %v", err, err)
	}
	// The DKMS SDK puts {"httpCode":..., "requestId":..., "hostId":...} in Data.
	var data struct {
		HTTPCode  int    `json:"httpCode"`
		RequestID string `json:"requestId"`
	}
	if se.Data != nil {
		if err := json.Unmarshal([]byte(*se.Data), &data); err != nil {
			t.Fatalf("SDKError.Data %q: %v", *se.Data, err)
		}
	}
	if data.RequestID == "" {
		t.Errorf("no request id in %v", err)
	}
	return tea.StringValue(se.Code), data.HTTPCode
}

func TestDKMSGetSecretValueWithOfficialSDK(t *testing.T) {
	srv := newDKMSServer(t)
	ck := newClientKey(t, srv)
	c := dkmsClient(t, srv.DKMSAddr(), ck, string(srv.CACertPEM()))

	t.Run("text", func(t *testing.T) {
		r, err := dkmsGet(c, dkmsText, "", "", false)
		if err != nil {
			t.Fatal(err)
		}
		st, _ := srv.Secret(dkmsText)
		if got := tea.StringValue(r.SecretData); got != "text value v1" {
			t.Errorf("SecretData = %q", got)
		}
		if tea.StringValue(r.SecretDataType) != "text" || tea.StringValue(r.SecretType) != "Generic" ||
			tea.StringValue(r.VersionId) != st.CurrentVersionID || tea.StringValue(r.SecretName) != dkmsText {
			t.Errorf("fields: type %q/%q version %q (want %q) name %q", tea.StringValue(r.SecretDataType),
				tea.StringValue(r.SecretType), tea.StringValue(r.VersionId), st.CurrentVersionID, tea.StringValue(r.SecretName))
		}
		if len(r.VersionStages) != 1 || tea.StringValue(r.VersionStages[0]) != "ACSCurrent" {
			t.Errorf("VersionStages = %v", tea.StringSliceValue(r.VersionStages))
		}
		if _, err := time.Parse("2006-01-02T15:04:05Z", tea.StringValue(r.CreateTime)); err != nil {
			t.Errorf("CreateTime %q: %v", tea.StringValue(r.CreateTime), err)
		}
		if tea.StringValue(r.RequestId) == "" {
			t.Error("no RequestId")
		}
		if tea.StringValue(r.AutomaticRotation) != "Invalid" {
			t.Errorf("AutomaticRotation of a Generic secret = %q, want Invalid", tea.StringValue(r.AutomaticRotation))
		}
	})
	t.Run("binary", func(t *testing.T) {
		r, err := dkmsGet(c, dkmsBinary, "", "", false)
		if err != nil {
			t.Fatal(err)
		}
		if tea.StringValue(r.SecretData) != dkmsBinData || tea.StringValue(r.SecretDataType) != "binary" {
			t.Errorf("binary secret: data %q type %q", tea.StringValue(r.SecretData), tea.StringValue(r.SecretDataType))
		}
	})
	t.Run("rds-extended-config", func(t *testing.T) {
		r, err := dkmsGet(c, dkmsRds, "", "", true)
		if err != nil {
			t.Fatal(err)
		}
		if tea.StringValue(r.SecretData) != dkmsRdsData || tea.StringValue(r.SecretType) != "Rds" {
			t.Errorf("Rds secret: type %q, data matches: %v", tea.StringValue(r.SecretType), tea.StringValue(r.SecretData) == dkmsRdsData)
		}
		if ext := tea.StringValue(r.ExtendedConfig); !strings.Contains(ext, `"SecretSubType":"SingleUser"`) {
			t.Errorf("ExtendedConfig = %q", ext)
		}
		if tea.StringValue(r.AutomaticRotation) != "Enabled" || tea.StringValue(r.RotationInterval) != "86400s" ||
			tea.StringValue(r.NextRotationDate) == "" {
			t.Errorf("rotation fields: %q %q %q", tea.StringValue(r.AutomaticRotation),
				tea.StringValue(r.RotationInterval), tea.StringValue(r.NextRotationDate))
		}
		r, err = dkmsGet(c, dkmsRds, "", "", false)
		if err != nil {
			t.Fatal(err)
		}
		if ext := tea.StringValue(r.ExtendedConfig); ext != "" {
			t.Errorf("ExtendedConfig without FetchExtendedConfig = %q", ext)
		}
	})
	t.Run("stages-and-version-ids", func(t *testing.T) {
		before, _ := srv.Secret(dkmsText)
		if err := srv.PutSecretValue(dkmsText, "text value v2", "v2"); err != nil {
			t.Fatal(err)
		}
		cases := []struct {
			name, stage, versionID, want string
		}{
			{"current", "ACSCurrent", "", "text value v2"},
			{"previous", "ACSPrevious", "", "text value v1"},
			{"old-version-id", "", before.CurrentVersionID, "text value v1"},
			{"new-version-id", "", "v2", "text value v2"},
			{"version-id-and-its-stage", "ACSCurrent", "v2", "text value v2"},
		}
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				r, err := dkmsGet(c, dkmsText, tc.stage, tc.versionID, false)
				if err != nil {
					t.Fatal(err)
				}
				if got := tea.StringValue(r.SecretData); got != tc.want {
					t.Errorf("SecretData = %q, want %q", got, tc.want)
				}
			})
		}
		_, err := dkmsGet(c, dkmsText, "ACSPrevious", "v2", false)
		if code, status := sdkCode(t, err); code != "Forbidden.ResourceNotFound" || status != http.StatusNotFound {
			t.Errorf("version v2 with stage ACSPrevious: %s %d", code, status)
		}
	})
	t.Run("client-key-content-and-ca-file", func(t *testing.T) {
		content, err := os.ReadFile(ck.File)
		if err != nil {
			t.Fatal(err)
		}
		c2, err := dsdk.NewClient(&dopenapi.Config{ReadTimeout: uniqueReadTimeout(), Protocol: tea.String("https"), Endpoint: tea.String("https://" + srv.DKMSAddr()),
			ClientKeyContent: tea.String(string(content)), Password: tea.String(ck.Password), CaFilePath: tea.String(srv.CAFile())})
		if err != nil {
			t.Fatal(err)
		}
		r, err := dkmsGet(c2, dkmsRds, "", "", false)
		if err != nil {
			t.Fatal(err)
		}
		if tea.StringValue(r.SecretData) != dkmsRdsData {
			t.Error("wrong data")
		}
	})
	if n := srv.Calls("dkms:GetSecretValue", dkmsText); n != 7 {
		t.Errorf("Calls(dkms:GetSecretValue, %s) = %d, want 7", dkmsText, n)
	}
}

func TestDKMSRejects(t *testing.T) {
	srv := newDKMSServer(t)
	ck := newClientKey(t, srv)
	ca := string(srv.CACertPEM())
	good := dkmsClient(t, srv.DKMSAddr(), ck, ca)

	t.Run("unknown-client-key", func(t *testing.T) {
		stranger, err := WriteClientKey(t.TempDir()) // a well-formed key the server never registered
		if err != nil {
			t.Fatal(err)
		}
		_, err = dkmsGet(dkmsClient(t, srv.DKMSAddr(), stranger, ca), dkmsText, "", "", false)
		if code, status := sdkCode(t, err); code != "Unauthorized" || status != http.StatusNotFound {
			t.Errorf("unknown key: %s %d, want Unauthorized 404", code, status)
		}
		if !strings.Contains(err.Error(), stranger.KeyID) {
			t.Errorf("error does not name the key: %v", err)
		}
	})
	t.Run("revoked-client-key", func(t *testing.T) {
		ck2 := newClientKey(t, srv)
		c2 := dkmsClient(t, srv.DKMSAddr(), ck2, ca)
		if _, err := dkmsGet(c2, dkmsText, "", "", false); err != nil {
			t.Fatalf("before revocation: %v", err)
		}
		srv.RevokeClientKey(ck2.KeyID)
		_, err := dkmsGet(c2, dkmsText, "", "", false)
		if code, status := sdkCode(t, err); code != "Unauthorized" || status != http.StatusNotFound {
			t.Errorf("revoked key: %s %d, want Unauthorized 404", code, status)
		}
		if _, err := dkmsGet(good, dkmsText, "", "", false); err != nil {
			t.Errorf("another key stopped working: %v", err)
		}
	})
	t.Run("missing-secret", func(t *testing.T) {
		_, err := dkmsGet(good, "no-such-secret", "", "", false)
		if code, status := sdkCode(t, err); code != "Forbidden.ResourceNotFound" || status != http.StatusNotFound {
			t.Errorf("missing secret: %s %d", code, status)
		}
	})
	t.Run("clock-skew", func(t *testing.T) {
		srv.Advance(16 * time.Minute)
		defer srv.Advance(-16 * time.Minute)
		_, err := dkmsGet(good, dkmsText, "", "", false)
		if code, status := sdkCode(t, err); code != "RequestTimeTooSkewed" || status != http.StatusBadRequest {
			t.Errorf("skewed date: %s %d", code, status)
		}
	})
	t.Run("injected-throttling", func(t *testing.T) {
		srv.ResetCalls()
		srv.InjectFault(Fault{Action: "dkms:GetSecretValue", Secret: dkmsText, Code: "Rejected.Throttling", HTTPStatus: 429, Times: 2})
		for i := 0; i < 2; i++ {
			_, err := dkmsGet(good, dkmsText, "", "", false)
			if code, status := sdkCode(t, err); code != "Rejected.Throttling" || status != 429 {
				t.Errorf("attempt %d: %s %d", i, code, status)
			}
		}
		if _, err := dkmsGet(good, dkmsText, "", "", false); err != nil {
			t.Errorf("after the fault ran out: %v", err)
		}
		if n := srv.Calls("dkms:GetSecretValue", dkmsText); n != 3 {
			t.Errorf("calls = %d, want 3 (faulted ones included)", n)
		}
	})
	t.Run("sdk-retries-throttling-by-default", func(t *testing.T) {
		srv.ResetCalls()
		srv.InjectFault(Fault{Action: "dkms:GetSecretValue", Secret: dkmsBinary, Code: "ServiceUnavailableTemporary", Times: 1})
		// Default runtime: Autoretry on, backoff policy "yes" with period 1 (the SDK sleeps about a second).
		r, err := good.GetSecretValueWithOptions(&dsdk.GetSecretValueRequest{SecretName: tea.String(dkmsBinary)},
			&dutil.RuntimeOptions{ConnectTimeout: tea.Int(5000)})
		if err != nil {
			t.Fatalf("the SDK did not retry: %v", err)
		}
		if tea.StringValue(r.SecretData) != dkmsBinData {
			t.Error("wrong data")
		}
		if n := srv.Calls("dkms:GetSecretValue", dkmsBinary); n != 2 {
			t.Errorf("calls = %d, want 2", n)
		}
	})
	t.Run("dropped-connection", func(t *testing.T) {
		srv.InjectFault(Fault{Action: "dkms:GetSecretValue", Drop: true, Times: 1})
		if _, err := dkmsGet(good, dkmsText, "", "", false); err == nil {
			t.Error("dropped connection gave no error")
		}
	})
	t.Run("tls-verified", func(t *testing.T) {
		// No CA: the system roots do not know the emulator's CA.
		c, err := dsdk.NewClient(&dopenapi.Config{ReadTimeout: uniqueReadTimeout(), Protocol: tea.String("https"), Endpoint: tea.String(srv.DKMSAddr()),
			ClientKeyFile: tea.String(ck.File), Password: tea.String(ck.Password)})
		if err != nil {
			t.Fatal(err)
		}
		_, err = c.GetSecretValueWithOptions(&dsdk.GetSecretValueRequest{SecretName: tea.String(dkmsText)},
			&dutil.RuntimeOptions{Autoretry: tea.Bool(false)})
		if err == nil || !strings.Contains(err.Error(), "certificate") {
			t.Errorf("untrusted server certificate accepted: %v", err)
		}
	})
}

// tamperTransport changes a request on its way from the SDK to the dedicated gateway.
type tamperTransport struct {
	base   http.RoundTripper
	mutate func(t *testing.T, r *http.Request, body []byte) []byte
	t      *testing.T
}

func (tt *tamperTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		return nil, err
	}
	_ = r.Body.Close()
	r = r.Clone(r.Context())
	if tt.mutate != nil {
		body = tt.mutate(tt.t, r, body)
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	r.ContentLength = int64(len(body))
	return tt.base.RoundTrip(r)
}

func TestDKMSTamperedRequests(t *testing.T) {
	srv := newDKMSServer(t)
	ck := newClientKey(t, srv)
	other, err := WriteClientKey(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	otherKey := clientPrivateKey(t, other)

	reqFor := func(name string) []byte {
		b, err := proto.Marshal(&api.GetSecretValueRequest{SecretName: name})
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	cases := []struct {
		name     string
		mutate   func(t *testing.T, r *http.Request, body []byte) []byte
		wantCode string
	}{
		{"untouched", nil, ""},
		{"body-swapped", func(t *testing.T, r *http.Request, body []byte) []byte {
			return reqFor(dkmsRds) // the signature and content-sha256 are for dkmsText
		}, "SignatureNotMatch"},
		{"body-swapped-and-hash-recomputed", func(t *testing.T, r *http.Request, body []byte) []byte {
			b := reqFor(dkmsRds)
			sum := sha256.Sum256(b)
			r.Header.Set("Content-Sha256", strings.ToUpper(hex.EncodeToString(sum[:])))
			return b
		}, "SignatureNotMatch"},
		{"signed-by-another-key", func(t *testing.T, r *http.Request, body []byte) []byte {
			sum := sha256.Sum256([]byte(dkmsStringToSign(r, r.Header.Get("Content-Sha256"))))
			sig, err := rsa.SignPKCS1v15(rand.Reader, otherKey, crypto.SHA256, sum[:])
			if err != nil {
				t.Error(err)
			}
			r.Header.Set("Authorization", "Bearer "+base64.StdEncoding.EncodeToString(sig))
			return body
		}, "SignatureNotMatch"},
		{"signature-bit-flipped", func(t *testing.T, r *http.Request, body []byte) []byte {
			raw, _ := base64.StdEncoding.DecodeString(strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer "))
			raw[len(raw)/2] ^= 1
			r.Header.Set("Authorization", "Bearer "+base64.StdEncoding.EncodeToString(raw))
			return body
		}, "SignatureNotMatch"},
		{"date-changed", func(t *testing.T, r *http.Request, body []byte) []byte {
			d, _ := time.Parse(http.TimeFormat, r.Header.Get("Date"))
			r.Header.Set("Date", d.Add(-time.Minute).Format(http.TimeFormat))
			return body
		}, "SignatureNotMatch"},
		{"signed-header-changed", func(t *testing.T, r *http.Request, body []byte) []byte {
			r.Header.Set("X-Kms-Apiname", "GetSecretValue ") // trimmed: still valid
			r.Header.Set("X-Kms-Extra", "added")             // unsigned x-kms header
			return body
		}, "SignatureNotMatch"},
		{"key-id-swapped", func(t *testing.T, r *http.Request, body []byte) []byte {
			r.Header.Set("X-Kms-Acccesskeyid", "KAAP.00000000-0000-4000-8000-000000000000")
			return body
		}, "Unauthorized"},
		{"authorization-removed", func(t *testing.T, r *http.Request, body []byte) []byte {
			r.Header.Del("Authorization")
			return body
		}, "SignatureNotMatch"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			proxy := newTamperProxy(t, srv, tc.mutate)
			c := dkmsClient(t, strings.TrimPrefix(proxy.URL, "https://"), ck, proxyCAPEM(proxy))
			r, err := dkmsGet(c, dkmsText, "", "", false)
			if tc.wantCode == "" {
				if err != nil {
					t.Fatalf("through the proxy, untouched: %v", err)
				}
				if tea.StringValue(r.SecretData) != "text value v1" {
					t.Error("wrong data")
				}
				return
			}
			if code, _ := sdkCode(t, err); code != tc.wantCode {
				t.Errorf("code = %s, want %s (%v)", code, tc.wantCode, err)
			}
		})
	}
}

// newTamperProxy is a TLS reverse proxy in front of the dedicated gateway that lets mutate change each request.
func newTamperProxy(t *testing.T, srv *Server, mutate func(*testing.T, *http.Request, []byte) []byte) *httptest.Server {
	t.Helper()
	target, _ := url.Parse("https://" + srv.DKMSAddr())
	base := &http.Transport{TLSClientConfig: srv.TLSClientConfig()}
	rp := &httputil.ReverseProxy{
		Rewrite:   func(pr *httputil.ProxyRequest) { pr.SetURL(target) },
		Transport: &tamperTransport{base: base, mutate: mutate, t: t},
	}
	ps := httptest.NewTLSServer(rp)
	t.Cleanup(func() {
		ps.Close()
		base.CloseIdleConnections()
	})
	return ps
}

func proxyCAPEM(ps *httptest.Server) string {
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ps.Certificate().Raw}))
}

func clientPrivateKey(t *testing.T, ck ClientKey) *rsa.PrivateKey {
	t.Helper()
	content, err := os.ReadFile(ck.File)
	if err != nil {
		t.Fatal(err)
	}
	var f clientKeyFile
	if err := json.Unmarshal(content, &f); err != nil {
		t.Fatal(err)
	}
	p12, err := base64.StdEncoding.DecodeString(f.PrivateKeyData)
	if err != nil {
		t.Fatal(err)
	}
	key, _, err := pkcs12.Decode(p12, ck.Password)
	if err != nil {
		t.Fatal(err)
	}
	return key.(*rsa.PrivateKey)
}

// TestDKMSProtocolErrors sends hand-signed requests that break one protocol rule each.
func TestDKMSProtocolErrors(t *testing.T) {
	srv := newDKMSServer(t)
	ck := newClientKey(t, srv)
	priv := clientPrivateKey(t, ck)
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: srv.TLSClientConfig()}}
	t.Cleanup(hc.CloseIdleConnections)

	body, _ := proto.Marshal(&api.GetSecretValueRequest{SecretName: dkmsText})
	// build returns a correctly signed request; edit changes it before (sign=true) or after signing.
	build := func(body []byte, before func(h http.Header), after func(r *http.Request)) *http.Request {
		r, _ := http.NewRequest(http.MethodPost, "https://"+srv.DKMSAddr()+"/", bytes.NewReader(body))
		sum := sha256.Sum256(body)
		h := r.Header
		h.Set("Accept", "application/x-protobuf")
		h.Set("Content-Type", "application/x-protobuf")
		h.Set("Content-Sha256", strings.ToUpper(hex.EncodeToString(sum[:])))
		h.Set("Date", time.Now().UTC().Format(http.TimeFormat))
		h.Set("X-Kms-Apiversion", "dkms-gcs-0.2")
		h.Set("X-Kms-Apiname", "GetSecretValue")
		h.Set("X-Kms-Signaturemethod", "RSA_PKCS1_SHA_256")
		h.Set("X-Kms-Acccesskeyid", ck.KeyID)
		if before != nil {
			before(h)
		}
		digest := sha256.Sum256([]byte(dkmsStringToSign(r, h.Get("Content-Sha256"))))
		sig, err := rsa.SignPKCS1v15(rand.Reader, priv, crypto.SHA256, digest[:])
		if err != nil {
			t.Fatal(err)
		}
		h.Set("Authorization", "Bearer "+base64.StdEncoding.EncodeToString(sig))
		if after != nil {
			after(r)
		}
		return r
	}
	send := func(r *http.Request) (int, *api.Error, []byte) {
		resp, err := hc.Do(r)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode == http.StatusOK {
			return resp.StatusCode, nil, b
		}
		if ct := resp.Header.Get("Content-Type"); ct != "application/x-protobuf" {
			t.Errorf("error Content-Type = %q", ct)
		}
		var e api.Error
		if err := proto.Unmarshal(b, &e); err != nil {
			t.Fatalf("error body is not an api.Error: %v", err)
		}
		return resp.StatusCode, &e, b
	}

	status, _, b := send(build(body, nil, nil))
	if status != http.StatusOK {
		t.Fatalf("reference request: %d", status)
	}
	var ok api.GetSecretValueResponse
	if err := proto.Unmarshal(b, &ok); err != nil || ok.SecretData != "text value v1" {
		t.Fatalf("reference response: %v", err)
	}

	big := make([]byte, 3<<20+1)
	cases := []struct {
		name       string
		body       []byte
		before     func(h http.Header)
		after      func(r *http.Request)
		wantStatus int
		wantCode   string
	}{
		{"no-api-version", body, func(h http.Header) { h.Del("X-Kms-Apiversion") }, nil, 400, "InvalidApiVersion"},
		{"old-api-version", body, func(h http.Header) { h.Set("X-Kms-Apiversion", "dkms-gcs-0.1") }, nil, 400, "InvalidApiVersion"},
		{"other-api", body, func(h http.Header) { h.Set("X-Kms-Apiname", "Encrypt") }, nil, 400, "InvalidApiName"},
		{"json-body", body, func(h http.Header) { h.Set("Content-Type", "application/json") }, nil, 415, "InvalidContentType"},
		{"date-not-rfc1123", body, func(h http.Header) { h.Set("Date", time.Now().UTC().Format(time.RFC3339)) }, nil, 400, "InvalidParam"},
		{"no-signature-method", body, func(h http.Header) { h.Del("X-Kms-Signaturemethod") }, nil, 400, "InvalidParam"},
		{"other-signature-method", body, func(h http.Header) { h.Set("X-Kms-Signaturemethod", "HMAC-SHA1") }, nil, 400, "InvalidParam"},
		{"no-key-id", body, func(h http.Header) { h.Del("X-Kms-Acccesskeyid") }, nil, 400, "MissingParameter"},
		{"date-in-the-future", body, func(h http.Header) {
			h.Set("Date", time.Now().Add(20*time.Minute).UTC().Format(http.TimeFormat))
		}, nil, 400, "RequestTimeTooSkewed"},
		{"not-protobuf", []byte{0xff, 0xff, 0xff}, nil, nil, 400, "InvalidParameter"},
		{"no-secret-name", []byte{}, nil, nil, 400, "InvalidParameter"},
		{"body-too-large", big, nil, nil, 413, ""},
		{"bearer-not-base64", body, nil, func(r *http.Request) { r.Header.Set("Authorization", "Bearer !!!") }, 401, "SignatureNotMatch"},
		{"get-method", body, nil, func(r *http.Request) { r.Method = http.MethodGet }, 400, "UnsupportedOperation"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			status, e, _ := send(build(tc.body, tc.before, tc.after))
			if status != tc.wantStatus || e == nil || e.ErrorCode != tc.wantCode {
				t.Fatalf("got %d %v, want %d %s", status, e, tc.wantStatus, tc.wantCode)
			}
			if e.RequestId == "" && tc.wantStatus != 413 {
				t.Error("no RequestId in the error")
			}
			if int(e.StatusCode) != status {
				t.Errorf("StatusCode field %d != HTTP status %d", e.StatusCode, status)
			}
		})
	}
}
