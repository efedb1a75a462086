package kmstest

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	pkcs12 "software.sslmate.com/src/go-pkcs12"
)

// ClientKey is a client key of a KMS application access point (AAP): what the dedicated gateway (DKMS) SDK and
// Alibaba's secret client (credentials type client_key) load. File is the JSON the KMS console hands out,
// {"KeyId":"KAAP.…","PrivateKeyData":"<base64 PKCS#12>"}; PasswordFile holds Password, the PKCS#12 password.
// String and GoString redact the password, so a ClientKey can be logged.
type ClientKey struct {
	KeyID        string // "KAAP.<uuid>", sent by the SDK as x-kms-acccesskeyid
	File         string // path of the client key JSON file
	PasswordFile string // path of a file holding Password (no trailing newline)
	Password     string // password of the PKCS#12 in File
}

// String names the key and its files, never the password.
func (k ClientKey) String() string {
	return fmt.Sprintf("ClientKey{KeyID:%s File:%s PasswordFile:%s Password:[redacted]}", k.KeyID, k.File, k.PasswordFile)
}

// GoString is String, so %#v does not print the password either.
func (k ClientKey) GoString() string { return k.String() }

// clientKeyBits is the RSA modulus size of generated client keys (the KMS console issues 2048-bit keys).
const clientKeyBits = 2048

// clientKeyFile is the JSON layout of a client key file, as the KMS console writes it.
type clientKeyFile struct {
	KeyID          string `json:"KeyId"`
	PrivateKeyData string `json:"PrivateKeyData"`
}

// WriteClientKey generates a client key (RSA 2048 key, self-signed certificate, PKCS#12 encrypted with a random
// password the way the SDKs decode it) and writes clientKey_<KeyID>.json and clientKey_<KeyID>_Password.txt into
// dir with mode 0600. The key is not registered with any server: pass the result to Server.RegisterClientKey
// (for example when the emulator CLI reuses a key kept in its state directory). Server.NewClientKey does both.
func WriteClientKey(dir string) (ClientKey, error) {
	keyID := "KAAP." + newUUID()
	priv, err := rsa.GenerateKey(rand.Reader, clientKeyBits)
	if err != nil {
		return ClientKey{}, fmt.Errorf("kmstest: client key %s: generate RSA key: %w", keyID, err)
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{CommonName: keyID, Organization: []string{"kmsdb emulator"}},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(10 * 365 * 24 * time.Hour), // wall clock: Advance must not expire it
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
		BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &priv.PublicKey, priv)
	if err != nil {
		return ClientKey{}, fmt.Errorf("kmstest: client key %s: certificate: %w", keyID, err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return ClientKey{}, fmt.Errorf("kmstest: client key %s: certificate: %w", keyID, err)
	}
	password := randomHex(16)
	// LegacyDES: golang.org/x/crypto/pkcs12, which both SDKs decode with, cannot read the Modern (AES/PBKDF2)
	// encodings. The order of the bags (certificate, then key) is what the DKMS SDK expects from ToPEM.
	p12, err := pkcs12.LegacyDES.Encode(priv, cert, nil, password)
	if err != nil {
		return ClientKey{}, fmt.Errorf("kmstest: client key %s: PKCS#12: %w", keyID, err)
	}
	content, err := json.Marshal(clientKeyFile{KeyID: keyID, PrivateKeyData: base64.StdEncoding.EncodeToString(p12)})
	if err != nil {
		return ClientKey{}, fmt.Errorf("kmstest: client key %s: %w", keyID, err)
	}
	ck := ClientKey{
		KeyID:        keyID,
		File:         filepath.Join(dir, "clientKey_"+keyID+".json"),
		PasswordFile: filepath.Join(dir, "clientKey_"+keyID+"_Password.txt"),
		Password:     password,
	}
	if err := os.WriteFile(ck.File, content, 0o600); err != nil {
		return ClientKey{}, fmt.Errorf("kmstest: client key %s: write key file: %w", keyID, err)
	}
	if err := os.WriteFile(ck.PasswordFile, []byte(password), 0o600); err != nil {
		return ClientKey{}, fmt.Errorf("kmstest: client key %s: write password file: %w", keyID, err)
	}
	return ck, nil
}

// PublicKey loads the client key file and its password (Password if set, else the content of PasswordFile
// with surrounding white space trimmed, as Alibaba's secret client reads it) and returns the key id recorded in
// the file and the public key. Errors name the file and what is wrong, never the password.
func (ck ClientKey) PublicKey() (keyID string, pub *rsa.PublicKey, err error) {
	content, err := os.ReadFile(ck.File)
	if err != nil {
		return "", nil, fmt.Errorf("kmstest: client key file: %w", err)
	}
	var f clientKeyFile
	if err := json.Unmarshal(content, &f); err != nil {
		return "", nil, fmt.Errorf("kmstest: client key file %s: not JSON: %w", ck.File, err)
	}
	if f.KeyID == "" || f.PrivateKeyData == "" {
		return "", nil, fmt.Errorf("kmstest: client key file %s: KeyId and PrivateKeyData are required", ck.File)
	}
	if ck.KeyID != "" && ck.KeyID != f.KeyID {
		return "", nil, fmt.Errorf("kmstest: client key file %s holds key %s, not %s", ck.File, f.KeyID, ck.KeyID)
	}
	password := ck.Password
	if password == "" && ck.PasswordFile != "" {
		b, err := os.ReadFile(ck.PasswordFile)
		if err != nil {
			return "", nil, fmt.Errorf("kmstest: client key %s: password file: %w", f.KeyID, err)
		}
		password = strings.TrimSpace(string(b))
	}
	p12, err := base64.StdEncoding.DecodeString(f.PrivateKeyData)
	if err != nil {
		return "", nil, fmt.Errorf("kmstest: client key file %s: PrivateKeyData is not base64", ck.File)
	}
	key, cert, err := pkcs12.Decode(p12, password)
	if err != nil {
		// The error of Decode does not contain the password; it says "decryption password incorrect" etc.
		return "", nil, fmt.Errorf("kmstest: client key file %s: PrivateKeyData: %w", ck.File, err)
	}
	priv, ok := key.(*rsa.PrivateKey)
	if !ok {
		return "", nil, fmt.Errorf("kmstest: client key file %s: the private key is %T, not RSA", ck.File, key)
	}
	if certPub, ok := cert.PublicKey.(*rsa.PublicKey); !ok || !certPub.Equal(&priv.PublicKey) {
		return "", nil, fmt.Errorf("kmstest: client key file %s: the certificate does not match the private key", ck.File)
	}
	return f.KeyID, &priv.PublicKey, nil
}

// NewClientKey generates a client key in the server's temporary directory (removed on Close; the state
// directory with WithStateDir, kept) and registers its
// public key with the dedicated gateway and the key-pair session endpoint.
func (s *Server) NewClientKey() (ClientKey, error) {
	ck, err := WriteClientKey(s.dir)
	if err != nil {
		return ClientKey{}, err
	}
	if err := s.RegisterClientKey(ck); err != nil {
		return ClientKey{}, err
	}
	return ck, nil
}

// RegisterClientKey reads a client key written by WriteClientKey (or by the KMS console) and makes the server
// accept requests signed with it. Registering a key id again replaces its public key.
func (s *Server) RegisterClientKey(ck ClientKey) error {
	keyID, pub, err := ck.PublicKey()
	if err != nil {
		return err
	}
	s.dkms.addKey(keyID, pub)
	s.dkms.setFiles(ClientKey{KeyID: keyID, File: ck.File, PasswordFile: ck.PasswordFile})
	s.persist()
	return nil
}

// RevokeClientKey makes the server reject the client key from now on, as the service does once the key is
// removed from its application access point: the dedicated gateway answers 404 Unauthorized. Unknown ids are
// ignored. Session AccessKeys already issued for the key keep working until they expire.
func (s *Server) RevokeClientKey(keyID string) {
	s.dkms.removeKey(keyID)
	s.persist()
}

// clientKeyPublic returns the registered public key of a client key.
func (s *Server) clientKeyPublic(keyID string) (*rsa.PublicKey, bool) {
	return s.dkms.key(keyID)
}

func newUUID() string {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err) // crypto/rand never fails on supported platforms
	}
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b[:])
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
}

func randomHex(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err) // crypto/rand never fails on supported platforms
	}
	return hex.EncodeToString(b)
}

// Key-pair (client key) credentials on the RPC endpoints.
//
// What Alibaba's secret client does with credentials type client_key (aliyun-secretsmanager-client-go v1.1.5 on
// alibaba-cloud-sdk-go v1.63.107, the version our module selects): it loads the client key into an
// RsaKeyPairCredential and calls the shared gateway with DoActionWithSigner(req, resp, ClientKeySigner). In
// v1.63.107 DoActionWithSigner ignores the signer: the client's credentials provider, RSAKeyPairCredentialsProvider,
// first exchanges the key pair for a session AccessKey with
//
//	POST https://sts.ap-northeast-1.aliyuncs.com/?Action=GenerateSessionAccessKey&Version=2015-04-01&Format=JSON
//	     &PublicKeyId=<KeyId>&SignatureMethod=SHA256withRSA&SignatureType=PRIVATEKEY&SignatureVersion=1.0
//	     &Timestamp=…&SignatureNonce=…&Signature=<base64 RSA PKCS#1 v1.5 SHA-256>
//	body DurationSeconds=3600 (form)
//
// (host fixed, system roots, http.DefaultTransport's proxy settings), answered with
// {"RequestId":…,"SessionAccessKey":{"SessionAccessKeyId":…,"SessionAccessKeySecret":…,"Expiration":"…Z"}},
// and then signs the KMS call with HMAC-SHA1 and that session key, without a security token. credentials-go's
// rsa_key_pair provider does the same with GET to its STSEndpoint (default sts.aliyuncs.com), the key id in
// AccessKeyId instead of PublicKeyId and DurationSeconds in the query, over an &http.Transport{} of its own (system
// roots; HTTPS_PROXY ignored, its Config.Proxy used). Server.ProxyURL tunnels both STS hosts to the emulator (the
// leaf certificate names them). A core SDK that honours
// DoActionWithSigner's signer (the secret client's go.mod names v1.61.1800; its source is not in our module
// cache, so this shape is inferred from ClientKeySigner: SignatureMethod SHA256withRSA, SignatureType PRIVATEKEY,
// AccessKeyId = the client key id) would sign the KMS request itself with the same RPC string to sign.
// verifyRPCKeyPair checks all three shapes.

// sessionKeyMinDuration and sessionKeyMaxDuration bound GenerateSessionAccessKey's DurationSeconds.
const (
	sessionKeyMinDuration = 900
	sessionKeyMaxDuration = 3600
)

// verifyRPCKeyPair authenticates an RPC-style request (query and form parameters) signed with a client key:
// SignatureMethod SHA256withRSA, SignatureType PRIVATEKEY, SignatureVersion 1.0, the key id in PublicKeyId or
// AccessKeyId, Signature = base64(RSA PKCS#1 v1.5 over SHA-256 of METHOD&%2F&percentEncode(canonical query)),
// the same string to sign as HMAC-SHA1 RPC. It checks the key is registered, the Timestamp within 15 minutes and
// the SignatureNonce unused. It returns the key id and every parameter except Signature.
func (s *Server) verifyRPCKeyPair(r *http.Request, body []byte) (keyID string, params url.Values, aerr *apiError) {
	all := requestParams(r, body)
	sig := all.Get("Signature")
	all.Del("Signature")
	keyID = all.Get("PublicKeyId")
	if keyID == "" {
		keyID = all.Get("AccessKeyId")
	}
	if keyID == "" {
		return "", all, &apiError{Status: http.StatusBadRequest, Code: "MissingPublicKeyId",
			Message: "PublicKeyId is mandatory for this action."}
	}
	if sig == "" {
		return keyID, all, &apiError{Status: http.StatusBadRequest, Code: "MissingSignature",
			Message: "Signature is mandatory for this action."}
	}
	if m, typ, ver := all.Get("SignatureMethod"), all.Get("SignatureType"), all.Get("SignatureVersion"); m != "SHA256withRSA" || typ != "PRIVATEKEY" || ver != "1.0" {
		return keyID, all, &apiError{Status: http.StatusBadRequest, Code: "InvalidSignatureMethod",
			Message: "Specified signature method is not supported: " + m + " " + typ + " " + ver + "."}
	}
	pub, ok := s.clientKeyPublic(keyID)
	if !ok {
		return keyID, all, errKeyNotFound
	}
	if aerr := s.checkTimestamp(all.Get("Timestamp"), "Timestamp"); aerr != nil {
		return keyID, all, aerr
	}
	sts := r.Method + "&%2F&" + url.QueryEscape(rpcCanonicalQuery(all))
	raw, err := base64.StdEncoding.DecodeString(sig)
	digest := sha256.Sum256([]byte(sts))
	if err != nil || rsa.VerifyPKCS1v15(pub, crypto.SHA256, digest[:], raw) != nil {
		return keyID, all, errSignature(sts)
	}
	return keyID, all, s.useNonce(keyID, all.Get("SignatureNonce"), "SignatureNonce")
}

// rpcCanonicalQuery is the sorted, RFC 3986 encoded query the RPC signatures cover.
func rpcCanonicalQuery(p url.Values) string {
	enc := p.Encode()
	enc = strings.ReplaceAll(enc, "+", "%20")
	enc = strings.ReplaceAll(enc, "*", "%2A")
	return strings.ReplaceAll(enc, "%7E", "~")
}

// generateSessionAccessKey serves STS GenerateSessionAccessKey: it exchanges a request signed with a registered
// client key for a session AccessKey (no security token) that the gateways accept until it expires. The STS
// handler routes Action=GenerateSessionAccessKey here after reading the body and calling
// admit(w, "sts:GenerateSessionAccessKey", ""). DurationSeconds is 900..3600 (default 3600), capped by
// WithTempCredentialTTL.
func (s *Server) generateSessionAccessKey(w http.ResponseWriter, r *http.Request, body []byte) {
	_, params, aerr := s.verifyRPCKeyPair(r, body)
	if aerr != nil {
		s.writeError(w, aerr)
		return
	}
	secs := sessionKeyMaxDuration
	if v := params.Get("DurationSeconds"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < sessionKeyMinDuration || n > sessionKeyMaxDuration {
			s.writeError(w, &apiError{Status: http.StatusBadRequest, Code: "InvalidParameter.DurationSeconds",
				Message: "The parameter DurationSeconds must be between 900 and 3600."})
			return
		}
		secs = n
	}
	ttl := time.Duration(secs) * time.Second
	if ttl > s.cfg.tempTTL {
		ttl = s.cfg.tempTTL
	}
	id := "TMPSK." + randomAlnum(24, alnum)
	secret := randomAlnum(30, alnum)
	exp := s.now().Add(ttl).UTC().Truncate(time.Second)
	s.mu.Lock()
	// revokeAt makes the key unknown from its expiry on; it has no security token.
	s.keys[id] = &accessKey{id: id, secret: secret, expires: exp, revokeAt: exp}
	s.mu.Unlock()
	s.persist()
	writeJSON(w, http.StatusOK, map[string]any{
		"RequestId": newRequestID(),
		"SessionAccessKey": map[string]string{
			"SessionAccessKeyId":     id,
			"SessionAccessKeySecret": secret,
			"Expiration":             exp.Format(timeLayout),
		},
	})
}
