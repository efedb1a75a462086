package kms

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"

	"github.com/kmsdb/kmsdb/secretsource"
	"github.com/kmsdb/kmsdb/secretsource/internal/wire"
)

// exchange is the transport of one GetSecretValue call. It binds the request
// to the caller's context (the core SDK builds requests without one), refuses
// redirects (the SDK's http.Client, which we cannot configure, would follow
// them with the signed request), reads the body up to wire.MaxBody, and
// parses the answer itself: the SDK never sees the real body, only a
// sanitized stand-in, so neither its JSON errors (which quote the bytes
// around the fault) nor its ServerError (which keeps a non-JSON body as its
// message) nor its debug log can show a secret value.
//
// The outcome is in answer or fail, read by the caller after the SDK call
// returned (the done channel orders the accesses).
type exchange struct {
	ctx  context.Context
	next http.RoundTripper

	answer *wireAnswer  // a 2xx answer that parsed
	fail   *answerError // a 2xx answer that did not, or an error answer
}

func (x *exchange) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Response != nil { // a redirect the client chose to follow anyway
		return nil, &wire.RedirectError{Status: req.Response.StatusCode}
	}
	resp, err := x.next.RoundTrip(req.WithContext(x.ctx))
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if wire.IsRedirect(resp.StatusCode) {
		return nil, &wire.RedirectError{Status: resp.StatusCode}
	}
	body, err := wire.ReadBody(resp.Body)
	if err != nil {
		return nil, err
	}
	var standIn []byte
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		x.answer, x.fail = parseAnswer(resp.StatusCode, body)
		standIn = []byte("{}")
	} else {
		x.fail = parseErrorAnswer(resp.StatusCode, body)
		standIn, _ = json.Marshal(map[string]string{"Code": x.fail.code, "Message": x.fail.message,
			"RequestId": x.fail.requestID, "Recommend": x.fail.recommend})
	}
	out := *resp
	out.Body = io.NopCloser(bytes.NewReader(standIn))
	out.ContentLength = int64(len(standIn))
	out.Header = resp.Header.Clone()
	out.Header.Del("Content-Length")
	out.Header.Del("Content-Encoding")
	return &out, nil
}

// wireAnswer is the JSON of a GetSecretValue answer on the shared gateway.
type wireAnswer struct {
	RequestID         string `json:"RequestId"`
	SecretName        string
	SecretType        string
	SecretDataType    string
	SecretData        string
	VersionID         string `json:"VersionId"`
	VersionStages     struct{ VersionStage []string }
	CreateTime        string
	AutomaticRotation string
	RotationInterval  string
	NextRotationDate  string
	LastRotationDate  string
	ExtendedConfig    string
	// An error document sent with HTTP 200 by a misbehaving gateway.
	Code    string
	Message string
}

// response converts a to the Response both gateways share.
func (a *wireAnswer) response() wire.Response {
	return wire.Response{SecretName: a.SecretName, SecretType: a.SecretType, SecretDataType: a.SecretDataType,
		SecretData: a.SecretData, VersionID: a.VersionID, VersionStages: a.VersionStages.VersionStage,
		CreateTime: a.CreateTime, AutomaticRotation: a.AutomaticRotation, RotationInterval: a.RotationInterval,
		NextRotationDate: a.NextRotationDate, LastRotationDate: a.LastRotationDate, ExtendedConfig: a.ExtendedConfig}
}

// answerError is an answer the source cannot use: an error document (any
// status) or a 2xx body that is not a GetSecretValue answer. It holds the
// service's Code, a scrubbed and shortened Message and the RequestId, never
// the body.
type answerError struct {
	status    int
	code      string
	message   string // the service's message, scrubbed and bounded
	recommend string
	requestID string
	invalid   string // set when the body itself is unusable: what is wrong with it
}

func (e *answerError) Error() string {
	if e.invalid != "" {
		return e.invalid
	}
	return fmt.Sprintf("HTTP %d %s: %s", e.status, e.code, e.message)
}

func parseAnswer(status int, body []byte) (*wireAnswer, *answerError) {
	var a wireAnswer
	if len(bytes.TrimSpace(body)) == 0 {
		return nil, &answerError{status: status, invalid: fmt.Sprintf("HTTP %d with an empty body", status)}
	}
	if err := json.Unmarshal(body, &a); err != nil {
		return nil, &answerError{status: status, invalid: fmt.Sprintf("HTTP %d with a body that is not a GetSecretValue answer: %s",
			status, wire.DescribeJSONError(err, len(body)))}
	}
	if a.Code != "" && a.SecretData == "" && a.VersionID == "" {
		code := wire.Token(a.Code)
		return nil, &answerError{status: status, code: code, requestID: wire.Token(a.RequestID), message: wire.CleanMessage(a.Message),
			invalid: fmt.Sprintf("HTTP %d carrying error code %q instead of a secret", status, code)}
	}
	return &a, nil
}

// parseErrorAnswer keeps Code, Message, Recommend and RequestId of an error
// answer when it is the service's JSON error document, and nothing of any
// other body.
func parseErrorAnswer(status int, body []byte) *answerError {
	e := &answerError{status: status}
	var doc map[string]json.RawMessage
	if json.Unmarshal(body, &doc) != nil {
		e.message = fmt.Sprintf("the error answer is not a JSON error document (%d bytes, not shown)", len(body))
		return e
	}
	str := func(key string) string {
		var v string
		if json.Unmarshal(doc[key], &v) != nil {
			return ""
		}
		return v
	}
	e.code, e.requestID, e.recommend = wire.Token(str("Code")), wire.Token(str("RequestId")), str("Recommend")
	e.message = wire.CleanMessage(str("Message"))
	// Recommend is a troubleshooting URL; only its prefix is used, to tell a
	// wrong AccessKey secret from an unknown id.
	if len(e.recommend) > 64 {
		e.recommend = e.recommend[:64]
	}
	e.recommend = wire.Scrub(e.recommend)
	return e
}

// answerErrorToSecret maps an unusable answer into the taxonomy. An error
// document is classified by its code, then its status; a body that is not a
// usable answer is KindInvalidAnswer.
func (e *answerError) toSecretError(se *secretsource.Error) *secretsource.Error {
	se.Code, se.RequestID = e.code, e.requestID
	if e.invalid != "" {
		se.Kind, se.Message = secretsource.KindInvalidAnswer, "KMS answered "+e.invalid
		return se
	}
	se.Kind = wire.KindOfAnswer(e.code, e.status)
	se.Message = serverMessage(se.Kind, e.code, e.message, e.recommend)
	if se.Message == "" {
		se.Message = fmt.Sprintf("HTTP %d", e.status)
	}
	return se
}
