package kms

import (
	"context"
	"crypto/x509"
	"errors"
	"net"
	"net/url"
	"regexp"
	"strings"
	"syscall"

	sdkerrors "github.com/aliyun/alibaba-cloud-sdk-go/sdk/errors"

	"github.com/kmsdb/kmsdb/secretsource"
	"github.com/kmsdb/kmsdb/secretsource/internal/wire"
)

// KindOfCode classifies a KMS (or STS) error code into the secretsource
// taxonomy. Codes are the contract; the HTTP status is only a fallback for
// codes this table does not know (see KindOfStatus).
//
//	Forbidden.ResourceNotFound, *.NotFound of a resource  -> NotFound
//	InvalidAccessKeyId.*, SignatureDoesNotMatch,
//	IncompleteSignature, InvalidSecurityToken.*           -> InvalidCredentials
//	Forbidden.NoPermission, Forbidden.*, NoPermission     -> AccessDenied
//	Rejected.Throttling, Throttling*                      -> Throttled
//	ServiceUnavailableTemporary, ServiceUnavailable*      -> Unavailable
//	InternalFailure, InternalError                        -> Internal
//	SDK.TimeoutError                                      -> Timeout
//	MissingParameter*, InvalidParameter*                  -> Config
//
// It returns KindUnknown for an empty or unknown code.
func KindOfCode(code string) secretsource.Kind {
	switch {
	case code == "":
		return secretsource.KindUnknown
	case strings.HasPrefix(code, "InvalidAccessKeyId"),
		code == "SignatureDoesNotMatch", code == "IncompleteSignature",
		strings.HasPrefix(code, "InvalidSecurityToken"),
		strings.HasPrefix(code, "InvalidSignature"),
		code == "Forbidden.AccessKeyDisabled",
		code == "Rejected.Unauthorized", code == "Unauthorized",
		strings.HasPrefix(code, "InvalidAuthorization"), strings.HasPrefix(code, "AuthenticationFail"):
		return secretsource.KindInvalidCredentials
	case code == "Forbidden.ResourceNotFound", code == "ResourceNotFound",
		strings.HasPrefix(code, "EntityNotExist"),
		strings.HasPrefix(code, "Forbidden.") && strings.HasSuffix(code, "NotFound"):
		return secretsource.KindNotFound
	case code == "Forbidden", strings.HasPrefix(code, "Forbidden."), code == "NoPermission",
		strings.HasPrefix(code, "NoPermission."), code == "AccessDenied",
		strings.HasPrefix(code, "AccessDenied."):
		return secretsource.KindAccessDenied
	case strings.HasPrefix(code, "Rejected.Throttling"), strings.HasPrefix(code, "Throttling"),
		code == "TooManyRequests":
		return secretsource.KindThrottled
	case strings.HasPrefix(code, "ServiceUnavailable"), code == "Rejected.ServiceUnavailable":
		return secretsource.KindUnavailable
	case code == "InternalFailure", code == "InternalError", strings.HasPrefix(code, "InternalError."),
		code == "UnknownError":
		return secretsource.KindInternal
	case code == sdkerrors.TimeoutErrorCode, code == "SDK.ReadTimeout":
		return secretsource.KindTimeout
	case code == "SDK.ServerUnreachable":
		return secretsource.KindNetwork
	case strings.HasPrefix(code, "MissingParameter"), strings.HasPrefix(code, "InvalidParameter"),
		strings.HasPrefix(code, "MissingSecretName"), strings.HasPrefix(code, "InvalidVersion"):
		return secretsource.KindConfig
	}
	return secretsource.KindUnknown
}

// KindOfStatus classifies an HTTP status: the fallback for error codes that
// KindOfCode does not know.
func KindOfStatus(status int) secretsource.Kind {
	switch {
	case status == 429:
		return secretsource.KindThrottled
	case status == 401:
		return secretsource.KindInvalidCredentials
	case status == 403:
		return secretsource.KindAccessDenied
	case status == 404:
		return secretsource.KindNotFound
	case status == 502, status == 503, status == 504:
		return secretsource.KindUnavailable
	case status >= 500:
		return secretsource.KindInternal
	}
	return secretsource.KindUnknown
}

var (
	// A URL with a query string: the core SDK puts AccessKeyId, SecurityToken and
	// Signature in the query, and net/http errors quote the whole URL.
	reURLQuery = regexp.MustCompile(`(?i)((?:https?://)?[A-Za-z0-9.\-:\[\]]*/[^\s"'?]*)\?[^\s"']*`)
	// A sensitive key and its separator, in key=value, key: value, "key":"value"
	// and JSON escaped inside JSON (\"key\":\"value\"), at any depth; the value
	// after it is found by sensitiveValueEnd.
	reSensitive = regexp.MustCompile(`(?i)(?:AccessKeySecret|AccessKeyId|SecurityToken|Signature|` +
		`SessionAccessKeySecret|SessionAccessKeyId|BearerToken|Password|PrivateKey|PrivateKeyData|` +
		`Authorization|OIDCToken|Token|SecretData)(?:\\*")?\s*[:=]\s*`)
	reStringToSign = regexp.MustCompile(`(?i)string to sign`)
	reBearer       = regexp.MustCompile(`(?i)\b(Bearer)\s+[A-Za-z0-9+/=._~-]+`)
)

// Scrub removes from s what may identify or unlock an account: query strings of
// URLs (where the core SDK puts AccessKeyId, SecurityToken and Signature), the
// value after sensitive keys (AccessKeySecret=..., "SecurityToken":"..."), and
// everything after "string to sign" (the service echoes the signed string,
// which holds the AccessKeyId and the STS token, in SignatureDoesNotMatch).
// It is applied to every message that comes from an SDK or a server before it
// reaches an error or a log line.
func Scrub(s string) string {
	// Located with a case-insensitive regexp, not strings.ToLower: lowering
	// can change a string's length (invalid UTF-8, 'İ'), and an index into
	// the lowered copy would then cut the original in the wrong place.
	if loc := reStringToSign.FindStringIndex(s); loc != nil {
		s = strings.TrimRight(s[:loc[0]], " :") + " [string to sign redacted]"
	}
	s = reURLQuery.ReplaceAllString(s, "$1?[REDACTED]")
	s = reBearer.ReplaceAllString(s, "$1 [REDACTED]")
	return redactSensitive(s)
}

// redactSensitive replaces the value after every sensitive key with
// [REDACTED]. A quoted value may sit in JSON escaped n levels deep: its
// opening quote follows 2^n-1 backslashes, and its closing quote is the first
// one whose run of backslashes r satisfies r ≡ 2^n-1 (mod 2^(n+1)); any other
// quote is escaped content. An unquoted value runs to a space or one of
// "'&,;}.
func redactSensitive(s string) string {
	locs := reSensitive.FindAllStringIndex(s, -1)
	if locs == nil {
		return s
	}
	var b strings.Builder
	done := 0
	for _, loc := range locs {
		if loc[0] < done {
			continue // inside a value already redacted
		}
		start := loc[1]
		end := sensitiveValueEnd(s, &start)
		if end <= start {
			continue
		}
		b.WriteString(s[done:start])
		b.WriteString("[REDACTED]")
		done = end
	}
	b.WriteString(s[done:])
	return b.String()
}

// sensitiveValueEnd returns where the value starting at *start ends, moving
// *start past an opening quote and its escaping backslashes.
func sensitiveValueEnd(s string, start *int) int {
	i := *start
	n := 0
	for i+n < len(s) && s[i+n] == '\\' {
		n++
	}
	if i+n < len(s) && s[i+n] == '"' {
		i += n + 1
		*start = i
		for j := i; j < len(s); j++ {
			if s[j] != '"' {
				continue
			}
			r := 0
			for j-r-1 >= i && s[j-r-1] == '\\' {
				r++
			}
			if r >= n && (r-n)%(2*(n+1)) == 0 {
				return j - n
			}
		}
		return len(s)
	}
	j := i
	for j < len(s) && !strings.ContainsRune(" \t\r\n\"'&,;}", rune(s[j])) {
		j++
	}
	return j
}

// safeError is an error whose text has been scrubbed. Unwrap reaches only a
// cause known to hold no URL or credential (a *net.OpError, an errno, a
// context or certificate error), so errors.Is/As keep working for those and a
// caller walking the chain cannot find the SDK's raw text.
type safeError struct {
	msg   string
	cause error
}

func (e *safeError) Error() string { return e.msg }
func (e *safeError) Unwrap() error { return e.cause }

// safe wraps err so that its text is scrubbed.
func safe(err error) error {
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

// credentialError marks a failure of the credential provider (STS, ECS
// metadata, credentials URI, ...), raised before any request reached KMS. It
// keeps only the scrubbed text: credentials-go formats its errors with %s,
// sometimes around the signed STS URL or a half-parsed session key.
type credentialError struct {
	provider string
	msg      string // scrubbed
}

func (e *credentialError) Error() string {
	return "credential provider " + e.provider + ": " + e.msg
}

var reJSONCode = regexp.MustCompile(`"Code"\s*:\s*"([^"]+)"`)

// mapError turns whatever the core SDK or our transport returned into a
// *secretsource.Error. It never keeps a raw SDK message: server messages are
// scrubbed, transport errors lose their URL.
func mapError(ctx context.Context, err error, name, region string) *secretsource.Error {
	e := &secretsource.Error{Secret: name, Source: "kms", Region: region}
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
	if msg, ok := wire.Describe(err); ok { // a redirect or an oversized body
		e.Kind, e.Message = secretsource.KindInvalidAnswer, "KMS answer refused: "+msg
		return e
	}
	switch {
	case errors.As(err, &ce):
		return mapCredentialError(e, ce)
	case errors.As(err, &se):
		e.Code, e.RequestID = se.ErrorCode(), se.RequestId()
		e.Kind = KindOfCode(e.Code)
		if e.Kind == secretsource.KindUnknown {
			e.Kind = KindOfStatus(se.HttpStatus())
		}
		e.Message = serverMessage(e.Kind, e.Code, se.Message(), se.Recommend())
		return e
	case errors.As(err, &ue):
		return mapTransportError(e, ue)
	case errors.As(err, &cl):
		e.Code = cl.ErrorCode()
		e.Kind = KindOfCode(e.Code)
		if e.Kind == secretsource.KindUnknown {
			e.Kind = secretsource.KindNetwork
		}
		e.Message = Scrub(cl.Message())
		if oe := cl.OriginError(); oe != nil {
			if errors.As(oe, &ue) {
				return mapTransportError(e, ue)
			}
			e.Err = safe(oe)
		}
		return e
	}
	e.Kind = secretsource.KindUnknown
	e.Err = safe(err)
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
	if m := truncate(Scrub(strings.TrimSpace(msg)), 300); m != "" {
		if out != "" {
			out += ": "
		}
		out += m
	}
	return out
}

func mapTransportError(e *secretsource.Error, ue *url.Error) *secretsource.Error {
	// ue.URL holds the signed query string: keep only the cause.
	cause := ue.Err
	e.Err = safe(cause)
	var ua x509.UnknownAuthorityError
	var hn x509.HostnameError
	var ci x509.CertificateInvalidError
	switch {
	case ue.Timeout(), errors.Is(cause, context.DeadlineExceeded):
		e.Kind, e.Message = secretsource.KindTimeout, "request to KMS timed out"
	case errors.As(cause, &ua), errors.As(cause, &hn), errors.As(cause, &ci),
		strings.Contains(cause.Error(), "x509:"), strings.Contains(cause.Error(), "tls:"):
		// A certificate problem will not heal by retrying the same endpoint, but
		// another region may have a good one: report it as a network error with
		// a clear message so the configuration can be fixed.
		e.Kind, e.Message = secretsource.KindNetwork, "TLS verification of the KMS endpoint failed (for a private CA: caFilePath in the region's "+
			"cache_client_region_id entry, or Region.CAFile / Config.RootCAs in code)"
	default:
		e.Kind, e.Message = secretsource.KindNetwork, "request to KMS failed"
		var ne net.Error
		if errors.As(cause, &ne) && ne.Timeout() {
			e.Kind, e.Message = secretsource.KindTimeout, "request to KMS timed out"
		}
	}
	return e
}

func mapCredentialError(e *secretsource.Error, ce *credentialError) *secretsource.Error {
	e.Err = ce
	msg := ce.msg
	lower := strings.ToLower(msg)
	if m := reJSONCode.FindStringSubmatch(msg); m != nil {
		e.Code = m[1]
		e.Kind = KindOfCode(e.Code)
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

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return strings.ToValidUTF8(s[:n], "") + "…"
}
