package wire

import (
	"strings"
	"testing"
)

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
		// Credentials in a URL's userinfo (a proxy URL in a transport error).
		{`proxyconnect tcp: dial http://proxyuser:pr0xy-pw@127.0.0.1:3128: refused`, "pr0xy-pw"},
		{`Post "https://user:url-pw@kst-1.example:8443/": EOF`, "url-pw"},
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
