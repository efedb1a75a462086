package rotation_test

// A wrong password whose context ends inside the grace period, through the
// drivers' public API against real MariaDB and PostgreSQL: the error says the
// login was rejected, even when the attempt in flight at the deadline died
// dialling ("i/o timeout", pgx: "dial error: timeout").

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/jackc/pgx/v5"

	"github.com/kmsdb/kmsdb/connector"
	"github.com/kmsdb/kmsdb/drivers/mysqlkms"
	"github.com/kmsdb/kmsdb/drivers/pgkms"
	"github.com/kmsdb/kmsdb/internal/testdb"
	"github.com/kmsdb/kmsdb/secretsource/cache"
)

// slowDialer dials at once the first time; later dials wait for the
// caller's context to end and then dial with it, so they fail the way a dial
// cut short by the deadline does.
type slowDialer struct{ n atomic.Int64 }

func (d *slowDialer) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	if d.n.Add(1) > 1 {
		<-ctx.Done()
	}
	return (&net.Dialer{}).DialContext(ctx, network, addr)
}

func TestRealDBDeadlineInGraceReportsRejection(t *testing.T) {
	for _, engine := range []string{"mariadb", "postgres"} {
		t.Run(engine, func(t *testing.T) {
			var srv *testdb.Server
			if engine == "mariadb" {
				srv = testdb.MariaDB(t)
			} else {
				srv = testdb.Postgres(t)
			}
			srv.RequirePasswordEnforced(t)
			user := srv.CreateUser(t, "deadline", "right-pass-1")
			st := testdb.NewSecrets()
			st.PutAccount("db", srv.Account(user, "wrong-pass-1"))
			c, err := cache.New(st)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = c.Close() })

			d := &slowDialer{}
			var db *sql.DB
			if engine == "mariadb" {
				cfg := mysql.NewConfig()
				cfg.Net, cfg.Addr, cfg.DBName, cfg.DialFunc = "tcp", srv.Addr(), srv.DBName(), d.dial
				db = sql.OpenDB(mysqlkms.NewConnector("db", mysqlkms.WithSource(c), mysqlkms.WithConfig(cfg),
					mysqlkms.WithGracePeriod(10*time.Minute)))
			} else {
				cfg, err := pgx.ParseConfig(fmt.Sprintf("host=%s port=%d dbname=%s sslmode=disable", srv.Host(), srv.Port(), srv.DBName()))
				if err != nil {
					t.Fatal(err)
				}
				cfg.DialFunc = d.dial
				db = sql.OpenDB(pgkms.NewConnector("db", pgkms.WithSource(c), pgkms.WithConfig(cfg),
					pgkms.WithGracePeriod(10*time.Minute)))
			}
			t.Cleanup(func() { _ = db.Close() })

			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			err = db.PingContext(ctx)
			if d.n.Load() < 2 {
				t.Fatalf("%d dials: no attempt was in flight at the deadline (%v)", d.n.Load(), err)
			}
			if !errors.Is(err, connector.ErrCredentialsRejected) {
				t.Fatalf("want the rejection, got %v", err)
			}
			if !strings.Contains(err.Error(), "stopped waiting for the rotation: context deadline exceeded") || !errors.Is(err, context.DeadlineExceeded) {
				t.Errorf("the wait is not the context: %v", err)
			}
			if strings.Contains(err.Error(), "i/o timeout") || strings.Contains(err.Error(), "dial error") {
				t.Errorf("the dial cut short by the deadline shows: %v", err)
			}
			if strings.Contains(fmt.Sprintf("%+v", err), "wrong-pass-1") {
				t.Errorf("password in error: %v", err)
			}
			t.Log(err)
		})
	}
}
