package pgkms

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/kmsdb/kmsdb/connector"
	"github.com/kmsdb/kmsdb/internal/testdb"
)

// captureLoginEvents installs a default Observer that records the
// LoginEvents of secret, for the test's duration.
func captureLoginEvents(t *testing.T) (events func(secret string) []connector.LoginEvent) {
	t.Helper()
	var mu sync.Mutex
	var got []connector.LoginEvent
	prev := connector.DefaultObserver()
	o := prev
	o.Login = func(ev connector.LoginEvent) {
		mu.Lock()
		got = append(got, ev)
		mu.Unlock()
	}
	connector.SetDefaultObserver(o)
	t.Cleanup(func() { connector.SetDefaultObserver(prev) })
	return func(secret string) []connector.LoginEvent {
		mu.Lock()
		defer mu.Unlock()
		var out []connector.LoginEvent
		for _, ev := range got {
			if ev.Secret == secret {
				out = append(out, ev)
			}
		}
		return out
	}
}

// TestFailedLoginErrorsHoldNoPassword is an attacker's test: for real logins
// PostgreSQL rejects (the secret's password is wrong), through the
// database/sql connector and the Pool, failing at once, past the grace period
// and at the caller's deadline within it, nothing reachable from the error
// or from the LoginEvent's Err (errors.Unwrap trees, errors.As to every
// exported error type of pgconn, pgx, net, url, os, and a reflection walk of
// every field, exported or not) holds the password that was tried, nor the
// one of the base DSN. SQLSTATE 28P01 stays reachable.
func TestFailedLoginErrorsHoldNoPassword(t *testing.T) {
	const (
		tried  = "Tried-Pw-Leak-5501"
		basePw = "Base-Dsn-Pw-7702"
	)
	e := newEnv(t)
	user := e.srv.CreateUser(t, "leak", "leak-real-pw-1")
	events := captureLoginEvents(t)
	type target struct {
		name string
		try  func(ctx context.Context, secret string, opts ...Option) error
	}
	targets := []target{
		{"database/sql", func(ctx context.Context, secret string, opts ...Option) error {
			return e.open(t, secret, opts...).PingContext(ctx)
		}},
		{"pool", func(ctx context.Context, secret string, opts ...Option) error {
			return e.pool(t, secret, opts...).Ping(ctx)
		}},
	}
	scenarios := []struct {
		name    string
		grace   time.Duration
		timeout time.Duration
		tries   int // the last try's error is checked too
	}{
		{"no grace", -1, time.Minute, 1},
		{"rejected past grace", 100 * time.Millisecond, time.Minute, 2},
		{"deadline in grace", time.Minute, 300 * time.Millisecond, 1},
	}
	for _, tg := range targets {
		for _, sc := range scenarios {
			t.Run(tg.name+"/"+sc.name, func(t *testing.T) {
				secret := testdb.UniqueName("leak")
				e.secrets.PutAccount(secret, e.srv.Account(user, tried))
				var errs []error
				for range sc.tries {
					ctx, cancel := context.WithTimeout(context.Background(), sc.timeout)
					err := tg.try(ctx, secret, WithGracePeriod(sc.grace), WithDSN("sslmode=disable password="+basePw))
					cancel()
					if err == nil {
						t.Fatal("a login with the wrong password succeeded")
					}
					errs = append(errs, err)
				}
				for _, ev := range events(secret) {
					errs = append(errs, ev.Err)
				}
				if len(errs) < sc.tries+1 {
					t.Errorf("%d errors and events, want at least %d: no LoginEvent?", len(errs), sc.tries+1)
				}
				for i, err := range errs {
					if err == nil {
						t.Errorf("error %d is nil", i)
						continue
					}
					for _, pw := range []string{tried, basePw} {
						for _, leak := range testdb.ErrorLeaks(err, pw) {
							t.Errorf("error %d leaks a password at %s", i, leak)
						}
					}
					var ce *connector.Error
					if !errors.As(err, &ce) || ce.Class != connector.AuthFailure {
						t.Errorf("error %d: not an AuthFailure *connector.Error: %v", i, err)
					}
					var pe *pgconn.PgError
					if !errors.As(err, &pe) || pe.Code != "28P01" {
						t.Errorf("error %d: *pgconn.PgError 28P01 not reachable: %v", i, err)
					}
				}
				t.Log(errs[0])
			})
		}
	}
}
