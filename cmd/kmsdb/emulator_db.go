package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/kmsdb/kmsdb/internal/dbrole"
	"github.com/kmsdb/kmsdb/secretsource"
	"github.com/kmsdb/kmsdb/secretsource/kmstest"
)

// The emulator's database side (--db-admin): what KMS does for the managed secrets of ApsaraDB RDS and PolarDB.
// At start each Rds and PolarDB secret's account is created when missing and given the ACSCurrent password
// (and, for a DoubleUsers secret whose ACSPrevious names the other account, that account the ACSPrevious
// password); each rotation changes the database while the new version is ACSPending (SingleUser: the one
// account; DoubleUsers: the account the new version names, the one not in use), and the stages move only once
// the database has the new password. A failed change fails the rotation and leaves the stages where they were.

// emulatorDBGroup is the PostgreSQL role group the accounts the emulator creates join: scripts/testdb.sh (and
// the warning below) put a scram-sha-256 rule for its members at the top of pg_hba.conf.
const emulatorDBGroup = "kmsdb_password_auth"

// dbSecretType reports whether secrets of type typ hold a database account the emulator manages.
func dbSecretType(typ string) bool { return typ == "Rds" || typ == "PolarDB" }

// dbAdminEngine tells the engine from the form of a --db-admin value, without showing it (it may hold a
// password): a postgres:// URL or a key=value connection string is PostgreSQL, a go-sql-driver/mysql DSN
// (USER@tcp(HOST:PORT)/) MariaDB or MySQL.
func dbAdminEngine(dsn string) (dbrole.Engine, error) {
	lower := strings.ToLower(strings.TrimSpace(dsn))
	switch {
	case lower == "":
		return "", errors.New("--db-admin: empty")
	case strings.HasPrefix(lower, "postgres://"), strings.HasPrefix(lower, "postgresql://"):
		if _, err := url.Parse(dsn); err != nil {
			return "", errors.New("--db-admin: not a valid postgres:// URL (value not shown)")
		}
		return dbrole.Postgres, nil
	case strings.Contains(lower, "@tcp(") || strings.Contains(lower, "@unix(") || strings.HasPrefix(lower, "tcp(") ||
		strings.HasSuffix(lower, "@/") || strings.Contains(lower, "@/?"):
		if _, err := mysql.ParseDSN(dsn); err != nil {
			return "", errors.New("--db-admin: not a valid go-sql-driver/mysql DSN such as 'root@tcp(127.0.0.1:3306)/' (value not shown)")
		}
		return dbrole.MariaDB, nil
	case strings.Contains(lower, "host=") || strings.Contains(lower, "user=") || strings.Contains(lower, "dbname="):
		return dbrole.Postgres, nil
	}
	return "", errors.New("--db-admin: neither a PostgreSQL connection string (postgres://postgres@127.0.0.1:5432/postgres) " +
		"nor a MySQL/MariaDB DSN (root@tcp(127.0.0.1:3306)/) (value not shown)")
}

// lineWriter prints whole lines on stderr, one at a time.
type lineWriter struct {
	mu sync.Mutex
	w  io.Writer
}

// say prints one line (never a password).
func (l *lineWriter) say(format string, a ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	fmt.Fprintf(l.w, "kmsdb emulator: "+format+"\n", a...)
}

// emulatorDB manages the database accounts of the emulator's Rds and PolarDB secrets.
type emulatorDB struct {
	*lineWriter
	admin *dbrole.Admin
	srv   *kmstest.Server
	ctx   context.Context // ends when the emulator stops
	kind  string          // "PostgreSQL 15.8" / "MariaDB/MySQL 10.11.6-MariaDB"
}

// openEmulatorDB connects to the --db-admin server; accounts are granted on database name (created when missing).
func openEmulatorDB(ctx context.Context, dsn, name string, srv *kmstest.Server, out *lineWriter) (*emulatorDB, error) {
	engine, err := dbAdminEngine(dsn)
	if err != nil {
		return nil, err
	}
	cfg := dbrole.Config{Engine: engine, DSN: dsn, Database: name}
	if engine == dbrole.Postgres {
		cfg.Group = emulatorDBGroup
	}
	octx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	admin, err := dbrole.Open(octx, cfg)
	if err != nil {
		return nil, fmt.Errorf("--db-admin: %w", err)
	}
	version, _, _ := strings.Cut(admin.Version(), " ") // "15.8 (Debian 15.8-0+deb12u1)" -> "15.8"
	m := &emulatorDB{lineWriter: out, admin: admin, srv: srv, ctx: ctx, kind: "MariaDB/MySQL " + version}
	if engine == dbrole.Postgres {
		m.kind = "PostgreSQL " + version
	}
	return m, nil
}

// engineName is the engine as --print-env names it for applications: mysql or postgres.
func (m *emulatorDB) engineName() string {
	if m.admin.Engine() == dbrole.Postgres {
		return "postgres"
	}
	return "mysql"
}

// appDSN is the connection string without user and password an application uses with the secret's account:
// a pgx URL, or a go-sql-driver/mysql DSN.
func (m *emulatorDB) appDSN() string {
	if m.admin.Engine() == dbrole.Postgres {
		u := url.URL{Scheme: "postgres", Host: m.admin.Addr(), Path: "/" + m.admin.Database(), RawQuery: "sslmode=disable"}
		return u.String()
	}
	return "tcp(" + m.admin.Addr() + ")/" + m.admin.Database()
}

// Close closes the admin connections; the accounts stay.
func (m *emulatorDB) Close() error { return m.admin.Close() }

// account decodes the database account held by one version of a secret.
func account(name, typ, value string) (secretsource.DBAccount, error) {
	s := secretsource.NewSecret(secretsource.Fields{Name: name, SecretType: typ, Value: []byte(value)})
	return secretsource.DecodeDBAccount(s)
}

// sync gives every Rds and PolarDB secret's account(s) the password of its version(s), creating missing
// accounts, and checks that the server asks for the password.
func (m *emulatorDB) sync() error {
	n := 0
	for _, name := range m.srv.SecretNames() {
		st, ok := m.srv.Secret(name)
		if !ok || !dbSecretType(st.Type) {
			continue
		}
		cur, err := account(name, st.Type, st.CurrentValue)
		if err != nil {
			return fmt.Errorf("secret %s: ACSCurrent: %w", name, err)
		}
		if err := m.ensure(name, "ACSCurrent", st.CurrentVersionID, cur); err != nil {
			return err
		}
		n++
		if st.PreviousValue != "" {
			// DoubleUsers: ACSPrevious names the other account, which keeps its password.
			if prev, err := account(name, st.Type, st.PreviousValue); err == nil && prev.Username != cur.Username {
				if err := m.ensure(name, "ACSPrevious", st.PreviousVersionID, prev); err != nil {
					return err
				}
			}
		}
		m.checkPassword(cur)
	}
	if n == 0 {
		m.say("--db-admin: no Rds or PolarDB secret in the seed: no database account to manage")
	}
	return nil
}

// ensure gives acct its password on the database, creating it when missing.
func (m *emulatorDB) ensure(secret, stage, versionID string, acct secretsource.DBAccount) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(m.ctx), 30*time.Second)
	defer cancel()
	created, err := m.admin.Ensure(ctx, acct.Username, acct.Password)
	if err != nil {
		// dbrole's errors show statements with the password redacted, never the password.
		return fmt.Errorf("secret %s: database account %s on %s at %s: %w", secret, acct.Username, m.kind, m.admin.Addr(), err)
	}
	what := "exists: password set to"
	if created {
		what = "created (rights on database " + m.admin.Database() + ") with the password of"
	}
	m.say("database account %s on %s at %s %s %s %s of secret %s", acct.Username, m.kind, m.admin.Addr(), what, stage, versionID, secret)
	return nil
}

// checkPassword warns when the server lets acct in with a wrong password (PostgreSQL trust authentication) or
// does not let it in with its own: a rotation would then prove nothing.
func (m *emulatorDB) checkPassword(acct secretsource.DBAccount) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(m.ctx), 30*time.Second)
	defer cancel()
	err := m.admin.CheckPassword(ctx, acct.Username, acct.Password)
	if err == nil {
		return
	}
	if strings.Contains(err.Error(), "ACCEPTED A WRONG PASSWORD") && m.admin.Engine() == dbrole.Postgres {
		hba := m.admin.HBAFile(ctx)
		if hba == "" {
			hba = "pg_hba.conf (SHOW hba_file)"
		}
		m.say("WARNING: %s at %s ACCEPTS ANY PASSWORD for account %s (pg_hba.conf trust authentication): "+
			"rotations change nothing a login can see. Put these lines above the trust rules of %s, then run "+
			"SELECT pg_reload_conf() (or `bash scripts/testdb.sh` in a kmsdb checkout, which does both):\n"+
			"    host all +%s 127.0.0.1/32 scram-sha-256\n    host all +%s ::1/128 scram-sha-256\n"+
			"  Accounts the emulator creates are members of %s; for an account that existed before, "+
			"GRANT %s TO %s, or add a rule naming it.",
			m.kind, m.admin.Addr(), acct.Username, hba, emulatorDBGroup, emulatorDBGroup, emulatorDBGroup, emulatorDBGroup, acct.Username)
		return
	}
	m.say("WARNING: %v", err)
}

// onPending changes the database while the new version is ACSPending; an error fails the rotation.
func (m *emulatorDB) onPending(ev kmstest.RotationEvent) error {
	if !dbSecretType(ev.SecretType) {
		return nil
	}
	acct, err := account(ev.SecretName, ev.SecretType, ev.NewValue)
	if err != nil {
		return fmt.Errorf("the new version is not a database account: %w", err)
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(m.ctx), 30*time.Second)
	defer cancel()
	created, err := m.admin.Ensure(ctx, acct.Username, acct.Password)
	if err != nil {
		err = fmt.Errorf("database account %s on %s at %s: %w", acct.Username, m.kind, m.admin.Addr(), err)
		m.say("rotation of %s FAILED, stages not moved: %v", ev.SecretName, err)
		m.restore(ctx, ev, acct)
		return err
	}
	if created {
		m.say("database account %s on %s at %s created (rights on database %s) for the rotation of %s (DoubleUsers)",
			acct.Username, m.kind, m.admin.Addr(), m.admin.Database(), ev.SecretName)
	}
	return nil
}

// restore puts back, as a best effort, the password acct had before a failed onPending: the change may have
// reached the database in part (MariaDB: name@'%' altered, then name@'localhost' refused) or whole (PostgreSQL:
// COMMIT done, its answer lost), while the stages stay. The account's old password is the old version's
// (SingleUser), or ACSPrevious's when that names acct (DoubleUsers); an account the old versions do not name
// (a DoubleUsers clone created by this rotation) is left. It says what it did on stderr, never a password.
func (m *emulatorDB) restore(ctx context.Context, ev kmstest.RotationEvent, acct secretsource.DBAccount) {
	var old secretsource.DBAccount
	var from string
	if o, err := account(ev.SecretName, ev.SecretType, ev.OldValue); err == nil && o.Username == acct.Username {
		old, from = o, "ACSCurrent "+ev.OldVersionID
	} else if st, ok := m.srv.Secret(ev.SecretName); ok && st.PreviousValue != "" {
		if p, err := account(ev.SecretName, ev.SecretType, st.PreviousValue); err == nil && p.Username == acct.Username {
			old, from = p, "ACSPrevious "+st.PreviousVersionID
		}
	}
	if from == "" {
		m.say("rotation of %s: database account %s: no older version names it, its password is left as the failed change left it",
			ev.SecretName, acct.Username)
		return
	}
	if err := m.admin.Restore(ctx, acct.Username, old.Password); err != nil {
		m.say("rotation of %s: database account %s: could not restore the password of %s (best effort): %v",
			ev.SecretName, acct.Username, from, err)
		return
	}
	m.say("rotation of %s: database account %s: password of %s restored (best effort)", ev.SecretName, acct.Username, from)
}

// watchRotations prints one line per rotation of an Rds or PolarDB secret; managed: --db-admin was given.
func watchRotations(srv *kmstest.Server, managed bool, out *lineWriter) {
	srv.OnRotate(func(ev kmstest.RotationEvent) {
		if ev.Phase != "after" || !dbSecretType(ev.SecretType) {
			return
		}
		user := "?"
		if acct, err := account(ev.SecretName, ev.SecretType, ev.NewValue); err == nil {
			user = acct.Username
		}
		db := "the database has the new password"
		if !managed {
			db = "no database changed (no --db-admin)"
		}
		out.say("rotated %s: ACSCurrent %s (account %s), ACSPrevious %s; %s", ev.SecretName, ev.NewVersionID, user,
			ev.OldVersionID, db)
	})
}

// rotateEvery rotates every Rds and PolarDB secret each d until ctx ends, as automatic rotation does. A failed
// rotation is reported on stderr (by the pending hook) and tried again at the next tick.
func rotateEvery(ctx context.Context, srv *kmstest.Server, d time.Duration, out *lineWriter) {
	t := time.NewTicker(d)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		for _, name := range srv.SecretNames() {
			st, ok := srv.Secret(name)
			if !ok || !dbSecretType(st.Type) {
				continue
			}
			if _, err := srv.RotateSecret(name); err != nil {
				out.say("--rotate-every: %v", err)
			}
		}
	}
}
