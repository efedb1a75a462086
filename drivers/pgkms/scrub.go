package pgkms

import (
	"errors"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/kmsdb/kmsdb/internal/rotation"
)

// redactedText replaces a password in an error message.
const redactedText = rotation.Redacted

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
// every spelling an error message may show it (rotation.ScrubText), however
// short.
func scrubPasswords(msg, connString string) string {
	return rotation.ScrubText(msg, 1, passwordCandidates(connString)...)
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

// redactConnectError is the copy of a *pgconn.ConnectError that errors
// kmsdb returns: pgx puts the whole configuration of the attempt in it, the
// password that was tried included; the copy keeps the host, port,
// database and user only (what its text shows), and the chain it wraps.
func redactConnectError(e *pgconn.ConnectError) *pgconn.ConnectError {
	c := *e
	c.Config = &pgconn.Config{}
	if e.Config != nil {
		c.Config.Host, c.Config.Port, c.Config.Database, c.Config.User = e.Config.Host, e.Config.Port, e.Config.Database, e.Config.User
	}
	return &c
}

// redactParseConfigError is the copy of a *pgconn.ParseConfigError that
// errors kmsdb return: without the connection string pgx keeps unmasked.
func redactParseConfigError(e *pgconn.ParseConfigError) *pgconn.ParseConfigError {
	c := *e
	c.ConnString = ""
	return &c
}
