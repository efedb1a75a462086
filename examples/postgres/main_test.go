package main

import (
	"testing"

	"go.uber.org/goleak"

	"github.com/kmsdb/kmsdb/internal/exampletest"
	"github.com/kmsdb/kmsdb/internal/testdb"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// The example runs against the emulator (HTTPS, its CA in the region
// setting) and a real database that checks the password,
// configured by environment variables only, and its password rotates
// between two queries.
func TestRunAgainstEmulator(t *testing.T) {
	db := testdb.Postgres(t)
	exampletest.RunRotating(t, db, "postgres://"+db.Addr()+"/"+db.DBName()+"?sslmode=disable", run, "query 3: PostgreSQL ")
}
