package main

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aliyun/alibaba-cloud-sdk-go/sdk"
	sdkcred "github.com/aliyun/alibaba-cloud-sdk-go/sdk/auth/credentials"
	"github.com/aliyun/alibaba-cloud-sdk-go/services/kms"

	"github.com/kmsdb/kmsdb/internal/dbrole"
	"github.com/kmsdb/kmsdb/internal/testdb"
)

// dbFixture is admin access to one test server for checking what `kmsdb emulator --db-admin` did, with real
// logins, and dropping the accounts it created.
type dbFixture struct {
	engine dbrole.Engine
	dsn    string
	admin  *dbrole.Admin
}

func newDBFixture(t *testing.T, e dbrole.Engine) *dbFixture {
	t.Helper()
	f := &dbFixture{engine: e, dsn: cmpEnv(testdb.EnvMySQLAdminDSN, testdb.DefaultMySQLAdminDSN)}
	var group string
	if e == dbrole.Postgres {
		f.dsn, group = cmpEnv(testdb.EnvPostgresAdminDSN, testdb.DefaultPostgresAdminDSN), testdb.PasswordGroup
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	a, err := dbrole.Open(ctx, dbrole.Config{Engine: e, DSN: f.dsn, Database: testdb.Database, Group: group})
	if err != nil {
		t.Fatalf("%v; run `bash scripts/testdb.sh`", err)
	}
	f.admin = a
	t.Cleanup(func() { _ = a.Close() })
	return f
}

func cmpEnv(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

// name is a unique account name; it is dropped when t ends.
func (f *dbFixture) name(t *testing.T, base string) string {
	n := "kt_" + base + "_" + strings.ToLower(rand.Text()[:8])
	f.dropAtEnd(t, n)
	return n
}

func (f *dbFixture) dropAtEnd(t *testing.T, name string) {
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := f.admin.Drop(ctx, name); err != nil {
			t.Error(err)
		}
	})
}

// logsIn fails t unless user logs in with password.
func (f *dbFixture) logsIn(t *testing.T, what, user, password string) {
	t.Helper()
	if err := f.admin.Login(context.Background(), user, password); err != nil {
		t.Errorf("%s: %s cannot log in: %v", what, user, err)
	}
}

// refused fails t unless the server refuses user's password with an authentication error.
func (f *dbFixture) refused(t *testing.T, what, user, password string) {
	t.Helper()
	if err := f.admin.Login(context.Background(), user, password); !f.admin.IsAuthFailure(err) {
		t.Errorf("%s: %s: login %v, want an authentication failure", what, user, err)
	}
}

func (f *dbFixture) exists(t *testing.T, name string) bool {
	t.Helper()
	ok, err := f.admin.Exists(context.Background(), name)
	if err != nil {
		t.Fatal(err)
	}
	return ok
}

// writeSeed writes a seed file with the access key LTAItest and the given secrets.
func writeSeed(t *testing.T, secrets ...map[string]any) string {
	t.Helper()
	b, err := json.Marshal(map[string]any{"accessKeys": []map[string]string{{"id": "LTAItest", "secret": "test-secret"}}, "secrets": secrets})
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "seed.json")
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func accountData(user, password string) string {
	return fmt.Sprintf(`{"AccountName":%q,"AccountPassword":%q}`, user, password)
}

// kmsClient is the core SDK's KMS client on the emulator's plain HTTP gateway.
func kmsClient(t *testing.T, info emulatorInfo) *kms.Client {
	t.Helper()
	cfg := sdk.NewConfig()
	cfg.Scheme = "HTTP"
	tr := &http.Transport{}
	cfg.HttpTransport = tr
	c, err := kms.NewClientWithOptions("cn-hangzhou", cfg, sdkcred.NewStaticAKCredentialsProvider("LTAItest", "test-secret"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Shutdown(); tr.CloseIdleConnections() })
	c.Domain = strings.TrimPrefix(info.KMS, "http://")
	return c
}

type secretAccount struct {
	version, user, password string
}

// current reads ACSCurrent (or stage) through the SDK.
func current(t *testing.T, c *kms.Client, name, stage string) secretAccount {
	t.Helper()
	req := kms.CreateGetSecretValueRequest()
	req.SecretName, req.VersionStage = name, stage
	resp, err := c.GetSecretValue(req)
	if err != nil {
		t.Fatal(err)
	}
	var v struct{ AccountName, AccountPassword string }
	if err := json.Unmarshal([]byte(resp.SecretData), &v); err != nil {
		t.Fatal(err)
	}
	return secretAccount{resp.VersionId, v.AccountName, v.AccountPassword}
}

// rotateAPI rotates through the RotateSecret action of the SDK.
func rotateAPI(t *testing.T, c *kms.Client, name string) error {
	t.Helper()
	req := kms.CreateRotateSecretRequest()
	req.SecretName, req.VersionId = name, "v-"+strings.ToLower(rand.Text()[:10])
	_, err := c.RotateSecret(req)
	return err
}

// rotateAdmin rotates through the admin endpoint (what `kmsdb emulator-ctl rotate` calls).
func rotateAdmin(t *testing.T, info emulatorInfo, name string) {
	t.Helper()
	var stdout, stderr strings.Builder
	if err := runEmulatorCtl(context.Background(), []string{"--admin", info.Admin, "rotate", name}, &stdout, &stderr); err != nil {
		t.Fatalf("emulator-ctl rotate %s: %v\n%s", name, err, stderr.String())
	}
}

func dbEngines(t *testing.T, f func(t *testing.T, db *dbFixture)) {
	for _, e := range []dbrole.Engine{dbrole.MariaDB, dbrole.Postgres} {
		t.Run(string(e), func(t *testing.T) { f(t, newDBFixture(t, e)) })
	}
}

// TestEmulatorDBSingleUser: at start the account of an Rds secret is created with the ACSCurrent password and
// the account of a PolarDB secret that exists already gets it; every rotation (admin endpoint / emulator-ctl,
// RotateSecret action) changes the password on the database before ACSCurrent moves: the old password is
// refused, the new one logs in. Secrets of other types are left alone. No password reaches stderr.
func TestEmulatorDBSingleUser(t *testing.T) {
	dbEngines(t, func(t *testing.T, db *dbFixture) {
		rds, polar, generic, ramUser := db.name(t, "rds"), db.name(t, "polar"), db.name(t, "gen"), db.name(t, "ram")
		const rdsPW, polarPW, oldPolarPW = "rds-pw:/?#'\"4711", "polar-pw-4712", "polar-before-4713"
		ctx := context.Background()
		if _, err := db.admin.Ensure(ctx, polar, oldPolarPW); err != nil {
			t.Fatal(err)
		}
		seed := writeSeed(t,
			map[string]any{"name": "rds", "type": "Rds", "data": accountData(rds, rdsPW)},
			map[string]any{"name": "polar", "type": "PolarDB", "data": accountData(polar, polarPW),
				"extendedConfig": map[string]any{"SecretSubType": "SingleUser"}},
			map[string]any{"name": "gen", "type": "Generic", "data": accountData(generic, "gen-pw-4714")},
			map[string]any{"name": "ram", "type": "RAMCredentials",
				"data": fmt.Sprintf(`{"AccessKeyId":"LTAIramKt","AccessKeySecret":"ram-sk-4715","UserName":%q}`, ramUser)},
		)
		info, stderr := startEmulator(t, "--seed", seed, "--db-admin", db.dsn, "--db-name", testdb.Database)
		log := stderr.String()
		if !strings.Contains(log, "database account "+rds+" on ") || !strings.Contains(log, " created (rights on database "+testdb.Database+")") ||
			!strings.Contains(log, "database account "+polar+" on ") || !strings.Contains(log, " exists: password set to ACSCurrent") {
			t.Errorf("stderr does not state the accounts:\n%s", log)
		}
		if info.DBEngine == "" || !strings.Contains(info.DBDSN, testdb.Database) || strings.Contains(info.DBDSN, "@") {
			t.Errorf("dbEngine %q dbDsn %q", info.DBEngine, info.DBDSN)
		}
		db.logsIn(t, "start", rds, rdsPW)
		db.logsIn(t, "start", polar, polarPW)
		db.refused(t, "start: the password from before the emulator", polar, oldPolarPW)
		if db.exists(t, generic) || db.exists(t, ramUser) {
			t.Error("an account of a Generic or RAMCredentials secret was created")
		}

		c := kmsClient(t, info)
		passwords := []string{rdsPW, polarPW, oldPolarPW}
		for i, rotate := range []func(string){
			func(name string) { rotateAdmin(t, info, name) },
			func(name string) {
				if err := rotateAPI(t, c, name); err != nil {
					t.Fatal(err)
				}
			},
		} {
			for _, s := range []struct{ secret, user string }{{"rds", rds}, {"polar", polar}} {
				before := current(t, c, s.secret, "")
				rotate(s.secret)
				after := current(t, c, s.secret, "")
				if after.version == before.version || after.user != s.user || after.password == before.password {
					t.Fatalf("rotation %d of %s: %+v -> version %s user %s", i, s.secret, before.version, after.version, after.user)
				}
				if prev := current(t, c, s.secret, "ACSPrevious"); prev.version != before.version {
					t.Errorf("ACSPrevious %s, want %s", prev.version, before.version)
				}
				db.refused(t, fmt.Sprintf("rotation %d of %s: old password", i, s.secret), s.user, before.password)
				db.logsIn(t, fmt.Sprintf("rotation %d of %s: new password", i, s.secret), s.user, after.password)
				passwords = append(passwords, after.password)
			}
		}
		if db.exists(t, generic) || db.exists(t, ramUser) {
			t.Error("an account of a Generic or RAMCredentials secret was created")
		}
		log = stderr.String()
		if strings.Count(log, "kmsdb emulator: rotated ") != 4 || !strings.Contains(log, "the database has the new password") {
			t.Errorf("stderr does not state the 4 rotations:\n%s", log)
		}
		for _, p := range append(passwords, "gen-pw-4714", "ram-sk-4715") {
			if strings.Contains(log, p) {
				t.Fatal("stderr shows a password")
			}
		}
	})
}

// TestEmulatorDBDoubleUsers: a DoubleUsers secret alternates between NAME and NAME_clone as the emulator's
// DoubleUsers rule says: each rotation gives the account not in use a new password and makes it current; the
// account of ACSPrevious keeps its password (sessions and logins with it go on working), the one before is
// changed. The clone is created at the first rotation.
func TestEmulatorDBDoubleUsers(t *testing.T) {
	dbEngines(t, func(t *testing.T, db *dbFixture) {
		user := db.name(t, "dbl")
		clone := user + "_clone"
		db.dropAtEnd(t, clone)
		const pw = "double-pw-4720"
		seed := writeSeed(t, map[string]any{"name": "dbl", "type": "Rds", "data": accountData(user, pw),
			"extendedConfig": map[string]any{"SecretSubType": "DoubleUsers"}})
		info, stderr := startEmulator(t, "--seed", seed, "--db-admin", db.dsn, "--db-name", testdb.Database)
		c := kmsClient(t, info)
		db.logsIn(t, "start", user, pw)
		if db.exists(t, clone) {
			t.Fatal("the clone exists before the first rotation")
		}
		var seen []secretAccount
		seen = append(seen, current(t, c, "dbl", ""))
		for i := range 3 {
			rotateAdmin(t, info, "dbl")
			cur := current(t, c, "dbl", "")
			prev := current(t, c, "dbl", "ACSPrevious")
			want := clone
			if i%2 == 1 {
				want = user
			}
			if cur.user != want || prev.version != seen[len(seen)-1].version {
				t.Fatalf("rotation %d: current user %s (want %s), previous %s", i+1, cur.user, want, prev.version)
			}
			db.logsIn(t, fmt.Sprintf("rotation %d: ACSCurrent", i+1), cur.user, cur.password)
			db.logsIn(t, fmt.Sprintf("rotation %d: ACSPrevious keeps working", i+1), prev.user, prev.password)
			if len(seen) >= 2 {
				old := seen[len(seen)-2] // same account as cur, older password
				db.refused(t, fmt.Sprintf("rotation %d: the password this account had before", i+1), old.user, old.password)
			}
			seen = append(seen, cur)
		}
		if log := stderr.String(); !strings.Contains(log, "database account "+clone+" on ") ||
			!strings.Contains(log, "for the rotation of dbl (DoubleUsers)") {
			t.Errorf("stderr does not state the clone's creation:\n%s", log)
		}
	})
}

// TestEmulatorDBRotationFails: when the database cannot be changed (MariaDB 10.11 refuses a user name of more
// than 128 characters: the DoubleUsers clone of a 124-character name), the rotation fails with a clear error, and
// ACSCurrent and the database stay as they were.
func TestEmulatorDBRotationFails(t *testing.T) {
	db := newDBFixture(t, dbrole.MariaDB)
	user := db.name(t, "long")
	user += strings.Repeat("x", 124-len(user))
	db.dropAtEnd(t, user)
	db.dropAtEnd(t, user+"_clone") // in case the server takes it
	const pw = "long-pw-4730"
	seed := writeSeed(t, map[string]any{"name": "long", "type": "Rds", "data": accountData(user, pw),
		"extendedConfig": map[string]any{"SecretSubType": "DoubleUsers"}})
	info, stderr := startEmulator(t, "--seed", seed, "--db-admin", db.dsn, "--db-name", testdb.Database)
	c := kmsClient(t, info)
	before := current(t, c, "long", "")
	err := rotateAPI(t, c, "long")
	if err == nil || !strings.Contains(err.Error(), "Rejected.Unexpected") || !strings.Contains(err.Error(), user+"_clone") {
		t.Fatalf("rotation: %v", err)
	}
	var stdout strings.Builder
	if err := runEmulatorCtl(context.Background(), []string{"--admin", info.Admin, "rotate", "long"}, &stdout, &stdout); err == nil {
		t.Fatal("emulator-ctl rotate succeeded")
	}
	if after := current(t, c, "long", ""); after.version != before.version {
		t.Fatalf("ACSCurrent moved to %s", after.version)
	}
	if _, err := current2(c, "long", "ACSPrevious"); err == nil {
		t.Error("a failed rotation left an ACSPrevious")
	}
	db.logsIn(t, "after the failed rotation", user, pw)
	log := stderr.String()
	if !strings.Contains(log, "rotation of long FAILED, stages not moved") || strings.Contains(log, pw) ||
		strings.Contains(err.Error(), pw) {
		t.Errorf("stderr:\n%s", log)
	}
}

// TestEmulatorDBRotationRestores: a rotation that fails half-way on MariaDB (name@'%' altered, then
// CREATE USER name@'localhost' refused: an orphan grant row for that account makes the server answer 1396)
// fails, and the emulator puts the old password back on name@'%', saying so on stderr without a password:
// the account logs in with ACSCurrent's password again, not with the failed version's.
func TestEmulatorDBRotationRestores(t *testing.T) {
	db := newDBFixture(t, dbrole.MariaDB)
	user := db.name(t, "half")
	const pw = "half-pw-4740"
	seed := writeSeed(t, map[string]any{"name": "half", "type": "Rds", "data": accountData(user, pw)})
	info, stderr := startEmulator(t, "--seed", seed, "--db-admin", db.dsn, "--db-name", testdb.Database)
	c := kmsClient(t, info)
	ctx := context.Background()
	sqlDB := db.admin.DB()
	for _, stmt := range []string{
		"DROP USER '" + user + "'@'localhost'",
		"INSERT INTO mysql.db (Host, Db, User, Select_priv) VALUES ('localhost', 'kt_orphan_db', '" + user + "', 'Y')",
		"FLUSH PRIVILEGES",
	} {
		if _, err := sqlDB.ExecContext(ctx, stmt); err != nil {
			t.Fatalf("%s: %v", stmt, err)
		}
	}
	t.Cleanup(func() {
		_, _ = sqlDB.ExecContext(context.Background(), "DELETE FROM mysql.db WHERE User = ?", user)
		_, _ = sqlDB.ExecContext(context.Background(), "FLUSH PRIVILEGES")
	})
	err := rotateAPI(t, c, "half")
	if err == nil || !strings.Contains(err.Error(), "Rejected.Unexpected") {
		t.Fatalf("rotation: %v, want it to fail", err)
	}
	if cur := current(t, c, "half", ""); cur.password != pw {
		t.Fatal("ACSCurrent moved")
	}
	db.logsIn(t, "after the failed rotation: the old password is back", user, pw)
	log := stderr.String()
	if !strings.Contains(log, "rotation of half: database account "+user+": password of ACSCurrent") ||
		!strings.Contains(log, "restored (best effort)") || strings.Contains(log, pw) || strings.Contains(err.Error(), pw) {
		t.Errorf("stderr:\n%s", log)
	}
}

func current2(c *kms.Client, name, stage string) (string, error) {
	req := kms.CreateGetSecretValueRequest()
	req.SecretName, req.VersionStage = name, stage
	resp, err := c.GetSecretValue(req)
	if err != nil {
		return "", err
	}
	return resp.VersionId, nil
}

// TestEmulatorDBRotateEvery: --rotate-every rotates the Rds secret (and its database account) on its own, and
// leaves the Generic secret alone.
func TestEmulatorDBRotateEvery(t *testing.T) {
	db := newDBFixture(t, dbrole.Postgres)
	user := db.name(t, "every")
	seed := writeSeed(t,
		map[string]any{"name": "every", "type": "Rds", "data": accountData(user, "every-pw-4740")},
		map[string]any{"name": "gen", "data": "generic-4741"})
	info, stderr := startEmulator(t, "--seed", seed, "--db-admin", db.dsn, "--db-name", testdb.Database,
		"--rotate-every", "200ms", "--quiet")
	c := kmsClient(t, info)
	deadline := time.Now().Add(time.Minute)
	for strings.Count(stderr.String(), "kmsdb emulator: rotated every:") < 2 {
		if time.Now().After(deadline) {
			t.Fatalf("no two rotations within a minute:\n%s", stderr.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	// A rotation may land between the read and the login: read again and retry a few times.
	var err error
	for range 5 {
		cur := current(t, c, "every", "")
		if err = db.admin.Login(context.Background(), cur.user, cur.password); err == nil {
			break
		}
	}
	if err != nil {
		t.Fatalf("ACSCurrent does not log in: %v", err)
	}
	if v, err := current2(c, "gen", "ACSPrevious"); err == nil {
		t.Errorf("the Generic secret was rotated (ACSPrevious %s)", v)
	}
	if log := stderr.String(); strings.Contains(log, "action=GetSecretValue") || strings.Contains(log, "every-pw-4740") {
		t.Errorf("--quiet logs requests, or a password shows:\n%s", log)
	}
}

// TestEmulatorDBTrustWarning: an existing PostgreSQL role that pg_hba.conf trusts (it is not in the
// scram-sha-256 group) gets a loud warning that says what to change; the roles the emulator creates join the
// group, so they get none. On a server that asks every role for its password, there is no warning at all.
func TestEmulatorDBTrustWarning(t *testing.T) {
	db := newDBFixture(t, dbrole.Postgres)
	ctx := context.Background()
	trusted, created := db.name(t, "trusted"), db.name(t, "created")
	if _, err := db.admin.DB().ExecContext(ctx, `CREATE ROLE "`+trusted+`" LOGIN PASSWORD 'trusted-4750'`); err != nil {
		t.Fatal(err)
	}
	trusts := db.admin.Login(ctx, trusted, "wrong-4751") == nil
	seed := writeSeed(t,
		map[string]any{"name": "trusted", "type": "Rds", "data": accountData(trusted, "trusted-4752")},
		map[string]any{"name": "created", "type": "Rds", "data": accountData(created, "created-4753")})
	_, stderr := startEmulator(t, "--seed", seed, "--db-admin", db.dsn, "--db-name", testdb.Database)
	log := stderr.String()
	t.Logf("the server trusts a role outside %s: %v; stderr:\n%s", emulatorDBGroup, trusts, log)
	warned := strings.Contains(log, "WARNING: PostgreSQL") && strings.Contains(log, "ACCEPTS ANY PASSWORD for account "+trusted) &&
		strings.Contains(log, "host all +"+emulatorDBGroup+" 127.0.0.1/32 scram-sha-256") && strings.Contains(log, "pg_hba.conf")
	if warned != trusts {
		t.Errorf("server trusts the role: %v; warned: %v\n%s", trusts, warned, log)
	}
	if strings.Contains(log, "ACCEPTS ANY PASSWORD for account "+created) {
		t.Errorf("a role the emulator created (member of %s) is trusted:\n%s", emulatorDBGroup, log)
	}
	db.refused(t, "a created role", created, "wrong-4754")
}

func TestDBAdminEngine(t *testing.T) {
	for _, c := range []struct {
		dsn  string
		want dbrole.Engine
	}{
		{"root@tcp(127.0.0.1:3306)/", dbrole.MariaDB},
		{"root:pw@tcp(db:3306)/app?tls=true", dbrole.MariaDB},
		{"root@unix(/run/mysqld/mysqld.sock)/", dbrole.MariaDB},
		{"postgres://postgres@127.0.0.1:5432/postgres", dbrole.Postgres},
		{"postgresql://u:pw@db/postgres?sslmode=require", dbrole.Postgres},
		{"host=127.0.0.1 user=postgres dbname=postgres", dbrole.Postgres},
	} {
		if got, err := dbAdminEngine(c.dsn); err != nil || got != c.want {
			t.Errorf("%s: %v %v, want %s", c.dsn, got, err, c.want)
		}
	}
	for _, bad := range []string{"", "secret-pw-4760", "mysql://root:secret-pw-4760@db/"} {
		_, err := dbAdminEngine(bad)
		if err == nil || strings.Contains(err.Error(), "secret-pw-4760") {
			t.Errorf("%q: %v", bad, err)
		}
	}
	seed := filepath.Join("..", "..", "examples", "seed.json")
	for _, args := range [][]string{
		{"--seed", seed, "--db-admin", "secret-pw-4760"},
		{"--seed", seed, "--rotate-every", "-1s"},
		{"--seed", seed, "--db-admin", "root@tcp(127.0.0.1:3306)/", "--db-name", ""},
	} {
		var stderr strings.Builder
		err := runEmulator(context.Background(), args, &stderr, &stderr)
		if err == nil || strings.Contains(err.Error()+stderr.String(), "secret-pw-4760") {
			t.Errorf("%v: %v", args, err)
		}
	}
	// A server that does not answer: the error names the setting, not the password.
	err := runEmulator(context.Background(), []string{"--seed", seed, "--db-admin",
		"postgres://postgres:secret-pw-4760@127.0.0.1:1/postgres?connect_timeout=2"}, &strings.Builder{}, &strings.Builder{})
	if err == nil || !strings.Contains(err.Error(), "--db-admin") || strings.Contains(err.Error(), "secret-pw-4760") {
		t.Errorf("unreachable server: %v", err)
	}
}
