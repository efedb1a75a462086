package mysqlkms

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/kmsdb/kmsdb/internal/drivertest"
	"github.com/kmsdb/kmsdb/internal/testdb"
)

// TestFailedLoginErrorsHoldNoPassword is an attacker's test: for real logins
// MariaDB rejects (the secret's password is wrong), failing at once, past
// the grace period and at the caller's deadline within it, nothing reachable
// from the error or from the LoginEvent's Err (errors.Unwrap trees,
// errors.As to every exported error type of the MySQL driver, pgx, net,
// url, os, and a reflection walk of every field, exported or not) holds the
// password that was tried, nor the one of the base DSN. The driver's
// *mysql.MySQLError stays reachable.
func TestFailedLoginErrorsHoldNoPassword(t *testing.T) {
	const (
		tried  = "Tried-Pw-Leak-5501"
		basePw = "Base-Dsn-Pw-7702"
	)
	e := newEnv(t)
	user := e.srv.CreateUser(t, "leak", "leak-real-pw-1")
	events := drivertest.CaptureLoginEvents(t)
	for _, sc := range []struct {
		name    string
		grace   time.Duration
		timeout time.Duration
		tries   int
	}{
		{"no grace", -1, time.Minute, 1},
		{"rejected past grace", 100 * time.Millisecond, time.Minute, 2},
		{"deadline in grace", time.Minute, 2 * time.Second, 1}, // long enough for the first refusal on a loaded machine
	} {
		t.Run(sc.name, func(t *testing.T) {
			secret := testdb.UniqueName("leak")
			e.secrets.PutAccount(secret, e.srv.Account(user, tried))
			db := e.open(t, secret, WithGracePeriod(sc.grace), WithDSN("u:"+basePw+"@tcp("+e.srv.Addr()+")/"))
			var errs []error
			for range sc.tries {
				ctx, cancel := context.WithTimeout(context.Background(), sc.timeout)
				err := db.PingContext(ctx)
				cancel()
				if err == nil {
					t.Fatal("a login with the wrong password succeeded")
				}
				errs = append(errs, err)
			}
			for _, ev := range events(secret) {
				errs = append(errs, ev.Err)
			}
			testdb.CheckLoginErrors(t, errs, sc.tries+1, []string{tried, basePw}, "*mysql.MySQLError 1045", func(err error) bool {
				var me *mysql.MySQLError
				return errors.As(err, &me) && me.Number == 1045
			})
		})
	}
}
