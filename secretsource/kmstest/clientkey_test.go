package kmstest

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/alibabacloud-go/tea/tea"
	"github.com/aliyun/alibaba-cloud-sdk-go/sdk"
	sdkcred "github.com/aliyun/alibaba-cloud-sdk-go/sdk/auth/credentials"
	"github.com/aliyun/alibaba-cloud-sdk-go/services/kms"
	credgo "github.com/aliyun/credentials-go/credentials"
	xpkcs12 "golang.org/x/crypto/pkcs12"
)

func TestWriteClientKeyFiles(t *testing.T) {
	dir := t.TempDir()
	ck, err := WriteClientKey(dir)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(ck.KeyID, "KAAP.") || len(ck.KeyID) != len("KAAP.")+36 {
		t.Errorf("KeyID = %q", ck.KeyID)
	}
	for _, f := range []string{ck.File, ck.PasswordFile} {
		fi, err := os.Stat(f)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o600 || filepath.Dir(f) != dir {
			t.Errorf("%s: mode %v dir %s", f, fi.Mode().Perm(), filepath.Dir(f))
		}
	}
	if pw, _ := os.ReadFile(ck.PasswordFile); string(pw) != ck.Password || len(ck.Password) < 16 {
		t.Error("password file does not hold the password")
	}
	var f map[string]string
	content, _ := os.ReadFile(ck.File)
	if err := json.Unmarshal(content, &f); err != nil || f["KeyId"] != ck.KeyID || len(f) != 2 {
		t.Fatalf("key file: %v %v", err, f["KeyId"])
	}
	// The DKMS SDK decodes with golang.org/x/crypto/pkcs12.ToPEM and takes blocks[0] as the certificate and
	// blocks[1] as the key, which it parses as PKCS#1.
	p12, _ := base64.StdEncoding.DecodeString(f["PrivateKeyData"])
	blocks, err := xpkcs12.ToPEM(p12, ck.Password)
	if err != nil {
		t.Fatal(err)
	}
	if len(blocks) != 2 || blocks[0].Type != "CERTIFICATE" {
		t.Fatalf("blocks: %d, first %s", len(blocks), blocks[0].Type)
	}
	if _, err := x509.ParsePKCS1PrivateKey(blocks[1].Bytes); err != nil {
		t.Errorf("blocks[1] is not a PKCS#1 RSA key: %v", err)
	}
	// Alibaba's secret client decodes with pkcs12.Decode.
	if _, _, err := xpkcs12.Decode(p12, ck.Password); err != nil {
		t.Errorf("x/crypto pkcs12.Decode: %v", err)
	}
	id, pub, err := ClientKey{File: ck.File, PasswordFile: ck.PasswordFile}.PublicKey()
	if err != nil || id != ck.KeyID || pub.N.BitLen() != 2048 {
		t.Errorf("PublicKey: %v %s", err, id)
	}
}

func TestClientKeyNeverPrintsPassword(t *testing.T) {
	ck := ClientKey{KeyID: "KAAP.x", File: "/k.json", PasswordFile: "/p.txt", Password: "s3cr3t-pw"}
	for _, format := range []string{"%v", "%+v", "%#v", "%s"} {
		if out := fmt.Sprintf(format, ck); strings.Contains(out, ck.Password) || !strings.Contains(out, "KAAP.x") {
			t.Errorf("%s: %s", format, out)
		}
	}
}

func TestReadClientKeyErrors(t *testing.T) {
	dir := t.TempDir()
	ck, err := WriteClientKey(dir)
	if err != nil {
		t.Fatal(err)
	}
	notJSON := filepath.Join(dir, "bad.json")
	_ = os.WriteFile(notJSON, []byte("KeyId=x"), 0o600)
	noData := filepath.Join(dir, "nodata.json")
	_ = os.WriteFile(noData, []byte(`{"KeyId":"KAAP.x"}`), 0o600)
	cases := []struct {
		name string
		ck   ClientKey
		want string
	}{
		{"wrong-password", ClientKey{File: ck.File, Password: "wrong-password-value"}, "PrivateKeyData"},
		{"other-key-id", ClientKey{KeyID: "KAAP.other", File: ck.File, Password: ck.Password}, "not KAAP.other"},
		{"missing-file", ClientKey{File: filepath.Join(dir, "none.json"), Password: ck.Password}, "none.json"},
		{"missing-password-file", ClientKey{File: ck.File, PasswordFile: filepath.Join(dir, "none.txt")}, "password file"},
		{"not-json", ClientKey{File: notJSON, Password: "x"}, "not JSON"},
		{"no-private-key-data", ClientKey{File: noData, Password: "x"}, "PrivateKeyData are required"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := tc.ck.PublicKey()
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want it to mention %q", err, tc.want)
			}
			if tc.ck.Password != "" && strings.Contains(err.Error(), tc.ck.Password) {
				t.Errorf("error contains the password: %v", err)
			}
		})
	}
}

// TestRegisterClientKey is the CLI's --state-dir flow: a key written earlier is registered with a new server.
func TestRegisterClientKey(t *testing.T) {
	ck, err := WriteClientKey(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	srv := newDKMSServer(t)
	c := dkmsClient(t, srv.DKMSAddr(), ck, string(srv.CACertPEM()))
	if _, err := dkmsGet(c, dkmsText, "", "", false); err == nil {
		t.Fatal("unregistered key accepted")
	}
	if err := srv.RegisterClientKey(ClientKey{File: ck.File, PasswordFile: ck.PasswordFile}); err != nil {
		t.Fatal(err)
	}
	if _, err := dkmsGet(c, dkmsText, "", "", false); err != nil {
		t.Fatalf("registered key rejected: %v", err)
	}
}

// signKeyPairRPC signs params the way the SDKs sign RPC requests with an RSA key pair.
func signKeyPairRPC(t *testing.T, method string, params url.Values, priv *rsa.PrivateKey) {
	t.Helper()
	params.Del("Signature")
	sts := method + "&%2F&" + url.QueryEscape(rpcCanonicalQuery(params))
	digest := sha256.Sum256([]byte(sts))
	sig, err := rsa.SignPKCS1v15(rand.Reader, priv, crypto.SHA256, digest[:])
	if err != nil {
		t.Fatal(err)
	}
	params.Set("Signature", base64.StdEncoding.EncodeToString(sig))
}

func TestVerifyRPCKeyPair(t *testing.T) {
	srv := newDKMSServer(t)
	ck := newClientKey(t, srv)
	priv := clientPrivateKey(t, ck)
	other, err := WriteClientKey(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	otherPriv := clientPrivateKey(t, other)

	base := func() url.Values {
		return url.Values{
			"Action": {"GetSecretValue"}, "Version": {"2016-01-20"}, "Format": {"JSON"},
			"AccessKeyId": {ck.KeyID}, "SignatureMethod": {"SHA256withRSA"}, "SignatureType": {"PRIVATEKEY"},
			"SignatureVersion": {"1.0"}, "SignatureNonce": {newUUID()}, "SecretName": {"a b*~"},
			"Timestamp": {srv.now().UTC().Format(timeLayout)},
		}
	}
	verify := func(method string, p url.Values) *apiError {
		r := httptest.NewRequest(method, "https://kms.local/?"+p.Encode(), nil)
		_, _, aerr := srv.verifyRPCKeyPair(r, nil)
		return aerr
	}
	code := func(e *apiError) string {
		if e == nil {
			return ""
		}
		return e.Code
	}

	p := base()
	signKeyPairRPC(t, "GET", p, priv)
	if e := verify("GET", p); e != nil {
		t.Fatalf("valid request: %v", e)
	}
	if e := verify("GET", p); code(e) != "SignatureNonceUsed" {
		t.Errorf("replay: %v", e)
	}
	cases := []struct {
		name string
		edit func(p url.Values) // after signing
		sign *rsa.PrivateKey
		want string
	}{
		{"public-key-id-param", func(p url.Values) {}, priv, ""},
		{"wrong-key", func(p url.Values) {}, otherPriv, "SignatureDoesNotMatch"},
		{"tampered-param", func(p url.Values) { p.Set("SecretName", "other") }, priv, "SignatureDoesNotMatch"},
		{"unknown-key", func(p url.Values) { p.Set("AccessKeyId", other.KeyID) }, priv, "InvalidAccessKeyId.NotFound"},
		{"hmac-method", func(p url.Values) { p.Set("SignatureMethod", "HMAC-SHA1") }, priv, "InvalidSignatureMethod"},
		{"no-signature", func(p url.Values) { p.Del("Signature") }, priv, "MissingSignature"},
		{"no-key-id", func(p url.Values) { p.Del("AccessKeyId") }, priv, "MissingPublicKeyId"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := base()
			if tc.name == "public-key-id-param" {
				p.Del("AccessKeyId")
				p.Set("PublicKeyId", ck.KeyID)
			}
			signKeyPairRPC(t, "POST", p, tc.sign)
			tc.edit(p)
			if got := code(verify("POST", p)); got != tc.want {
				t.Errorf("code = %q, want %q", got, tc.want)
			}
		})
	}
	t.Run("stale-timestamp", func(t *testing.T) {
		p := base()
		p.Set("Timestamp", srv.now().Add(-20*time.Minute).UTC().Format(timeLayout))
		signKeyPairRPC(t, "GET", p, priv)
		if got := code(verify("GET", p)); got != "InvalidTimeStamp.Expired" {
			t.Errorf("code = %q", got)
		}
	})
	t.Run("revoked", func(t *testing.T) {
		ck2 := newClientKey(t, srv)
		srv.RevokeClientKey(ck2.KeyID)
		p := base()
		p.Set("AccessKeyId", ck2.KeyID)
		signKeyPairRPC(t, "GET", p, clientPrivateKey(t, ck2))
		if got := code(verify("GET", p)); got != "InvalidAccessKeyId.NotFound" {
			t.Errorf("code = %q", got)
		}
	})
}

// TestClientKeySessionAccessKey runs the two official key-pair credential providers against the emulator: the
// core SDK's RsaKeyPairCredential (what Alibaba's secret client uses for credentials type client_key) and
// credentials-go's rsa_key_pair. The core SDK posts to the fixed https://sts.ap-northeast-1.aliyuncs.com and both
// trust only the system roots, so they run in a child process with HTTPS_PROXY set to the emulator's proxy and
// SSL_CERT_FILE to its CA file, and no NO_PROXY: the core SDK then sends its KMS request (to 127.0.0.1) through
// the proxy too, which tunnels it to the emulator's own listener.
func TestClientKeySessionAccessKey(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a child process")
	}
	srv := newDKMSServer(t)
	ck := newClientKey(t, srv)
	priv := clientPrivateKey(t, ck)
	pkcs8, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	pemFile := filepath.Join(dir, "key.pem")
	if err := os.WriteFile(pemFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: pkcs8}), 0o600); err != nil {
		t.Fatal(err)
	}
	result := filepath.Join(dir, "result.txt")
	cmd := exec.Command(os.Args[0], "-test.run=^TestClientKeySessionAccessKeyChild$", "-test.v")
	env := []string{}
	for _, kv := range os.Environ() {
		if k, _, _ := strings.Cut(kv, "="); !strings.EqualFold(k, "NO_PROXY") && !strings.EqualFold(k, "HTTP_PROXY") {
			env = append(env, kv)
		}
	}
	cmd.Env = append(env,
		"KMSTEST_KEYPAIR_CHILD="+result,
		"SSL_CERT_FILE="+srv.CAFile(), "SSL_CERT_DIR="+dir,
		"HTTPS_PROXY="+srv.ProxyURL(), "https_proxy="+srv.ProxyURL(),
		"KMSTEST_KEY_ID="+ck.KeyID,
		"KMSTEST_KEY_PEM="+pemFile,
		"KMSTEST_KEY_PKCS8="+base64.StdEncoding.EncodeToString(pkcs8),
		"KMSTEST_KMS="+srv.KMSTLSAddr(),
		"KMSTEST_SECRET="+dkmsText,
	)
	out, err := cmd.CombinedOutput()
	b, rerr := os.ReadFile(result)
	if err != nil || rerr != nil || string(b) != "ok" {
		t.Fatalf("child: %v; result %q (%v)\n%s", err, b, rerr, out)
	}
	if n := srv.Calls("sts:GenerateSessionAccessKey", ""); n != 2 {
		t.Errorf("GenerateSessionAccessKey calls = %d, want 2 (one per provider)", n)
	}
	if n := srv.Calls("GetSecretValue", dkmsText); n != 2 {
		t.Errorf("GetSecretValue calls = %d, want 2", n)
	}
}

// TestClientKeySessionAccessKeyChild is the child half of TestClientKeySessionAccessKey. It writes "ok" or the
// failures to the result file and exits before the leak check: the providers' cloned transports keep
// keep-alive connections to the emulator, which runs in the parent.
func TestClientKeySessionAccessKeyChild(t *testing.T) {
	resultFile := os.Getenv("KMSTEST_KEYPAIR_CHILD")
	if resultFile == "" {
		t.Skip("runs only as the child of TestClientKeySessionAccessKey")
	}
	keyID, kmsAddr, secret := os.Getenv("KMSTEST_KEY_ID"), os.Getenv("KMSTEST_KMS"), os.Getenv("KMSTEST_SECRET")
	var problems []string
	fail := func(format string, a ...any) { problems = append(problems, fmt.Sprintf(format, a...)) }

	fetch := func(what string, cred interface{}) string {
		cfg := sdk.NewConfig()
		cfg.AutoRetry = false
		cfg.HttpTransport = &http.Transport{} // system roots (SSL_CERT_FILE); proxy from HTTPS_PROXY (core SDK)
		c, err := kms.NewClientWithOptions("cn-hangzhou", cfg, cred)
		if err != nil {
			fail("%s: %v", what, err)
			return ""
		}
		defer c.Shutdown()
		c.Domain = kmsAddr
		req := kms.CreateGetSecretValueRequest()
		req.Scheme = "https"
		req.SecretName = secret
		resp, err := c.GetSecretValue(req)
		if err != nil {
			fail("%s: GetSecretValue: %v", what, err)
			return ""
		}
		return resp.SecretData
	}

	// What aliyun-secretsmanager-client-go builds for credentials type client_key: deprecated in the core SDK, still
	// what that client (and so its users) sends, so the emulator must keep verifying it.
	//nolint:staticcheck // SA1019: deliberately the deprecated path, see above
	if got := fetch("core SDK RsaKeyPairCredential", sdkcred.NewRsaKeyPairCredential(os.Getenv("KMSTEST_KEY_PKCS8"), keyID, 0)); got != "text value v1" {
		fail("core SDK RsaKeyPairCredential: wrong secret value")
	}
	cred, err := credgo.NewCredential(&credgo.Config{Type: tea.String("rsa_key_pair"),
		PrivateKeyFile: tea.String(os.Getenv("KMSTEST_KEY_PEM")), PublicKeyId: tea.String(keyID),
		// credentials-go's rsa_key_pair builds an &http.Transport{} of its own: it ignores HTTPS_PROXY and takes
		// the proxy from its Config.
		STSEndpoint: tea.String("sts.aliyuncs.com"), Proxy: tea.String(os.Getenv("HTTPS_PROXY"))})
	if err != nil {
		fail("credentials-go rsa_key_pair: %v", err)
	} else if m, err := cred.GetCredential(); err != nil {
		fail("credentials-go rsa_key_pair: GetCredential: %v", err)
	} else {
		ak, sk := tea.StringValue(m.AccessKeyId), tea.StringValue(m.AccessKeySecret)
		if !strings.HasPrefix(ak, "TMPSK.") || sk == "" || tea.StringValue(m.SecurityToken) != "" {
			fail("credentials-go rsa_key_pair: session key %q (secret set: %v)", ak, sk != "")
		} else if got := fetch("credentials-go session key", sdkcred.NewAccessKeyCredential(ak, sk)); got != "text value v1" {
			fail("credentials-go session key: wrong secret value")
		}
	}
	res := "ok"
	if len(problems) > 0 {
		res = strings.Join(problems, "\n")
	}
	if err := os.WriteFile(resultFile, []byte(res), 0o600); err != nil {
		t.Fatal(err)
	}
	os.Exit(0)
}
