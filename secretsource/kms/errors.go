package kms

import (
	"context"
	"errors"
	"net/url"
	"regexp"
	"strings"

	sdkerrors "github.com/aliyun/alibaba-cloud-sdk-go/sdk/errors"

	"github.com/kmsdb/kmsdb/secretsource"
	"github.com/kmsdb/kmsdb/secretsource/internal/credprov"
	"github.com/kmsdb/kmsdb/secretsource/internal/wire"
)

// credentialError marks a failure of the credential provider (STS, ECS
// metadata, credentials URI, ...), raised before any request reached KMS. It
// keeps only the scrubbed text: credentials-go formats its errors with %s,
// sometimes around the signed STS URL or a half-parsed session key. A
// failure of kmsdb's own providers (package credprov) also keeps its
// classification, the service's Code and RequestId, and unwraps to it.
type credentialError struct {
	provider string
	msg      string          // scrubbed
	cause    *credprov.Error // kmsdb's providers only; holds no secret
}

func (e *credentialError) Error() string {
	if e.cause != nil { // its text starts with the provider's name
		return "credential provider " + e.msg
	}
	return "credential provider " + e.provider + ": " + e.msg
}

// Unwrap returns the *credprov.Error of kmsdb's providers, nil otherwise.
func (e *credentialError) Unwrap() error {
	if e.cause == nil {
		return nil
	}
	return e.cause
}

var reJSONCode = regexp.MustCompile(`"Code"\s*:\s*"([^"]+)"`)

// mapError turns whatever the core SDK or our transport returned into a
// *secretsource.Error. It never keeps a raw SDK message: server messages are
// scrubbed, transport errors lose their URL.
func mapError(ctx context.Context, err error, e *secretsource.Error) *secretsource.Error {
	if ctx.Err() != nil {
		// The caller's context ended: say so whatever the SDK made of it.
		e.Err = ctx.Err()
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			e.Kind, e.Message = secretsource.KindTimeout, "deadline exceeded before KMS answered"
		} else {
			e.Kind, e.Message = secretsource.KindUnknown, "cancelled before KMS answered"
		}
		return e
	}
	var se *sdkerrors.ServerError
	var ce *credentialError
	var ue *url.Error
	var cl *sdkerrors.ClientError
	if errors.As(err, &ce) { // before Describe: a credential provider's refused answer is not KMS's
		return mapCredentialError(e, ce)
	}
	if msg, ok := wire.Describe(err); ok { // a redirect or an oversized body
		e.Kind, e.Message = secretsource.KindInvalidAnswer, "KMS answer refused: "+msg
		return e
	}
	switch {
	case errors.As(err, &se):
		e.Code, e.RequestID = se.ErrorCode(), se.RequestId()
		e.Kind = wire.KindOfAnswer(e.Code, se.HttpStatus())
		e.Message = serverMessage(e.Kind, e.Code, se.Message(), se.Recommend())
		return e
	case errors.As(err, &ue):
		return mapTransportError(e, ue)
	case errors.As(err, &cl):
		e.Code = cl.ErrorCode()
		e.Kind = wire.KindOfCode(e.Code)
		if e.Kind == secretsource.KindUnknown {
			e.Kind = secretsource.KindNetwork
		}
		e.Message = wire.Scrub(cl.Message())
		if oe := cl.OriginError(); oe != nil {
			if errors.As(oe, &ue) {
				return mapTransportError(e, ue)
			}
			e.Err = wire.Safe(oe)
		}
		return e
	}
	e.Kind = secretsource.KindUnknown
	e.Err = wire.Safe(err)
	return e
}

func serverMessage(kind secretsource.Kind, code, msg, recommend string) string {
	var out string
	switch kind {
	case secretsource.KindNotFound:
		out = "the secret or version does not exist in this region"
	case secretsource.KindAccessDenied:
		out = "the credential is not allowed to read this secret"
	case secretsource.KindInvalidCredentials:
		out = "KMS rejected the credential"
		if strings.HasPrefix(recommend, "InvalidAccessKeySecret") {
			out += " (the AccessKey secret is wrong)"
		} else if strings.HasPrefix(code, "InvalidAccessKeyId") {
			out += " (unknown or disabled AccessKey id)"
		} else if strings.HasPrefix(code, "InvalidSecurityToken") {
			out += " (the STS token is invalid or expired)"
		}
	case secretsource.KindThrottled:
		out = "KMS throttled the request"
	case secretsource.KindUnavailable:
		out = "KMS is temporarily unavailable"
	case secretsource.KindInternal:
		out = "KMS failed internally"
	}
	if m := wire.CleanMessage(msg); m != "" {
		if out != "" {
			out += ": "
		}
		out += m
	}
	return out
}

func mapTransportError(e *secretsource.Error, ue *url.Error) *secretsource.Error {
	// ue.URL holds the signed query string: TransportError keeps only the
	// cause. A certificate problem will not heal by retrying the same endpoint
	// (KindTLS is not retryable), but another region may have a good one
	// (Failover moves on).
	return wire.TransportError(e, ue, "KMS", "for a private CA: caFilePath in the region's "+
		"cache_client_region_id entry, or Region.CAFile / Config.RootCAs in code")
}

func mapCredentialError(e *secretsource.Error, ce *credentialError) *secretsource.Error {
	e.Err = ce
	e.Message = "could not obtain credentials from " + ce.provider
	if pe := ce.cause; pe != nil {
		e.Code, e.RequestID, e.Kind = pe.Code, pe.RequestID, pe.Kind
		if e.Kind == secretsource.KindUnknown {
			e.Kind = secretsource.KindInvalidCredentials
		}
		return e
	}
	msg := ce.msg
	lower := strings.ToLower(msg)
	if m := reJSONCode.FindStringSubmatch(msg); m != nil {
		e.Code = m[1]
		e.Kind = wire.KindOfCode(e.Code)
	}
	switch {
	case e.Kind == secretsource.KindNotFound, e.Kind == secretsource.KindConfig:
		// A missing role or OIDC provider is a credential problem, not a
		// missing secret.
		e.Kind = secretsource.KindInvalidCredentials
	case e.Kind != secretsource.KindUnknown:
	case strings.Contains(lower, "timeout"),
		strings.Contains(lower, "deadline exceeded"):
		// credentials-go formats its transport errors with %s, so the type is
		// lost: the text is all there is.
		e.Kind = secretsource.KindTimeout
	case strings.Contains(lower, "connection refused"), strings.Contains(lower, "connection reset"),
		strings.Contains(lower, "no such host"), strings.Contains(lower, "eof"),
		strings.Contains(lower, "network is unreachable"), strings.Contains(lower, "dial tcp"):
		e.Kind = secretsource.KindNetwork
	case strings.Contains(lower, "httpstatus: 5"), strings.Contains(lower, "status code 5"):
		e.Kind = secretsource.KindUnavailable
	default:
		e.Kind = secretsource.KindInvalidCredentials
	}
	e.Message = "could not obtain credentials from " + ce.provider
	return e
}
