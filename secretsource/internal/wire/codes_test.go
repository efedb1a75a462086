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
		// the dedicated instance API's own codes
		"SignatureNotMatch":     secretsource.KindInvalidCredentials,
		"UnauthorizedClientKey": secretsource.KindInvalidCredentials,
		"RequestTimeTooSkewed":  secretsource.KindConfig,
		"InvalidParam":          secretsource.KindConfig,
		"InvalidApiName":        secretsource.KindConfig,
		"":                      secretsource.KindUnknown,
		"Whatever.Else":         secretsource.KindUnknown,
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
		403: secretsource.KindAccessDenied, 404: secretsource.KindUnknown, 503: secretsource.KindUnavailable,
		500: secretsource.KindInternal, 400: secretsource.KindUnknown}
	for status, want := range cases {
		if got := KindOfStatus(status); got != want {
			t.Errorf("KindOfStatus(%d) = %v, want %v", status, got, want)
		}
	}
}

// TestKindOfAnswer: the one classification of an error answer both sources
// use: the code first, the status for an unknown code, and an answer with no
// code that its status does not explain is not the service's error document.
// A bare 404 never says the secret is missing (kms used to say it did; dkms
// did not, as the instance API answers 404 for an unknown client key too).
func TestKindOfAnswer(t *testing.T) {
	for _, tt := range []struct {
		code   string
		status int
		want   secretsource.Kind
	}{
		{"Forbidden.ResourceNotFound", 404, secretsource.KindNotFound},
		{"UnauthorizedClientKey", 404, secretsource.KindInvalidCredentials},
		{"Rejected.Throttling", 400, secretsource.KindThrottled},
		{"Whatever.Else", 503, secretsource.KindUnavailable},
		{"Whatever.Else", 404, secretsource.KindUnknown},
		{"Whatever.Else", 400, secretsource.KindUnknown},
		{"", 404, secretsource.KindInvalidAnswer},
		{"", 400, secretsource.KindInvalidAnswer},
		{"", 500, secretsource.KindInternal},
		{"", 429, secretsource.KindThrottled},
	} {
		if got := KindOfAnswer(tt.code, tt.status); got != tt.want {
			t.Errorf("KindOfAnswer(%q, %d) = %v, want %v", tt.code, tt.status, got, tt.want)
		}
	}
}
