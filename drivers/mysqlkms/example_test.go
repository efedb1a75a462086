package mysqlkms_test

import (
	"database/sql"
	"fmt"

	"github.com/kmsdb/kmsdb/drivers/mysqlkms"
)

// The one line: a *sql.DB whose connections log in with the secret
// "db-secret". Without WithSource it uses the process-wide default cache,
// configured like Alibaba's secrets manager client (environment variables or
// secretsmanager.properties). Here the secret carries the database's host,
// port and name too; give WithDSN("tcp(db.example.com:3306)/app") to pin them.
func Example() {
	db := sql.OpenDB(mysqlkms.NewConnector("db-secret"))
	defer db.Close()

	var one int
	err := db.QueryRow("SELECT 1").Scan(&one)
	fmt.Println(one, err)
	// Output: 1 <nil>
}
