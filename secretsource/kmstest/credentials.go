package kmstest

import (
	"crypto/subtle"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

type accessKey struct {
	id, secret string
	token      string    // security token of a temporary (STS) key; "" for a permanent key
	expires    time.Time // temporary keys only
	revoked    bool
	revokeAt   time.Time // non-zero: revoked from then on (RAM secret rotation)
}

// AddAccessKey registers (or re-enables) a permanent AccessKey pair.
func (s *Server) AddAccessKey(id, secret string) {
	s.mu.Lock()
	s.keys[id] = &accessKey{id: id, secret: secret}
	s.mu.Unlock()
	s.persist()
}

// RevokeAccessKey makes an AccessKey (permanent or temporary) unknown to every endpoint from now on.
func (s *Server) RevokeAccessKey(id string) {
	s.mu.Lock()
	if k := s.keys[id]; k != nil {
		k.revoked = true
	}
	s.mu.Unlock()
	s.persist()
}

var errKeyNotFound = &apiError{Status: http.StatusNotFound, Code: "InvalidAccessKeyId.NotFound",
	Message: "Specified access key is not found."}

// lookupKey returns the key record when it is usable at now (signature not yet checked).
func (s *Server) lookupKey(id string) (*accessKey, *apiError) {
	now := s.now()
	s.mu.Lock()
	defer s.mu.Unlock()
	k := s.keys[id]
	if k == nil || k.revoked || (!k.revokeAt.IsZero() && !now.Before(k.revokeAt)) {
		return nil, errKeyNotFound
	}
	c := *k
	return &c, nil
}

// checkToken validates the security token sent with a request signed by k.
func (s *Server) checkToken(k *accessKey, token string) *apiError {
	switch {
	case k.token == "" && token == "":
		return nil
	case k.token == "":
		return &apiError{Status: http.StatusBadRequest, Code: "InvalidSecurityToken.MismatchWithAccessKey",
			Message: "Specified SecurityToken mismatch with the AccessKey."}
	case token == "":
		return &apiError{Status: http.StatusBadRequest, Code: "MissingSecurityToken",
			Message: "SecurityToken is mandatory for this action."}
	case subtle.ConstantTimeCompare([]byte(k.token), []byte(token)) != 1:
		return &apiError{Status: http.StatusBadRequest, Code: "InvalidSecurityToken.MismatchWithAccessKey",
			Message: "Specified SecurityToken mismatch with the AccessKey."}
	case !s.now().Before(k.expires):
		return &apiError{Status: http.StatusBadRequest, Code: "InvalidSecurityToken.Expired",
			Message: "Specified SecurityToken is expired."}
	}
	return nil
}

type tempCredential struct {
	AccessKeyID, AccessKeySecret, SecurityToken string
	Expiration                                  time.Time
}

// issueTemp creates a temporary key + security token valid for ttl (emulator time).
func (s *Server) issueTemp(ttl time.Duration) tempCredential {
	if ttl <= 0 || ttl > s.cfg.tempTTL {
		ttl = s.cfg.tempTTL
	}
	now := s.now()
	c := tempCredential{
		AccessKeyID:     "STS." + randomAlnum(24, alnum),
		AccessKeySecret: randomAlnum(40, alnum),
		SecurityToken:   "CAIS" + randomToken(96),
		Expiration:      now.Add(ttl).UTC().Truncate(time.Second),
	}
	s.mu.Lock()
	s.keys[c.AccessKeyID] = &accessKey{id: c.AccessKeyID, secret: c.AccessKeySecret, token: c.SecurityToken,
		expires: c.Expiration}
	s.mu.Unlock()
	s.persist()
	return c
}

func (c tempCredential) fields() map[string]string {
	return map[string]string{
		"AccessKeyId":     c.AccessKeyID,
		"AccessKeySecret": c.AccessKeySecret,
		"SecurityToken":   c.SecurityToken,
		"Expiration":      c.Expiration.Format(timeLayout),
	}
}

// stsHandler serves AssumeRole (signed, HMAC-SHA1 RPC or ACS3), AssumeRoleWithOIDC (unsigned) and
// GenerateSessionAccessKey (signed with a client key, see clientkey.go).
func (s *Server) stsHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
		if err != nil {
			s.writeError(w, &apiError{Status: http.StatusBadRequest, Code: "InvalidParameter", Message: "cannot read body"})
			return
		}
		params := requestParams(r, body)
		action := params.Get("Action")
		if action == "" {
			action = r.Header.Get("x-acs-action")
		}
		if !s.admit(w, "sts:"+action, "") {
			return
		}
		var ttl time.Duration
		if d, err := strconv.Atoi(params.Get("DurationSeconds")); err == nil && d > 0 {
			ttl = time.Duration(d) * time.Second
		}
		roleARN := params.Get("RoleArn")
		session := params.Get("RoleSessionName")
		if session == "" {
			session = "kmstest-session"
		}
		switch action {
		case "AssumeRole":
			if _, aerr := s.verify(r, body); aerr != nil {
				s.writeError(w, aerr)
				return
			}
			if aerr := checkRoleARN(roleARN); aerr != nil {
				s.writeError(w, aerr)
				return
			}
			writeJSON(w, http.StatusOK, s.assumeRoleResponse(roleARN, session, s.issueTemp(ttl), nil))
		case "AssumeRoleWithOIDC":
			if params.Get("OIDCProviderArn") != s.OIDCProviderARN() {
				s.writeError(w, &apiError{Status: http.StatusNotFound, Code: "EntityNotExist.OIDCProvider",
					Message: "The specified OIDC provider does not exist."})
				return
			}
			tok := params.Get("OIDCToken")
			if subtle.ConstantTimeCompare([]byte(tok), []byte(s.oidcToken)) != 1 {
				s.writeError(w, &apiError{Status: http.StatusBadRequest, Code: "AuthenticationFail.OIDCToken.Invalid",
					Message: "The OIDC token is invalid."})
				return
			}
			if aerr := checkRoleARN(roleARN); aerr != nil {
				s.writeError(w, aerr)
				return
			}
			info := map[string]any{"Subject": "system:serviceaccount:kmstest:app", "Issuer": "https://oidc.kmstest.local",
				"ClientIds": "sts.aliyuncs.com"}
			writeJSON(w, http.StatusOK, s.assumeRoleResponse(roleARN, session, s.issueTemp(ttl), info))
		case "GenerateSessionAccessKey":
			s.generateSessionAccessKey(w, r, body) // clientkey.go: client key -> session AccessKey
		default:
			s.writeError(w, &apiError{Status: http.StatusNotFound, Code: "InvalidAction.NotFound",
				Message: "Specified api is not found, please check your url and method."})
		}
	})
}

func checkRoleARN(arn string) *apiError {
	if arn == "" {
		return &apiError{Status: http.StatusBadRequest, Code: "MissingRoleArn", Message: "RoleArn is mandatory for this action."}
	}
	if !strings.HasPrefix(arn, "acs:ram::") || !strings.Contains(arn, ":role/") {
		return &apiError{Status: http.StatusBadRequest, Code: "InvalidParameter.RoleArn",
			Message: "The parameter RoleArn is wrongly formed."}
	}
	return nil
}

func (s *Server) assumeRoleResponse(roleARN, session string, c tempCredential, oidc map[string]any) map[string]any {
	role := roleARN[strings.LastIndex(roleARN, "/")+1:]
	resp := map[string]any{
		"RequestId": newRequestID(),
		"AssumedRoleUser": map[string]string{
			"Arn":           "acs:ram::1234567890123456:assumed-role/" + role + "/" + session,
			"AssumedRoleId": "3" + randomAlnum(17, "0123456789") + ":" + session,
		},
		"Credentials": c.fields(),
	}
	if oidc != nil {
		resp["OIDCTokenInfo"] = oidc
	}
	return resp
}

// metadataHandler is the ECS instance metadata service (IMDSv2 token optional, as on ECS unless hardened) and
// the credentials URI. Absolute-form requests (a client using this server as its HTTP proxy) are served when they
// aim at 100.100.100.200 or this server.
func (s *Server) metadataHandler() http.Handler {
	const credPrefix = "/latest/meta-data/ram/security-credentials/"
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, adminPrefix) {
			s.serveAdmin(w, r) // refuses absolute-form (proxied) requests
			return
		}
		if r.Method == http.MethodConnect || (r.URL.IsAbs() && r.URL.Hostname() != "100.100.100.200" &&
			r.URL.Host != lnAddr(s.metaLn)) {
			http.Error(w, "kmstest: this proxy only serves http://100.100.100.200", http.StatusBadGateway)
			return
		}
		path := r.URL.Path
		switch {
		case path == "/latest/api/token":
			if !s.admit(w, "metadata:Token", "") {
				return
			}
			if r.Method != http.MethodPut {
				http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
				return
			}
			ttl := 21600
			if v, err := strconv.Atoi(r.Header.Get("X-aliyun-ecs-metadata-token-ttl-seconds")); err == nil && v > 0 {
				ttl = v
			}
			tok := randomToken(32)
			exp := s.now().Add(time.Duration(ttl) * time.Second)
			s.mu.Lock()
			s.imdsToken[tok] = exp
			s.mu.Unlock()
			_, _ = io.WriteString(w, tok)
		case path == credPrefix || strings.HasPrefix(path, credPrefix):
			if !s.admit(w, "metadata:Credentials", "") {
				return
			}
			if tok := r.Header.Get("X-aliyun-ecs-metadata-token"); tok != "" {
				now := s.now()
				s.mu.Lock()
				exp, ok := s.imdsToken[tok]
				s.mu.Unlock()
				if !ok || !now.Before(exp) {
					http.Error(w, "invalid metadata token", http.StatusUnauthorized)
					return
				}
			}
			role := strings.TrimPrefix(path, credPrefix)
			if role == "" {
				_, _ = io.WriteString(w, s.cfg.metadataRole)
				return
			}
			if role != s.cfg.metadataRole {
				http.Error(w, "not found", http.StatusNotFound)
				return
			}
			c := s.issueTemp(0)
			resp := c.fields()
			resp["Code"] = "Success"
			resp["LastUpdated"] = s.now().UTC().Format(timeLayout)
			writeJSON(w, http.StatusOK, resp)
		case path == "/credentials":
			if !s.admit(w, "credentialsURI", "") {
				return
			}
			resp := s.issueTemp(0).fields()
			resp["Code"] = "Success"
			writeJSON(w, http.StatusOK, resp)
		default:
			http.NotFound(w, r)
		}
	})
}

// requestParams merges the query and an urlencoded body (body values win, as the service reads them).
func requestParams(r *http.Request, body []byte) url.Values {
	all := url.Values{}
	for k, v := range r.URL.Query() {
		all[k] = v
	}
	if ct := r.Header.Get("Content-Type"); len(body) > 0 && (ct == "" || strings.HasPrefix(ct, "application/x-www-form-urlencoded")) {
		if form, err := url.ParseQuery(string(body)); err == nil {
			for k, v := range form {
				all[k] = v
			}
		}
	}
	return all
}
