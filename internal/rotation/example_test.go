package rotation_test

import (
	"context"
	"errors"
	"fmt"

	"github.com/kmsdb/kmsdb/connector"
	"github.com/kmsdb/kmsdb/internal/rotation"
	"github.com/kmsdb/kmsdb/secretsource"
	"github.com/kmsdb/kmsdb/secretsource/cache"
)

// A driver adapter gives Run an attempt function and a classifier; Run
// handles the rotation. Here the "database" has already moved to the
// password of version v2 while the cache still holds v1.
func ExampleRun() {
	version := "v1"
	src := secretsource.SourceFunc(func(ctx context.Context, name string) (*secretsource.Secret, error) {
		return secretsource.NewSecret(secretsource.Fields{
			Name: name, VersionID: version, SecretType: secretsource.TypeRds,
			Value: []byte(`{"AccountName":"app","AccountPassword":"password-of-` + version + `"}`),
		}), nil
	})
	c, _ := cache.New(src)
	defer c.Close()
	_, _ = c.GetSecret(context.Background(), "db-secret") // the cache holds v1
	version = "v2"                                        // KMS and the database rotate

	errRejected := errors.New("access denied")
	login, _ := rotation.NewLogin(rotation.Config{
		SecretName: "db-secret",
		Source:     c,
		Classify: func(err error) connector.Class {
			if errors.Is(err, errRejected) {
				return connector.AuthFailure
			}
			return connector.Other
		},
	})
	conn, err := rotation.Run(context.Background(), login, func(ctx context.Context, acct secretsource.DBAccount) (string, error) {
		if acct.Password != "password-of-v2" {
			return "", errRejected
		}
		return "connected as " + acct.Username + " with version " + acct.VersionID, nil
	})
	fmt.Println(conn, err)
	fmt.Printf("%+v\n", login.Stats())
	// Output:
	// connected as app with version v2 <nil>
	// {Logins:2 AuthFailures:1 Retries:1 PreviousUsed:0 Failed:0}
}

// Scrub removes a password from an error's text, also in the escaped forms
// DSNs use; the errors below the one that held it stay reachable with
// errors.Is / errors.As, that one does not.
func ExampleScrub() {
	base := fmt.Errorf("cannot parse user:p%%40ss%%2Fw0rd@tcp(db:3306)/app: %w", context.DeadlineExceeded)
	err := rotation.Scrub(base, "p@ss/w0rd")
	fmt.Println(err, errors.Is(err, base), errors.Is(err, context.DeadlineExceeded))
	// Output: cannot parse user:REDACTED@tcp(db:3306)/app: context deadline exceeded false true
}
