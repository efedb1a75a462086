package pgkms

import (
	"os"
	"testing"

	"github.com/kmsdb/kmsdb/internal/exampletest"
	"github.com/kmsdb/kmsdb/internal/testdb"
)

// TestMain runs the tests and checks that none leaks a goroutine. The
// examples (example_test.go) use only the public API, as a user copies them:
// their secret "db-secret" names a throwaway role and is served from the
// environment by the default cache (exampletest.ServeLocal).
func TestMain(m *testing.M) {
	os.Exit(exampletest.Main(m, exampletest.Serve{Engine: testdb.EnginePostgres, Secret: "db-secret"}))
}
