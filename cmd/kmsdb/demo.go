package main

import (
	"cmp"
	"context"
	"crypto/rand"
	"database/sql"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kmsdb/kmsdb/connector"
	"github.com/kmsdb/kmsdb/drivers/mysqlkms"
	"github.com/kmsdb/kmsdb/drivers/pgkms"
	"github.com/kmsdb/kmsdb/internal/dbrole"
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

// Where the demo's admin DSNs come from when its own variables are unset: the
// test servers' variables (internal/testdb reads the same), else the local servers.
var demoAdminDSNs = map[dbrole.Engine][2]string{
	dbrole.Postgres: {"KMSDB_TEST_PG_ADMIN_DSN", "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"},
	dbrole.MariaDB:  {"KMSDB_TEST_MYSQL_ADMIN_DSN", "root@tcp(127.0.0.1:3306)/"},
}

// The database the demo role may use, and the PostgreSQL role group that
// scripts/testdb.sh's pg_hba.conf rule asks for a scram-sha-256 password.
const (
	demoDatabaseName  = "kmsdb_test"
	demoPasswordGroup = "kmsdb_password_auth"
)

// demoFlags are the command line of `kmsdb demo`.
type demoFlags struct {
	engine    string
	rotations int
	every     time.Duration
	workers   int
	lifetime  time.Duration
	verbose   bool
}

// demo is one run: the database role, the emulator holding its secret, the
// connector's pool and the load's counters.
type demo struct {
	demoFlags
	admin          *dbrole.Admin
	role, password string
	srv            *kmstest.Server
	akSecret       string // the emulator's AccessKey secret
	cache          *cache.Cache
	src            io.Closer // the cache's source
	db             *sql.DB
	stats          func() connector.Stats
	kind           string // engine as shown

	hookErr           atomic.Pointer[error]
	queries, failures atomic.Int64
	errMu             sync.Mutex
	firstErrs         []string
}

// runDemo implements `kmsdb demo`.
func runDemo(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	f, err := parseDemoFlags(args, stderr)
	if err != nil {
		return err
	}
	// 1. A database whose throwaway role must give its password.
	d := &demo{demoFlags: f}
	notes, err := d.openDatabase(ctx)
	for _, n := range notes {
		if f.verbose || strings.HasPrefix(n, "note:") {
			fmt.Fprintln(stdout, n)
		}
	}
	if err != nil {
		return err
	}
	defer d.dropRole(ctx, stdout, stderr)
	// 2. The emulator holding the role's credentials, the real stack over it.
	if err := d.startEmulator(ctx); err != nil {
		return err
	}
	defer d.srv.Close()
	if err := d.connect(); err != nil {
		return err
	}
	defer d.closeStack()
	fmt.Fprintf(stdout, "kmsdb demo: %s %s at %s, throwaway role %s (password required), secret %q in the KMS emulator at https://%s\n",
		d.kind, d.admin.Version(), d.admin.Addr(), d.role, demoSecret, d.srv.KMSTLSAddr())
	fmt.Fprintf(stdout, "%d goroutines query without pause through the kmsdb connector (connections re-made every %v); the password rotates %d times, every %v\n",
		f.workers, f.lifetime, f.rotations, f.every)
	// 3. Load, live view, rotations, totals.
	stop := d.startLoad(ctx)
	defer stop()
	firstVersion := d.version(ctx)
	start := time.Now()
	done, interrupted, err := d.rotate(ctx, stdout, start)
	stop()
	if err != nil {
		return err
	}
	return d.report(ctx, stdout, time.Since(start), done, firstVersion, interrupted)
}

func parseDemoFlags(args []string, stderr io.Writer) (demoFlags, error) {
	var f demoFlags
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&f.engine, "engine", "auto", "auto (PostgreSQL, else MariaDB), postgres or mysql")
	fs.IntVar(&f.rotations, "rotations", 3, "how many times the password rotates")
	fs.DurationVar(&f.every, "every", 3*time.Second, "time between rotations (the first comes after the same time)")
	fs.IntVar(&f.workers, "workers", 8, "goroutines querying without pause")
	fs.DurationVar(&f.lifetime, "lifetime", 200*time.Millisecond, "connection max lifetime: connections are re-made all the time")
	fs.BoolVar(&f.verbose, "v", false, "say why each database could not be used")
	fs.Usage = func() {
		fmt.Fprint(stderr, demoUsage)
		fs.PrintDefaults()
	}
	if err := parseFlags(fs, args); err != nil {
		return f, err
	}
	if fs.NArg() > 0 {
		fs.Usage()
		return f, usagef("unexpected argument %q", fs.Arg(0))
	}
	if f.rotations < 0 || f.every <= 0 || f.workers <= 0 || f.lifetime < 0 {
		return f, usagef("--rotations, --every, --workers and --lifetime must be positive")
	}
	return f, nil
}

// openDatabase finds a server on which a throwaway role must give its
// password, and creates the role there. notes say why the others could not
// be used.
func (d *demo) openDatabase(ctx context.Context) (notes []string, err error) {
	var engines []dbrole.Engine
	switch strings.ToLower(d.engine) {
	case "auto", "":
		engines = []dbrole.Engine{dbrole.Postgres, dbrole.MariaDB}
	case "postgres", "postgresql", "pg":
		engines = []dbrole.Engine{dbrole.Postgres}
	case "mysql", "mariadb":
		engines = []dbrole.Engine{dbrole.MariaDB}
	default:
		return nil, usagef("--engine %q: want auto, postgres or mysql", d.engine)
	}
	for _, e := range engines {
		err := d.tryEngine(ctx, e)
		if err == nil {
			return notes, nil
		}
		if e == dbrole.Postgres && strings.Contains(err.Error(), "ACCEPTED A WRONG PASSWORD") {
			notes = append(notes, "note: PostgreSQL at "+d.admin.Addr()+" lets the demo role in without its password "+
				"(trust authentication); run `bash scripts/testdb.sh` once to add a scram-sha-256 rule for the role group "+
				demoPasswordGroup+" to pg_hba.conf. Trying the next engine.")
		}
		notes = append(notes, fmt.Sprintf("%s: %v", e, err))
		d.admin = nil
	}
	return notes, errors.New("demo: " + demoNoDatabase)
}

// tryEngine opens engine e's admin connection (the demo's DSN variable, else
// the test servers') and creates the demo role, proving the server checks its
// password. On error nothing is left behind but d.admin, closed, for the note.
func (d *demo) tryEngine(ctx context.Context, e dbrole.Engine) error {
	demoVar := envDemoPG
	if e == dbrole.MariaDB {
		demoVar = envDemoMySQL
	}
	dsn := os.Getenv(demoVar)
	if dsn == "" {
		dsn = cmp.Or(os.Getenv(demoAdminDSNs[e][0]), demoAdminDSNs[e][1])
	}
	octx, cancel := context.WithTimeout(ctx, 10*time.Second)
	admin, err := dbrole.Open(octx, dbrole.Config{Engine: e, DSN: dsn, Database: demoDatabaseName, Group: demoPasswordGroup})
	cancel()
	if err != nil {
		return err
	}
	d.admin = admin
	d.role = "kmsdb_demo_" + strings.ToLower(rand.Text()[:10])
	d.password = "demo-" + rand.Text()[:12] + "-P@ss:w/rd"
	pctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	err = admin.Create(pctx, d.role, d.password)
	if err == nil {
		if err = admin.CheckPassword(pctx, d.role, d.password); err == nil {
			return nil
		}
	}
	cctx, ccancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer ccancel()
	_ = admin.Drop(cctx, d.role)
	_ = admin.Close()
	return err
}

// dropRole drops the demo role and closes the admin connection.
func (d *demo) dropRole(ctx context.Context, stdout, stderr io.Writer) {
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	defer d.admin.Close()
	if err := d.admin.Drop(cctx, d.role); err != nil {
		fmt.Fprintf(stderr, "demo: drop role %s: %v\n", d.role, err)
		return
	}
	fmt.Fprintf(stdout, "dropped role %s\n", d.role)
}

// startEmulator serves the role's credentials as an Rds secret; each rotation
// changes the database password right after the secret, as a rotation
// function does.
func (d *demo) startEmulator(ctx context.Context) error {
	akSecret := "demo-" + rand.Text()
	srv, err := kmstest.NewServer(kmstest.WithAccessKey(demoAccessKey, akSecret),
		kmstest.WithSecret(kmstest.SecretSpec{Name: demoSecret, Type: "Rds",
			Data:           fmt.Sprintf(`{"AccountName":%q,"AccountPassword":%q}`, d.role, d.password),
			ExtendedConfig: map[string]any{"SecretSubType": "SingleUser"}}))
	if err != nil {
		return fmt.Errorf("demo: start the KMS emulator: %w", err)
	}
	d.srv = srv
	srv.OnRotate(func(ev kmstest.RotationEvent) {
		if ev.SecretName != demoSecret || ev.Phase != "after" {
			return
		}
		s := secretsource.NewSecret(secretsource.Fields{Name: demoSecret, SecretType: "Rds", Value: []byte(ev.NewValue)})
		acct, err := secretsource.DecodeDBAccount(s)
		if err == nil {
			hctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
			err = d.admin.SetPassword(hctx, acct.Username, acct.Password)
			cancel()
		}
		if err != nil {
			d.hookErr.Store(&err)
		}
	})
	d.akSecret = akSecret
	return nil
}

// connect builds the real stack: KMS source (Alibaba SDK over HTTPS to the
// emulator) -> cache -> the kmsdb connector of the role's engine.
func (d *demo) connect() error {
	cred, err := kms.NewCredential(kms.CredentialOptions{Type: kms.CredentialAccessKey,
		AccessKeyID: demoAccessKey, AccessKeySecret: d.akSecret})
	if err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	src, err := kms.New(kms.Config{Region: kms.Region{ID: demoRegion, Endpoint: d.srv.KMSTLSAddr()},
		Credential: cred, Scheme: "https", RootCAs: d.srv.CertPool()})
	if err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	c, err := cache.New(src)
	if err != nil {
		_ = src.Close()
		return fmt.Errorf("demo: %w", err)
	}
	d.cache, d.src = c, src
	d.kind = "PostgreSQL"
	if d.admin.Engine() == dbrole.MariaDB {
		d.kind = "MariaDB/MySQL"
		conn := mysqlkms.NewConnector(demoSecret, mysqlkms.WithSource(c),
			mysqlkms.WithDSN("tcp("+d.admin.Addr()+")/"+d.admin.Database()+"?timeout=10s"))
		d.db, d.stats = sql.OpenDB(conn), conn.Stats
	} else {
		conn := pgkms.NewConnector(demoSecret, pgkms.WithSource(c),
			pgkms.WithDSN("postgres://"+d.admin.Addr()+"/"+d.admin.Database()+"?sslmode=disable&connect_timeout=10"))
		d.db, d.stats = sql.OpenDB(conn), conn.Stats
	}
	d.db.SetMaxOpenConns(d.workers)
	d.db.SetMaxIdleConns(d.workers)
	d.db.SetConnMaxLifetime(d.lifetime)
	return nil
}

// closeStack closes the pool, the cache and its source.
func (d *demo) closeStack() {
	_ = d.db.Close()
	_ = d.cache.Close()
	_ = d.src.Close()
}

// startLoad starts the goroutines querying without pause; stop ends them
// (and may be called more than once).
func (d *demo) startLoad(ctx context.Context) (stop func()) {
	loadCtx, stopLoad := context.WithCancel(context.WithoutCancel(ctx))
	var wg sync.WaitGroup
	for range d.workers {
		wg.Go(func() {
			for loadCtx.Err() == nil {
				qctx, cancel := context.WithTimeout(loadCtx, 30*time.Second)
				var n int
				err := d.db.QueryRowContext(qctx, "SELECT 1").Scan(&n)
				cancel()
				if err != nil && loadCtx.Err() != nil {
					return // stopping: the query was cancelled, not failed
				}
				d.count(err)
			}
		})
	}
	return func() {
		stopLoad()
		wg.Wait()
	}
}

func (d *demo) count(err error) {
	d.queries.Add(1)
	if err == nil {
		return
	}
	d.failures.Add(1)
	d.errMu.Lock()
	if len(d.firstErrs) < 3 {
		d.firstErrs = append(d.firstErrs, err.Error())
	}
	d.errMu.Unlock()
}

// version is the secret version the cache holds.
func (d *demo) version(ctx context.Context) string {
	s, err := d.cache.GetSecret(ctx, demoSecret)
	if err != nil {
		return "?"
	}
	return s.VersionID()
}

// rotate prints one line a second and rotates the secret every d.every, for
// (rotations+1)*every in all or until ctx ends.
func (d *demo) rotate(ctx context.Context, stdout io.Writer, start time.Time) (done int, interrupted bool, err error) {
	total := time.Duration(d.rotations+1) * d.every
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	nextRotation := start.Add(d.every)
	var lastQ, lastF int64
	lastT := start
	for !interrupted && time.Since(start) < total {
		wait := time.Until(nextRotation)
		if done >= d.rotations {
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
			q, f := d.queries.Load(), d.failures.Load()
			rate := float64(q-lastQ) / now.Sub(lastT).Seconds()
			fmt.Fprintf(stdout, "%5.1fs  %7.0f queries/s  errors %d  secret version %s\n",
				now.Sub(start).Seconds(), rate, f-lastF, d.version(ctx))
			lastQ, lastF, lastT = q, f, now
		case <-rot.C:
			if done < d.rotations {
				id, err := d.srv.RotateSecret(demoSecret)
				if err != nil {
					rot.Stop()
					return done, false, fmt.Errorf("demo: rotate: %w", err)
				}
				done++
				fmt.Fprintf(stdout, "%5.1fs  rotated the password (%d/%d): new version %s, database password changed\n",
					time.Since(start).Seconds(), done, d.rotations, id)
				nextRotation = nextRotation.Add(d.every)
			}
		}
		rot.Stop()
	}
	return done, interrupted, nil
}

// report prints the totals and says what went wrong, if anything.
func (d *demo) report(ctx context.Context, stdout io.Writer, elapsed time.Duration, done int, firstVersion string, interrupted bool) error {
	st := d.stats()
	q, f := d.queries.Load(), d.failures.Load()
	fmt.Fprintf(stdout, "total: %d queries in %.1fs (%.0f/s), %d failed; %d rotations (version %s -> %s); %d logins, %d rejected by the database and healed; %d KMS calls\n",
		q, elapsed.Seconds(), float64(q)/elapsed.Seconds(), f, done, firstVersion, d.version(ctx), st.Logins, st.AuthFailures,
		d.srv.Calls("GetSecretValue", demoSecret))
	if p := d.hookErr.Load(); p != nil {
		return fmt.Errorf("demo: the rotation hook could not change the database password: %w", *p)
	}
	if f > 0 {
		return fmt.Errorf("demo: %d queries failed; first errors: %s", f, strings.Join(d.firstErrs, "; "))
	}
	if interrupted {
		return errors.New("demo: interrupted")
	}
	return nil
}
