package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"sync"
	"time"
	"unicode"

	"github.com/kmsdb/kmsdb/secretsource/kmstest"
)

func init() {
	register("emulator", "run the local KMS emulator (shared + dedicated gateways, STS, ECS metadata) from a seed file", runEmulator)
}

const emulatorUsage = `usage: kmsdb emulator --seed seed.json [--addr 127.0.0.1:0] [--tls] [--state-dir DIR] [--print-env]
                       [--db-admin DSN [--db-name kmsdb_emulator]] [--rotate-every D] [--quiet]
                       [--ram-revoke-delay D] [--token-ttl D] [--metadata-addr A] [--proxy-addr A]

Runs the KMS emulator until SIGINT or SIGTERM. On start it prints one JSON line on
stdout with what a client needs:
  {"kms":"http(s)://…","dkms":"https://…","sts":"https://…","metadata":"http://…",
   "credentialsUri":"http://…/credentials","admin":"http://…/_kmstest/",
   "proxy":"http://…","caFile":"…","clientKeyId":"KAAP.…","clientKeyFile":"…",
   "clientKeyPasswordFile":"…"}
and logs one line per request on stderr (never a secret value or a key secret;
--quiet: warnings, rotations and database accounts only).

--print-env (which implies --tls) prints, instead of the JSON line, the sh
lines that point an unchanged application (kmsdb's default configuration,
read from the environment) at this emulator: credentials_type=ak with the
seed's first AccessKey (or a new one), cache_client_region_id with the HTTPS
endpoint and the CA file ("caFilePath"), and KMSDB_EMULATOR_ADMIN for
emulator-ctl:
  kmsdb emulator --seed seed.json --print-env > emulator.env &
  until [ -s emulator.env ] || ! kill -0 $! 2>/dev/null; do sleep 0.2; done; . ./emulator.env
  go run ./your-app        # fetches from the emulator, nothing else configured
With --db-admin it adds KMSDB_EMULATOR_DB_ENGINE (mysql or postgres) and
KMSDB_EMULATOR_DB_DSN (where to connect, no user or password; the JSON line has
them as dbEngine and dbDsn), as examples/quickstart reads them. The lines stay
valid across restarts with a fixed --addr and --metadata-addr, --state-dir (the
CA) and a seed with an AccessKey; without one, a new AccessKey is made at each
start.
--addr is the shared gateway's address (HTTPS with --tls, plain HTTP without); the
other endpoints listen on 127.0.0.1 at free ports unless --metadata-addr or
--proxy-addr name one.

Database accounts, as KMS manages those of RDS and PolarDB secrets: with
--db-admin, an admin connection to a MySQL/MariaDB server (a go-sql-driver/mysql
DSN: 'root@tcp(127.0.0.1:3306)/') or a PostgreSQL server (a URL or key=value
string: 'postgres://postgres@127.0.0.1:5432/postgres'), the emulator
  - at start, for every Rds and PolarDB secret, creates its account when missing
    (rights on the database --db-name, created when missing; on PostgreSQL a
    member of the role group kmsdb_password_auth) and sets its password to the
    ACSCurrent value (a DoubleUsers secret's other account, named by
    ACSPrevious, gets the ACSPrevious one), and says so on stderr;
  - warns on stderr when the server accepts a wrong password for an account
    (PostgreSQL trust authentication in pg_hba.conf), with the lines to add;
  - on every rotation (admin rotate, emulator-ctl rotate, the RotateSecret
    action, --rotate-every) sets a new strong password on the database while
    the new version is ACSPending, then moves ACSCurrent and ACSPrevious:
    SingleUser changes the one account; DoubleUsers changes the account not in
    use (NAME <-> NAME_clone, the clone created at the first rotation) and
    makes it current, so ACSPrevious keeps working. If the database change
    fails, the rotation fails and the stages stay.
Other secret types are never touched. No password is ever printed.
--rotate-every D rotates every Rds and PolarDB secret every D (with or without
--db-admin), as automatic rotation does.

State: with --state-dir the CA (caFile), the client key, the access keys and the
secrets with their versions and stages are kept in DIR (files mode 0600) and
reused by the next start with the same DIR, so a saved caFile and client key
keep working and rotations survive a restart; secrets and keys in DIR win over
the seed's entries of the same name (remove DIR to start afresh; --seed is then
optional). Without --state-dir everything lives in a temporary directory
removed on exit.

Test controls, over HTTP on the "admin" URL (JSON answers, never a secret value;
` + "`kmsdb emulator-ctl`" + ` wraps them):
  curl -X POST "$ADMIN/rotate?secret=db-secret"            -> {"secret":…,"versionId":…}
  curl -X POST "$ADMIN/versions?secret=db-secret" -d '{"versionId":"v9","value":"…"}'
       (a version with a chosen value, any secret type; "stages" defaults to ["ACSCurrent"])
  curl -X POST "$ADMIN/faults" -d '{"action":"GetSecretValue","code":"Rejected.Throttling","times":2}'
       (fields: action secret code httpStatus times latency ("250ms") drop message)
  curl -X DELETE "$ADMIN/faults"
  curl "$ADMIN/calls?action=GetSecretValue&secret=db-secret"  -> {"calls":N,…}
  curl -X DELETE "$ADMIN/calls"
  curl -X POST "$ADMIN/advance?by=2h"                          (emulator clock: token expiry)
  curl "$ADMIN/secrets/db-secret"                              (versions and stages)
  curl -X POST "$ADMIN/revoke-access-key?id=LTAItest"
  curl -X POST "$ADMIN/revoke-client-key?id=KAAP.…"

Proxy: clients that call STS at a fixed host (Alibaba's secret client with
credentials_type client_key posts to https://sts.ap-northeast-1.aliyuncs.com)
reach the emulator with HTTPS_PROXY=<proxy> and SSL_CERT_FILE=<caFile>. The proxy
tunnels only sts.aliyuncs.com, sts.ap-northeast-1.aliyuncs.com and the
emulator's own ports, and serves http://100.100.100.200 (ECS metadata).

The seed file:
  {"accessKeys": [{"id": "LTAItest", "secret": "test-secret"}],
   "secrets": [{"name": "db-secret", "type": "Rds",
                "data": "{\"AccountName\":\"app\",\"AccountPassword\":\"p@ss=w0rd\"}",
                "extendedConfig": {"SecretSubType": "SingleUser"},
                "dataType": "text", "automaticRotation": false, "rotationInterval": "168h"}]}
type is Generic (default), Rds, PolarDB, Redis (these three hold AccountName and
AccountPassword; SecretSubType SingleUser or DoubleUsers), RAMCredentials or ECS.
As KMS does, the gateways serve only ACSCurrent and ACSPrevious of every type but
Generic, and ignore a VersionId sent without a VersionStage for them.

`

// seedFile is the emulator's seed.
type seedFile struct {
	AccessKeys []seedKey    `json:"accessKeys"`
	Secrets    []seedSecret `json:"secrets"`
}

type seedKey struct {
	ID     string `json:"id"`
	Secret string `json:"secret"`
}

type seedSecret struct {
	Name              string         `json:"name"`
	Type              string         `json:"type"`
	Data              string         `json:"data"`
	DataType          string         `json:"dataType"`
	ExtendedConfig    map[string]any `json:"extendedConfig"`
	AutomaticRotation bool           `json:"automaticRotation"`
	RotationInterval  string         `json:"rotationInterval"` // Go duration, e.g. "168h" or "604800s"
}

// emulatorInfo is the JSON line printed on start.
type emulatorInfo struct {
	KMS                   string `json:"kms"`
	DKMS                  string `json:"dkms"`
	STS                   string `json:"sts"`
	Metadata              string `json:"metadata"`
	CredentialsURI        string `json:"credentialsUri"`
	Admin                 string `json:"admin"`
	Proxy                 string `json:"proxy"`
	CAFile                string `json:"caFile"`
	ClientKeyID           string `json:"clientKeyId"`
	ClientKeyFile         string `json:"clientKeyFile"`
	ClientKeyPasswordFile string `json:"clientKeyPasswordFile"`
	DBEngine              string `json:"dbEngine,omitempty"` // with --db-admin: mysql or postgres
	DBDSN                 string `json:"dbDsn,omitempty"`    // with --db-admin: where applications connect, no user
}

// emulatorFlags are the command line of `kmsdb emulator`.
type emulatorFlags struct {
	addr, seedPath, stateDir, metaAddr, proxyAddr string
	dbAdmin, dbName                               string
	useTLS, printEnv, quiet                       bool
	revokeDelay, tokenTTL, rotateEvery            time.Duration
}

// runEmulator implements `kmsdb emulator`.
func runEmulator(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	f, err := parseEmulatorFlags(args, stderr)
	if err != nil {
		return err
	}
	level := slog.LevelInfo
	if f.quiet {
		level = slog.LevelWarn
	}
	logger := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	out := &lineWriter{w: stderr}
	opts, envKey, err := emulatorOptions(f, logger)
	if err != nil {
		return err
	}
	srv, err := kmstest.NewServer(opts...)
	if err != nil {
		if f.stateDir != "" {
			return fmt.Errorf("--state-dir %s: %w", f.stateDir, err)
		}
		return err
	}
	defer srv.Close()
	watchRotations(srv, f.dbAdmin != "", out)
	var db *emulatorDB
	if f.dbAdmin != "" {
		if db, err = openEmulatorDB(ctx, f.dbAdmin, f.dbName, srv, out); err != nil {
			return err
		}
		// The HTTP servers shut down first (Close waits for the requests in
		// flight, a RotateSecret among them), then the database pool: in the
		// other order a rotation in the shutdown window fails with "sql:
		// database is closed". srv.Close is idempotent: the defer above is
		// then a no-op.
		defer func() {
			srv.Close()
			_ = db.Close()
		}()
		srv.OnRotatePending(db.onPending)
		if err := db.sync(); err != nil {
			return err
		}
	}
	ck, err := emulatorClientKey(srv)
	if err != nil {
		return err
	}
	info := newEmulatorInfo(srv, ck, f.useTLS)
	if db != nil {
		info.DBEngine, info.DBDSN = db.engineName(), db.appDSN()
	}
	line, err := emulatorStartLine(srv, info, f.printEnv, envKey)
	if err != nil {
		return err
	}
	if _, err := stdout.Write(line); err != nil { // one write: a reader polling a file sees all of it or nothing
		return fmt.Errorf("write endpoints: %w", err)
	}
	logger.Info("emulator ready", "kms", info.KMS, "dkms", info.DKMS, "sts", info.STS, "metadata", info.Metadata,
		"admin", info.Admin, "proxy", info.Proxy, "clientKeyId", ck.KeyID, "stateDir", f.stateDir)
	if f.rotateEvery > 0 {
		out.say("rotating every Rds and PolarDB secret every %v", f.rotateEvery)
		var wg sync.WaitGroup
		wg.Go(func() { rotateEvery(ctx, srv, f.rotateEvery, out) })
		defer wg.Wait() // before srv.Close and db.Close
	}
	<-ctx.Done()
	logger.Info("emulator stopping")
	return nil
}

func parseEmulatorFlags(args []string, stderr io.Writer) (emulatorFlags, error) {
	var f emulatorFlags
	fs := flag.NewFlagSet("emulator", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&f.addr, "addr", "127.0.0.1:0", "listen address of the shared gateway (KMS OpenAPI)")
	fs.StringVar(&f.seedPath, "seed", "", "seed file: access keys and secrets (JSON; required without --state-dir)")
	fs.BoolVar(&f.useTLS, "tls", false, "serve the shared gateway over HTTPS (the emulator's CA, see caFile)")
	fs.StringVar(&f.stateDir, "state-dir", "", "keep the CA, client key, access keys and secrets in this directory across restarts (default: a temporary directory removed on exit)")
	fs.DurationVar(&f.revokeDelay, "ram-revoke-delay", 0, "how long the old AccessKey of a rotated RAMCredentials secret keeps working (emulator time; 0 = revoked at once)")
	fs.DurationVar(&f.tokenTTL, "token-ttl", time.Hour, "lifetime of STS, ECS metadata, credentials URI and client key session credentials")
	fs.StringVar(&f.metaAddr, "metadata-addr", "127.0.0.1:0", "listen address of the ECS metadata service, credentials URI and admin endpoint")
	fs.StringVar(&f.proxyAddr, "proxy-addr", "127.0.0.1:0", "listen address of the HTTP proxy to STS and ECS metadata")
	fs.StringVar(&f.dbAdmin, "db-admin", "", "admin connection of a MySQL/MariaDB ('root@tcp(127.0.0.1:3306)/') or PostgreSQL ('postgres://postgres@127.0.0.1:5432/postgres') server: the emulator creates the accounts of its Rds and PolarDB secrets there and changes their passwords on every rotation, as KMS does")
	fs.StringVar(&f.dbName, "db-name", "kmsdb_emulator", "with --db-admin: the database the accounts get rights on (created when missing)")
	fs.DurationVar(&f.rotateEvery, "rotate-every", 0, "rotate every Rds and PolarDB secret this often, as automatic rotation does (e.g. 30s; 0 = only on request)")
	fs.BoolVar(&f.quiet, "quiet", false, "log warnings, rotations and database accounts only, not one line per request")
	fs.BoolVar(&f.printEnv, "print-env", false, "print sh export lines for an application configured by the environment, instead of the JSON line (implies --tls)")
	fs.Usage = func() {
		fmt.Fprint(stderr, emulatorUsage)
		fs.PrintDefaults()
	}
	if err := parseFlags(fs, args); err != nil {
		return f, err
	}
	if fs.NArg() > 0 {
		fs.Usage()
		return f, usagef("unexpected argument %q", fs.Arg(0))
	}
	if f.seedPath == "" && f.stateDir == "" {
		fs.Usage()
		return f, usagef("--seed is required (or --state-dir of an earlier run)")
	}
	if f.revokeDelay < 0 {
		return f, fmt.Errorf("--ram-revoke-delay %v: must not be negative", f.revokeDelay)
	}
	if f.tokenTTL <= 0 {
		return f, fmt.Errorf("--token-ttl %v: must be positive", f.tokenTTL)
	}
	if f.rotateEvery < 0 {
		return f, fmt.Errorf("--rotate-every %v: must not be negative", f.rotateEvery)
	}
	if f.dbAdmin != "" && f.dbName == "" {
		return f, usagef("--db-name must not be empty")
	}
	if f.dbAdmin != "" {
		if _, err := dbAdminEngine(f.dbAdmin); err != nil {
			return f, err
		}
	}
	if f.printEnv {
		f.useTLS = true
	}
	return f, nil
}

// emulatorOptions are the server's options: the seed's, then the flags'.
// envKey is the seed's first access key (zero without a seed).
func emulatorOptions(f emulatorFlags, logger *slog.Logger) (opts []kmstest.Option, envKey seedKey, err error) {
	if f.seedPath != "" {
		if opts, err = loadSeed(f.seedPath); err != nil {
			return nil, envKey, err
		}
		envKey = firstSeedKey(f.seedPath)
	}
	opts = append(opts, kmstest.WithLogger(logger), kmstest.WithRAMKeyRevokeDelay(f.revokeDelay),
		kmstest.WithTempCredentialTTL(f.tokenTTL))
	addrs := kmstest.Addrs{Metadata: f.metaAddr, Proxy: f.proxyAddr}
	if f.useTLS {
		addrs.KMSTLS = f.addr
	} else {
		addrs.KMS = f.addr
	}
	opts = append(opts, kmstest.WithAddrs(addrs))
	if f.stateDir != "" {
		opts = append(opts, kmstest.WithStateDir(f.stateDir))
	}
	return opts, envKey, nil
}

func newEmulatorInfo(srv *kmstest.Server, ck kmstest.ClientKey, useTLS bool) emulatorInfo {
	info := emulatorInfo{
		KMS:                   "http://" + srv.KMSAddr(),
		DKMS:                  "https://" + srv.DKMSAddr(),
		STS:                   "https://" + srv.STSAddr(),
		Metadata:              srv.MetadataURL(),
		CredentialsURI:        srv.CredentialsURI(),
		Admin:                 srv.AdminURL(),
		Proxy:                 srv.ProxyURL(),
		CAFile:                srv.CAFile(),
		ClientKeyID:           ck.KeyID,
		ClientKeyFile:         ck.File,
		ClientKeyPasswordFile: ck.PasswordFile,
	}
	if useTLS {
		info.KMS = "https://" + srv.KMSTLSAddr()
	}
	return info
}

// emulatorStartLine is what the emulator prints once ready: the JSON line of
// info, or with printEnv the sh lines of envLines.
func emulatorStartLine(srv *kmstest.Server, info emulatorInfo, printEnv bool, envKey seedKey) ([]byte, error) {
	if !printEnv {
		line, err := json.Marshal(info)
		if err != nil {
			return nil, err
		}
		return append(line, '\n'), nil
	}
	if envKey.ID == "" {
		envKey = seedKey{ID: "LTAIkmsdbEmulatorEnv", Secret: rand.Text()}
	}
	// Registered again, so that it works whatever a --state-dir says about it.
	srv.AddAccessKey(envKey.ID, envKey.Secret)
	return envLines(srv, envKey, info)
}

// emulatorClientKey returns the client key to hand out: the first registered key whose files are still in place
// (a restart with --state-dir), else a new one in the server's directory.
func emulatorClientKey(srv *kmstest.Server) (kmstest.ClientKey, error) {
	for _, ck := range srv.ClientKeys() {
		if ck.File == "" || ck.PasswordFile == "" {
			continue
		}
		if _, err := os.Stat(ck.File); err != nil {
			continue
		}
		if _, err := os.Stat(ck.PasswordFile); err != nil {
			continue
		}
		return ck, nil
	}
	ck, err := srv.NewClientKey()
	if err != nil {
		return kmstest.ClientKey{}, fmt.Errorf("client key: %w", err)
	}
	return ck, nil
}

// envRegionID is the region id --print-env names (the emulator answers for any).
const envRegionID = "cn-hangzhou"

// envLines are the sh lines of --print-env: the settings config.Load reads from the environment, and the unsetting
// of those that would take precedence over them.
func envLines(srv *kmstest.Server, key seedKey, info emulatorInfo) ([]byte, error) {
	region, err := json.Marshal([]struct {
		RegionID string `json:"regionId"`
		Endpoint string `json:"endpoint"`
		CAFile   string `json:"caFilePath"`
	}{{envRegionID, srv.KMSTLSAddr(), srv.CAFile()}})
	if err != nil {
		return nil, err
	}
	var b strings.Builder
	b.WriteString("# kmsdb emulator: `. FILE` (sh) points kmsdb's default configuration at this emulator\n")
	b.WriteString("unset KMSDB_LOCAL_SECRETS_FILE KMSDB_LOCAL_SECRETS cache_client_dkms_config_info\n")
	vars := [][2]string{
		{"credentials_type", "ak"},
		{"credentials_access_key_id", key.ID},
		{"credentials_access_secret", key.Secret},
		{"cache_client_region_id", string(region)},
		{"KMSDB_EMULATOR_ADMIN", info.Admin},
	}
	if info.DBEngine != "" {
		vars = append(vars, [2]string{"KMSDB_EMULATOR_DB_ENGINE", info.DBEngine}, [2]string{"KMSDB_EMULATOR_DB_DSN", info.DBDSN})
	} else {
		b.WriteString("unset KMSDB_EMULATOR_DB_ENGINE KMSDB_EMULATOR_DB_DSN\n")
	}
	for _, kv := range vars {
		fmt.Fprintf(&b, "export %s=%s\n", kv[0], shellQuote(kv[1]))
	}
	return []byte(b.String()), nil
}

// shellQuote quotes s for sh: inside single quotes, a single quote ends the quoting, is escaped and reopens it.
func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// firstSeedKey returns the first access key of a seed file that loadSeed accepted.
func firstSeedKey(path string) seedKey {
	var seed seedFile
	if b, err := os.ReadFile(path); err == nil && json.Unmarshal(b, &seed) == nil && len(seed.AccessKeys) > 0 {
		return seed.AccessKeys[0]
	}
	return seedKey{}
}

// loadSeed reads the seed file into server options. Errors name the file, the entry and the field, never a value.
func loadSeed(path string) ([]kmstest.Option, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("seed file: %w", err)
	}
	bad := func(format string, a ...any) error {
		return fmt.Errorf("seed file %s: "+format, append([]any{path}, a...)...)
	}
	var raw struct {
		AccessKeys []json.RawMessage `json:"accessKeys"`
		Secrets    []json.RawMessage `json:"secrets"`
	}
	if err := strictDecode(b, &raw); err != nil {
		return nil, bad("%v", jsonProblem(err))
	}
	var opts []kmstest.Option
	for i, rk := range raw.AccessKeys {
		var k seedKey
		if err := strictDecode(rk, &k); err != nil {
			return nil, bad("accessKeys[%d]: %v", i, jsonProblem(err))
		}
		switch {
		case k.ID == "":
			return nil, bad("accessKeys[%d]: field id: must not be empty", i)
		case k.Secret == "":
			return nil, bad("accessKeys[%d] (%s): field secret: must not be empty", i, k.ID)
		}
		opts = append(opts, kmstest.WithAccessKey(k.ID, k.Secret))
	}
	names := map[string]int{}
	for i, rs := range raw.Secrets {
		var s seedSecret
		if err := strictDecode(rs, &s); err != nil {
			return nil, bad("secrets[%d]: %v", i, jsonProblem(err))
		}
		if j, dup := names[s.Name]; dup && s.Name != "" {
			return nil, bad("secrets[%d] (%s): field name: same name as secrets[%d]", i, s.Name, j)
		}
		names[s.Name] = i
		spec := kmstest.SecretSpec{Name: s.Name, Type: s.Type, Data: s.Data, DataType: s.DataType,
			ExtendedConfig: s.ExtendedConfig, AutomaticRotation: s.AutomaticRotation}
		if s.RotationInterval != "" {
			d, err := time.ParseDuration(s.RotationInterval)
			if err != nil {
				return nil, bad("secrets[%d] (%s): field rotationInterval: %q is not a duration such as \"168h\"", i, s.Name, s.RotationInterval)
			}
			spec.RotationInterval = d
		}
		if err := spec.Validate(); err != nil {
			var se *kmstest.SpecError
			if errors.As(err, &se) {
				return nil, bad("secrets[%d] (%s): field %s: %s", i, s.Name, jsonField(se.Field), se.Problem)
			}
			return nil, bad("secrets[%d] (%s): %v", i, s.Name, err)
		}
		opts = append(opts, kmstest.WithSecret(spec))
	}
	return opts, nil
}

func strictDecode(b []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if dec.More() {
		return errors.New("trailing data after the JSON object")
	}
	return nil
}

// jsonProblem describes a decoding error without quoting the input (a value could be a secret).
func jsonProblem(err error) string {
	var te *json.UnmarshalTypeError
	var se *json.SyntaxError
	switch {
	case errors.As(err, &te):
		return fmt.Sprintf("field %s: must be a JSON %s", te.Field, te.Type.Kind())
	case errors.As(err, &se):
		// se's message quotes the offending character, which may be part of a secret value: only the offset.
		return fmt.Sprintf("not valid JSON at byte %d", se.Offset)
	case errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF):
		return "not valid JSON: unexpected end of file"
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		return strings.TrimPrefix(err.Error(), "json: ")
	}
	return err.Error()
}

// jsonField turns a SecretSpec field name into the seed's key ("ExtendedConfig.SecretSubType" ->
// "extendedConfig.SecretSubType").
func jsonField(f string) string {
	head, rest, _ := strings.Cut(f, ".")
	if head == "" {
		return f
	}
	r := []rune(head)
	r[0] = unicode.ToLower(r[0])
	if rest != "" {
		return string(r) + "." + rest
	}
	return string(r)
}
