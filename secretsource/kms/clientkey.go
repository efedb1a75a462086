package kms

import (
	"bytes"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"

	"github.com/aliyun/credentials-go/credentials"

	"github.com/kmsdb/kmsdb/secretsource/internal/wire"
)

// ClientKey is a KMS application access point client key: an RSA key pair
// whose private half comes as a JSON file {"KeyId":"KAAP.…","PrivateKeyData":
// "<base64 PKCS#12>"} protected by a password. It is what Alibaba's secret
// client calls credentials_type=client_key.
//
// In SDK terms it is an RSA key pair credential, but not the one the core SDK
// ships today: Alibaba's client (built on alibaba-cloud-sdk-go v1.61) signed
// each KMS OpenAPI request itself with a signer whose SignatureMethod is
// SHA256withRSA, SignatureType PRIVATEKEY and AccessKeyId the client key id,
// the signature being RSA PKCS#1 v1.5 over SHA-256 of the usual RPC string to
// sign. Newer core SDKs ignore that signer and turn the key into an
// RsaKeyPairCredential that exchanges it at sts.ap-northeast-1.aliyuncs.com
// (GenerateSessionAccessKey), which does not know KMS client keys. A Source
// given a *ClientKey therefore signs requests the first way, on the wire, and
// the same key also authenticates to a dedicated KMS instance (package dkms).
//
// A ClientKey implements credentials-go's Credential so it fits
// Config.Credential; its GetCredential returns only the key id. It never
// prints its key: String, GoString, %v and slog show the key id only.
type ClientKey struct {
	keyID string
	file  string
	key   *rsa.PrivateKey
	cert  *x509.Certificate
}

// LoadClientKey reads a client key file and decrypts it with password. Errors
// are *secretsource.Error of KindConfig naming the file and what is wrong
// (unreadable, not JSON, no KeyId, wrong password, not an RSA key); they never
// contain the password.
func LoadClientKey(file, password string) (*ClientKey, error) {
	k, err := wire.LoadClientKey("kms", file, password)
	if err != nil {
		return nil, err
	}
	return &ClientKey{keyID: k.KeyID, file: file, key: k.Key, cert: k.Cert}, nil
}

// ParseClientKey is LoadClientKey for a client key already in memory.
func ParseClientKey(data []byte, password string) (*ClientKey, error) {
	k, err := wire.ParseClientKey("kms", data, password, "")
	if err != nil {
		return nil, err
	}
	return &ClientKey{keyID: k.KeyID, key: k.Key, cert: k.Cert}, nil
}

// KeyID is the client key's id (KAAP.…), sent as AccessKeyId.
func (k *ClientKey) KeyID() string { return k.keyID }

// File is the path the key was loaded from, empty for ParseClientKey.
func (k *ClientKey) File() string { return k.file }

// PublicKey is the public half of the key.
func (k *ClientKey) PublicKey() *rsa.PublicKey { return &k.key.PublicKey }

// Certificate is the certificate stored beside the key, nil if none.
func (k *ClientKey) Certificate() *x509.Certificate { return k.cert }

// Sign signs stringToSign with RSA PKCS#1 v1.5 over SHA-256 and returns the
// standard base64 signature, as the SHA256withRSA signature method wants.
func (k *ClientKey) Sign(stringToSign string) (string, error) {
	sum := sha256.Sum256([]byte(stringToSign))
	sig, err := rsa.SignPKCS1v15(rand.Reader, k.key, crypto.SHA256, sum[:])
	if err != nil {
		return "", err
	}
	return base64.StdEncoding.EncodeToString(sig), nil
}

// String shows the key id only.
func (k *ClientKey) String() string {
	if k == nil {
		return "ClientKey(nil)"
	}
	return fmt.Sprintf("ClientKey(%s)", k.keyID)
}

// GoString is String, so %#v cannot print the key.
func (k *ClientKey) GoString() string { return k.String() }

// Format makes every fmt verb print String.
func (k *ClientKey) Format(f fmt.State, _ rune) { _, _ = io.WriteString(f, k.String()) }

// LogValue shows the key id only.
func (k *ClientKey) LogValue() slog.Value { return slog.StringValue(k.String()) }

// The credentials-go Credential interface.

// GetAccessKeyId returns the key id.
//
// Deprecated: part of credentials-go's interface; use GetCredential.
func (k *ClientKey) GetAccessKeyId() (*string, error) { return ptr(k.keyID), nil }

// GetAccessKeySecret returns an empty string: the secret half never leaves the key.
//
// Deprecated: part of credentials-go's interface; use GetCredential.
func (k *ClientKey) GetAccessKeySecret() (*string, error) { return ptr(""), nil }

// GetSecurityToken returns an empty string.
//
// Deprecated: part of credentials-go's interface; use GetCredential.
func (k *ClientKey) GetSecurityToken() (*string, error) { return ptr(""), nil }

// GetBearerToken returns an empty string.
func (k *ClientKey) GetBearerToken() *string { return ptr("") }

// GetType returns "client_key".
func (k *ClientKey) GetType() *string { return ptr(CredentialClientKey) }

// GetCredential returns the key id as AccessKeyId; requests are signed with
// the private key by the Source, not with an AccessKey secret.
func (k *ClientKey) GetCredential() (*credentials.CredentialModel, error) {
	return &credentials.CredentialModel{AccessKeyId: ptr(k.keyID), AccessKeySecret: ptr(""),
		SecurityToken: ptr(""), BearerToken: ptr(""), Type: ptr(CredentialClientKey), ProviderName: ptr(CredentialClientKey)}, nil
}

// rsaSigningTransport re-signs the RPC request the core SDK built (HMAC-SHA1
// over an empty secret) with the client key, the way the core SDK's signer
// interface did before v1.62: same string to sign, SignatureMethod
// SHA256withRSA, SignatureType PRIVATEKEY, AccessKeyId = key id.
type rsaSigningTransport struct {
	key  *ClientKey
	next http.RoundTripper
}

func (t *rsaSigningTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	q := req.URL.Query()
	q.Del("Signature")
	q.Del("SecurityToken")
	q.Set("AccessKeyId", t.key.keyID)
	q.Set("SignatureMethod", "SHA256withRSA")
	q.Set("SignatureType", "PRIVATEKEY")
	q.Set("SignatureVersion", "1.0")

	signed := url.Values{}
	for k, v := range q {
		signed[k] = append([]string(nil), v...)
	}
	var body []byte
	if req.Body != nil && req.Body != http.NoBody {
		var err error
		body, err = io.ReadAll(req.Body)
		_ = req.Body.Close()
		if err != nil {
			return nil, err
		}
		if strings.HasPrefix(req.Header.Get("Content-Type"), "application/x-www-form-urlencoded") && len(body) > 0 {
			form, err := url.ParseQuery(string(body))
			if err != nil {
				return nil, err
			}
			for k, v := range form {
				signed[k] = append(signed[k], v...)
			}
		}
	}
	sig, err := t.key.Sign(wire.RPCStringToSign(req.Method, signed))
	if err != nil {
		return nil, err
	}
	q.Set("Signature", sig)

	r2 := req.Clone(req.Context())
	r2.URL.RawQuery = q.Encode()
	if body != nil {
		r2.Body = io.NopCloser(bytes.NewReader(body))
		r2.ContentLength = int64(len(body))
	}
	return t.next.RoundTrip(r2)
}

var _ credentials.Credential = (*ClientKey)(nil)

// clientKeyOf reports whether cred is a client key.
func clientKeyOf(cred credentials.Credential) (*ClientKey, bool) {
	k, ok := cred.(*ClientKey)
	return k, ok && k != nil
}
