package integration

// Hard passwords: characters that break naive DSN building and quoting
// (@ : / ? # % & = + ' " \, spaces) and non-ASCII text log in through the
// connectors on both engines, and never show up in an error.

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/kmsdb/kmsdb/connector"
	"github.com/kmsdb/kmsdb/secretsource/kmstest"
)

// hardPasswords are the passwords every engine must accept through the connectors.
var hardPasswords = map[string]string{
	"punctuation": `p@ss:w/o?r#d%25&x=y+z'q"b\s`,
	"spaces":      ` lead and trail spaces `,
	"non-ascii":   `mot-de-passe-é-ß-中文-пароль`,
	"everything":  `@:/?#%&=+'"\ é中 ;--` + "`$",
}

func TestHardPasswords(t *testing.T) {
	for _, k := range allKinds {
		for name, pw := range hardPasswords {
			t.Run(string(k)+"/"+name, func(t *testing.T) {
				db := dbServer(t, k) // proves a wrong password is rejected first
				user := db.CreateUser(t, "hardpw", pw)
				const secretName = "hard/password"
				stack := newKMSStack(t, nil, kmstest.SecretSpec{Name: secretName, Type: "Rds", Data: rdsValue(user, pw)})
				if u, p := account(t, rdsValue(user, pw)); u != user || p != pw {
					t.Fatalf("the secret value does not round-trip the password")
				}
				tg := openTarget(t, k, db, stack.cache, secretName, targetOptions{workers: 2})
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				defer cancel()
				if err := tg.query(ctx); err != nil {
					if strings.Contains(err.Error(), pw) {
						t.Errorf("the error shows the password")
					}
					t.Fatalf("login with a hard password through the connector: %v", err)
				}
				if st := tg.stats(); st.AuthFailures != 0 {
					t.Errorf("%d authentication failures before logging in", st.AuthFailures)
				}

				// The same password, wrong on the database: the error never shows
				// it (once per engine: each waits for a rate-limited refresh).
				if name != "everything" {
					return
				}
				other := db.CreateUser(t, "hardpw2", "something-else")
				const wrongSecret = "hard/wrong"
				if err := stack.srv.AddSecret(kmstest.SecretSpec{Name: wrongSecret, Type: "Rds", Data: rdsValue(other, pw)}); err != nil {
					t.Fatal(err)
				}
				tw := openTarget(t, k, db, stack.cache, wrongSecret, targetOptions{workers: 1, grace: -1})
				err := tw.query(ctx)
				if err == nil {
					t.Fatal("a wrong password logged in")
				}
				if strings.Contains(err.Error(), pw) || strings.Contains(err.Error(), strings.TrimSpace(pw)) {
					t.Errorf("the error shows the password: %v", err)
				}
				if !strings.Contains(err.Error(), wrongSecret) {
					t.Errorf("the error does not name the secret %q: %v", wrongSecret, err)
				}
				if !errors.Is(err, connector.ErrCredentialsRejected) {
					t.Errorf("a wrong password is not reported as rejected credentials: %v", err)
				}
			})
		}
	}
}
