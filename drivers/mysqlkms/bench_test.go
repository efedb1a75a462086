package mysqlkms

import (
	"testing"

	"github.com/go-sql-driver/mysql"

	"github.com/kmsdb/kmsdb/internal/testdb"
	"github.com/kmsdb/kmsdb/secretsource/cache"
)

// BenchmarkConnect opens (and closes) one connection through the connector
// and through the raw driver with a fixed configuration, against the same
// server in the same run. The paired sub-benchmark alternates the two and
// reports their ratio (connector/raw); the target is under 1.05.
func BenchmarkConnect(b *testing.B) {
	srv := testdb.MariaDB(b)
	user := srv.CreateUser(b, "bench", "bench-pass-1")
	st := testdb.NewSecrets()
	st.PutAccount("db", srv.Account(user, "bench-pass-1"))
	c, err := cache.New(st)
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()

	cfg := mysql.NewConfig()
	cfg.User, cfg.Passwd, cfg.Net, cfg.Addr, cfg.DBName = user, "bench-pass-1", "tcp", srv.Addr(), testdb.Database
	raw, err := mysql.NewConnector(cfg)
	if err != nil {
		b.Fatal(err)
	}
	kms, err := newConnector("db", WithSource(c))
	if err != nil {
		b.Fatal(err)
	}
	defer kms.Close()
	testdb.BenchmarkConnectors(b, raw, kms)
}
