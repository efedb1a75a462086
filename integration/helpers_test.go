package integration

// Shared helpers of the real-database tests: the emulator + real KMS source +
// real cache stack, secret values, and where the database servers come from.
// The load generator and figures lines are in load_test.go, the three targets
// (mysqlkms, pgkms, pgkms.Pool) in targets_test.go.
//
// Where the servers come from, in order:
//  1. KMSDB_TEST_PG_ADMIN_DSN / KMSDB_TEST_MYSQL_ADMIN_DSN (see internal/testdb);
//  2. the servers of this machine, prepared by scripts/testdb.sh (`make test` runs it first);
//  3. containers started with testcontainers-go (PostgreSQL and MariaDB modules, MySQL on request) for an
//     engine whose server does not answer, when a Docker engine does.
// KMSDB_TEST_CONTAINERS=1 (`make test-containers`) uses containers only and fails when it cannot;
// =0 never uses them. containers_test.go has the details. When no server is available the tests fail
// (never skip) with a line saying what to set.

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/kmsdb/kmsdb/internal/testdb"
	"github.com/kmsdb/kmsdb/secretsource"
	"github.com/kmsdb/kmsdb/secretsource/cache"
	"github.com/kmsdb/kmsdb/secretsource/kms"
	"github.com/kmsdb/kmsdb/secretsource/kmstest"
)

func TestMain(m *testing.M) {
	stop, err := prepareServers()
	if err != nil {
		fmt.Fprintln(os.Stderr, "integration:", err)
		os.Exit(1)
	}
	code := 0
	func() {
		defer func() {
			// Containers are removed on every exit path, a failed removal fails the run.
			if err := stop(); err != nil {
				fmt.Fprintln(os.Stderr, "integration:", err)
				code = max(code, 1)
			}
		}()
		// Leak check on every exit path of the tests themselves.
		code = runWithLeakCheck(m)
	}()
	os.Exit(code)
}

func runWithLeakCheck(m *testing.M) int {
	code := m.Run()
	if code != 0 {
		return code
	}
	if err := goleak.Find(goleakOptions()...); err != nil {
		fmt.Fprintln(os.Stderr, "goleak: goroutines left running after the tests:", err)
		return 1
	}
	return 0
}

func goleakOptions() []goleak.Option {
	return []goleak.Option{
		// database/sql and net/http keep-alive goroutines of pools that tests closed
		// exit asynchronously; goleak.Find retries for a while before reporting.
		goleak.IgnoreTopFunction("internal/poll.runtime_pollWait"),
		// testcontainers' reaper connection (only when containers were used).
		goleak.IgnoreAnyFunction("github.com/testcontainers/testcontainers-go.(*Reaper).connect.func1"),
	}
}

// ---------------------------------------------------------------------------
// Database servers: env DSNs -> local servers -> testcontainers (containers_test.go).

// serverAnswers reports whether testdb reaches engine e's server (DSN given or local).
func serverAnswers(e testdb.Engine) bool {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := testdb.Open(ctx, e)
	if err != nil {
		return false
	}
	_ = s.Close(ctx)
	return true
}

// ---------------------------------------------------------------------------
// KMS: emulator + real secretsource/kms (alibaba-cloud-sdk-go over HTTPS) + real cache.

const (
	testAccessKeyID     = "LTAIintegration"
	testAccessKeySecret = "integration-access-secret"
	testRegion          = "cn-hangzhou"
)

// kmsStack is the emulator and the cache the connectors read through.
type kmsStack struct {
	srv   *kmstest.Server
	src   *kms.Source
	cache *cache.Cache
}

// newKMSStack starts the emulator with specs, a KMS source talking HTTPS to it
// through the official SDK, and a cache over that source. Everything is closed
// when t ends.
func newKMSStack(t testing.TB, cacheOpts []cache.Option, specs ...kmstest.SecretSpec) *kmsStack {
	t.Helper()
	opts := []kmstest.Option{kmstest.WithAccessKey(testAccessKeyID, testAccessKeySecret)}
	for _, s := range specs {
		opts = append(opts, kmstest.WithSecret(s))
	}
	srv := kmstest.Start(t, opts...)
	cred, err := kms.NewCredential(kms.CredentialOptions{Type: kms.CredentialAccessKey,
		AccessKeyID: testAccessKeyID, AccessKeySecret: testAccessKeySecret})
	if err != nil {
		t.Fatal(err)
	}
	src, err := kms.New(kms.Config{
		Region:     kms.Region{ID: testRegion, Endpoint: srv.KMSTLSAddr()},
		Credential: cred,
		Scheme:     "https",
		RootCAs:    srv.CertPool(),
		Timeout:    2 * time.Second,
		Logger:     testLogger(t),
	})
	if err != nil {
		t.Fatal(err)
	}
	c, err := cache.New(src, append([]cache.Option{cache.WithLogger(testLogger(t))}, cacheOpts...)...)
	if err != nil {
		_ = src.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := c.Close(); err != nil {
			t.Error(err)
		}
		_ = src.Close()
	})
	return &kmsStack{srv: srv, src: src, cache: c}
}

// testLogger logs warnings and errors to the test log (KMSDB_TEST_DEBUG=1: debug too).
func testLogger(t testing.TB) *slog.Logger {
	level := slog.LevelWarn
	if os.Getenv("KMSDB_TEST_DEBUG") != "" {
		level = slog.LevelDebug
	}
	return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: level}))
}

type tWriter struct{ t testing.TB }

func (w tWriter) Write(p []byte) (int, error) {
	defer func() { _ = recover() }() // a log line after the test ended must not panic
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// rdsValue is the JSON value of an Rds secret.
func rdsValue(user, password string) string {
	return fmt.Sprintf(`{"AccountName":%s,"AccountPassword":%s}`, strconv.Quote(user), jsonString(password))
}

// jsonString quotes s as a JSON string (strconv.Quote differs for non-ASCII escapes only; both are valid JSON
// for the characters we use, but encode explicitly to be exact).
func jsonString(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range s {
		switch {
		case r == '"':
			b.WriteString(`\"`)
		case r == '\\':
			b.WriteString(`\\`)
		case r < 0x20:
			fmt.Fprintf(&b, `\u%04x`, r)
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte('"')
	return b.String()
}

// account decodes the account of an Rds secret value.
func account(t testing.TB, value string) (user, password string) {
	t.Helper()
	user, password, err := decodeAccount(value)
	if err != nil {
		t.Fatal(err)
	}
	return user, password
}

// decodeAccount is account for goroutines other than the test's.
func decodeAccount(value string) (user, password string, err error) {
	s := secretsource.NewSecret(secretsource.Fields{Name: "decode", SecretType: "Rds", Value: []byte(value)})
	a, err := secretsource.DecodeDBAccount(s)
	if err != nil {
		return "", "", fmt.Errorf("decode Rds value: %w", err)
	}
	return a.Username, a.Password, nil
}
