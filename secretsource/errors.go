package secretsource

import (
	"context"
	"errors"
	"fmt"
)

// Kind classifies a failure to fetch a secret. Whether retrying can help
// depends only on the Kind (see Retryable).
type Kind int

// Kinds of failure.
const (
	KindUnknown            Kind = iota // not classified; treated as retryable once
	KindNotFound                       // the secret or version does not exist (permanent)
	KindAccessDenied                   // the caller is not allowed to read it (permanent)
	KindInvalidCredentials             // the AccessKey, token, signature or client key is wrong (permanent)
	KindConfig                         // the configuration is wrong (permanent)
	KindThrottled                      // KMS asked us to slow down (retryable)
	KindUnavailable                    // KMS is temporarily unavailable (retryable)
	KindInternal                       // KMS failed internally (retryable)
	KindNetwork                        // the request did not complete (retryable)
	KindTimeout                        // the request or the caller's context timed out (retryable)
	// KindInvalidAnswer: the service answered something that is not a usable
	// secret (an empty or malformed body, no version id or value, another
	// secret's name, not the stage asked for, a redirect, an oversized body).
	// It is retryable with backoff: such answers come from a broken gateway,
	// proxy or load balancer far more often than from KMS itself, and heal
	// when the path does. A cache keeps serving its last good value meanwhile.
	KindInvalidAnswer
	// KindTLS: the endpoint's certificate did not verify (unknown authority,
	// a name it is not valid for, expired or not yet valid). Retrying the same
	// endpoint cannot help, so it is not retryable and a cold cache returns it
	// at once; Failover still moves on to the next region or endpoint, whose
	// certificate may be good. errors.Is(err, ErrNetwork) holds for it too.
	KindTLS
)

var kindNames = [...]string{"unknown", "not found", "access denied", "invalid credentials", "configuration",
	"throttled", "unavailable", "internal", "network", "timeout", "invalid answer", "TLS verification"}

func (k Kind) String() string {
	if int(k) < len(kindNames) {
		return kindNames[k]
	}
	return fmt.Sprintf("Kind(%d)", int(k))
}

// Retryable reports whether a failure of this kind may succeed if tried again.
func (k Kind) Retryable() bool {
	switch k {
	case KindThrottled, KindUnavailable, KindInternal, KindNetwork, KindTimeout, KindUnknown, KindInvalidAnswer:
		return true
	}
	return false
}

// Sentinels, one per kind: errors.Is(err, secretsource.ErrNotFound) works on any *Error.
var (
	ErrNotFound           = errors.New("secretsource: secret not found")
	ErrAccessDenied       = errors.New("secretsource: access denied")
	ErrInvalidCredentials = errors.New("secretsource: invalid credentials")
	ErrConfig             = errors.New("secretsource: invalid configuration")
	ErrThrottled          = errors.New("secretsource: throttled")
	ErrUnavailable        = errors.New("secretsource: service unavailable")
	ErrInternal           = errors.New("secretsource: internal service error")
	ErrNetwork            = errors.New("secretsource: network error")
	ErrTimeout            = errors.New("secretsource: timeout")
	ErrInvalidAnswer      = errors.New("secretsource: invalid answer from the service")
	ErrTLS                = errors.New("secretsource: TLS verification of the endpoint failed")
)

var kindSentinel = map[Kind]error{
	KindNotFound: ErrNotFound, KindAccessDenied: ErrAccessDenied, KindInvalidCredentials: ErrInvalidCredentials,
	KindConfig: ErrConfig, KindThrottled: ErrThrottled, KindUnavailable: ErrUnavailable,
	KindInternal: ErrInternal, KindNetwork: ErrNetwork, KindTimeout: ErrTimeout, KindInvalidAnswer: ErrInvalidAnswer, KindTLS: ErrTLS,
}

// Error is a failure to fetch a secret. It carries the secret's name, the KMS
// error code and request id, never a secret value or key. Use errors.Is with
// the Err* sentinels, or errors.As and Kind / Retryable.
type Error struct {
	Kind      Kind
	Secret    string // the secret's name, empty for errors not tied to one
	Source    string // which source failed, e.g. "kms", "dkms", "local"
	Region    string // region, when known
	Endpoint  string // the host (host:port) asked, when known
	Code      string // the service's error code, e.g. Rejected.Throttling
	RequestID string // the service's request id
	Message   string // a safe description; never contains a secret value
	Err       error  // the underlying error, if any
}

func (e *Error) Error() string {
	msg := "secretsource"
	if e.Source != "" {
		msg += ": " + e.Source
	}
	if e.Secret != "" {
		msg += fmt.Sprintf(": secret %q", e.Secret)
	}
	if e.Kind != KindConfig || e.Source != "config" { // "config: configuration" would say it twice
		msg += ": " + e.Kind.String()
	}
	if e.Code != "" {
		msg += " (" + e.Code
		if e.RequestID != "" {
			msg += ", request " + e.RequestID
		}
		msg += ")"
	}
	if w := e.where(); w != "" {
		msg += " in " + w
	}
	if e.Message != "" {
		msg += ": " + e.Message
	}
	if e.Err != nil {
		msg += ": " + e.Err.Error()
	}
	return msg
}

// where names the region and endpoint asked: "region (endpoint)", or the
// one known.
func (e *Error) where() string {
	switch {
	case e.Region != "" && e.Endpoint != "":
		return e.Region + " (" + e.Endpoint + ")"
	case e.Region != "":
		return e.Region
	}
	return e.Endpoint
}

// Unwrap returns the underlying error.
func (e *Error) Unwrap() error { return e.Err }

// Is matches the sentinel of e's Kind (and ErrNetwork for KindTLS: a TLS
// verification failure is a failed request too).
func (e *Error) Is(target error) bool {
	if e.Kind == KindTLS && target == ErrNetwork {
		return true
	}
	s, ok := kindSentinel[e.Kind]
	return ok && s == target
}

// Retryable reports whether trying again may succeed.
func (e *Error) Retryable() bool { return e.Kind.Retryable() }

// KindOf returns the Kind of err: the Kind of the first *Error in its chain,
// KindTimeout for context deadline errors, KindUnknown otherwise.
func KindOf(err error) Kind {
	var e *Error
	if errors.As(err, &e) {
		return e.Kind
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return KindTimeout
	}
	return KindUnknown
}

// IsRetryable reports whether a fetch that failed with err may succeed if tried
// again. A cancelled context is never retryable.
func IsRetryable(err error) bool {
	if err == nil || errors.Is(err, context.Canceled) {
		return false
	}
	return KindOf(err).Retryable()
}
