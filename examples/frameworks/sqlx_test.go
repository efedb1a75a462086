package frameworks_test

import (
	"database/sql"
	"errors"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jmoiron/sqlx"

	"github.com/kmsdb/kmsdb/drivers/pgkms"
)

// TestSqlxNeedsBindStyle proves what the package documentation says: under
// a driver name sqlx does not know, Rebind leaves "?" and PostgreSQL
// answers 42601 (so pgkms needs sqlx.BindDriver or NewDb(db, "pgx")).
func TestSqlxNeedsBindStyle(t *testing.T) {
	db := sqlx.NewDb(sql.OpenDB(pgkms.NewConnector("app-postgres", pgkms.WithDSN("sslmode=disable"))), "pgkms-unbound")
	defer db.Close()
	var n int
	err := db.Get(&n, db.Rebind("SELECT ?::int + 1"), 41)
	var pe *pgconn.PgError
	if !errors.As(err, &pe) || pe.Code != "42601" {
		t.Fatalf("got %d, %v; want SQLSTATE 42601", n, err)
	}
	pgx := sqlx.NewDb(sql.OpenDB(pgkms.NewConnector("app-postgres", pgkms.WithDSN("sslmode=disable"))), "pgx")
	defer pgx.Close()
	if err := pgx.Get(&n, pgx.Rebind("SELECT ?::int + 1"), 41); err != nil || n != 42 {
		t.Fatalf(`NewDb(db, "pgx"): %d, %v; want 42`, n, err)
	}
}
