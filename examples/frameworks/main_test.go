package frameworks_test

import (
	"fmt"
	"os"
	"testing"

	"go.uber.org/goleak"

	"github.com/kmsdb/kmsdb/internal/exampletest"
	"github.com/kmsdb/kmsdb/internal/testdb"
)

// TestMain serves "app-mysql" and "app-postgres" (throwaway roles on the test
// servers) through the default cache from the environment, so the examples
// need nothing but the public API.
func TestMain(m *testing.M) { os.Exit(runTests(m)) }

func runTests(m *testing.M) int {
	if code := serveAndRun(m); code != 0 {
		return code
	}
	if err := goleak.Find(); err != nil {
		fmt.Fprintln(os.Stderr, "goleak:", err)
		return 1
	}
	return 0
}

func serveAndRun(m *testing.M) int {
	for _, s := range []struct {
		e    testdb.Engine
		name string
	}{{testdb.EngineMariaDB, "app-mysql"}, {testdb.EnginePostgres, "app-postgres"}} {
		cleanup, err := exampletest.ServeLocal(s.e, s.name)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		defer cleanup()
	}
	return m.Run()
}
