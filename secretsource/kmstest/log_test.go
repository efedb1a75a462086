package kmstest

import (
	"context"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"

	"github.com/alibabacloud-go/tea/tea"
	credgo "github.com/aliyun/credentials-go/credentials"
	"github.com/aliyun/credentials-go/credentials/providers"

	"github.com/kmsdb/kmsdb/internal/syncbuf"
)

// TestRequestLogNeverHoldsSecrets drives every handler through the real SDKs (shared gateway with both signature
// schemes over HTTP and HTTPS, a rejected signature, the dedicated gateway, STS AssumeRole and AssumeRoleWithOIDC,
// ECS metadata, the credentials URI, the admin endpoint, RAM key rotation) with a logger at Debug in both the
// text and the JSON format, then greps the log for every secret the run saw: values (seeded and rotated), AccessKey
// secrets (permanent, temporary, rotated RAM keys), security tokens, request signatures, the OIDC token and the
// client key password.
func TestRequestLogNeverHoldsSecrets(t *testing.T) {
	var logBuf syncbuf.Buffer
	h := multiHandler{
		slog.NewTextHandler(&logBuf, &slog.HandlerOptions{Level: slog.LevelDebug}),
		slog.NewJSONHandler(&logBuf, &slog.HandlerOptions{Level: slog.LevelDebug}),
	}
	const (
		ramName  = "ram-secret"
		ramAK    = "LTAI5tRamSecretKey01"
		ramSK    = "ram-sk-S3cr3t-value"
		ecsName  = "ecs-secret"
		ecsValue = `{"UserName":"root","Password":"ecs-pw-S3cr3t"}`
	)
	srv := newTestServer(t, WithLogger(slog.New(h)),
		WithSecret(SecretSpec{Name: ramName, Type: "RAMCredentials",
			Data: `{"AccessKeyId":"` + ramAK + `","AccessKeySecret":"` + ramSK + `"}`}),
		WithSecret(SecretSpec{Name: ecsName, Type: "ECS", Data: ecsValue,
			ExtendedConfig: map[string]any{"SecretSubType": "Password"}}))
	trustEmulatorInDefaultTransport(t, srv)

	secrets := []string{testSK, rdsValue, "p@ss=w0rd", "plain value", ramSK, ecsValue, "ecs-pw-S3cr3t"}
	var mu sync.Mutex
	sigs := 0
	add := func(s ...string) {
		mu.Lock()
		defer mu.Unlock()
		for _, v := range s {
			if v != "" {
				secrets = append(secrets, v)
			}
		}
	}

	// Signatures: a recording proxy in front of the plain-HTTP gateway sees what the SDKs sign.
	recorder := tamperProxy(t, func(r *http.Request, body []byte) []byte {
		var sig string
		if q := r.URL.Query().Get("Signature"); q != "" {
			sig = q
		} else if form, err := url.ParseQuery(string(body)); err == nil && form.Get("Signature") != "" {
			sig = form.Get("Signature")
		} else if _, s, ok := strings.Cut(r.Header.Get("Authorization"), "Signature="); ok {
			sig = s
		}
		if sig != "" {
			add(sig, url.QueryEscape(sig))
			mu.Lock()
			sigs++
			mu.Unlock()
		}
		return body
	})
	for _, s := range schemes() {
		for _, name := range []string{rdsName, genericName, ramName, ecsName} {
			if v, code := s.fetch(t, srv, testAK, testSK, "", name); code != "" || v == "" {
				t.Fatalf("%s %s: code %q", s.name, name, code)
			}
		}
		if s.fetchVia != nil {
			if v, code := s.fetchVia(t, srv, recorder, rdsName); code != "" || v != rdsValue {
				t.Fatalf("%s via recorder: code %q", s.name, code)
			}
		}
		// A wrong key secret: the error carries the server's string to sign; the log must not.
		if _, code := s.fetch(t, srv, testAK, "wrong-S3cr3t-sk", "", rdsName); code != "SignatureDoesNotMatch" {
			t.Fatalf("%s wrong secret: code %q", s.name, code)
		}
		add("wrong-S3cr3t-sk")
	}
	mu.Lock()
	nSigs := sigs
	mu.Unlock()
	if nSigs != 3 { // one per scheme with fetchVia: core RPC v1, Tea ACS3, Tea v2
		t.Fatalf("recorded %d signatures, want 3", nSigs)
	}

	// Dedicated gateway.
	ck := newClientKey(t, srv)
	add(ck.Password)
	if pw, err := os.ReadFile(ck.PasswordFile); err == nil {
		add(string(pw))
	}
	resp, err := dkmsGet(dkmsClient(t, srv.DKMSAddr(), ck, string(srv.CACertPEM())), rdsName, "", "", true)
	if err != nil || tea.StringValue(resp.SecretData) != rdsValue {
		t.Fatalf("dkms: %v", err)
	}

	// Credential endpoints: temporary keys and tokens.
	oidc, err := os.ReadFile(srv.OIDCTokenFile())
	if err != nil {
		t.Fatal(err)
	}
	add(strings.TrimSpace(string(oidc)))
	newCred := func(cfg *credgo.Config) credgo.Credential {
		t.Helper()
		c, err := credgo.NewCredential(cfg)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	ecsProv, err := providers.NewECSRAMRoleCredentialsProviderBuilder().
		WithHttpOptions(&providers.HttpOptions{Proxy: srv.MetadataURL()}).Build()
	if err != nil {
		t.Fatal(err)
	}
	creds := map[string]credgo.Credential{
		"ram_role_arn": newCred(&credgo.Config{Type: tea.String("ram_role_arn"), AccessKeyId: tea.String(testAK),
			AccessKeySecret: tea.String(testSK), RoleArn: tea.String(srv.RoleARN()),
			RoleSessionName: tea.String("kmstest"), STSEndpoint: tea.String(srv.STSAddr())}),
		"oidc_role_arn": newCred(&credgo.Config{Type: tea.String("oidc_role_arn"), RoleArn: tea.String(srv.RoleARN()),
			OIDCProviderArn: tea.String(srv.OIDCProviderARN()), OIDCTokenFilePath: tea.String(srv.OIDCTokenFile()),
			RoleSessionName: tea.String("kmstest"), STSEndpoint: tea.String(srv.STSAddr())}),
		"ecs_ram_role":    credgo.FromCredentialsProvider("ecs_ram_role", ecsProv),
		"credentials_uri": newCred(&credgo.Config{Type: tea.String("credentials_uri"), Url: tea.String(srv.CredentialsURI())}),
	}
	for name, cred := range creds {
		m, err := cred.GetCredential()
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if tea.StringValue(m.SecurityToken) == "" || tea.StringValue(m.AccessKeySecret) == "" {
			t.Fatalf("%s: no temporary credential", name)
		}
		add(tea.StringValue(m.AccessKeySecret), tea.StringValue(m.SecurityToken))
		if v, code := fetchWith(t, srv, cred); code != "" || v != rdsValue {
			t.Fatalf("%s: fetch: code %q", name, code)
		}
	}

	// Admin endpoint and rotation (new values, a new RAM key).
	c := plainClient(t)
	for _, name := range []string{rdsName, genericName, ramName, ecsName} {
		if code, body := adminDo(t, c, http.MethodPost, srv.AdminURL()+"rotate?secret="+url.QueryEscape(name), ""); code != http.StatusOK {
			t.Fatalf("admin rotate %s: %d %s", name, code, body)
		}
		if code, body := adminDo(t, c, http.MethodGet, srv.AdminURL()+"secrets/"+url.PathEscape(name), ""); code != http.StatusOK {
			t.Fatalf("admin secrets %s: %d %s", name, code, body)
		}
		st, ok := srv.Secret(name)
		if !ok {
			t.Fatalf("secret %s gone", name)
		}
		for _, v := range st.Versions {
			add(v.Value)
		}
	}
	st, _ := srv.Secret(ramName)
	newAK := decodeObj(t, st.CurrentValue)
	add(newAK["AccessKeySecret"])
	if v, code := teaFetch(t, teaClient(t, srv, false, "", staticCred(t, newAK["AccessKeyId"], newAK["AccessKeySecret"], ""), ""), rdsName); code != "" || v == "" {
		t.Fatalf("fetch with the rotated RAM key: code %q", code)
	}

	log := logBuf.String()
	for _, want := range []string{"listener=kms ", "listener=kms-tls", "listener=dkms", "listener=sts", "listener=metadata",
		`"action":"GetSecretValue"`, "SignatureDoesNotMatch", "rotated secret"} {
		if !strings.Contains(log, want) {
			t.Errorf("the log has no %q: the test did not exercise what it claims", want)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	for i, s := range secrets {
		if len(s) < 6 {
			continue // too short to grep meaningfully; none of ours is
		}
		if strings.Contains(log, s) {
			t.Errorf("the request log holds secret #%d of the list (%d chars)", i, len(s))
		}
	}
	t.Logf("grepped %d secrets in %d bytes of log", len(secrets), len(log))
}

// multiHandler sends every record to each handler.
type multiHandler []slog.Handler

func (m multiHandler) Enabled(ctx context.Context, l slog.Level) bool {
	for _, h := range m {
		if h.Enabled(ctx, l) {
			return true
		}
	}
	return false
}

func (m multiHandler) Handle(ctx context.Context, r slog.Record) error {
	for _, h := range m {
		if err := h.Handle(ctx, r.Clone()); err != nil {
			return err
		}
	}
	return nil
}

func (m multiHandler) WithAttrs(as []slog.Attr) slog.Handler {
	out := make(multiHandler, len(m))
	for i, h := range m {
		out[i] = h.WithAttrs(as)
	}
	return out
}

func (m multiHandler) WithGroup(g string) slog.Handler {
	out := make(multiHandler, len(m))
	for i, h := range m {
		out[i] = h.WithGroup(g)
	}
	return out
}
