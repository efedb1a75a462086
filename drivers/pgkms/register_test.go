package pgkms

import (
	"testing"

	"github.com/kmsdb/kmsdb/internal/drivertest"
	"github.com/kmsdb/kmsdb/internal/testdb"
)

// sharedDriver describes this package to the tests all drivers share.
var sharedDriver = drivertest.Driver[Option]{
	Name: "pgkms", Database: "PostgreSQL", Server: testdb.Postgres,
	DSN:              func(addr string) string { return "postgres://" + addr + "/" + testdb.Database + "?sslmode=disable" },
	CurrentUserQuery: "SELECT current_user",
	RegisterDriver:   RegisterDriver, WithSource: WithSource, WithGracePeriod: WithGracePeriod, WithLogger: WithLogger,
}

// TestRegisterDriver: see drivertest.TestRegisterDriver.
func TestRegisterDriver(t *testing.T) { drivertest.TestRegisterDriver(t, sharedDriver) }

// TestRegisterDriverBadOptions: see drivertest.TestRegisterDriverBadOptions.
func TestRegisterDriverBadOptions(t *testing.T) {
	drivertest.TestRegisterDriverBadOptions(t, sharedDriver)
}
