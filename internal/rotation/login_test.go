package rotation

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/kmsdb/kmsdb/connector"
	"github.com/kmsdb/kmsdb/secretsource"
)

// TestAccountAndContinue: a connection made outside Run (pgxpool's
// BeforeConnect) logs in with what Account returns; when the database
// rejects it, Continue goes on from the next version without trying the
// rejected one again, and Match finds the account from its credentials.
// long: one story (Account, a rejection, Continue, Match) told in order.
func TestAccountAndContinue(t *testing.T) {
	src := newRotating("v1", "pw-one-1111")
	db := &fakeDB{password: "pw-one-1111"}
	l, c, ft := newTestLogin(t, src, 0)
	ctx := context.Background()
	acct, err := l.Account(ctx)
	if err != nil || acct.VersionID != "v1" {
		t.Fatalf("Account = %v, %v", acct.VersionID, err)
	}
	src.add("v2", "pw-two-2222")
	if _, err := c.Refresh(ctx, "db"); err != nil {
		t.Fatal(err)
	}
	acct, err = l.Account(ctx)
	if err != nil || acct.VersionID != "v2" {
		t.Fatalf("Account after the refresh = %v, %v", acct.VersionID, err)
	}
	_, err = db.attempt(ctx, acct)
	m, ok := l.Match(acct.Username, "pw-two-2222")
	if !ok || m.VersionID != "v2" {
		t.Fatalf("Match = %v, %v", m.VersionID, ok)
	}
	if _, ok := l.Match(acct.Username, "no-such-password"); ok {
		t.Error("Match found an account for a password the Login does not hold")
	}
	logins := db.logins.Load()
	v, err := Continue(ctx, l, m, err, db.attempt)
	if err != nil || v != "v1" {
		t.Fatalf("Continue = %q, %v; want v1", v, err)
	}
	if got := db.logins.Load() - logins; got != 1 {
		t.Errorf("Continue made %d logins, want 1 (v1 only)", got)
	}
	if acct, err := l.Account(ctx); err != nil || acct.VersionID != "v1" {
		t.Errorf("Account while v1 stands in = %v, %v", acct.VersionID, err)
	}
	// The database moves on to a version the cache does not know yet: Continue
	// tries what the process holds, then waits for the refresh.
	db.set("pw-three-3333")
	acct, _ = l.Account(ctx)
	_, err = db.attempt(ctx, acct)
	w0 := ft.waits()
	ft.onWait = func(n int) {
		if n == w0+2 {
			src.add("v3", "pw-three-3333")
		}
	}
	if v, err := Continue(ctx, l, acct, err, db.attempt); err != nil || v != "v3" {
		t.Fatalf("Continue = %q, %v; want v3", v, err)
	}
	// Every version refused, within the grace period: Account asks Continue
	// to wait, without a login (one call per retry turn gets a version to try).
	db.set("pw-four-4444")
	cctx, cancel := context.WithCancel(ctx)
	ft.onWait = func(int) { cancel() }
	if _, err := Run(cctx, l, db.attempt); !errors.Is(err, context.Canceled) {
		t.Fatalf("Run = %v, want cancelled while waiting", err)
	}
	ft.onWait = nil
	for i := 0; ; i++ {
		if _, err = l.Account(ctx); err != nil {
			break
		}
		if i == 10 {
			t.Fatal("Account keeps handing out refused versions")
		}
	}
	if !errors.Is(err, connector.ErrCredentialsRejected) {
		t.Fatalf("Account with every version refused = %v", err)
	}
	w := ft.waits()
	ft.onWait = func(n int) {
		if n == w+1 {
			src.add("v4", "pw-four-4444")
		}
	}
	if v, err := Continue(ctx, l, secretsource.DBAccount{}, err, db.attempt); err != nil || v != "v4" {
		t.Fatalf("Continue after Account's error = %q, %v; want v4", v, err)
	}
	// A permanent error is returned as it is.
	db.perm = errPerm
	if _, err := Continue(ctx, l, m, errPerm, db.attempt); !errors.Is(err, connector.ErrLoginRefused) {
		t.Errorf("Continue with a permanent error = %v", err)
	}
}

func TestNewLoginValidates(t *testing.T) {
	if _, err := NewLogin(Config{SecretName: "x", Classify: classifyFake, ProbeInterval: -time.Second}); err == nil ||
		!strings.Contains(err.Error(), "ProbeInterval") {
		t.Errorf("negative ProbeInterval: %v", err)
	}
	if _, err := NewLogin(Config{Classify: classifyFake}); err == nil {
		t.Error("empty secret name accepted")
	}
	if _, err := NewLogin(Config{SecretName: "x"}); err == nil {
		t.Error("nil Classify accepted")
	}
}

func TestSourceGetsOwnCache(t *testing.T) {
	src := newRotating("v1", "pw-one-1111")
	plain := secretsource.SourceFunc(src.GetSecret)
	l, err := NewLogin(Config{SecretName: "db", Source: plain, Classify: classifyFake})
	if err != nil {
		t.Fatal(err)
	}
	db := &fakeDB{password: "pw-one-1111"}
	for range 5 {
		if _, err := Run(context.Background(), l, db.attempt); err != nil {
			t.Fatal(err)
		}
	}
	if got := src.calls.Load(); got != 1 {
		t.Errorf("source calls = %d, want 1: a plain Source gets a cache", got)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Fatal("second Close:", err)
	}
}

// TestConfigNeverPrintsRedactList: Config.Redact holds passwords (from a base
// DSN); printing a Config must not show them.
func TestConfigNeverPrintsRedactList(t *testing.T) {
	cfg := Config{SecretName: "db", Redact: []string{"dsn-password-41"}, Classify: classifyFake}
	var buf bytes.Buffer
	slog.New(slog.NewTextHandler(&buf, nil)).Info("cfg", "v", cfg, "p", &cfg)
	slog.New(slog.NewJSONHandler(&buf, nil)).Info("cfg", "v", cfg)
	outputs := []string{buf.String()}
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q"} {
		outputs = append(outputs, fmt.Sprintf(verb, cfg), fmt.Sprintf(verb, &cfg))
	}
	for _, out := range outputs {
		if strings.Contains(out, "dsn-password-41") {
			t.Errorf("a redacted string shows: %s", out)
		}
	}
	if !strings.Contains(cfg.String(), `"db"`) {
		t.Errorf("String() = %s, want the secret name", cfg.String())
	}
}
