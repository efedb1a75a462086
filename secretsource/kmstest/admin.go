package kmstest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"time"
)

// The admin endpoint: the test controls over plain HTTP, for shell scripts and programs in other languages.
// It is served only by the metadata listener, under /_kmstest/, and only to requests made to that listener
// directly: the gateways (whose every request must be signed) never route it, and the proxy refuses it.
// It never returns a secret value or a key secret.

// adminPrefix is the path of the admin endpoint on the metadata listener.
const adminPrefix = "/_kmstest/"

// AdminURL is the admin endpoint, "http://127.0.0.1:PORT/_kmstest/" on the metadata listener. Answers are JSON;
// errors are {"error": "..."} with a 4xx status.
//
//	POST   rotate?secret=NAME          rotate as RotateSecret does -> {"secret","versionId"}
//	POST   versions?secret=NAME        body {"versionId","value","stages"}: AddVersion, a version with a chosen value
//	                                   for a secret of any type (stages default to ["ACSCurrent"])
//	                                   -> {"secret","versionId"}
//	POST   faults                      body: a fault as JSON, e.g. {"action":"GetSecretValue","secret":"db",
//	                                   "code":"Rejected.Throttling","times":2}; also "httpStatus", "latency"
//	                                   (a Go duration such as "250ms"), "drop", "message"
//	DELETE faults                      clear every fault
//	GET    calls?action=A&secret=S     -> {"action","secret","calls"}; both optional (all)
//	DELETE calls                       reset the counters
//	POST   advance?by=DURATION         move the emulator clock forward (token expiry, RAM key revocation)
//	GET    secrets/NAME                versions, stages and dates of a secret, never its value
//	POST   revoke-access-key?id=ID     as RevokeAccessKey
//	POST   revoke-client-key?id=ID     as RevokeClientKey
//
// Requests carrying an Origin header (browsers) or naming another host than the loopback are refused.
func (s *Server) AdminURL() string { return s.MetadataURL() + adminPrefix }

// adminFault is the JSON form of a Fault.
type adminFault struct {
	Action     string `json:"action"`
	Secret     string `json:"secret"`
	Code       string `json:"code"`
	HTTPStatus int    `json:"httpStatus"`
	Times      int    `json:"times"`
	Latency    string `json:"latency"`
	Drop       bool   `json:"drop"`
	Message    string `json:"message"`
}

type adminVersion struct {
	VersionID  string   `json:"versionId"`
	Stages     []string `json:"stages"`
	CreateTime string   `json:"createTime"`
}

type adminSecret struct {
	Name              string         `json:"name"`
	Type              string         `json:"type"`
	DataType          string         `json:"dataType"`
	CurrentVersionID  string         `json:"currentVersionId"`
	PreviousVersionID string         `json:"previousVersionId,omitempty"`
	PendingVersionID  string         `json:"pendingVersionId,omitempty"`
	Versions          []adminVersion `json:"versions"`
	CreateTime        string         `json:"createTime"`
	LastRotationDate  string         `json:"lastRotationDate,omitempty"`
	NextRotationDate  string         `json:"nextRotationDate,omitempty"`
	Rotations         int            `json:"rotations"`
}

// adminAllowed refuses what a browser page or a DNS-rebinding attack could send.
func adminAllowed(r *http.Request) error {
	if r.URL.IsAbs() {
		return errors.New("the admin endpoint is not served through the proxy")
	}
	if r.Header.Get("Origin") != "" {
		return errors.New("requests with an Origin header (browsers) are refused")
	}
	host := r.Host
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	if ip := net.ParseIP(host); (ip == nil || !ip.IsLoopback()) && host != "localhost" {
		return fmt.Errorf("host %q is not the loopback", r.Host)
	}
	return nil
}

func (s *Server) serveAdmin(w http.ResponseWriter, r *http.Request) {
	fail := func(status int, format string, a ...any) {
		noteAction(w, "", "admin:"+http.StatusText(status))
		writeJSON(w, status, map[string]string{"error": "kmstest admin: " + fmt.Sprintf(format, a...)})
	}
	if err := adminAllowed(r); err != nil {
		fail(http.StatusForbidden, "%v", err)
		return
	}
	op := strings.TrimPrefix(r.URL.Path, adminPrefix)
	noteAction(w, "admin:"+r.Method+" "+op, "")
	q := r.URL.Query()
	method := func(want string) bool {
		if r.Method != want {
			w.Header().Set("Allow", want)
			fail(http.StatusMethodNotAllowed, "%s %s: use %s", r.Method, op, want)
			return false
		}
		return true
	}
	ok := map[string]bool{"ok": true}
	switch {
	case op == "rotate":
		if !method(http.MethodPost) {
			return
		}
		name := q.Get("secret")
		if name == "" {
			fail(http.StatusBadRequest, "rotate: the query parameter secret is required")
			return
		}
		id, aerr := s.rotate(name, "")
		if aerr != nil {
			fail(aerr.Status, "rotate %s: %s: %s", name, aerr.Code, aerr.Message)
			return
		}
		writeJSON(w, http.StatusOK, map[string]string{"secret": name, "versionId": id})
	case op == "versions":
		if !method(http.MethodPost) {
			return
		}
		name := q.Get("secret")
		if name == "" {
			fail(http.StatusBadRequest, "versions: the query parameter secret is required")
			return
		}
		v, err := decodeAdminVersion(r.Body)
		if err != nil {
			fail(http.StatusBadRequest, "versions: %v", err)
			return
		}
		if aerr := s.storeVersion(name, *v.Value, "", v.VersionID, v.Stages, true); aerr != nil {
			fail(aerr.Status, "versions %s: %s: %s", name, aerr.Code, aerr.Message)
			return
		}
		writeJSON(w, http.StatusOK, map[string]string{"secret": name, "versionId": v.VersionID})
	case op == "faults" || op == "fault":
		switch r.Method {
		case http.MethodDelete:
			s.ClearFaults()
			writeJSON(w, http.StatusOK, ok)
		case http.MethodPost:
			f, err := decodeAdminFault(r.Body)
			if err != nil {
				fail(http.StatusBadRequest, "fault: %v", err)
				return
			}
			s.InjectFault(f)
			writeJSON(w, http.StatusOK, ok)
		default:
			w.Header().Set("Allow", "POST, DELETE")
			fail(http.StatusMethodNotAllowed, "%s faults: use POST or DELETE", r.Method)
		}
	case op == "calls":
		switch r.Method {
		case http.MethodGet:
			action, secret := q.Get("action"), q.Get("secret")
			writeJSON(w, http.StatusOK, map[string]any{"action": action, "secret": secret, "calls": s.Calls(action, secret)})
		case http.MethodDelete:
			s.ResetCalls()
			writeJSON(w, http.StatusOK, ok)
		default:
			w.Header().Set("Allow", "GET, DELETE")
			fail(http.StatusMethodNotAllowed, "%s calls: use GET or DELETE", r.Method)
		}
	case op == "advance":
		if !method(http.MethodPost) {
			return
		}
		d, err := time.ParseDuration(q.Get("by"))
		if err != nil || d < 0 {
			fail(http.StatusBadRequest, "advance: the query parameter by must be a non-negative Go duration such as 90m")
			return
		}
		s.Advance(d)
		writeJSON(w, http.StatusOK, map[string]string{"now": s.now().UTC().Format(timeLayout)})
	case strings.HasPrefix(op, "secrets/"):
		if !method(http.MethodGet) {
			return
		}
		name := strings.TrimPrefix(op, "secrets/")
		st, found := s.Secret(name)
		if !found {
			fail(http.StatusNotFound, "secret %q not found", name)
			return
		}
		writeJSON(w, http.StatusOK, adminSecretView(st))
	case op == "revoke-access-key", op == "revoke-client-key":
		if !method(http.MethodPost) {
			return
		}
		id := q.Get("id")
		if id == "" {
			fail(http.StatusBadRequest, "%s: the query parameter id is required", op)
			return
		}
		if op == "revoke-access-key" {
			s.RevokeAccessKey(id)
		} else {
			s.RevokeClientKey(id)
		}
		writeJSON(w, http.StatusOK, ok)
	case op == "":
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = io.WriteString(w, adminHelp)
	default:
		fail(http.StatusNotFound, "unknown operation %q (GET %s lists them)", op, adminPrefix)
	}
}

const adminHelp = `kmstest admin endpoint (JSON answers, never a secret value)
POST   rotate?secret=NAME
POST   versions?secret=NAME   body {"versionId","value","stages":["ACSCurrent"]}
POST   faults            body {"action","secret","code","httpStatus","times","latency":"250ms","drop","message"}
DELETE faults
GET    calls?action=ACTION&secret=NAME
DELETE calls
POST   advance?by=DURATION
GET    secrets/NAME
POST   revoke-access-key?id=ID
POST   revoke-client-key?id=ID
`

// adminVersionBody is the body of POST versions.
type adminVersionBody struct {
	VersionID string   `json:"versionId"`
	Value     *string  `json:"value"`
	Stages    []string `json:"stages"`
}

// decodeAdminVersion reads the body of POST versions: versionId and value
// are set. Its errors never quote the body: it holds a secret value.
func decodeAdminVersion(body io.Reader) (adminVersionBody, error) {
	const limit = 1 << 20
	b, err := io.ReadAll(io.LimitReader(body, limit+1))
	if err != nil {
		return adminVersionBody{}, errors.New("the body could not be read")
	}
	if len(b) > limit {
		return adminVersionBody{}, fmt.Errorf("the body is larger than %d bytes", limit)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var v adminVersionBody
	const want = `the body must be a JSON object {"versionId":"...","value":"...","stages":["ACSCurrent"]}`
	if err := dec.Decode(&v); err != nil {
		var se *json.SyntaxError
		if errors.As(err, &se) {
			return adminVersionBody{}, fmt.Errorf("%s (not valid JSON at byte %d; the body is not shown)", want, se.Offset)
		}
		return adminVersionBody{}, fmt.Errorf("%s (it has another shape or field; the body is not shown)", want)
	}
	if dec.More() {
		return adminVersionBody{}, fmt.Errorf("%s, once", want)
	}
	if v.VersionID == "" || v.Value == nil {
		return adminVersionBody{}, fmt.Errorf("%s: versionId and value are required", want)
	}
	return v, nil
}

func decodeAdminFault(body io.Reader) (Fault, error) {
	b, err := io.ReadAll(io.LimitReader(body, 64<<10))
	if err != nil {
		return Fault{}, err
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var af adminFault
	if err := dec.Decode(&af); err != nil {
		return Fault{}, fmt.Errorf("body must be a JSON object with the fields action, secret, code, httpStatus, times, latency, drop, message: %w", err)
	}
	f := Fault{Action: af.Action, Secret: af.Secret, Code: af.Code, HTTPStatus: af.HTTPStatus, Times: af.Times,
		Drop: af.Drop, Message: af.Message}
	if af.Latency != "" {
		d, err := time.ParseDuration(af.Latency)
		if err != nil || d < 0 {
			return Fault{}, fmt.Errorf("latency %q is not a non-negative Go duration such as \"250ms\"", af.Latency)
		}
		f.Latency = d
	}
	switch {
	case f.Times < 0:
		return Fault{}, errors.New("times must not be negative")
	case f.HTTPStatus != 0 && (f.HTTPStatus < 400 || f.HTTPStatus > 599):
		return Fault{}, errors.New("httpStatus must be from 400 to 599")
	case f.Code == "" && !f.Drop && f.Latency == 0:
		return Fault{}, errors.New("give a code, drop or latency")
	}
	return f, nil
}

func adminSecretView(st SecretState) adminSecret {
	a := adminSecret{Name: st.Name, Type: st.Type, DataType: st.DataType, CurrentVersionID: st.CurrentVersionID,
		PreviousVersionID: st.PreviousVersionID, PendingVersionID: st.PendingVersionID,
		CreateTime: fmtTime(st.CreateTime), LastRotationDate: fmtTime(st.LastRotationDate),
		NextRotationDate: fmtTime(st.NextRotationDate), Rotations: st.Rotations, Versions: []adminVersion{}}
	for _, v := range st.Versions {
		stages := v.Stages
		if stages == nil {
			stages = []string{}
		}
		a.Versions = append(a.Versions, adminVersion{VersionID: v.VersionID, Stages: stages, CreateTime: fmtTime(v.CreateTime)})
	}
	return a
}
