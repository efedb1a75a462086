// Package wire holds what the two KMS gateways' sources (secretsource/kms
// and secretsource/dkms) share on the wire: the HTTP rules applied to an
// answer before any of it is parsed (redirects are never followed, a body is
// read up to MaxBody only), the conversion of a GetSecretValue answer into a
// secret (Response, CheckAnswer, ParseTime, ParseRotationInterval), the
// classification of error codes and statuses (KindOfCode, KindOfStatus,
// KindOfAnswer) and
// the scrubbing of service and SDK messages and causes (Scrub, CleanMessage,
// Safe, TransportError), the application access point client key file both
// accept (LoadClientKey), and the one reader of the CA files and client key
// files a configuration names (ReadCAFile, ReadClientKeyFile), which the
// config package checks them with too. The errors it returns never hold body
// bytes, file content or secret values.
package wire

import (
	"errors"
	"fmt"
	"io"
	"net/http"
)

// MaxBody bounds the body of one answer. KMS stores secret values of at most
// 64 KiB; as JSON a value can grow up to six times (every byte a \u00XX
// escape), base64 for binary data by a third, and the metadata and
// ExtendedConfig add a few KiB. 1 MiB leaves room for all of that while a
// broken or hostile gateway cannot make the process read (and hold) more.
const MaxBody = 1 << 20

// TooLargeError reports an answer body over MaxBody. Reading stopped there.
type TooLargeError struct{ Limit int }

func (e *TooLargeError) Error() string {
	return fmt.Sprintf("the answer body is larger than %d bytes; reading stopped there", e.Limit)
}

// RedirectError reports an HTTP redirect, which is never followed: the
// request carries a signature (and the shared gateway's AccessKeyId and
// nonce) that must reach no other host.
type RedirectError struct{ Status int }

func (e *RedirectError) Error() string {
	return fmt.Sprintf("the service answered with a redirect (HTTP %d); redirects are never followed", e.Status)
}

// IsRedirect reports whether status is a redirect an http.Client would follow.
func IsRedirect(status int) bool {
	switch status {
	case http.StatusMovedPermanently, http.StatusFound, http.StatusSeeOther,
		http.StatusTemporaryRedirect, http.StatusPermanentRedirect:
		return true
	}
	return false
}

// NoRedirect is an http.Client CheckRedirect that refuses every redirect
// with a *RedirectError.
func NoRedirect(req *http.Request, _ []*http.Request) error {
	status := 0
	if req.Response != nil {
		status = req.Response.StatusCode
	}
	return &RedirectError{Status: status}
}

// ReadBody reads r up to MaxBody bytes. A longer body is a *TooLargeError
// after reading MaxBody+1 bytes, whatever its declared length.
func ReadBody(r io.Reader) ([]byte, error) { return ReadBodyLimit(r, MaxBody) }

// ReadBodyLimit is ReadBody with another bound: a body longer than limit
// bytes is a *TooLargeError after reading limit+1 bytes.
func ReadBodyLimit(r io.Reader, limit int) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(r, int64(limit)+1))
	if err != nil {
		return nil, err
	}
	if len(b) > limit {
		return nil, &TooLargeError{Limit: limit}
	}
	return b, nil
}

// Describe says what is wrong with an answer's errors from ReadBody or
// NoRedirect, and false for any other error.
func Describe(err error) (string, bool) {
	var tl *TooLargeError
	var re *RedirectError
	switch {
	case errors.As(err, &tl):
		return tl.Error(), true
	case errors.As(err, &re):
		return re.Error(), true
	}
	return "", false
}
