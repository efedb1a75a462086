package kmstest

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"strings"
	"time"

	"github.com/aliyun/alibabacloud-dkms-gcs-go-sdk/openapi-util/protobuf/api"
	"google.golang.org/protobuf/proto"
)

// Fault is an injected failure. The first matching fault (in injection order) applies to a request.
type Fault struct {
	// Action is the API action it hits ("GetSecretValue", "RotateSecret", ...; "dkms:GetSecretValue" for the
	// dedicated gateway; "sts:AssumeRole", "sts:AssumeRoleWithOIDC", "metadata:Credentials", "credentialsURI"
	// for the credential endpoints). "*" or "" hits every action.
	Action string
	// Secret limits the fault to one secret name; "" hits any.
	Secret string
	// Code is the service error code to answer with, e.g. "Rejected.Throttling", "ServiceUnavailableTemporary",
	// "InternalFailure". Empty with Drop or Latency only.
	Code string
	// HTTPStatus of the error; 0 derives it from Code (Throttling 400, ServiceUnavailable 503, Internal 500,
	// *NotFound 404, Forbidden* 403, otherwise 400).
	HTTPStatus int
	// Times is how many requests the fault hits; 0 means until ClearFaults.
	Times int
	// Latency delays the request before it is answered (or failed, or dropped).
	Latency time.Duration
	// Drop closes the connection without an answer.
	Drop bool
	// Message overrides the error message.
	Message string
}

type faultEntry struct {
	f    Fault
	left int // remaining hits when f.Times > 0
}

type callKey struct{ action, secret string }

// InjectFault adds a fault. Faults are matched in the order injected.
func (s *Server) InjectFault(f Fault) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults = append(s.faults, &faultEntry{f: f, left: f.Times})
}

// ClearFaults removes every injected fault.
func (s *Server) ClearFaults() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults = nil
}

// Calls counts the requests received for an action and secret since start or ResetCalls, the faulted and
// rejected ones included. action "" counts every action, secret "" every secret (and requests naming none).
func (s *Server) Calls(action, secret string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for k, c := range s.calls {
		if (action == "" || k.action == action) && (secret == "" || k.secret == secret) {
			n += c
		}
	}
	return n
}

// ResetCalls sets every call counter to zero.
func (s *Server) ResetCalls() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls = map[callKey]int{}
}

// admit counts the call and applies the first matching injected fault. It returns false when it has already
// answered the request (error written, or connection dropped); see the comment at the top of server.go.
func (s *Server) admit(w http.ResponseWriter, action, secret string) (proceed bool) {
	s.mu.Lock()
	s.calls[callKey{action, secret}]++
	var hit *Fault
	for i, fe := range s.faults {
		f := fe.f
		if f.Action != "" && f.Action != "*" && f.Action != action {
			continue
		}
		if f.Secret != "" && f.Secret != secret {
			continue
		}
		if f.Times > 0 {
			fe.left--
			if fe.left <= 0 {
				s.faults = append(s.faults[:i:i], s.faults[i+1:]...)
			}
		}
		hit = &f
		break
	}
	s.mu.Unlock()
	noteAction(w, action, "")
	if hit == nil {
		return true
	}
	if hit.Latency > 0 {
		t := time.NewTimer(hit.Latency)
		select {
		case <-t.C:
		case <-s.closing:
			t.Stop()
		}
	}
	if hit.Drop {
		if hj, ok := w.(http.Hijacker); ok {
			if conn, _, err := hj.Hijack(); err == nil {
				_ = conn.Close()
				noteAction(w, "", "fault:drop")
				return false
			}
		}
		panic(http.ErrAbortHandler) // net/http closes the connection without an answer
	}
	if hit.Code == "" {
		return true
	}
	e := &apiError{Status: hit.HTTPStatus, Code: hit.Code, Message: hit.Message}
	if e.Status == 0 {
		e.Status = statusForCode(hit.Code)
	}
	if e.Message == "" {
		e.Message = "injected fault: " + hit.Code
	}
	if strings.HasPrefix(action, "dkms:") {
		writeDKMSFault(w, e)
	} else {
		s.writeError(w, e)
	}
	return false
}

func statusForCode(code string) int {
	switch {
	case strings.Contains(code, "Throttling"):
		return http.StatusBadRequest
	case strings.HasPrefix(code, "ServiceUnavailable"):
		return http.StatusServiceUnavailable
	case strings.HasPrefix(code, "Internal"):
		return http.StatusInternalServerError
	case strings.HasSuffix(code, "NotFound"):
		return http.StatusNotFound
	case strings.HasPrefix(code, "Forbidden"):
		return http.StatusForbidden
	}
	return http.StatusBadRequest
}

// apiError is an error answer of the service: HTTP status, error code and message.
type apiError struct {
	Status        int
	Code, Message string
}

func (e *apiError) Error() string { return e.Code + ": " + e.Message }

func newRequestID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	h := hex.EncodeToString(b[:])
	return strings.ToUpper(h[:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:])
}

// writeError answers with the service's JSON error body (every field a string, as the SDKs require).
func (s *Server) writeError(w http.ResponseWriter, e *apiError) {
	noteAction(w, "", e.Code)
	rid := newRequestID()
	body := map[string]string{
		"RequestId": rid,
		"HostId":    "kms.kmstest.local",
		"Code":      e.Code,
		"Message":   e.Message,
		"Recommend": "https://api.aliyun.com/troubleshoot?q=" + e.Code + "&product=Kms&requestId=" + rid,
	}
	writeJSON(w, e.Status, body)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		http.Error(w, "kmstest: encode response", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json;charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

// writeDKMSFault answers an injected fault on the dedicated gateway with its protobuf error.
func writeDKMSFault(w http.ResponseWriter, e *apiError) {
	noteAction(w, "", e.Code)
	b, err := proto.Marshal(&api.Error{StatusCode: int32(e.Status), ErrorCode: e.Code, ErrorMessage: e.Message,
		RequestId: newRequestID()})
	if err != nil {
		http.Error(w, "kmstest: encode error", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/x-protobuf")
	w.WriteHeader(e.Status)
	_, _ = w.Write(b)
}
