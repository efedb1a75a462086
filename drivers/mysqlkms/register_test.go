package mysqlkms

import (
	"testing"

	"github.com/kmsdb/kmsdb/internal/drivertest"
	"github.com/kmsdb/kmsdb/internal/testdb"
)

// sharedDriver describes this package to the tests all drivers share.
var sharedDriver = drivertest.Driver[Option]{
	Name: "mysqlkms", Database: "MariaDB", Server: testdb.MariaDB,
	DSN:              func(addr string) string { return "tcp(" + addr + ")/" + testdb.Database },
	CurrentUserQuery: "SELECT SUBSTRING_INDEX(CURRENT_USER(), '@', 1)",
	RegisterDriver:   RegisterDriver, WithSource: WithSource, WithGracePeriod: WithGracePeriod, WithLogger: WithLogger,
}

// TestRegisterDriver: see drivertest.TestRegisterDriver.
func TestRegisterDriver(t *testing.T) { drivertest.TestRegisterDriver(t, sharedDriver) }

// TestRegisterDriverBadOptions: see drivertest.TestRegisterDriverBadOptions.
func TestRegisterDriverBadOptions(t *testing.T) {
	drivertest.TestRegisterDriverBadOptions(t, sharedDriver)
}
