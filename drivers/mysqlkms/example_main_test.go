package mysqlkms

import (
	"fmt"
	"os"
	"testing"

	"go.uber.org/goleak"

	"github.com/kmsdb/kmsdb/internal/exampletest"
	"github.com/kmsdb/kmsdb/internal/testdb"
)

// TestMain runs the tests and checks that none leaks a goroutine. The
// examples (example_test.go) use only the public API, as a user copies them:
// their secret "db-secret" names a throwaway MariaDB role and is served from
// the environment by the default cache (exampletest.ServeLocal).
func TestMain(m *testing.M) {
	os.Exit(runTests(m))
}

func runTests(m *testing.M) int {
	cleanup, err := exampletest.ServeLocal(testdb.EngineMariaDB, "db-secret")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	code := m.Run()
	cleanup()
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, "goleak:", err)
			return 1
		}
	}
	return code
}
