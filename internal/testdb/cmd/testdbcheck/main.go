// Command testdbcheck checks that the test databases named by
// KMSDB_TEST_PG_ADMIN_DSN and KMSDB_TEST_MYSQL_ADMIN_DSN (or the local
// defaults) answer, creates the database and role group the tests use when
// missing, and proves that each server rejects a wrong password. It is run by
// scripts/testdb.sh when those variables are set; it prints one line and
// exits non-zero on any failure.
package main

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/kmsdb/kmsdb/internal/testdb"
)

func main() {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var seen []string
	for _, e := range []testdb.Engine{testdb.EnginePostgres, testdb.EngineMariaDB} {
		srv, err := testdb.Open(ctx, e)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		err = srv.ProvePasswordEnforced(ctx)
		if cerr := srv.Close(ctx); err == nil {
			err = cerr
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		seen = append(seen, fmt.Sprintf("%s %s at %s", e, srv.Version(), srv.Addr()))
	}
	fmt.Printf("testdb: %s and %s answer; database %s ready; wrong passwords rejected on both\n", seen[0], seen[1], testdb.Database)
}
