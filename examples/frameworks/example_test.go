package frameworks_test

import (
	"database/sql"
	"fmt"

	"github.com/jmoiron/sqlx"
	gormmysql "gorm.io/driver/mysql"
	gormpostgres "gorm.io/driver/postgres"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"

	"github.com/kmsdb/kmsdb/drivers/mysqlkms"
	"github.com/kmsdb/kmsdb/drivers/pgkms"
)

// GORM on MySQL/MariaDB: hand GORM the *sql.DB of a kmsdb connector.
func Example_gormMySQL() {
	sqlDB := sql.OpenDB(mysqlkms.NewConnector("app-mysql"))
	defer sqlDB.Close()
	db, err := gorm.Open(gormmysql.New(gormmysql.Config{Conn: sqlDB}),
		&gorm.Config{Logger: logger.Discard})
	if err != nil {
		panic(err)
	}

	var n int
	err = db.Raw("SELECT ? + 1", 41).Scan(&n).Error
	fmt.Println(n, err)
	// Output: 42 <nil>
}

// GORM on PostgreSQL: the same with pgkms.
func Example_gormPostgres() {
	sqlDB := sql.OpenDB(pgkms.NewConnector("app-postgres", pgkms.WithDSN("sslmode=disable")))
	defer sqlDB.Close()
	db, err := gorm.Open(gormpostgres.New(gormpostgres.Config{Conn: sqlDB}),
		&gorm.Config{Logger: logger.Discard})
	if err != nil {
		panic(err)
	}

	var n int
	err = db.Raw("SELECT ?::int + 1", 41).Scan(&n).Error
	fmt.Println(n, err)
	// Output: 42 <nil>
}

// sqlx on PostgreSQL by driver name: tell sqlx that "pgkms" takes $1, $2...
// (once, at start-up). Without it Rebind leaves "?" and PostgreSQL answers
// 42601.
func Example_sqlxPostgres() {
	sqlx.BindDriver(pgkms.DriverName, sqlx.DOLLAR)
	db, err := sqlx.Open(pgkms.DriverName, "app-postgres?sslmode=disable")
	if err != nil {
		panic(err)
	}
	defer db.Close()

	var n int
	err = db.Get(&n, db.Rebind("SELECT ?::int + 1"), 41)
	fmt.Println(n, err)
	// Output: 42 <nil>
}

// sqlx on MySQL/MariaDB with every connector option: wrap the *sql.DB and
// name the bind style's driver ("mysql": "?" placeholders).
func Example_sqlxMySQL() {
	db := sqlx.NewDb(sql.OpenDB(mysqlkms.NewConnector("app-mysql")), "mysql")
	defer db.Close()

	var n int
	err := db.Get(&n, db.Rebind("SELECT ? + 1"), 41)
	fmt.Println(n, err)
	// Output: 42 <nil>
}
