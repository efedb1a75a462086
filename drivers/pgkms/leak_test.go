package pgkms

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/kmsdb/kmsdb/connector"
	"github.com/kmsdb/kmsdb/internal/drivertest"
	"github.com/kmsdb/kmsdb/internal/testdb"
)

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
	events := drivertest.CaptureLoginEvents(t)
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
		{"deadline in grace", time.Minute, 2 * time.Second, 1}, // long enough for the first refusal on a loaded machine
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
				testdb.CheckLoginErrors(t, errs, sc.tries+1, []string{tried, basePw}, "*pgconn.PgError 28P01", func(err error) bool {
					var pe *pgconn.PgError
					return errors.As(err, &pe) && pe.Code == "28P01"
				})
			})
		}
	}
}

// TestPoolNonLoginErrorsAreNotLogins: a failed Acquire that is not the
// database refusing a login (a closed pool, an acquisition wait cut by the
// deadline, 53300 too many connections, a refused connection) comes back as
// pgxpool returned it, scrubbed: no login counted in Stats, no LoginEvent,
// the driver's error reachable. A rejected password still is a login.
func TestPoolNonLoginErrorsAreNotLogins(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	const pw = "NonLogin-Pw-8813"
	user := e.srv.CreateUser(t, "nonlogin", pw)
	events := drivertest.CaptureLoginEvents(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	must(t, err)
	closedPort := ln.Addr().(*net.TCPAddr).Port
	must(t, ln.Close())

	check := func(t *testing.T, p *Pool, secret string, err error, want func(error) bool) {
		t.Helper()
		if err == nil {
			t.Fatal("Acquire succeeded")
		}
		if !want(err) {
			t.Errorf("not the expected error: %v", err)
		}
		var ce *connector.Error
		if errors.As(err, &ce) {
			t.Errorf("a *connector.Error (class %v): the failure went through the rotation loop: %v", ce.Class, err)
		}
		if st := p.Stats(); st != (connector.Stats{}) {
			t.Errorf("stats %+v: the failure counted as a login", st)
		}
		if evs := events(secret); len(evs) != 0 {
			t.Errorf("%d LoginEvents: %+v", len(evs), evs)
		}
		for _, leak := range testdb.ErrorLeaks(err, pw) {
			t.Errorf("the error leaks the password at %s", leak)
		}
		t.Log(err)
	}
	newSecret := func() string {
		s := testdb.UniqueName("nonlogin")
		e.secrets.PutAccount(s, e.srv.Account(user, pw))
		return s
	}

	t.Run("closed pool", func(t *testing.T) {
		s := newSecret()
		p := e.pool(t, s)
		p.Close()
		_, err := p.Acquire(ctx)
		check(t, p, s, err, func(err error) bool { return strings.Contains(err.Error(), "closed pool") })
	})
	t.Run("acquire wait timeout", func(t *testing.T) {
		s := newSecret()
		p := e.pool(t, s, WithDSN("sslmode=disable pool_max_conns=1"))
		c, err := p.Acquire(ctx)
		must(t, err)
		defer c.Release()
		logins := p.Stats()
		if logins != (connector.Stats{}) {
			t.Fatalf("stats %+v after the first login: the fast path counts", logins)
		}
		tctx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
		defer cancel()
		_, err = p.Acquire(tctx)
		check(t, p, s, err, func(err error) bool { return errors.Is(err, context.DeadlineExceeded) })
	})
	t.Run("too many connections (53300)", func(t *testing.T) {
		u := e.srv.CreateUser(t, "nolimit", pw)
		_, err := e.srv.Admin().ExecContext(ctx, `ALTER ROLE "`+u+`" CONNECTION LIMIT 0`)
		must(t, err)
		s := testdb.UniqueName("nonlogin")
		e.secrets.PutAccount(s, e.srv.Account(u, pw))
		p := e.pool(t, s)
		_, err = p.Acquire(ctx)
		check(t, p, s, err, func(err error) bool {
			var pe *pgconn.PgError
			return errors.As(err, &pe) && pe.Code == "53300"
		})
	})
	t.Run("connection refused", func(t *testing.T) {
		s := newSecret()
		p := e.pool(t, s, WithDSN(fmt.Sprintf("host=127.0.0.1 port=%d sslmode=disable connect_timeout=5", closedPort)))
		_, err := p.Acquire(ctx)
		check(t, p, s, err, func(err error) bool {
			var oe *net.OpError
			return errors.As(err, &oe) && errors.Is(err, syscall.ECONNREFUSED)
		})
	})
	t.Run("rejected password is a login", func(t *testing.T) {
		s := testdb.UniqueName("nonlogin")
		e.secrets.PutAccount(s, e.srv.Account(user, "wrong-"+pw))
		p := e.pool(t, s, WithGracePeriod(-1))
		_, err := p.Acquire(ctx)
		if !errors.Is(err, connector.ErrCredentialsRejected) {
			t.Fatalf("err = %v, want credentials rejected", err)
		}
		if st := p.Stats(); st.Logins != 1 || st.AuthFailures != 1 || st.Failed != 1 {
			t.Errorf("stats %+v, want 1 login, 1 auth failure, 1 failed", st)
		}
		if evs := events(s); len(evs) != 1 || evs[0].Class != connector.AuthFailure {
			t.Errorf("LoginEvents %+v, want one AuthFailure", evs)
		}
	})
}
