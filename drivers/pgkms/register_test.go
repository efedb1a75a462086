package pgkms

import (
	"log/slog"
	"testing"

	"github.com/kmsdb/kmsdb/internal/drivertest"
	"github.com/kmsdb/kmsdb/internal/testdb"
	"github.com/kmsdb/kmsdb/secretsource"
)

// sharedDriver describes this package to the tests all drivers share.
var sharedDriver = drivertest.Driver{
	Name:             "pgkms",
	Database:         "PostgreSQL",
	Server:           testdb.Postgres,
	DSN:              func(addr string) string { return "postgres://" + addr + "/" + testdb.Database + "?sslmode=disable" },
	CurrentUserQuery: "SELECT current_user",
	Register: func(name string, src secretsource.Source, logger *slog.Logger, bad bool) (func() error, error) {
		switch {
		case bad:
			return RegisterDriver(name, WithSource(nil))
		case src == nil:
			return RegisterDriver(name)
		}
		return RegisterDriver(name, WithSource(src), WithGracePeriod(-1), WithLogger(logger))
	},
}

// TestRegisterDriver: see drivertest.TestRegisterDriver.
func TestRegisterDriver(t *testing.T) { drivertest.TestRegisterDriver(t, sharedDriver) }

// TestRegisterDriverBadOptions: see drivertest.TestRegisterDriverBadOptions.
func TestRegisterDriverBadOptions(t *testing.T) { drivertest.TestRegisterDriverBadOptions(t, sharedDriver) }
