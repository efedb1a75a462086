package pgkms

import (
	"cmp"
	"errors"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"
)

// redactedText replaces a password in an error message.
const redactedText = "xxxxx"

// scrubParseError returns what pgx said about a connection string it could
// not parse, without the string itself and without any spelling of a
// password in it. pgx masks passwords on a best-effort basis and keeps the
// unmasked string in ParseConfigError.ConnString; the error returned here
// keeps neither (nor pgx's error in its chain).
func scrubParseError(err error, connString string) error {
	msg := err.Error()
	var pce *pgconn.ParseConfigError
	if errors.As(err, &pce) {
		bare := *pce
		bare.ConnString = ""
		inner := strings.TrimPrefix(bare.Error(), "cannot parse ``: ")
		msg = strings.Replace(msg, pce.Error(), inner, 1)
	}
	return errors.New(scrubPasswords(msg, connString))
}

// scrubPasswords removes from msg every password that connString holds, in
// every form an error message may show it.
func scrubPasswords(msg, connString string) string {
	var forms []string
	for _, p := range passwordCandidates(connString) {
		forms = append(forms, passwordForms(p)...)
	}
	// Longest first, so a shorter form does not break a longer one apart.
	slices.SortFunc(forms, func(a, b string) int { return cmp.Compare(len(b), len(a)) })
	for _, f := range forms {
		if f != "" {
			msg = strings.ReplaceAll(msg, f, redactedText)
		}
	}
	return msg
}

// passwordCandidates lists everything in s that is, or may have been meant
// as, a password: values of password and sslpassword keywords (any
// spacing, quoted or not, escaped quotes, an unterminated quote running to
// the end, stray words a malformed string leaves after them), URL userinfo
// passwords for every '@' that may end the userinfo, and password query
// parameters; each as written and as decoded. It errs towards too much.
func passwordCandidates(s string) []string {
	var out []string
	add := func(vs ...string) {
		for _, v := range vs {
			if v = strings.TrimSpace(v); v != "" {
				out = append(out, v)
			}
		}
	}
	isPassword := func(key string) bool { return strings.Contains(strings.ToLower(key), "password") }
	for _, p := range keywordValuePairs(s) {
		if isPassword(p.key) {
			add(p.raw, p.value, p.stray, p.raw+" "+p.stray)
			add(strings.Fields(p.stray)...)
		}
	}
	if rest, ok := cutURLScheme(s); ok {
		for i := 0; i < len(rest); i++ {
			if rest[i] != '@' {
				continue
			}
			if _, pw, ok := strings.Cut(rest[:i], ":"); ok {
				add(pw, uriDecode(pw))
			}
		}
		if _, query, ok := strings.Cut(rest, "?"); ok {
			for _, pair := range strings.Split(query, "&") {
				k, v, _ := strings.Cut(pair, "=")
				if isPassword(uriDecode(k)) {
					add(v, uriDecode(v))
				}
			}
		}
	}
	return out
}

// passwordForms lists p as an error message may show it: raw, percent-,
// query- and userinfo-encoded, Go-quoted and keyword/value-quoted.
func passwordForms(p string) []string {
	forms := []string{p, url.QueryEscape(p), url.PathEscape(p), percentEncode(p),
		strings.ToLower(percentEncode(p)), quoteValue(p)}
	u := (&url.URL{User: url.UserPassword("u", p)}).String() // "//u:ENC@"
	if i, j := strings.Index(u, ":"), strings.LastIndex(u, "@"); i >= 0 && j > i {
		forms = append(forms, u[i+1:j])
	}
	q := strconv.Quote(p)
	forms = append(forms, q[1:len(q)-1], strings.Trim(quoteValue(p), "'"))
	return forms
}
