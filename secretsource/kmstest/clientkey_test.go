package kmstest

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
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
	id, pub, err := ReadClientKey(ClientKey{File: ck.File, PasswordFile: ck.PasswordFile})
	if err != nil || id != ck.KeyID || pub.N.BitLen() != 2048 {
		t.Errorf("ReadClientKey: %v %s", err, id)
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
			_, _, err := ReadClientKey(tc.ck)
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

// keyPairSTSFront serves GenerateSessionAccessKey over TLS with a certificate for 127.0.0.1 and the STS host
// names the SDKs use, signed by a CA of its own, and answers every response with Connection: close (the
// credentials-go provider builds a new transport per call, which would otherwise leave idle connections).
func keyPairSTSFront(t *testing.T, srv *Server) (front *httptest.Server, caPEM []byte) {
	t.Helper()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{SerialNumber: serial(), Subject: pkix.Name{CommonName: "sts front CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IsCA: true,
		BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caCert, _ := x509.ParseCertificate(caDER)
	leafKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	leafTmpl := &x509.Certificate{SerialNumber: serial(), Subject: pkix.Name{CommonName: "sts"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, KeyUsage: x509.KeyUsageDigitalSignature,
		DNSNames:    []string{"sts.ap-northeast-1.aliyuncs.com", "sts.aliyuncs.com"},
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}}
	leafDER, err := x509.CreateCertificate(rand.Reader, leafTmpl, caCert, &leafKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	front = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Connection", "close")
		body, err := io.ReadAll(r.Body)
		if err != nil {
			return
		}
		params := requestParams(r, body)
		if params.Get("Action") != "GenerateSessionAccessKey" {
			http.NotFound(w, r)
			return
		}
		if !srv.admit(w, "sts:GenerateSessionAccessKey", "") {
			return
		}
		srv.generateSessionAccessKey(w, r, body)
	}))
	front.TLS = &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{leafDER}, PrivateKey: leafKey}}}
	front.StartTLS()
	t.Cleanup(front.Close)
	return front, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER})
}

// connectProxy is an HTTP CONNECT proxy that tunnels every CONNECT to target, whatever host it names: it stands
// in for DNS so that the core SDK's fixed https://sts.ap-northeast-1.aliyuncs.com reaches the emulator.
func connectProxy(t *testing.T, target string) *httptest.Server {
	t.Helper()
	var wg sync.WaitGroup
	ps := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodConnect {
			http.Error(w, "CONNECT only", http.StatusMethodNotAllowed)
			return
		}
		up, err := net.Dial("tcp", target)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		conn, brw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			_ = up.Close()
			return
		}
		_, _ = brw.WriteString("HTTP/1.1 200 Connection established\r\n\r\n")
		_ = brw.Flush()
		wg.Add(2)
		go func() { defer wg.Done(); _, _ = io.Copy(up, brw); _ = up.Close() }()
		go func() { defer wg.Done(); _, _ = io.Copy(conn, up); _ = conn.Close() }()
	}))
	t.Cleanup(func() {
		ps.Close()
		wg.Wait()
	})
	return ps
}

// TestClientKeySessionAccessKey runs the two official key-pair credential providers against the emulator: the
// core SDK's RsaKeyPairCredential (what Alibaba's secret client uses for credentials type client_key) and
// credentials-go's rsa_key_pair. Both trust only the system roots and the core SDK's STS host is fixed, so
// they run in a child process with SSL_CERT_FILE and HTTPS_PROXY set.
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
	front, frontCA := keyPairSTSFront(t, srv)
	proxy := connectProxy(t, front.Listener.Addr().String())
	bundle := filepath.Join(dir, "roots.pem")
	if err := os.WriteFile(bundle, append(srv.CACertPEM(), frontCA...), 0o600); err != nil {
		t.Fatal(err)
	}

	cmd := exec.Command(os.Args[0], "-test.run=^TestClientKeySessionAccessKeyChild$", "-test.v")
	cmd.Env = append(os.Environ(),
		"KMSTEST_KEYPAIR_CHILD=1",
		"SSL_CERT_FILE="+bundle,
		"HTTPS_PROXY="+proxy.URL, "https_proxy="+proxy.URL,
		"NO_PROXY=127.0.0.1,localhost", "no_proxy=127.0.0.1,localhost",
		"KMSTEST_KEY_ID="+ck.KeyID,
		"KMSTEST_KEY_PEM="+pemFile,
		"KMSTEST_KEY_PKCS8="+base64.StdEncoding.EncodeToString(pkcs8),
		"KMSTEST_STS="+front.Listener.Addr().String(),
		"KMSTEST_KMS="+srv.KMSTLSAddr(),
		"KMSTEST_SECRET="+dkmsText,
	)
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "--- PASS: TestClientKeySessionAccessKeyChild") {
		t.Fatalf("child: %v\n%s", err, out)
	}
	if n := srv.Calls("sts:GenerateSessionAccessKey", ""); n != 2 {
		t.Errorf("GenerateSessionAccessKey calls = %d, want 2 (one per provider)", n)
	}
	if n := srv.Calls("GetSecretValue", dkmsText); n != 2 {
		t.Errorf("GetSecretValue calls = %d, want 2", n)
	}
}

// TestClientKeySessionAccessKeyChild is the child half of TestClientKeySessionAccessKey.
func TestClientKeySessionAccessKeyChild(t *testing.T) {
	if os.Getenv("KMSTEST_KEYPAIR_CHILD") != "1" {
		t.Skip("runs only as the child of TestClientKeySessionAccessKey")
	}
	defer http.DefaultTransport.(*http.Transport).CloseIdleConnections()
	keyID, kmsAddr, secret := os.Getenv("KMSTEST_KEY_ID"), os.Getenv("KMSTEST_KMS"), os.Getenv("KMSTEST_SECRET")

	fetch := func(t *testing.T, cred interface{}) string {
		t.Helper()
		cfg := sdk.NewConfig()
		cfg.AutoRetry = false
		tr := &http.Transport{} // system roots (SSL_CERT_FILE); closed below so goleak sees no idle connection
		defer tr.CloseIdleConnections()
		cfg.HttpTransport = tr
		c, err := kms.NewClientWithOptions("cn-hangzhou", cfg, cred)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Shutdown()
		c.Domain = kmsAddr
		req := kms.CreateGetSecretValueRequest()
		req.Scheme = "https"
		req.SecretName = secret
		resp, err := c.GetSecretValue(req)
		if err != nil {
			t.Fatalf("GetSecretValue: %v", err)
		}
		return resp.SecretData
	}

	t.Run("core-sdk-rsa-key-pair", func(t *testing.T) {
		// What aliyun-secretsmanager-client-go builds for credentials type client_key.
		got := fetch(t, sdkcred.NewRsaKeyPairCredential(os.Getenv("KMSTEST_KEY_PKCS8"), keyID, 0))
		if got != "text value v1" {
			t.Error("wrong secret value")
		}
	})
	t.Run("credentials-go-rsa-key-pair", func(t *testing.T) {
		cred, err := credgo.NewCredential(&credgo.Config{Type: tea.String("rsa_key_pair"),
			PrivateKeyFile: tea.String(os.Getenv("KMSTEST_KEY_PEM")), PublicKeyId: tea.String(keyID),
			STSEndpoint: tea.String(os.Getenv("KMSTEST_STS"))})
		if err != nil {
			t.Fatal(err)
		}
		m, err := cred.GetCredential()
		if err != nil {
			t.Fatalf("GetCredential: %v", err)
		}
		ak, sk := tea.StringValue(m.AccessKeyId), tea.StringValue(m.AccessKeySecret)
		if !strings.HasPrefix(ak, "TMPSK.") || sk == "" || tea.StringValue(m.SecurityToken) != "" {
			t.Fatalf("session key %q (secret set: %v)", ak, sk != "")
		}
		if got := fetch(t, sdkcred.NewAccessKeyCredential(ak, sk)); got != "text value v1" {
			t.Error("wrong secret value")
		}
	})
}
