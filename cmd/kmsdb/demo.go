package main

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kmsdb/kmsdb/drivers/mysqlkms"
	"github.com/kmsdb/kmsdb/drivers/pgkms"
	"github.com/kmsdb/kmsdb/internal/rotation"
	"github.com/kmsdb/kmsdb/internal/testdb"
	"github.com/kmsdb/kmsdb/secretsource"
	"github.com/kmsdb/kmsdb/secretsource/cache"
	"github.com/kmsdb/kmsdb/secretsource/kms"
	"github.com/kmsdb/kmsdb/secretsource/kmstest"
)

func init() {
	register("demo", "live rotation demo: KMS emulator in process, a throwaway role on the local PostgreSQL or MariaDB", runDemo)
}

const demoUsage = `usage: kmsdb demo [--engine auto|postgres|mysql] [--rotations 3] [--every 3s]

Starts the KMS emulator in this process, creates a throwaway login role with a
password on the local PostgreSQL (or MariaDB), stores its credentials in an Rds
secret, and runs queries without pause through the kmsdb connector while the
secret's password rotates: one line per second with queries/s, errors and the
secret version in use, then the totals. The role is dropped at the end.

Databases: KMSDB_DEMO_PG_DSN (a PostgreSQL superuser DSN) and KMSDB_DEMO_MYSQL_DSN
(a go-sql-driver/mysql DSN of a user that may CREATE USER) when set; otherwise
postgres@127.0.0.1:5432 and root@127.0.0.1:3306. PostgreSQL must ask the demo
role for its password: ` + "`bash scripts/testdb.sh`" + ` adds the pg_hba.conf rule once.

`

// Environment variables naming the demo's admin DSNs.
const (
	envDemoPG    = "KMSDB_DEMO_PG_DSN"
	envDemoMySQL = "KMSDB_DEMO_MYSQL_DSN"
)

const (
	demoSecret    = "demo/db"
	demoAccessKey = "LTAIdemoAccessKey"
	demoRegion    = "cn-hangzhou"
)

// demoNoDatabase is the one line printed when no database can be used.
const demoNoDatabase = "no database for the demo: start PostgreSQL or MariaDB on this machine (then `bash scripts/testdb.sh`), " +
	"or set " + envDemoPG + "=postgres://USER:PASSWORD@HOST:5432/postgres (a superuser) or " +
	envDemoMySQL + "='USER:PASSWORD@tcp(HOST:3306)/' (a user that may CREATE USER)"

// runDemo implements `kmsdb demo`.
func runDemo(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	fs.SetOutput(stderr)
	engine := fs.String("engine", "auto", "auto (PostgreSQL, else MariaDB), postgres or mysql")
	rotations := fs.Int("rotations", 3, "how many times the password rotates")
	every := fs.Duration("every", 3*time.Second, "time between rotations (the first comes after the same time)")
	workers := fs.Int("workers", 8, "goroutines querying without pause")
	lifetime := fs.Duration("lifetime", 200*time.Millisecond, "connection max lifetime: connections are re-made all the time")
	verbose := fs.Bool("v", false, "say why each database could not be used")
	fs.Usage = func() {
		fmt.Fprint(stderr, demoUsage)
		fs.PrintDefaults()
	}
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		fs.Usage()
		return usagef("unexpected argument %q", fs.Arg(0))
	}
	if *rotations < 0 || *every <= 0 || *workers <= 0 || *lifetime < 0 {
		return usagef("--rotations, --every, --workers and --lifetime must be positive")
	}

	// 1. A database with password authentication enforced.
	db, notes, err := demoDatabase(ctx, *engine)
	if err != nil {
		return err
	}
	defer func() {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		_ = db.Close(cctx) // drops whatever role is left
	}()
	for _, n := range notes {
		if *verbose || strings.HasPrefix(n, "note:") {
			fmt.Fprintln(stdout, n)
		}
	}

	// 2. A throwaway role and the emulator holding its credentials.
	password := "demo-" + strings.TrimPrefix(testdb.UniqueName("pw"), "kt_") + "-P@ss:w/rd"
	role, err := db.NewUser(ctx, "demo", password)
	if err != nil {
		return fmt.Errorf("demo: create the demo role: %w", err)
	}
	defer func() {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		if err := db.DropUser(cctx, role); err != nil {
			fmt.Fprintf(stderr, "demo: drop role %s: %v\n", role, err)
			return
		}
		fmt.Fprintf(stdout, "dropped role %s\n", role)
	}()
	akSecret := "demo-" + strings.TrimPrefix(testdb.UniqueName("ak"), "kt_")
	srv, err := kmstest.NewServer(kmstest.WithAccessKey(demoAccessKey, akSecret),
		kmstest.WithSecret(kmstest.SecretSpec{Name: demoSecret, Type: "Rds",
			Data:           fmt.Sprintf(`{"AccountName":%q,"AccountPassword":%q}`, role, password),
			ExtendedConfig: map[string]any{"SecretSubType": "SingleUser"}}))
	if err != nil {
		return fmt.Errorf("demo: start the KMS emulator: %w", err)
	}
	defer srv.Close()

	// 3. The real stack: KMS source (Alibaba SDK over HTTPS) -> cache -> connector.
	cred, err := kms.NewCredential(kms.CredentialOptions{Type: kms.CredentialAccessKey,
		AccessKeyID: demoAccessKey, AccessKeySecret: akSecret})
	if err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	src, err := kms.New(kms.Config{Region: kms.Region{ID: demoRegion, Endpoint: srv.KMSTLSAddr()},
		Credential: cred, Scheme: "https", RootCAs: srv.CertPool()})
	if err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	defer src.Close()
	c, err := cache.New(src)
	if err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	defer c.Close()

	var conn driver.Connector
	kind := "PostgreSQL"
	if db.Engine() == testdb.EngineMariaDB {
		kind = "MariaDB/MySQL"
		conn = mysqlkms.NewConnector(demoSecret, mysqlkms.WithSource(c),
			mysqlkms.WithDSN("tcp("+db.Addr()+")/"+db.DBName()+"?timeout=10s"))
	} else {
		conn = pgkms.NewConnector(demoSecret, pgkms.WithSource(c),
			pgkms.WithDSN("postgres://"+db.Addr()+"/"+db.DBName()+"?sslmode=disable&connect_timeout=10"))
	}
	sqlDB := sql.OpenDB(conn)
	defer sqlDB.Close()
	sqlDB.SetMaxOpenConns(*workers)
	sqlDB.SetMaxIdleConns(*workers)
	sqlDB.SetConnMaxLifetime(*lifetime)

	// The rotation changes the database password right after the secret, as a
	// rotation function does.
	var hookErr atomic.Pointer[error]
	srv.OnRotate(func(ev kmstest.RotationEvent) {
		if ev.SecretName != demoSecret || ev.Phase != "after" {
			return
		}
		s := secretsource.NewSecret(secretsource.Fields{Name: demoSecret, SecretType: "Rds", Value: []byte(ev.NewValue)})
		acct, err := secretsource.DecodeDBAccount(s)
		if err == nil {
			hctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
			err = db.SetPassword(hctx, acct.Username, acct.Password)
			cancel()
		}
		if err != nil {
			hookErr.Store(&err)
		}
	})

	fmt.Fprintf(stdout, "kmsdb demo: %s %s at %s, throwaway role %s (password required), secret %q in the KMS emulator at https://%s\n",
		kind, db.Version(), db.Addr(), role, demoSecret, srv.KMSTLSAddr())
	fmt.Fprintf(stdout, "%d goroutines query without pause through the kmsdb connector (connections re-made every %v); the password rotates %d times, every %v\n",
		*workers, *lifetime, *rotations, *every)

	// 4. Load, live view, rotations.
	var queries, failures atomic.Int64
	var errMu sync.Mutex
	var firstErrs []string
	loadCtx, stopLoad := context.WithCancel(context.WithoutCancel(ctx))
	var wg sync.WaitGroup
	for range *workers {
		wg.Go(func() {
			for loadCtx.Err() == nil {
				qctx, cancel := context.WithTimeout(loadCtx, 30*time.Second)
				var n int
				err := sqlDB.QueryRowContext(qctx, "SELECT 1").Scan(&n)
				cancel()
				if err != nil && loadCtx.Err() != nil {
					return // stopping: the query was cancelled, not failed
				}
				queries.Add(1)
				if err != nil {
					failures.Add(1)
					errMu.Lock()
					if len(firstErrs) < 3 {
						firstErrs = append(firstErrs, err.Error())
					}
					errMu.Unlock()
				}
			}
		})
	}
	stop := func() {
		stopLoad()
		wg.Wait()
	}
	defer stop()

	version := func() string {
		s, err := c.GetSecret(ctx, demoSecret)
		if err != nil {
			return "?"
		}
		return s.VersionID()
	}
	firstVersion := version()
	start := time.Now()
	total := time.Duration(*rotations+1) * *every
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	nextRotation := start.Add(*every)
	done := 0
	var lastQ, lastF int64
	lastT := start
	interrupted := false
	for !interrupted && time.Since(start) < total {
		wait := time.Until(nextRotation)
		if done >= *rotations {
			wait = time.Until(start.Add(total))
		}
		rot := time.NewTimer(max(wait, 0))
		select {
		case <-ctx.Done():
			interrupted = true
		case <-tick.C:
			// The time read now, not the tick's: a tick that waited behind a
			// rotation would print an earlier time than the rotation's line.
			now := time.Now()
			q, f := queries.Load(), failures.Load()
			rate := float64(q-lastQ) / now.Sub(lastT).Seconds()
			fmt.Fprintf(stdout, "%5.1fs  %7.0f queries/s  errors %d  secret version %s\n",
				now.Sub(start).Seconds(), rate, f-lastF, version())
			lastQ, lastF, lastT = q, f, now
		case <-rot.C:
			if done < *rotations {
				id, err := srv.RotateSecret(demoSecret)
				if err != nil {
					rot.Stop()
					return fmt.Errorf("demo: rotate: %w", err)
				}
				done++
				fmt.Fprintf(stdout, "%5.1fs  rotated the password (%d/%d): new version %s, database password changed\n",
					time.Since(start).Seconds(), done, *rotations, id)
				nextRotation = nextRotation.Add(*every)
			}
		}
		rot.Stop()
	}
	stop()
	elapsed := time.Since(start)

	// 5. Totals.
	st := conn.(*rotation.Connector).Stats()
	q, f := queries.Load(), failures.Load()
	fmt.Fprintf(stdout, "total: %d queries in %.1fs (%.0f/s), %d failed; %d rotations (version %s -> %s); %d logins, %d rejected by the database and healed; %d KMS calls\n",
		q, elapsed.Seconds(), float64(q)/elapsed.Seconds(), f, done, firstVersion, version(), st.Logins, st.AuthFailures,
		srv.Calls("GetSecretValue", demoSecret))
	if p := hookErr.Load(); p != nil {
		return fmt.Errorf("demo: the rotation hook could not change the database password: %w", *p)
	}
	if f > 0 {
		return fmt.Errorf("demo: %d queries failed; first errors: %s", f, strings.Join(firstErrs, "; "))
	}
	if interrupted {
		return errors.New("demo: interrupted")
	}
	return nil
}

// demoDatabase finds a server for the demo whose password authentication is
// enforced. notes say why the others could not be used.
func demoDatabase(ctx context.Context, engine string) (*testdb.Server, []string, error) {
	var engines []testdb.Engine
	switch strings.ToLower(engine) {
	case "auto", "":
		engines = []testdb.Engine{testdb.EnginePostgres, testdb.EngineMariaDB}
	case "postgres", "postgresql", "pg":
		engines = []testdb.Engine{testdb.EnginePostgres}
	case "mysql", "mariadb":
		engines = []testdb.Engine{testdb.EngineMariaDB}
	default:
		return nil, nil, usagef("--engine %q: want auto, postgres or mysql", engine)
	}
	var notes []string
	for _, e := range engines {
		s, err := openDemoServer(ctx, e)
		if err != nil {
			notes = append(notes, fmt.Sprintf("%s: %v", e, err))
			continue
		}
		pctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		err = s.ProvePasswordEnforced(pctx)
		cancel()
		if err != nil {
			cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
			_ = s.Close(cctx)
			cancel()
			if e == testdb.EnginePostgres {
				notes = append(notes, "note: PostgreSQL at "+s.Addr()+" lets the demo role in without its password "+
					"(trust authentication); run `bash scripts/testdb.sh` once to add a scram-sha-256 rule for the role group "+
					testdb.PasswordGroup+" to pg_hba.conf. Trying the next engine.")
			}
			notes = append(notes, fmt.Sprintf("%s: %v", e, err))
			continue
		}
		return s, notes, nil
	}
	return nil, notes, errors.New("demo: " + demoNoDatabase)
}

// openDemoServer opens engine e's admin connection: the demo's DSN variable
// when set, else testdb's (its variable, else the local server).
func openDemoServer(ctx context.Context, e testdb.Engine) (*testdb.Server, error) {
	demoVar, testVar := envDemoPG, testdb.EnvPostgresAdminDSN
	if e == testdb.EngineMariaDB {
		demoVar, testVar = envDemoMySQL, testdb.EnvMySQLAdminDSN
	}
	if v := os.Getenv(demoVar); v != "" {
		// testdb reads its own variable: point it at the demo's for this call.
		old, had := os.LookupEnv(testVar)
		if err := os.Setenv(testVar, v); err != nil {
			return nil, err
		}
		defer func() {
			if had {
				_ = os.Setenv(testVar, old)
			} else {
				_ = os.Unsetenv(testVar)
			}
		}()
	}
	octx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	return testdb.Open(octx, e)
}
