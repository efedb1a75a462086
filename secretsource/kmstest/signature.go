package kmstest

import (
	"crypto/hmac"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"time"
)

// Request signing windows, as the service enforces them. They are measured with the wall clock (Server.wallClock),
// not the emulator clock: the SDKs sign with the machine's time, and a test that Advances the emulator by hours
// to expire a token must still get InvalidSecurityToken.Expired, not InvalidTimeStamp.Expired.
const (
	maxClockSkew = 15 * time.Minute
	nonceTTL     = 2 * maxClockSkew
)

// percentEncode is the RFC 3986 encoding both signature schemes use.
func percentEncode(s string) string {
	s = url.QueryEscape(s)
	s = strings.ReplaceAll(s, "+", "%20")
	s = strings.ReplaceAll(s, "*", "%2A")
	s = strings.ReplaceAll(s, "%7E", "~")
	return s
}

// verified is an authenticated request.
type verified struct {
	keyID  string
	params url.Values // query + form (RPC) or query + form + x-acs-action/version headers (ACS3)
	scheme string     // "HMAC-SHA1" or "ACS3-HMAC-SHA256"
}

// verify authenticates a request signed with HMAC-SHA1 RPC v1 or ACS3-HMAC-SHA256: key known and not revoked,
// timestamp within 15 minutes, signature, security token, nonce not seen before.
func (s *Server) verify(r *http.Request, body []byte) (verified, *apiError) {
	if auth := r.Header.Get("Authorization"); strings.HasPrefix(auth, "ACS3-") {
		return s.verifyACS3(r, body, auth)
	}
	return s.verifyRPC(r, body)
}

func (s *Server) verifyRPC(r *http.Request, body []byte) (verified, *apiError) {
	all := requestParams(r, body)
	if all.Get("SignatureMethod") == "SHA256withRSA" && all.Get("SignatureType") == "PRIVATEKEY" {
		// Older core SDKs sign with a client key (RsaKeyPairCredential + ClientKeySigner); see clientkey.go.
		keyID, params, aerr := s.verifyRPCKeyPair(r, body)
		return verified{keyID: keyID, params: params, scheme: "SHA256withRSA"}, aerr
	}
	sig := all.Get("Signature")
	all.Del("Signature")
	v := verified{keyID: all.Get("AccessKeyId"), params: all, scheme: "HMAC-SHA1"}
	if v.keyID == "" {
		return v, &apiError{Status: http.StatusBadRequest, Code: "MissingAccessKeyId",
			Message: "AccessKeyId is mandatory for this action."}
	}
	if sig == "" {
		return v, &apiError{Status: http.StatusBadRequest, Code: "MissingSignature",
			Message: "Signature is mandatory for this action."}
	}
	key, aerr := s.lookupKey(v.keyID)
	if aerr != nil {
		return v, aerr
	}
	if m, ver := all.Get("SignatureMethod"), all.Get("SignatureVersion"); m != "HMAC-SHA1" || ver != "1.0" {
		return v, &apiError{Status: http.StatusBadRequest, Code: "InvalidSignatureMethod",
			Message: "Specified signature method is not supported: " + m + " " + ver + "."}
	}
	if aerr := s.checkTimestamp(all.Get("Timestamp"), "Timestamp"); aerr != nil {
		return v, aerr
	}
	enc := all.Encode()
	enc = strings.ReplaceAll(enc, "+", "%20")
	enc = strings.ReplaceAll(enc, "*", "%2A")
	enc = strings.ReplaceAll(enc, "%7E", "~")
	sts := r.Method + "&%2F&" + url.QueryEscape(enc)
	m := hmac.New(sha1.New, []byte(key.secret+"&"))
	m.Write([]byte(sts))
	want := base64.StdEncoding.EncodeToString(m.Sum(nil))
	if !hmac.Equal([]byte(want), []byte(sig)) {
		return v, errSignature(sts)
	}
	if aerr := s.checkToken(key, all.Get("SecurityToken")); aerr != nil {
		return v, aerr
	}
	return v, s.useNonce(v.keyID, all.Get("SignatureNonce"), "SignatureNonce")
}

func (s *Server) verifyACS3(r *http.Request, body []byte, auth string) (verified, *apiError) {
	params := requestParams(r, body)
	if a := r.Header.Get("x-acs-action"); a != "" {
		params.Set("Action", a)
	}
	if ver := r.Header.Get("x-acs-version"); ver != "" {
		params.Set("Version", ver)
	}
	v := verified{params: params, scheme: "ACS3-HMAC-SHA256"}
	alg, rest, _ := strings.Cut(auth, " ")
	if alg != "ACS3-HMAC-SHA256" {
		return v, &apiError{Status: http.StatusBadRequest, Code: "InvalidSignatureMethod",
			Message: "Specified signature method is not supported: " + alg + "."}
	}
	fields := map[string]string{}
	for _, kv := range strings.Split(rest, ",") {
		k, val, _ := strings.Cut(strings.TrimSpace(kv), "=")
		fields[k] = val
	}
	v.keyID = fields["Credential"]
	if v.keyID == "" || fields["Signature"] == "" || fields["SignedHeaders"] == "" {
		return v, &apiError{Status: http.StatusBadRequest, Code: "IncompleteSignature",
			Message: "The Authorization header needs Credential, SignedHeaders and Signature."}
	}
	key, aerr := s.lookupKey(v.keyID)
	if aerr != nil {
		return v, aerr
	}
	if aerr := s.checkTimestamp(r.Header.Get("x-acs-date"), "x-acs-date"); aerr != nil {
		return v, aerr
	}
	q := r.URL.Query()
	keys := make([]string, 0, len(q))
	for k := range q {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	cq := make([]string, 0, len(keys))
	for _, k := range keys {
		cq = append(cq, percentEncode(k)+"="+percentEncode(q.Get(k)))
	}
	signed := fields["SignedHeaders"]
	var ch strings.Builder
	for _, h := range strings.Split(signed, ";") {
		var vals []string
		if h == "host" {
			vals = []string{r.Host}
		} else {
			for _, hv := range r.Header.Values(h) {
				vals = append(vals, strings.TrimSpace(hv))
			}
		}
		sort.Strings(vals)
		ch.WriteString(h + ":" + strings.Join(vals, ",") + "\n")
	}
	// The payload hash is that of the body received, so a body changed in transit breaks the signature.
	sum := sha256.Sum256(body)
	payload := hex.EncodeToString(sum[:])
	path := r.URL.EscapedPath()
	if path == "" {
		path = "/"
	}
	canon := r.Method + "\n" + path + "\n" + strings.Join(cq, "&") + "\n" + ch.String() + "\n" + signed + "\n" + payload
	ch256 := sha256.Sum256([]byte(canon))
	sts := alg + "\n" + hex.EncodeToString(ch256[:])
	m := hmac.New(sha256.New, []byte(key.secret))
	m.Write([]byte(sts))
	if !hmac.Equal([]byte(hex.EncodeToString(m.Sum(nil))), []byte(strings.ToLower(fields["Signature"]))) {
		return v, errSignature(sts)
	}
	if aerr := s.checkToken(key, r.Header.Get("x-acs-security-token")); aerr != nil {
		return v, aerr
	}
	return v, s.useNonce(v.keyID, r.Header.Get("x-acs-signature-nonce"), "x-acs-signature-nonce")
}

func errSignature(sts string) *apiError {
	return &apiError{Status: http.StatusBadRequest, Code: "SignatureDoesNotMatch",
		Message: "Specified signature is not matched with our calculation. server string to sign is:" + sts}
}

func (s *Server) checkTimestamp(v, name string) *apiError {
	if v == "" {
		return &apiError{Status: http.StatusBadRequest, Code: "MissingParameter",
			Message: "The input parameter " + name + " that is mandatory for processing this request is not supplied."}
	}
	ts, err := time.Parse(timeLayout, v)
	if err != nil {
		return &apiError{Status: http.StatusBadRequest, Code: "InvalidTimeStamp.Format",
			Message: "Specified time stamp or date value is not well formatted."}
	}
	d := s.wallClock().Sub(ts)
	if d > maxClockSkew || d < -maxClockSkew {
		return &apiError{Status: http.StatusBadRequest, Code: "InvalidTimeStamp.Expired",
			Message: "Specified time stamp or date value is expired."}
	}
	return nil
}

// useNonce records a nonce; a nonce seen within the replay window is rejected.
func (s *Server) useNonce(keyID, nonce, name string) *apiError {
	if nonce == "" {
		return &apiError{Status: http.StatusBadRequest, Code: "MissingParameter",
			Message: "The input parameter " + name + " that is mandatory for processing this request is not supplied."}
	}
	now := s.wallClock()
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.nonces) > max(4096, s.nonceSweepAt) { // amortized: sweep when the map doubled since the last sweep
		for k, t := range s.nonces {
			if now.Sub(t) > nonceTTL {
				delete(s.nonces, k)
			}
		}
		s.nonceSweepAt = 2 * len(s.nonces)
	}
	k := keyID + "\x00" + nonce
	if t, ok := s.nonces[k]; ok && now.Sub(t) <= nonceTTL {
		return &apiError{Status: http.StatusBadRequest, Code: "SignatureNonceUsed",
			Message: "Specified signature nonce was used already."}
	}
	s.nonces[k] = now
	return nil
}
