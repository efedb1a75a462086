package wire

import (
	"testing"

	"github.com/kmsdb/kmsdb/secretsource"
)

func TestKindOfCode(t *testing.T) {
	cases := map[string]secretsource.Kind{
		"Forbidden.ResourceNotFound":     secretsource.KindNotFound,
		"Forbidden.KeyNotFound":          secretsource.KindNotFound,
		"Forbidden.NoPermission":         secretsource.KindAccessDenied,
		"Forbidden.KeyNotEnabled":        secretsource.KindAccessDenied,
		"Forbidden":                      secretsource.KindAccessDenied,
		"InvalidAccessKeyId.NotFound":    secretsource.KindInvalidCredentials,
		"InvalidAccessKeyId.Inactive":    secretsource.KindInvalidCredentials,
		"SignatureDoesNotMatch":          secretsource.KindInvalidCredentials,
		"IncompleteSignature":            secretsource.KindInvalidCredentials,
		"InvalidSecurityToken.Expired":   secretsource.KindInvalidCredentials,
		"InvalidSecurityToken.Malformed": secretsource.KindInvalidCredentials,
		"Rejected.Throttling":            secretsource.KindThrottled,
		"Throttling":                     secretsource.KindThrottled,
		"Throttling.User":                secretsource.KindThrottled,
		"ServiceUnavailableTemporary":    secretsource.KindUnavailable,
		"ServiceUnavailable":             secretsource.KindUnavailable,
		"InternalFailure":                secretsource.KindInternal,
		"InternalError":                  secretsource.KindInternal,
		"SDK.TimeoutError":               secretsource.KindTimeout,
		"MissingParameter":               secretsource.KindConfig,
		"InvalidParameter":               secretsource.KindConfig,
		"":                               secretsource.KindUnknown,
		"Whatever.Else":                  secretsource.KindUnknown,
	}
	for code, want := range cases {
		t.Run(code, func(t *testing.T) {
			if got := KindOfCode(code); got != want {
				t.Errorf("KindOfCode(%q) = %v, want %v", code, got, want)
			}
		})
	}
}

func TestKindOfStatus(t *testing.T) {
	cases := map[int]secretsource.Kind{429: secretsource.KindThrottled, 401: secretsource.KindInvalidCredentials,
		403: secretsource.KindAccessDenied, 404: secretsource.KindNotFound, 503: secretsource.KindUnavailable,
		500: secretsource.KindInternal, 400: secretsource.KindUnknown}
	for status, want := range cases {
		if got := KindOfStatus(status); got != want {
			t.Errorf("KindOfStatus(%d) = %v, want %v", status, got, want)
		}
	}
}
