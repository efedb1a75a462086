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

// TestScrubSnakeCase: the CLI configuration's and credentials-go's key names
// (snake_case), in JSON and in key=value form, any case.
func TestScrubSnakeCase(t *testing.T) {
	cases := []struct{ in, mustNot, keep string }{
		{`{"mode":"AK","access_key_id":"LTAIsnake1","access_key_secret":"snake-secret-1"}`, "snake-secret-1", `"mode":"AK"`},
		{`{"access_key_id": "LTAIsnake2", "x": 1}`, "LTAIsnake2", `"x": 1`},
		{`{"sts_token":"snake-sts-3"}`, "snake-sts-3", ""},
		{`{"security_token": "snake-sec-4"}`, "snake-sec-4", ""},
		{`{"oidc_token":"snake-oidc-5"}`, "snake-oidc-5", ""},
		{`{"client_key_password":"snake-ckp-6"}`, "snake-ckp-6", ""},
		{`access_key_secret=snake-secret-7 next=ok`, "snake-secret-7", "next=ok"},
		{`ACCESS_KEY_SECRET = snake-secret-8`, "snake-secret-8", ""},
		{`Access_Key_Id=LTAIsnake9`, "LTAIsnake9", ""},
		{`sts-token: snake-sts-10`, "snake-sts-10", ""},
		{`{\"access_key_secret\":\"snake-esc-11\"}`, "snake-esc-11", ""},
		{`private_key_data="snake-pk-12"`, "snake-pk-12", ""},
		{`secret_data=snake-sd-13`, "snake-sd-13", ""},
	}
	for _, c := range cases {
		got := Scrub(c.in)
		if strings.Contains(got, c.mustNot) {
			t.Errorf("Scrub(%q) = %q still contains %q", c.in, got, c.mustNot)
		}
		if c.keep != "" && !strings.Contains(got, c.keep) {
			t.Errorf("Scrub(%q) = %q lost %q", c.in, got, c.keep)
		}
	}
}

// TestScrubUserinfoLastAt: the userinfo runs to the authority's last '@'.
func TestScrubUserinfoLastAt(t *testing.T) {
	cases := []struct{ in, want string }{
		{`dial http://u:p@ss@proxy:8080: refused`, `dial http://[REDACTED]@proxy:8080: refused`},
		{`http://u:a@b@c@proxy:8080/path`, `http://[REDACTED]@proxy:8080/path`},
		{`socks5://user:pw@127.0.0.1:1080`, `socks5://[REDACTED]@127.0.0.1:1080`},
		// An '@' after the authority (in the path) is not userinfo.
		{`https://host.example/a@b`, `https://host.example/a@b`},
		{`http://u:p@h1 and mail x@y`, `http://[REDACTED]@h1 and mail x@y`},
	}
	for _, c := range cases {
		if got := Scrub(c.in); got != c.want {
			t.Errorf("Scrub(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}
