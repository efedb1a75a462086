package rotation

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"testing"

	"github.com/kmsdb/kmsdb/connector"
	"github.com/kmsdb/kmsdb/secretsource"
)

func TestRunPermanentErrorsReturnAtOnce(t *testing.T) {
	src := newRotating("v1", "pw-one-1111", "v2", "pw-two-2222")
	db := &fakeDB{password: "pw-two-2222", perm: fmt.Errorf("%w (password pw-two-2222)", errPerm)}
	l, _, ft := newTestLogin(t, src, 0)
	_, err := Run(context.Background(), l, db.attempt)
	if !errors.Is(err, connector.ErrLoginRefused) || !errors.Is(err, errPerm) {
		t.Fatalf("err = %v, want login refused", err)
	}
	if got := db.logins.Load(); got != 1 {
		t.Errorf("logins = %d, want 1", got)
	}
	if got := src.calls.Load(); got != 1 {
		t.Errorf("source calls = %d, want 1 (the cold fetch only)", got)
	}
	if len(ft.slept) != 0 {
		t.Errorf("waited %v", ft.slept)
	}
	if strings.Contains(err.Error(), "pw-two-2222") {
		t.Errorf("password in error: %v", err)
	}
}

func TestRunOtherErrorsReturnAtOnce(t *testing.T) {
	src := newRotating("v1", "pw-one-1111")
	l, _, _ := newTestLogin(t, src, 0)
	boom := errors.New("dial tcp: connection refused")
	var n int
	_, err := Run(context.Background(), l, func(context.Context, secretsource.DBAccount) (int, error) { n++; return 0, boom })
	var e *connector.Error
	if !errors.As(err, &e) || e.Class != connector.Other || !errors.Is(err, boom) || n != 1 {
		t.Fatalf("err = %v after %d attempts", err, n)
	}
}

func TestRunSecretErrors(t *testing.T) {
	t.Run("not found", func(t *testing.T) {
		src := newRotating("v1", "x")
		src.failWith = &secretsource.Error{Kind: secretsource.KindNotFound, Secret: "db", Message: "no such secret"}
		l, _, _ := newTestLogin(t, src, 0)
		_, err := Run(context.Background(), l, (&fakeDB{}).attempt)
		var e *connector.Error
		if !errors.As(err, &e) || e.Class != connector.SecretUnavailable || !errors.Is(err, secretsource.ErrNotFound) {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("not a database secret", func(t *testing.T) {
		src := secretsource.SourceFunc(func(ctx context.Context, name string) (*secretsource.Secret, error) {
			return secretsource.NewSecret(secretsource.Fields{Name: name, VersionID: "v9", Value: []byte("hunter2-plain-text")}), nil
		})
		l, _, _ := newTestLogin(t, src, 0)
		_, err := Run(context.Background(), l, (&fakeDB{}).attempt)
		var e *connector.Error
		if !errors.As(err, &e) || e.Class != connector.SecretUnavailable || e.Version != "v9" {
			t.Fatalf("err = %v", err)
		}
		if strings.Contains(err.Error(), "hunter2") {
			t.Errorf("secret value in error: %v", err)
		}
	})
}

func TestScrub(t *testing.T) {
	pw := `p@ss:/?#%&=+'"\ wörd`
	for _, form := range escapedForms(pw) {
		err := Scrub(fmt.Errorf("dsn user:%s@tcp(h)/db failed", form), pw)
		if strings.Contains(err.Error(), form) {
			t.Errorf("form %q not scrubbed: %v", form, err)
		}
	}
	base := errors.New("plain")
	if Scrub(base, pw) != base { //nolint:errorlint // identity: Scrub must return base itself, not a wrapper
		t.Error("Scrub wrapped an error with nothing to scrub")
	}
	if Scrub(nil, pw) != nil {
		t.Error("Scrub(nil) != nil")
	}
	if got := Scrub(errors.New("abc abc"), "abc").Error(); got != "abc abc" {
		t.Errorf("short secret scrubbed: %q", got)
	}
}

// testDriverError stands for a driver's own error type.
type testDriverError struct{ code int }

func (e *testDriverError) Error() string { return fmt.Sprintf("driver error %d", e.code) }

// TestScrubHidesTheChain: a chain walked with errors.Unwrap (as loggers and
// error reporters do) shows no link holding the secret; the driver's error
// and the sentinels below the links that held it stay reachable with
// errors.Is and errors.As, those links themselves do not.
func TestScrubHidesTheChain(t *testing.T) {
	const pw = "hunter2-in-the-middle"
	drv := &testDriverError{code: 1045}
	inner := fmt.Errorf("connect with password %s: %w", pw, drv)
	err := fmt.Errorf("outer: %w", Scrub(fmt.Errorf("dial: %w: %w", inner, context.DeadlineExceeded), pw))
	n := 0
	for e := err; e != nil; e = errors.Unwrap(e) {
		n++
		if strings.Contains(e.Error(), pw) {
			t.Errorf("a link of the chain (%T) shows the password: %s", e, e.Error())
		}
	}
	if n < 2 {
		t.Errorf("errors.Unwrap reached %d link(s): the scrubbed error has no Unwrap", n)
	}
	if errors.Is(err, inner) {
		t.Error("errors.Is reaches the link that held the password")
	}
	if !errors.Is(err, drv) || !errors.Is(err, context.DeadlineExceeded) {
		t.Error("errors.Is does not reach the driver error and the sentinel below the password")
	}
	var got *testDriverError
	if !errors.As(err, &got) || got.code != 1045 {
		t.Errorf("errors.As = %v, want the driver error", got)
	}
}

// secretHolder is a driver error that keeps a password in a field its text
// never shows (as *pgconn.ConnectError keeps its configuration).
type secretHolder struct {
	user   string
	config *struct{ password []byte }
	err    error
}

func (e *secretHolder) Error() string { return "connect as " + e.user + ": " + e.err.Error() }
func (e *secretHolder) Unwrap() error { return e.err }

// redactable is a driver error type with a registered redactor.
type redactable struct {
	user, password string
	err            error
}

func (e *redactable) Error() string { return "login " + e.user + ": " + e.err.Error() }
func (e *redactable) Unwrap() error { return e.err }

func init() {
	RegisterRedactor(func(e *redactable) *redactable { c := *e; c.password = ""; return &c })
}

// TestScrubFields: an error holding a password in a field, exported or not,
// is out of reach after Scrub even though its text never shows it; the
// errors below it stay reachable; a type with a redactor is replaced by its
// copy even when the password is not among the secrets.
func TestScrubFields(t *testing.T) {
	const pw = "fieldpw-0042"
	drv := &testDriverError{code: 28}
	holder := &secretHolder{user: "app", config: &struct{ password []byte }{[]byte(pw)}, err: drv}
	err := Scrub(fmt.Errorf("wrapped: %w", holder), pw)
	var h *secretHolder
	if errors.As(err, &h) {
		t.Error("errors.As reaches the error holding the password in a field")
	}
	var d *testDriverError
	if !errors.As(err, &d) {
		t.Error("errors.As does not reach the driver error below it")
	}
	if got, want := err.Error(), "wrapped: connect as app: driver error 28"; got != want {
		t.Errorf("text = %q, want %q", got, want)
	}

	red := &redactable{user: "app", password: pw, err: drv}
	for _, secrets := range [][]string{{pw}, nil} {
		err := Scrub(errors.Join(errors.New("first"), red), secrets...)
		var r *redactable
		if !errors.As(err, &r) || r.password != "" || r.user != "app" || r == red {
			t.Errorf("secrets %q: errors.As = %+v, want the redacted copy", secrets, r)
		}
		if !errors.As(err, &d) {
			t.Errorf("secrets %q: the driver error below the redacted one is out of reach", secrets)
		}
	}
	// The same type anywhere else than as a link of the tree: the error
	// holding it counts as holding a secret.
	hidden := &secretHolder{user: "app", config: &struct{ password []byte }{}, err: fmt.Errorf("x")}
	type opaque struct {
		error
		r *redactable
	}
	err = Scrub(opaque{hidden, red})
	if _, ok := err.(opaque); ok { //nolint:errorlint // the outermost error itself
		t.Error("an error holding a redactable value in a field was kept")
	}
}

// TestScrubTextForms: every spelling of both former scrubbers is removed,
// longest first.
func TestScrubTextForms(t *testing.T) {
	pw := `p@ss:/?#%&=+'"\ wörd`
	pct := PercentEncode(pw)
	kv := strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(pw)
	q := strconv.Quote(pw)
	for _, form := range []string{pw, url.QueryEscape(pw), url.PathEscape(pw), pct, strings.ToLower(pct), "'" + kv + "'", kv, q[1 : len(q)-1]} {
		if got := ScrubText("x "+form+" y", 4, pw); strings.Contains(got, form) || got != "x "+Redacted+" y" {
			t.Errorf("form %q: %q", form, got)
		}
	}
	if got := ScrubText("abc abc", 4, "abc"); got != "abc abc" {
		t.Errorf("short secret scrubbed at minLen 4: %q", got)
	}
	if got := ScrubText("abc abc", 1, "abc"); got != Redacted+" "+Redacted {
		t.Errorf("short secret not scrubbed at minLen 1: %q", got)
	}
}
