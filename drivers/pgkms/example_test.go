package pgkms_test

import (
	"context"
	"database/sql"
	"fmt"

	"github.com/kmsdb/kmsdb/drivers/pgkms"
	"github.com/kmsdb/kmsdb/internal/testdb"
	"github.com/kmsdb/kmsdb/secretsource"
	"github.com/kmsdb/kmsdb/secretsource/cache"
)

// A *sql.DB (pgx stdlib) whose connections log in with the secret
// "db-secret". Without WithSource it uses the process-wide default cache
// configured like Alibaba's secrets manager client.
func Example() {
	provider, done := exampleProvider()
	defer done()

	db := sql.OpenDB(pgkms.NewConnector("db-secret", pgkms.WithSource(provider), pgkms.WithDSN("sslmode=disable")))
	defer db.Close()

	var one int
	err := db.QueryRow("SELECT 1").Scan(&one)
	fmt.Println(one, err)
	// Output: 1 <nil>
}

// A pgxpool whose acquisitions retry a login rejected during a rotation.
func ExampleNewPool() {
	provider, done := exampleProvider()
	defer done()
	ctx := context.Background()

	pool, err := pgkms.NewPool(ctx, "db-secret", pgkms.WithSource(provider),
		pgkms.WithDSN("sslmode=disable pool_max_conns=8 pool_max_conn_lifetime=10m"))
	if err != nil {
		panic(err)
	}
	defer pool.Close()

	var one int
	err = pool.QueryRow(ctx, "SELECT 1").Scan(&one)
	fmt.Println(one, err)
	// Output: 1 <nil>
}

// exampleProvider stands in for your KMS: a throwaway role on the test
// PostgreSQL and a cache over an in-memory secret "db-secret" naming it.
func exampleProvider() (secretsource.Cache, func()) {
	ctx := context.Background()
	srv, err := testdb.Open(ctx, testdb.EnginePostgres)
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
