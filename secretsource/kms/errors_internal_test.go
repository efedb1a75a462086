package kms

import (
	"context"
	"errors"
	"net"
	"net/url"
	"strings"
	"syscall"
	"testing"
	"time"

	sdkerrors "github.com/aliyun/alibaba-cloud-sdk-go/sdk/errors"

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

const leakyURL = "https://kms.cn-hangzhou.aliyuncs.com/?AccessKeyId=LTAIleakyid&Action=GetSecretValue&SecurityToken=CAISsecrettoken&Signature=abc%2Bdef%3D"

func TestScrub(t *testing.T) {
	cases := []struct{ in, mustNot string }{
		{`Post "` + leakyURL + `": dial tcp 127.0.0.1:1: connect: connection refused`, "LTAIleakyid"},
		{`Post "` + leakyURL + `": dial tcp`, "CAISsecrettoken"},
		{`Post "` + leakyURL + `": dial tcp`, "abc%2Bdef"},
		{`Specified signature is not matched with our calculation. server string to sign is:POST&%2F&AccessKeyId%3DLTAIx%26SecurityToken%3DCAIStok`, "CAIStok"},
		{`refresh KeyPair err: SessionAccessKeyId: STS.abc, SessionAccessKeySecret: verysecret, Expiration: x`, "verysecret"},
		{`{"AccessKeyId":"STS.x","AccessKeySecret":"verysecret2","SecurityToken":"tok3"}`, "verysecret2"},
		{`{"AccessKeyId":"STS.x","AccessKeySecret":"verysecret2","SecurityToken":"tok3"}`, "tok3"},
		{`password=hunter2 rest`, "hunter2"},
		{`authorization: Bearer c2lnbmF0dXJl+/=`, "c2lnbmF0dXJl"},
		// Passwords inside JSON escaped in JSON, at one and two levels, and a
		// whole SecretData value.
		{`{"SecretData":"{\"AccountName\":\"app\",\"AccountPassword\":\"esc-pw-1\"}"}`, "esc-pw-1"},
		{`msg: "{\"SecretData\":\"{\\\"AccountPassword\\\":\\\"esc-pw-2\\\"}\"}"`, "esc-pw-2"},
		{`"SecretData":"opaque-value-3"`, "opaque-value-3"},
		// A password holding an escaped quote or backslash is redacted whole.
		{`{"AccountPassword":"ab\"tail-4","x":1}`, "tail-4"},
		{`{\"AccountPassword\":\"ab\\\"tail-5\",\"x\":1}`, "tail-5"},
		{`{"AccountPassword":"ends\\","AccountName":"after-6"}`, "ends"},
	}
	for _, c := range cases {
		got := Scrub(c.in)
		if strings.Contains(got, c.mustNot) {
			t.Errorf("Scrub(%q) = %q still contains %q", c.in, got, c.mustNot)
		}
	}
	// Redaction ends where the value ends: what follows stays readable.
	if got := Scrub(`{"AccountPassword":"ends\\","AccountName":"after-6"}`); !strings.Contains(got, "after-6") {
		t.Errorf("Scrub redacted past the value: %q", got)
	}
	if got := Scrub(`{\"AccountPassword\":\"pw\",\"AccountName\":\"after-7\"}`); !strings.Contains(got, "after-7") {
		t.Errorf("Scrub redacted past the escaped value: %q", got)
	}
	if got := Scrub("The specified secret is not found."); got != "The specified secret is not found." {
		t.Errorf("Scrub changed a harmless message: %q", got)
	}
}

func TestMapErrorServer(t *testing.T) {
	body := `{"RequestId":"req-1","HostId":"kms","Code":"SignatureDoesNotMatch","Message":"Specified signature is not matched with our calculation. server string to sign is:POST&%2F&AccessKeyId%3DLTAIleak%26SecurityToken%3Dsecrettok"}`
	se := sdkerrors.NewServerError(400, body, "").(*sdkerrors.ServerError)
	e := mapError(context.Background(), se, "db", "cn-hangzhou")
	if e.Kind != secretsource.KindInvalidCredentials || e.Code != "SignatureDoesNotMatch" || e.RequestID != "req-1" {
		t.Fatalf("got %+v", e)
	}
	for _, leak := range []string{"LTAIleak", "secrettok", "string to sign is:"} {
		if strings.Contains(e.Error(), leak) {
			t.Errorf("error %q leaks %q", e.Error(), leak)
		}
	}
	if e.Retryable() {
		t.Error("invalid credentials must not be retryable")
	}

	// A non-JSON body (a proxy's HTML page): classified by status, message cut short.
	se = sdkerrors.NewServerError(502, "<html>"+strings.Repeat("x", 2000)+"</html>", "").(*sdkerrors.ServerError)
	e = mapError(context.Background(), se, "db", "r")
	if e.Kind != secretsource.KindUnavailable || len(e.Message) > 400 {
		t.Errorf("got kind %v message length %d", e.Kind, len(e.Message))
	}
}

func TestMapErrorTransport(t *testing.T) {
	oe := &net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}
	ue := &url.Error{Op: "Post", URL: leakyURL, Err: oe}
	e := mapError(context.Background(), ue, "db", "cn-hangzhou")
	if e.Kind != secretsource.KindNetwork || !e.Retryable() {
		t.Fatalf("got %v", e.Kind)
	}
	if strings.Contains(e.Error(), "LTAIleakyid") || strings.Contains(e.Error(), "Signature=") {
		t.Errorf("error leaks the signed URL: %s", e)
	}
	if !errors.Is(e, syscall.ECONNREFUSED) || !errors.Is(e, secretsource.ErrNetwork) {
		t.Errorf("errors.Is lost the cause: %v", e)
	}

	ue = &url.Error{Op: "Post", URL: leakyURL, Err: context.DeadlineExceeded}
	if e := mapError(context.Background(), ue, "db", "r"); e.Kind != secretsource.KindTimeout {
		t.Errorf("deadline: got %v", e.Kind)
	}

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	e = mapError(ctx, ue, "db", "r")
	if !errors.Is(e, context.Canceled) || secretsource.IsRetryable(e) {
		t.Errorf("cancelled: got %v retryable=%v", e, secretsource.IsRetryable(e))
	}
	ctx, cancel = context.WithDeadline(context.Background(), time.Now().Add(-time.Second))
	defer cancel()
	if e := mapError(ctx, ue, "db", "r"); e.Kind != secretsource.KindTimeout {
		t.Errorf("deadline ctx: got %v", e.Kind)
	}
}

func TestMapCredentialError(t *testing.T) {
	cases := []struct {
		msg  string
		want secretsource.Kind
	}{
		{`refresh session token failed: {"RequestId":"r","Code":"InvalidAccessKeyId.NotFound","Message":"x"}`, secretsource.KindInvalidCredentials},
		{`refresh session token failed: {"Code":"Throttling.User"}`, secretsource.KindThrottled},
		{`get sts token failed with: {"Code":"EntityNotExist.OIDCProvider"}`, secretsource.KindInvalidCredentials},
		{`Post "https://sts.aliyuncs.com/?AccessKeyId=LTAIleakyid&Signature=x": dial tcp 127.0.0.1:9: connect: connection refused`, secretsource.KindNetwork},
		{`Post "https://sts.aliyuncs.com/": context deadline exceeded (Client.Timeout exceeded while awaiting headers)`, secretsource.KindTimeout},
		{`refresh KeyPair err: SessionAccessKeyId: a, SessionAccessKeySecret: verysecret, Expiration: `, secretsource.KindInvalidCredentials},
	}
	for _, c := range cases {
		e := mapError(context.Background(), &credentialError{provider: "ram_role_arn", msg: Scrub(c.msg)}, "db", "r")
		if e.Kind != c.want {
			t.Errorf("%q: kind %v, want %v", c.msg, e.Kind, c.want)
		}
		for _, leak := range []string{"LTAIleakyid", "verysecret"} {
			if strings.Contains(e.Error(), leak) {
				t.Errorf("%q leaks %q: %s", c.msg, leak, e)
			}
		}
	}
}

// FuzzScrub: whatever surrounds it, a credential in a signed URL's query or
// after a sensitive key never survives Scrub.
func FuzzScrub(f *testing.F) {
	f.Add("Post \"", "\": dial tcp: connection refused", "s3cr3tValue")
	f.Add("", "", "abc")
	f.Add("{\"x\":1,", "}", "tok/+=")
	// Regressions: lowering these changes their length in bytes.
	f.Add(strings.Repeat("\xff", 40), "", "abcdefg")
	f.Add(strings.Repeat("İ", 80), "", "abcdefg")
	f.Fuzz(func(t *testing.T, prefix, suffix, secret string) {
		if len(secret) < 6 || strings.ContainsAny(secret, " \t\r\n\"'&,;}?") || strings.Contains(prefix+suffix, secret) {
			return
		}
		for _, in := range []string{
			prefix + "https://kms.cn-hangzhou.aliyuncs.com/?AccessKeyId=x&Signature=" + secret + suffix,
			prefix + "AccessKeySecret=" + secret + suffix,
			prefix + `"SecurityToken":"` + secret + `"` + suffix,
			prefix + `\"AccountPassword\":\"` + secret + `\"` + suffix,
			prefix + `\\\"SecretData\\\":\\\"` + secret + `\\\"` + suffix,
			prefix + "server string to sign is:POST&%2F&" + secret,
		} {
			if out := Scrub(in); strings.Contains(out, secret) && !strings.Contains(Scrub(prefix+suffix), secret) {
				t.Fatalf("Scrub(%q) = %q keeps %q", in, out, secret)
			}
		}
	})
}
