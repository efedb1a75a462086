package integration

// Errors that cannot heal by waiting (an unknown database, a locked account)
// come back at once with an error that says what is wrong, and cause no
// storm of KMS calls however often the application retries.

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/kmsdb/kmsdb/connector"
	"github.com/kmsdb/kmsdb/internal/testdb"
	"github.com/kmsdb/kmsdb/secretsource/kmstest"
)

// nonHealingGrace is the connectors' grace period in these tests: a
// non-healing error must come back well before it (a retry loop would use it up).
const nonHealingGrace = 20 * time.Second

// nonHealingTries is how many times the application tries again.
const nonHealingTries = 20

func TestNonHealingErrors(t *testing.T) {
	type scenario struct {
		name  string
		setup func(t *testing.T, db *testdb.Server, user string) (dbName string)
		want  []string // substrings of the error, any engine: lower-cased
	}
	scenarios := []scenario{
		{"unknown-database", func(t *testing.T, db *testdb.Server, user string) string {
			return "kmsdb_no_such_database"
		}, []string{"kmsdb_no_such_database"}},
		{"locked-account", func(t *testing.T, db *testdb.Server, user string) string {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			if err := db.Lock(ctx, user); err != nil {
				t.Fatal(err)
			}
			return ""
		}, nil},
	}
	for _, k := range allKinds {
		for _, sc := range scenarios {
			t.Run(string(k)+"/"+sc.name, func(t *testing.T) {
				db := dbServer(t, k) // proves a wrong password is rejected first
				pw := "nonhealing-" + testdbUnique("pw")
				user := db.CreateUser(t, "nonheal", pw)
				const secretName = "nonhealing-db"
				stack := newKMSStack(t, nil, kmstest.SecretSpec{Name: secretName, Type: "Rds", Data: rdsValue(user, pw)})
				dbName := sc.setup(t, db, user)
				tg := openTarget(t, k, db, stack.cache, secretName, targetOptions{workers: 2, dbName: dbName, grace: nonHealingGrace})

				ctx, cancel := context.WithTimeout(context.Background(), 2*nonHealingGrace)
				defer cancel()
				var first error
				var slowest time.Duration
				for i := range nonHealingTries {
					start := time.Now()
					err := tg.query(ctx)
					slowest = max(slowest, time.Since(start))
					if err == nil {
						t.Fatalf("try %d: the query succeeded", i)
					}
					if first == nil {
						first = err
					}
				}
				calls := stack.srv.Calls("GetSecretValue", secretName)
				st := tg.stats()

				msg := first.Error()
				t.Logf("error: %s", msg)
				if strings.Contains(msg, pw) {
					t.Errorf("the error shows the password")
				}
				if !errors.Is(first, connector.ErrLoginRefused) {
					t.Errorf("not reported as a refused login (connector.ErrLoginRefused): %v", first)
				}
				var ce *connector.Error
				if !errors.As(first, &ce) {
					t.Fatalf("not a *connector.Error: %T %v", first, first)
				}
				if ce.Class != connector.Permanent || ce.Secret != secretName || ce.User != user || ce.Attempts != 1 {
					t.Errorf("error fields: class=%v secret=%q user=%q attempts=%d; want Permanent, %q, %q, 1",
						ce.Class, ce.Secret, ce.User, ce.Attempts, secretName, user)
				}
				for _, w := range sc.want {
					if !strings.Contains(strings.ToLower(msg), w) {
						t.Errorf("the error does not mention %q: %s", w, msg)
					}
				}
				// "At once": each try came back long before the grace period a
				// retry loop would have used (a structural bound, not a timing one).
				if slowest >= nonHealingGrace/2 {
					t.Errorf("a try took %v: the error was retried (grace period %v)", slowest, nonHealingGrace)
				}
				// No storm: one fetch for the cold cache, none per failure.
				if calls > 1 {
					t.Errorf("%d GetSecretValue calls for %d failed logins: want 1 (the cold fetch)", calls, nonHealingTries)
				}
				if st.AuthFailures != 0 || st.Retries != 0 {
					t.Errorf("connector stats %+v: a non-healing error was treated as an authentication failure", st)
				}
				figures(t, "kind=%s error=%s tries=%d slowest=%s kms_calls=%d logins=%d retries=%d",
					k, sc.name, nonHealingTries, ms(slowest), calls, st.Logins, st.Retries)
			})
		}
	}
}
