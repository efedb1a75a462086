package frameworks_test

import (
	"os"
	"testing"

	"github.com/kmsdb/kmsdb/internal/exampletest"
	"github.com/kmsdb/kmsdb/internal/testdb"
)

// TestMain serves "app-mysql" and "app-postgres" (throwaway roles on the test
// servers) through the default cache from the environment, so the examples
// need nothing but the public API; it fails the run if a goroutine leaked.
func TestMain(m *testing.M) {
	os.Exit(exampletest.Main(m,
		exampletest.Serve{Engine: testdb.EngineMariaDB, Secret: "app-mysql"},
		exampletest.Serve{Engine: testdb.EnginePostgres, Secret: "app-postgres"}))
}
