package kmstest

// The dedicated gateway (KMS instance API, "DKMS") as github.com/aliyun/alibabacloud-dkms-gcs-go-sdk speaks it:
// POST / with a protobuf body, authenticated by an RSA signature made with the private key of a client key
// (application access point). Wire facts: the SDK's sdk/client.go (v0.5.1).
//
// Error codes follow the service's "Common error codes" page for the KMS instance API:
//
//	400 InvalidApiVersion     x-kms-apiversion missing or not dkms-gcs-0.2
//	400 InvalidApiName        x-kms-apiname other than GetSecretValue (the only API emulated)
//	400 InvalidParam          Date not RFC 1123; x-kms-signaturemethod missing or not RSA_PKCS1_SHA_256
//	400 MissingParameter      x-kms-acccesskeyid missing
//	400 RequestTimeTooSkewed  Date more than 15 minutes away from the emulator clock
//	400 InvalidParameter      body not a GetSecretValueRequest, SecretName empty
//	400 UnsupportedOperation  anything but POST /
//	401 SignatureNotMatch     bad or missing signature, content-sha256 not the body's
//	404 Unauthorized          client key unknown or revoked ("The AccessKey ID ... does not exist in our records.";
//	                          404 is what the service documents for this code)
//	415 InvalidContentType    Content-Type other than application/x-protobuf
//	413 (empty error)         body over 3 MB
//	404 Forbidden.ResourceNotFound  secret or version not found (the store's answer, as on the shared gateway)
//
// The TLS client certificate the SDK presents is not checked: the Tea runtime caches one transport per
// host:port for the whole process, so a second client key used against the same endpoint is sent with the
// first key's certificate; the signature is what authenticates.

import (
	"crypto"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/aliyun/alibabacloud-dkms-gcs-go-sdk/openapi-util/protobuf/api"
	"google.golang.org/protobuf/proto"
)

const (
	dkmsAPIVersion      = "dkms-gcs-0.2"
	dkmsSignatureMethod = "RSA_PKCS1_SHA_256"
	dkmsContentType     = "application/x-protobuf"
	dkmsMaxBody         = 3 << 20          // the service rejects bodies over 3 MB with 413
	dkmsMaxSkew         = 15 * time.Minute // RequestTimeTooSkewed beyond this
)

// dkmsState holds the client keys the dedicated gateway (and GenerateSessionAccessKey) accept.
type dkmsState struct {
	s     *Server
	mu    sync.Mutex
	keys  map[string]*rsa.PublicKey // KeyId -> public key
	files map[string]ClientKey      // KeyId -> the files it was registered from (no password)
}

func newDKMSState(s *Server) *dkmsState {
	return &dkmsState{s: s, keys: map[string]*rsa.PublicKey{}, files: map[string]ClientKey{}}
}

func (d *dkmsState) addKey(id string, pub *rsa.PublicKey) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.keys[id] = pub
}

// setFiles records the files of a registered client key (for ClientKeys and the state directory).
func (d *dkmsState) setFiles(ck ClientKey) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.files[ck.KeyID] = ClientKey{KeyID: ck.KeyID, File: ck.File, PasswordFile: ck.PasswordFile}
}

func (d *dkmsState) removeKey(id string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	delete(d.keys, id)
	delete(d.files, id)
}

type registeredClientKey struct {
	keyID, publicPEM string
	files            ClientKey
}

// list returns the registered keys sorted by id.
func (d *dkmsState) list() []registeredClientKey {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := make([]registeredClientKey, 0, len(d.keys))
	for id, pub := range d.keys {
		der, err := x509.MarshalPKIXPublicKey(pub)
		if err != nil {
			continue
		}
		out = append(out, registeredClientKey{keyID: id, files: d.files[id],
			publicPEM: string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].keyID < out[j].keyID })
	return out
}

func (d *dkmsState) key(id string) (*rsa.PublicKey, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	k, ok := d.keys[id]
	return k, ok
}

// dkmsHandler serves the dedicated gateway.
func (s *Server) dkmsHandler() http.Handler {
	return http.HandlerFunc(s.serveDKMS)
}

func (s *Server) serveDKMS(w http.ResponseWriter, r *http.Request) {
	fail := func(status int, code, format string, args ...any) {
		writeDKMSFault(w, &apiError{Status: status, Code: code, Message: fmt.Sprintf(format, args...)})
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, dkmsMaxBody+1))
	if err != nil {
		return // the client went away
	}
	if len(body) > dkmsMaxBody {
		writeDKMSFault(w, &apiError{Status: http.StatusRequestEntityTooLarge})
		return
	}
	apiName := r.Header.Get("X-Kms-Apiname")
	var req api.GetSecretValueRequest
	decodeErr := errors.New("not a GetSecretValue request")
	if apiName == "GetSecretValue" {
		decodeErr = proto.Unmarshal(body, &req)
	}
	// Count the call and apply injected faults before authentication, as the shared gateway does.
	if !s.admit(w, "dkms:"+apiName, req.SecretName) {
		return
	}
	if r.Method != http.MethodPost || r.URL.Path != "/" {
		fail(http.StatusBadRequest, "UnsupportedOperation", "Rejected.UnsupportedOperation: %s %s", r.Method, r.URL.Path)
		return
	}
	if v := r.Header.Get("X-Kms-Apiversion"); v != dkmsAPIVersion {
		fail(http.StatusBadRequest, "InvalidApiVersion", "The ApiVersion %q is invalid.", v)
		return
	}
	if apiName != "GetSecretValue" {
		fail(http.StatusBadRequest, "InvalidApiName", "The ApiName %q is invalid.", apiName)
		return
	}
	if ct := r.Header.Get("Content-Type"); ct != dkmsContentType {
		fail(http.StatusUnsupportedMediaType, "InvalidContentType", "Content-Type %q is unsupported.", ct)
		return
	}
	date, err := time.Parse(http.TimeFormat, r.Header.Get("Date")) // RFC 1123 in GMT, as the SDK writes it
	if err != nil {
		fail(http.StatusBadRequest, "InvalidParam", "The Param Date is invalid.")
		return
	}
	if skew := s.now().Sub(date); skew > dkmsMaxSkew || skew < -dkmsMaxSkew {
		fail(http.StatusBadRequest, "RequestTimeTooSkewed", "Request time exceeds server time more than 15 minutes.")
		return
	}
	switch m := r.Header.Get("X-Kms-Signaturemethod"); m {
	case dkmsSignatureMethod:
	case "":
		fail(http.StatusBadRequest, "InvalidParam", "The Param x-kms-signaturemethod is invalid.")
		return
	default:
		fail(http.StatusBadRequest, "InvalidParam", "The Param x-kms-signaturemethod is invalid. message:%q.", m)
		return
	}
	keyID := r.Header.Get("X-Kms-Acccesskeyid") // sic: three c's, as the SDK sends it
	if keyID == "" {
		fail(http.StatusBadRequest, "MissingParameter", "Parameter x-kms-acccesskeyid does not exist in http header or body.")
		return
	}
	pub, ok := s.dkms.key(keyID)
	if !ok {
		fail(http.StatusNotFound, "Unauthorized", "The AccessKey ID %q does not exist in our records.", keyID)
		return
	}
	if msg := verifyDKMSSignature(r, body, pub); msg != "" {
		fail(http.StatusUnauthorized, "SignatureNotMatch", "Signature is not matched. %s", msg)
		return
	}
	if decodeErr != nil {
		fail(http.StatusBadRequest, "InvalidParameter", "The specified parameter is not valid: the body is not a GetSecretValueRequest.")
		return
	}
	if req.SecretName == "" {
		fail(http.StatusBadRequest, "InvalidParameter", "The specified parameter is not valid: SecretName is empty.")
		return
	}
	sv, aerr := s.getSecretValue(req.SecretName, req.VersionStage, req.VersionId, req.FetchExtendedConfig)
	if aerr != nil {
		writeDKMSFault(w, aerr)
		return
	}
	resp := dkmsSecretResponse(sv)
	out, err := proto.Marshal(resp)
	if err != nil {
		fail(http.StatusInternalServerError, "InternalFailure", "Internal Failure.")
		return
	}
	w.Header().Set("Content-Type", dkmsContentType)
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(out)
}

// dkmsSecretResponse renders a stored version the way the KMS instance API returns it: the same fields and
// formats as the shared gateway's JSON, VersionStages a flat list.
func dkmsSecretResponse(sv secretView) *api.GetSecretValueResponse {
	auto := "Disabled"
	if sv.AutomaticRotation {
		auto = "Enabled"
	} else if sv.Type == typeGeneric {
		auto = "Invalid"
	}
	resp := &api.GetSecretValueResponse{
		SecretName:        sv.Name,
		SecretType:        sv.Type,
		SecretData:        sv.Data,
		SecretDataType:    sv.DataType,
		VersionStages:     append([]string(nil), sv.Stages...),
		VersionId:         sv.VersionID,
		CreateTime:        fmtTime(sv.CreateTime),
		RequestId:         newRequestID(),
		LastRotationDate:  fmtTime(sv.LastRotationDate),
		ExtendedConfig:    sv.ExtendedConfig,
		AutomaticRotation: auto,
	}
	if sv.AutomaticRotation {
		resp.RotationInterval = fmtInterval(sv.RotationInterval)
		resp.NextRotationDate = fmtTime(sv.NextRotationDate)
	}
	return resp
}

// verifyDKMSSignature checks the request's Authorization header against the client key. It returns "" when the
// signature is valid, else what is wrong (no key material, no secret value).
//
// String to sign: METHOD \n content-sha256 \n content-type \n date \n, then every x-kms-* header as
// "name:trimmed value\n" sorted by lower-case name, then the path "/". The content-sha256 is recomputed from the
// body: a tampered body fails even when the header was left alone.
func verifyDKMSSignature(r *http.Request, body []byte, pub *rsa.PublicKey) string {
	sum := sha256.Sum256(body)
	bodyHash := strings.ToUpper(hex.EncodeToString(sum[:]))
	if got := r.Header.Get("Content-Sha256"); got != bodyHash {
		return "The content-sha256 header does not match the request body."
	}
	sig, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok {
		return "The Authorization header is not \"Bearer <signature>\"."
	}
	raw, err := base64.StdEncoding.DecodeString(sig)
	if err != nil {
		return "The signature is not base64."
	}
	digest := sha256.Sum256([]byte(dkmsStringToSign(r, bodyHash)))
	if rsa.VerifyPKCS1v15(pub, crypto.SHA256, digest[:], raw) != nil {
		return "The signature was not made with the client key's private key over this request."
	}
	return ""
}

func dkmsStringToSign(r *http.Request, bodyHash string) string {
	var names []string
	for k := range r.Header {
		if lk := strings.ToLower(k); strings.HasPrefix(lk, "x-kms-") {
			names = append(names, lk)
		}
	}
	sort.Strings(names)
	var b strings.Builder
	b.WriteString(r.Method + "\n" + bodyHash + "\n" + r.Header.Get("Content-Type") + "\n" + r.Header.Get("Date") + "\n")
	for _, n := range names {
		b.WriteString(n + ":" + strings.TrimSpace(r.Header.Get(n)) + "\n")
	}
	b.WriteString("/")
	return b.String()
}
