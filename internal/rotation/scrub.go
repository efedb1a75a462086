package rotation

import (
	"cmp"
	"fmt"
	"net/url"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
)

// Redacted replaces a secret in an error text.
const Redacted = "REDACTED"

// minScrubLen is the shortest secret Scrub removes from error texts: shorter
// ones would garble messages and say nothing.
const minScrubLen = 4

// Scrub returns err rebuilt so that nothing a caller can reach from it holds
// a secret: not its text, nor the text of any error in its tree
// (errors.Unwrap, Unwrap() []error), nor any value errors.As can find, nor
// any field of those, exported or not. Secrets shorter than 4 bytes are
// ignored; each counts in every spelling ScrubText knows.
//
// Each error of the tree is kept as it is when nothing reachable from it
// holds a secret (so driver errors such as *pgconn.PgError,
// *mysql.MySQLError, *net.OpError, and sentinels, stay reachable with
// errors.Is and errors.As); an error of a type a driver registered with
// RegisterRedactor is replaced by its redacted copy first (whatever the
// secrets: *pgconn.ConnectError carries the password that was tried even
// when the caller does not know it). Any other error that holds a secret is
// replaced by one with its scrubbed text whose links are its own links,
// scrubbed: its type, and the original value, are then out of reach. err
// itself is returned when it holds nothing to remove.
func Scrub(err error, secrets ...string) error {
	if err == nil {
		return nil
	}
	s := &scrubber{forms: formsOf(minScrubLen, secrets), types: redactTypes()}
	return s.tree(err, 0)
}

// ScrubText returns msg with every spelling of each secret replaced by
// Redacted: raw; URL query-, path- and userinfo-escaped; percent-encoded
// (upper and lower case hex); Go-quoted; and quoted or escaped as in a
// keyword/value connection string. Spellings shorter than minLen are left.
// Longer spellings are replaced first, so a shorter one cannot break a
// longer one apart.
func ScrubText(msg string, minLen int, secrets ...string) string {
	return replaceForms(msg, formsOf(minLen, secrets))
}

func replaceForms(msg string, forms []string) string {
	for _, f := range forms {
		msg = strings.ReplaceAll(msg, f, Redacted)
	}
	return msg
}

// formsOf lists the spellings of secrets at least minLen bytes long
// (and at least 1), longest first, without duplicates.
func formsOf(minLen int, secrets []string) []string {
	minLen = max(minLen, 1)
	var forms []string
	for _, s := range secrets {
		if len(s) < minLen {
			continue
		}
		for _, f := range escapedForms(s) {
			if len(f) >= minLen && !slices.Contains(forms, f) {
				forms = append(forms, f)
			}
		}
	}
	slices.SortStableFunc(forms, func(a, b string) int { return cmp.Compare(len(b), len(a)) })
	return forms
}

// escapedForms lists s as a message may show it.
func escapedForms(s string) []string {
	pct := PercentEncode(s)
	kv := strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(s) // keyword/value quoting
	q := strconv.Quote(s)
	forms := []string{s, url.QueryEscape(s), url.PathEscape(s), pct, strings.ToLower(pct), "'" + kv + "'", kv, q[1 : len(q)-1]}
	u := (&url.URL{User: url.UserPassword("u", s)}).String() // "//u:ENC@"
	if i, j := strings.Index(u, ":"), strings.LastIndex(u, "@"); i >= 0 && j > i {
		forms = append(forms, u[i+1:j])
	}
	return forms
}

// PercentEncode encodes every byte of v but the unreserved ones (RFC 3986):
// the form a password takes in a URL, which the scrubber looks for, and the
// form pgkms writes a host in.
func PercentEncode(v string) string {
	var b strings.Builder
	for i := 0; i < len(v); i++ {
		c := v[i]
		if 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '.' || c == '_' || c == '~' {
			b.WriteByte(c)
		} else {
			fmt.Fprintf(&b, "%%%02X", c)
		}
	}
	return b.String()
}

// redactor replaces an error of one type by a copy that holds no secret.
type redactor struct {
	typ   reflect.Type
	apply func(error) (error, bool)
}

var (
	redactMu  sync.RWMutex
	redactors []redactor
)

// RegisterRedactor makes Scrub replace every error of type E in a tree by
// f's copy of it, which must hold no secret (a driver's error type that
// carries the connection's configuration: a copy with its credentials
// removed). A value of type E that Scrub meets anywhere else (not as a link
// of the tree it can replace) makes the error holding it count as holding a
// secret. The drivers call it from init.
func RegisterRedactor[E error](f func(E) E) {
	redactMu.Lock()
	defer redactMu.Unlock()
	redactors = append(redactors, redactor{typ: reflect.TypeFor[E](), apply: func(err error) (error, bool) {
		e, ok := err.(E) //nolint:errorlint // this link of the tree only: Scrub visits each
		if !ok {
			return nil, false
		}
		return f(e), true
	}})
}

func redactTypes() []redactor {
	redactMu.RLock()
	defer redactMu.RUnlock()
	return redactors
}

// scrubber rebuilds error trees without secrets.
type scrubber struct {
	forms []string // spellings of the secrets, longest first
	types []redactor
}

// maxDepth bounds the error trees Scrub rebuilds; deeper links are dropped
// (their text stays, scrubbed, in the text of the errors above).
const maxDepth = 32

// tree returns err, or what stands for it, holding no secret.
func (s *scrubber) tree(err error, depth int) error {
	e := err
	for _, r := range s.types {
		if c, ok := r.apply(err); ok {
			e = c
			break
		}
	}
	if depth < maxDepth && s.clean(e) {
		return e
	}
	msg := replaceForms(e.Error(), s.forms)
	if depth >= maxDepth {
		return &scrubbedError{msg: msg}
	}
	switch u := err.(type) { //nolint:errorlint // rebuilding the tree link by link
	case interface{ Unwrap() []error }:
		var errs []error
		for _, c := range u.Unwrap() {
			if c != nil {
				errs = append(errs, s.tree(c, depth+1))
			}
		}
		return &scrubbedJoin{msg: msg, errs: errs}
	case interface{ Unwrap() error }:
		if c := u.Unwrap(); c != nil {
			return &scrubbedError{msg: msg, err: s.tree(c, depth+1)}
		}
	}
	return &scrubbedError{msg: msg}
}

// clean reports whether nothing reachable from err holds a secret: the text
// of err and of the errors of its tree, and every string and byte slice
// reachable from err by reflection; nor a value of a type that must be
// redacted, below err itself.
func (s *scrubber) clean(err error) bool {
	if !s.textsClean(err, 0) {
		return false
	}
	w := &cleanWalk{s: s, seen: map[seen]bool{}, budget: maxWalk}
	v := reflect.ValueOf(err)
	if v.Kind() == reflect.Pointer && !v.IsNil() {
		w.seen[seen{v.Pointer(), v.Type()}] = true
		return w.walk(v.Elem(), 1)
	}
	return w.walk(v, 1)
}

func (s *scrubber) textsClean(err error, depth int) bool {
	if err == nil {
		return true
	}
	if depth > maxDepth || s.holds(err.Error()) {
		return false
	}
	switch u := err.(type) { //nolint:errorlint // every link of the tree
	case interface{ Unwrap() []error }:
		for _, c := range u.Unwrap() {
			if !s.textsClean(c, depth+1) {
				return false
			}
		}
	case interface{ Unwrap() error }:
		return s.textsClean(u.Unwrap(), depth+1)
	}
	return true
}

func (s *scrubber) holds(text string) bool {
	for _, f := range s.forms {
		if strings.Contains(text, f) {
			return true
		}
	}
	return false
}

// maxWalk bounds the values clean visits: an error that reaches more (a
// connection, a whole configuration) counts as holding a secret.
const maxWalk = 1 << 14

type seen struct {
	p uintptr
	t reflect.Type
}

type cleanWalk struct {
	s      *scrubber
	seen   map[seen]bool
	budget int
}

// visited reports whether the walk has met v (a non-nil pointer or slice:
// its address and type) before, and records it.
func (w *cleanWalk) visited(v reflect.Value) bool {
	k := seen{v.Pointer(), v.Type()}
	if w.seen[k] {
		return true
	}
	w.seen[k] = true
	return false
}

// walk reports whether nothing reachable from v holds a secret.
func (w *cleanWalk) walk(v reflect.Value, depth int) bool {
	if !v.IsValid() {
		return true
	}
	if w.budget--; w.budget < 0 || depth > 64 {
		return false
	}
	for _, r := range w.s.types {
		if v.Type() == r.typ {
			return false
		}
	}
	switch v.Kind() {
	case reflect.String:
		return !w.s.holds(v.String())
	case reflect.Pointer:
		if v.IsNil() || w.visited(v) {
			return true
		}
		return w.walk(v.Elem(), depth+1)
	case reflect.Interface:
		return v.IsNil() || w.walk(v.Elem(), depth+1)
	case reflect.Struct:
		for i := range v.NumField() {
			if !w.walk(v.Field(i), depth+1) {
				return false
			}
		}
	case reflect.Slice, reflect.Array:
		if v.Kind() == reflect.Slice && (v.IsNil() || w.visited(v)) {
			return true
		}
		if v.Type().Elem().Kind() == reflect.Uint8 {
			if v.Kind() == reflect.Slice {
				return !w.s.holds(string(v.Bytes()))
			}
			b := make([]byte, v.Len())
			for i := range b {
				b[i] = byte(v.Index(i).Uint()) //nolint:gosec // the element is a uint8
			}
			return !w.s.holds(string(b))
		}
		if k := v.Type().Elem().Kind(); k >= reflect.Bool && k <= reflect.Complex128 {
			return true // numbers hold no text
		}
		for i := range v.Len() {
			if !w.walk(v.Index(i), depth+1) {
				return false
			}
		}
	case reflect.Map:
		for it := v.MapRange(); it.Next(); {
			if !w.walk(it.Key(), depth+1) || !w.walk(it.Value(), depth+1) {
				return false
			}
		}
	case reflect.Func, reflect.Chan, reflect.UnsafePointer:
		// Nothing reflection can read; a function's closure is out of
		// reach of callers too.
	}
	return true
}

// scrubbedError stands for an error that held a secret: its text, scrubbed,
// and its link, itself scrubbed. It holds nothing of the original.
type scrubbedError struct {
	msg string
	err error
}

func (e *scrubbedError) Error() string { return e.msg }

// Unwrap returns the scrubbed link of the original error.
func (e *scrubbedError) Unwrap() error { return e.err }

// scrubbedJoin is scrubbedError for an error with several links.
type scrubbedJoin struct {
	msg  string
	errs []error
}

func (e *scrubbedJoin) Error() string { return e.msg }

// Unwrap returns the scrubbed links of the original error.
func (e *scrubbedJoin) Unwrap() []error { return e.errs }
