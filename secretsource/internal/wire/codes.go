package wire

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"strings"

	"github.com/kmsdb/kmsdb/secretsource"
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
// and the dedicated instance API's own codes:
//
//	SignatureNotMatch, UnauthorizedClientKey               -> InvalidCredentials
//	RequestTimeTooSkewed, InvalidApiVersion, InvalidApiName,
//	InvalidParam, InvalidContentType                      -> Config
//
// It returns KindUnknown for an empty or unknown code.
func KindOfCode(code string) secretsource.Kind {
	switch code {
	case "SignatureNotMatch", "UnauthorizedClientKey":
		return secretsource.KindInvalidCredentials
	case "RequestTimeTooSkewed", "InvalidApiVersion", "InvalidApiName", "InvalidParam", "InvalidContentType":
		return secretsource.KindConfig
	}
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
	case code == "SDK.TimeoutError", code == "SDK.ReadTimeout": // the core SDK's own codes
		return secretsource.KindTimeout
	case code == "SDK.ServerUnreachable":
		return secretsource.KindNetwork
	case strings.HasPrefix(code, "MissingParameter"), strings.HasPrefix(code, "InvalidParameter"),
		strings.HasPrefix(code, "MissingSecretName"), strings.HasPrefix(code, "InvalidVersion"):
		return secretsource.KindConfig
	}
	return secretsource.KindUnknown
}

// KindOfAnswer classifies an error answer of either gateway: by its code
// (KindOfCode), else by its HTTP status (KindOfStatus). An answer with no code
// that its status does not classify either is KindInvalidAnswer: it is not the
// service's error document.
func KindOfAnswer(code string, status int) secretsource.Kind {
	k := KindOfCode(code)
	if k == secretsource.KindUnknown {
		k = KindOfStatus(status)
	}
	if code == "" && k == secretsource.KindUnknown {
		k = secretsource.KindInvalidAnswer
	}
	return k
}

// KindOfStatus classifies an HTTP status: the fallback for error codes that
// KindOfCode does not know. A 404 is not classified: a missing secret comes
// with its code (Forbidden.ResourceNotFound), while a bare 404 may be a proxy
// or a path that is not the gateway, and the instance API answers 404 for an
// unknown client key too; none of them says the secret does not exist.
func KindOfStatus(status int) secretsource.Kind {
	switch {
	case status == 429:
		return secretsource.KindThrottled
	case status == 401:
		return secretsource.KindInvalidCredentials
	case status == 403:
		return secretsource.KindAccessDenied
	case status == 502, status == 503, status == 504:
		return secretsource.KindUnavailable
	case status >= 500:
		return secretsource.KindInternal
	}
	return secretsource.KindUnknown
}

// IsTLSVerification reports whether err is a failed verification of the
// server's certificate: an unknown authority, a name the certificate is not
// valid for, an expired (or not yet valid) or otherwise invalid certificate.
// Retrying the same endpoint cannot cure it, unlike a handshake cut short.
// The text is checked too ("x509:"), for SDKs that format the cause with %s.
func IsTLSVerification(err error) bool {
	if err == nil {
		return false
	}
	var (
		cv *tls.CertificateVerificationError
		ua x509.UnknownAuthorityError
		hn x509.HostnameError
		ci x509.CertificateInvalidError
		sa x509.SystemRootsError
	)
	return errors.As(err, &cv) || errors.As(err, &ua) || errors.As(err, &hn) || errors.As(err, &ci) ||
		errors.As(err, &sa) || strings.Contains(err.Error(), "x509: ")
}
