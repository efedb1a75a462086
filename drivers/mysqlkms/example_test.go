package mysqlkms_test

import (
	"context"
	"database/sql"
	"fmt"

	"github.com/kmsdb/kmsdb/drivers/mysqlkms"
	"github.com/kmsdb/kmsdb/internal/testdb"
	"github.com/kmsdb/kmsdb/secretsource"
	"github.com/kmsdb/kmsdb/secretsource/cache"
)

// The one line: a *sql.DB whose connections log in with the secret
// "db-secret". Without WithSource it uses the process-wide default cache
// configured like Alibaba's secrets manager client (environment variables
// or secretsmanager.properties).
func Example() {
	provider, done := exampleProvider()
	defer done()

	db := sql.OpenDB(mysqlkms.NewConnector("db-secret", mysqlkms.WithSource(provider)))
	defer db.Close()

	var one int
	err := db.QueryRow("SELECT 1").Scan(&one)
	fmt.Println(one, err)
	// Output: 1 <nil>
}

// exampleProvider stands in for your KMS: a throwaway user on the test
// MariaDB and a cache over an in-memory secret "db-secret" naming it.
func exampleProvider() (secretsource.Cache, func()) {
	ctx := context.Background()
	srv, err := testdb.Open(ctx, testdb.EngineMariaDB)
	if err != nil {
		panic(err)
	}
	user, err := srv.NewUser(ctx, "example", "example-password-1")
	if err != nil {
		panic(err)
	}
	secrets := testdb.NewSecrets()
	secrets.PutAccount("db-secret", srv.Account(user, "example-password-1"))
	c, err := cache.New(secrets)
	if err != nil {
		panic(err)
	}
	return c, func() { _ = c.Close(); _ = srv.Close(ctx) }
}
