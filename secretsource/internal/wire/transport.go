package wire

import (
	"context"
	"crypto/x509"
	"errors"
	"net"
	"net/url"
	"strings"
	"syscall"

	"github.com/kmsdb/kmsdb/secretsource"
)

// safeError is an error whose text has been scrubbed. Unwrap reaches only a
// cause known to hold no URL or credential (a *net.OpError, an errno, a
// context or certificate error), so errors.Is/As keep working for those and a
// caller walking the chain cannot find the SDK's or net/http's raw text.
type safeError struct {
	msg   string
	cause error
}

func (e *safeError) Error() string { return e.msg }
func (e *safeError) Unwrap() error { return e.cause }

// Safe wraps err so that its text is scrubbed (Scrub) and its chain reaches
// only causes that hold no URL or credential. Every transport or SDK error a
// source keeps as a cause goes through it.
func Safe(err error) error {
	if err == nil {
		return nil
	}
	return &safeError{msg: Scrub(err.Error()), cause: safeCause(err)}
}

func safeCause(err error) error {
	var (
		oe    *net.OpError
		dns   *net.DNSError
		errno syscall.Errno
		ua    x509.UnknownAuthorityError
		hn    x509.HostnameError
		ci    x509.CertificateInvalidError
	)
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		return context.DeadlineExceeded
	case errors.Is(err, context.Canceled):
		return context.Canceled
	case errors.As(err, &oe):
		return oe
	case errors.As(err, &dns):
		return dns
	case errors.As(err, &errno):
		return errno
	case errors.As(err, &ua):
		return ua
	case errors.As(err, &hn):
		return hn
	case errors.As(err, &ci):
		return ci
	}
	return nil
}

// TransportError fills e (Kind, Message, Err) for an exchange with gateway
// ("KMS", "dedicated KMS") that failed below HTTP: err is what the HTTP client
// returned. A *url.Error is unwrapped (its URL may carry a signed query); the
// cause is kept through Safe. A certificate that did not verify is KindTLS
// (retrying the same endpoint cannot cure it) and its message ends with
// tlsHint (where to set the CA); a timeout is KindTimeout; a handshake that
// failed otherwise, and any other failure, KindNetwork (retryable).
func TransportError(e *secretsource.Error, err error, gateway, tlsHint string) *secretsource.Error {
	cause := err
	var ue *url.Error
	if errors.As(err, &ue) {
		cause = ue.Err
	}
	e.Err = Safe(cause)
	var ne net.Error
	switch {
	case IsTLSVerification(cause):
		e.Kind, e.Message = secretsource.KindTLS, "the "+gateway+" endpoint's certificate did not verify ("+tlsHint+")"
	case errors.Is(cause, context.DeadlineExceeded), errors.As(cause, &ne) && ne.Timeout():
		e.Kind, e.Message = secretsource.KindTimeout, "request to "+gateway+" timed out"
	case strings.Contains(cause.Error(), "tls:"):
		e.Kind, e.Message = secretsource.KindNetwork, "TLS handshake with the "+gateway+" endpoint failed"
	default:
		e.Kind, e.Message = secretsource.KindNetwork, "request to "+gateway+" failed"
	}
	return e
}

// MaxMessage bounds a service message kept in an error.
const MaxMessage = 200

// CleanMessage is a service's error message as an error keeps it: trimmed,
// scrubbed (Scrub) and cut to MaxMessage bytes.
func CleanMessage(m string) string {
	return Truncate(Scrub(strings.TrimSpace(m)), MaxMessage)
}
