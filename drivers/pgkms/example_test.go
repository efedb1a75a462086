package pgkms_test

import (
	"context"
	"database/sql"
	"fmt"

	"github.com/kmsdb/kmsdb/drivers/pgkms"
)

// A *sql.DB (pgx stdlib) whose connections log in with the secret
// "db-secret". Without WithSource it uses the process-wide default cache,
// configured like Alibaba's secrets manager client. Here the secret carries
// the database's host, port and name; WithDSN gives everything else.
func Example() {
	db := sql.OpenDB(pgkms.NewConnector("db-secret", pgkms.WithDSN("sslmode=disable")))
	defer db.Close()

	var one int
	err := db.QueryRow("SELECT 1").Scan(&one)
	fmt.Println(one, err)
	// Output: 1 <nil>
}

// A pgxpool whose acquisitions retry a login rejected during a rotation.
func ExampleNewPool() {
	ctx := context.Background()
	pool, err := pgkms.NewPool(ctx, "db-secret",
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
