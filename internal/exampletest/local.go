package exampletest

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/kmsdb/kmsdb/connector"
	"github.com/kmsdb/kmsdb/internal/testdb"
	"github.com/kmsdb/kmsdb/secretsource/local"
	"go.uber.org/goleak"
)

// ExamplePassword is the password of the role ServeLocal creates.
const ExamplePassword = "example-password-1"

// ServeLocal is the fixture of the Example functions and README snippets,
// which use only the public API: it creates a throwaway login role on the
// test server of engine e and serves its account (user, password, host,
// port, database) as the secret secretName through the process-wide default
// cache, configured by the environment as a user trying kmsdb without an
// account does (KMSDB_LOCAL_SECRETS=true, KMSDB_SECRET_<NAME>). Call it from
// TestMain before m.Run; cleanup drops the role, closes the default cache and
// restores the environment.
func ServeLocal(e testdb.Engine, secretName string) (cleanup func(), err error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	srv, err := testdb.Open(ctx, e)
	if err != nil {
		return nil, err
	}
	user, err := srv.NewUser(ctx, "example", ExamplePassword)
	if err != nil {
		_ = srv.Close(ctx)
		return nil, err
	}
	value, err := json.Marshal(srv.Account(user, ExamplePassword)) //nolint:gosec // test-only: the secret value the example reads is this throwaway role's account
	if err != nil {
		_ = srv.Close(ctx)
		return nil, err
	}
	restore := setenv(map[string]string{
		"KMSDB_LOCAL_SECRETS":         "true",
		local.EnvName("", secretName): string(value),
	})
	connector.SetDefaultCache(nil) // the next use reads the environment
	return func() {
		connector.SetDefaultCache(nil) // closes the default cache built meanwhile
		restore()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := srv.Close(ctx); err != nil {
			fmt.Fprintln(os.Stderr, "exampletest:", err)
		}
	}, nil
}

// setenv sets vars and returns what puts the environment back.
func setenv(vars map[string]string) (restore func()) {
	type old struct {
		v   string
		had bool
	}
	olds := map[string]old{}
	for k, v := range vars {
		o, had := os.LookupEnv(k)
		olds[k] = old{o, had}
		_ = os.Setenv(k, v)
	}
	return func() {
		for k, o := range olds {
			if o.had {
				_ = os.Setenv(k, o.v)
			} else {
				_ = os.Unsetenv(k)
			}
		}
	}
}

// Serve names a secret ServeLocal serves and the engine of its role.
type Serve struct {
	Engine testdb.Engine
	Secret string
}

// Main is the TestMain of a package whose examples use only the public API:
// it serves each secret with ServeLocal, runs the tests, cleans up, and
// then fails the run if a goroutine leaked. Use it as
// os.Exit(exampletest.Main(m, exampletest.Serve{testdb.EngineMariaDB, "db-secret"})).
func Main(m *testing.M, serve ...Serve) int {
	if code := serveAndRun(m, serve); code != 0 {
		return code
	}
	if err := goleak.Find(); err != nil {
		fmt.Fprintln(os.Stderr, "goleak:", err)
		return 1
	}
	return 0
}

func serveAndRun(m *testing.M, serve []Serve) int {
	for _, s := range serve {
		cleanup, err := ServeLocal(s.Engine, s.Secret)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		defer cleanup()
	}
	return m.Run()
}
