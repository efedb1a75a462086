package kms_test

import (
	"context"
	"crypto"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/kmsdb/kmsdb/internal/credtest"
	"github.com/kmsdb/kmsdb/secretsource"
	"github.com/kmsdb/kmsdb/secretsource/kms"
	"github.com/kmsdb/kmsdb/secretsource/kmstest"
)

// rsaVerifier checks a client-key signed RPC request the way the service
// does for SignatureMethod SHA256withRSA, independently of our signer.
func rsaVerifier(t *testing.T, keyID string, pub *rsa.PublicKey, hits *atomic.Int32) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		params := r.URL.Query()
		if form, err := url.ParseQuery(string(body)); err == nil {
			for k, v := range form {
				params[k] = append(params[k], v...)
			}
		}
		sig := params.Get("Signature")
		params.Del("Signature")
		fail := func(code, msg string) {
			w.WriteHeader(http.StatusBadRequest)
			_ = json.NewEncoder(w).Encode(map[string]string{"RequestId": "r", "Code": code, "Message": msg})
		}
		if params.Get("SignatureMethod") != "SHA256withRSA" || params.Get("SignatureType") != "PRIVATEKEY" ||
			params.Get("SignatureVersion") != "1.0" || params.Get("AccessKeyId") != keyID || params.Get("SecurityToken") != "" {
			fail("InvalidSignatureMethod", fmt.Sprintf("unexpected signature parameters %v", params))
			return
		}
		enc := params.Encode()
		enc = strings.NewReplacer("+", "%20", "*", "%2A", "%7E", "~").Replace(enc)
		sts := r.Method + "&%2F&" + url.QueryEscape(enc)
		raw, err := base64.StdEncoding.DecodeString(sig)
		sum := sha256.Sum256([]byte(sts))
		if err != nil || rsa.VerifyPKCS1v15(pub, crypto.SHA256, sum[:], raw) != nil {
			fail("SignatureDoesNotMatch", "bad RSA signature")
			return
		}
		hits.Add(1)
		_ = json.NewEncoder(w).Encode(map[string]any{"RequestId": "r", "SecretName": params.Get("SecretName"),
			"SecretType": "Generic", "SecretDataType": "text", "SecretData": "v", "VersionId": "v1",
			"VersionStages": map[string]any{"VersionStage": []string{"ACSCurrent"}}, "CreateTime": "2024-01-02T03:04:05Z"})
	})
}

// TestClientKeyWire proves the client_key signature on the wire: the real core
// SDK builds the request, our transport signs it with the client key, and a
// verifier written from the service's rules accepts it.
func TestClientKeyWire(t *testing.T) {
	credtest.Hermetic(t)
	ck, err := kmstest.WriteClientKey(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	keyID, pub, err := ck.PublicKey()
	if err != nil {
		t.Fatal(err)
	}
	var hits atomic.Int32
	hs := httptest.NewServer(rsaVerifier(t, keyID, pub, &hits))
	defer hs.Close()

	key, err := kms.LoadClientKey(ck.File, ck.Password)
	if err != nil {
		t.Fatal(err)
	}
	if key.KeyID() != keyID || strings.Contains(fmt.Sprintf("%v %+v %#v %s", key, key, key, key), "PRIVATE") {
		t.Errorf("key id %q / formatting %v", key.KeyID(), key)
	}
	src, _ := newSource(t, kms.Config{Region: kms.Region{ID: region, Endpoint: strings.TrimPrefix(hs.URL, "http://")},
		Credential: key, Scheme: "http"})
	s, err := src.GetSecret(context.Background(), "db/with space*~")
	if err != nil {
		t.Fatal(err)
	}
	if s.Name() != "db/with space*~" || hits.Load() != 1 {
		t.Errorf("secret %v, verified requests %d", s, hits.Load())
	}
	if _, err := src.GetSecret(context.Background(), "again"); err != nil || hits.Load() != 2 {
		t.Errorf("second request: %v, verified %d", err, hits.Load())
	}

}

// Against the emulator: a client key signs shared-gateway requests until it
// is revoked, then the failure is a permanent credential error.
func TestClientKeySharedGateway(t *testing.T) {
	credtest.Hermetic(t)
	srv := startEmulator(t)
	ck, err := srv.NewClientKey()
	if err != nil {
		t.Fatal(err)
	}
	key, err := kms.LoadClientKey(ck.File, ck.Password)
	if err != nil {
		t.Fatal(err)
	}
	src, logs := newSource(t, kms.Config{Region: tlsRegion(srv, region), Credential: key, RootCAs: srv.CertPool()})
	s, err := src.GetSecret(context.Background(), secretName)
	if err != nil {
		t.Fatal(err)
	}
	checkRds(t, s)
	srv.RevokeClientKey(ck.KeyID)
	_, err = src.GetSecret(context.Background(), secretName)
	if secretsource.KindOf(err) != secretsource.KindInvalidCredentials {
		t.Fatalf("revoked client key: %v", err)
	}
	assertNoLeak(t, append(chainTexts(err), logs.String())...)
	for _, s := range chainTexts(err) {
		if strings.Contains(s, ck.Password) {
			t.Errorf("error shows the client key password: %s", s)
		}
	}
}
