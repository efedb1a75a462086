package wire

import (
	"regexp"
	"strings"
)

var (
	// A URL with a query string: the core SDK puts AccessKeyId, SecurityToken and
	// Signature in the query, and net/http errors quote the whole URL.
	reURLQuery = regexp.MustCompile(`(?i)((?:https?://)?[A-Za-z0-9.\-:\[\]]*/[^\s"'?]*)\?[^\s"']*`)
	// A sensitive key and its separator, in key=value, key: value, "key":"value"
	// and JSON escaped inside JSON (\"key\":\"value\"), at any depth; the value
	// after it is found by sensitiveValueEnd. Keys are matched in CamelCase
	// and in snake_case or kebab-case (access_key_secret, sts_token,
	// client_key_password: the CLI configuration's and credentials-go's
	// names).
	reSensitive = regexp.MustCompile(`(?i)(?:access[_-]?key[_-]?(?:secret|id)|security[_-]?token|sts[_-]?token|` +
		`signature|bearer[_-]?token|password|passwd|private[_-]?key(?:[_-]?data)?|authorization|` +
		`oidc[_-]?token|token|secret[_-]?data|client[_-]?key[_-]?password)(?:\\*")?\s*[:=]\s*`)
	// The userinfo of a URL (scheme://user:password@host): proxy URLs carry
	// their credentials there. It runs to the last '@' of the authority: a
	// password may hold an unescaped '@' (http://u:p@ss@proxy:8080).
	reUserinfo     = regexp.MustCompile(`(?i)\b([a-z][a-z0-9+.-]*://)[^/\s"'?#]+@`)
	reStringToSign = regexp.MustCompile(`(?i)string to sign`)
	reBearer       = regexp.MustCompile(`(?i)\b(Bearer)\s+[A-Za-z0-9+/=._~-]+`)
)

// Scrub removes from s what may identify or unlock an account: the userinfo
// of URLs (user:password@), query strings of URLs (where the core SDK puts AccessKeyId, SecurityToken and Signature), the
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
	s = reUserinfo.ReplaceAllString(s, "${1}[REDACTED]@")
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

// Truncate cuts s to at most n bytes (without splitting a UTF-8 sequence) and
// marks the cut with an ellipsis.
func Truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return strings.ToValidUTF8(s[:n], "") + "…"
}

// Token keeps a code or request id only if it looks like one: at most 128
// letters, digits, '.', '-' and '_'. Anything else is dropped: a service
// field that should hold a token but holds anything else may hold a value.
func Token(s string) string {
	if len(s) > 128 {
		return ""
	}
	for _, r := range s {
		if (r < 'a' || r > 'z') && (r < 'A' || r > 'Z') && (r < '0' || r > '9') && r != '.' && r != '-' && r != '_' {
			return ""
		}
	}
	return s
}
