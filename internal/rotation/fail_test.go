package rotation

import (
	"context"
	"errors"
	"fmt"
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
// error reporters do) shows no link holding the secret, while errors.Is and
// errors.As still reach the original errors.
func TestScrubHidesTheChain(t *testing.T) {
	const pw = "hunter2-in-the-middle"
	drv := &testDriverError{code: 1045}
	inner := fmt.Errorf("connect with password %s: %w", pw, drv)
	err := fmt.Errorf("outer: %w", Scrub(fmt.Errorf("dial: %w", inner), pw))
	for e := err; e != nil; e = errors.Unwrap(e) {
		if strings.Contains(e.Error(), pw) {
			t.Errorf("a link of the chain (%T) shows the password: %s", e, e.Error())
		}
	}
	if !errors.Is(err, inner) || !errors.Is(err, drv) {
		t.Error("errors.Is does not reach the original errors")
	}
	var got *testDriverError
	if !errors.As(err, &got) || got.code != 1045 {
		t.Errorf("errors.As = %v, want the driver error", got)
	}
}
