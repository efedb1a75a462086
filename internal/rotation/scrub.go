package rotation

import (
	"errors"
	"net/url"
	"strconv"
	"strings"
)

// scrubbedError is an error whose text had secrets removed. errors.Is and
// errors.As still reach the original (driver error types carry server
// messages and codes, which never contain the client's password), but it has
// no Unwrap: code that walks the chain with errors.Unwrap and prints each
// link (some loggers and error reporters do) cannot reach the unscrubbed text
// of the wrapping errors in between.
type scrubbedError struct {
	msg string
	err error
}

func (e *scrubbedError) Error() string { return e.msg }

// Is reports whether the original error matches target.
func (e *scrubbedError) Is(target error) bool { return errors.Is(e.err, target) }

// As finds the first error in the original chain that matches target.
func (e *scrubbedError) As(target any) bool { return errors.As(e.err, target) }

// minScrubLen is the shortest secret scrubbed from error texts: shorter ones
// would garble messages and say nothing.
const minScrubLen = 4

// Scrub returns err with every occurrence of each secret removed from its
// text, including the URL-, userinfo- and quote-escaped forms in which DSNs
// and drivers print them. Secrets shorter than 4 bytes are ignored. errors.As
// and errors.Is still reach the original error.
func Scrub(err error, secrets ...string) error {
	if err == nil {
		return nil
	}
	msg := err.Error()
	out := scrubString(msg, secrets...)
	if out == msg {
		return err
	}
	return &scrubbedError{msg: out, err: err}
}

func scrubString(msg string, secrets ...string) string {
	for _, s := range secrets {
		if len(s) < minScrubLen {
			continue
		}
		for _, form := range escapedForms(s) {
			if len(form) >= minScrubLen {
				msg = strings.ReplaceAll(msg, form, "REDACTED")
			}
		}
	}
	return msg
}

// escapedForms lists s as it may appear in a message: raw, URL query and
// path escaped, URL userinfo escaped, and Go-quoted.
func escapedForms(s string) []string {
	forms := []string{s, url.QueryEscape(s), url.PathEscape(s)}
	u := (&url.URL{User: url.UserPassword("u", s)}).String() // "//u:ENC@"
	if i, j := strings.Index(u, ":"), strings.LastIndex(u, "@"); i >= 0 && j > i {
		forms = append(forms, u[i+1:j])
	}
	q := strconv.Quote(s)
	forms = append(forms, q[1:len(q)-1])
	// Longest first, so a form is not broken by scrubbing a shorter one inside it.
	for i := 1; i < len(forms); i++ {
		for j := i; j > 0 && len(forms[j]) > len(forms[j-1]); j-- {
			forms[j], forms[j-1] = forms[j-1], forms[j]
		}
	}
	return forms
}
