package integration

// Tests of the container path's rules (containers_test.go): which servers are
// used for KMSDB_TEST_CONTAINERS, and that every server is reached at a loopback address.

import (
	"context"
	"errors"
	"net"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/kmsdb/kmsdb/internal/testdb"
)

// TestServersAtLoopback: every server the tests log in to is on this machine. With containers, the host
// testcontainers reports for each of them is a loopback address; KMSDB_TEST_CONTAINERS=1 without a container
// for each engine fails.
func TestServersAtLoopback(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for _, e := range []testdb.Engine{testdb.EnginePostgres, testdb.EngineMariaDB} {
		var s *testdb.Server
		if e == testdb.EngineMariaDB {
			s = testdb.MariaDB(t)
		} else {
			s = testdb.Postgres(t)
		}
		if !isLoopbackHost(s.Host()) {
			t.Errorf("%s server at %s: not a loopback address", e, s.Addr())
		}
	}
	started.Lock()
	ctrs := started.ctrs
	started.Unlock()
	if os.Getenv(envContainers) == "1" && len(ctrs) != 2 {
		t.Fatalf("%s=1 but %d containers were started, want one per engine", envContainers, len(ctrs))
	}
	if len(ctrs) == 0 {
		t.Logf("no container in this run (%s=%q): the servers come from DSNs or this machine", envContainers, os.Getenv(envContainers))
	}
	for e, c := range ctrs {
		host, err := c.Host(ctx)
		if err != nil {
			t.Fatalf("%s container: Host: %v", e, err)
		}
		if !isLoopbackHost(host) {
			t.Errorf("%s container: testcontainers reports host %q, not a loopback address", e, host)
		}
		ep, err := c.PortEndpoint(ctx, portOf(e), "")
		if err != nil {
			t.Fatal(err)
		}
		if h, _, err := net.SplitHostPort(ep); err != nil || !isLoopbackHost(h) {
			t.Errorf("%s container: endpoint %q is not at a loopback address (%v)", e, ep, err)
		}
		t.Logf("%s container at %s", e, ep)
	}
}

func portOf(e testdb.Engine) string {
	if e == testdb.EnginePostgres {
		return "5432/tcp"
	}
	return "3306/tcp"
}

func TestIsLoopbackHost(t *testing.T) {
	for host, want := range map[string]bool{
		"localhost": true, "LOCALHOST": true, "127.0.0.1": true, "127.3.2.1": true, "::1": true, "[::1]": true,
		"172.17.0.1": false, "192.0.2.1": false, "0.0.0.0": false, "::": false, "": false,
		"example.com": false, "localhost.example.com": false, "host.docker.internal": false,
	} {
		if got := isLoopbackHost(host); got != want {
			t.Errorf("isLoopbackHost(%q) = %v, want %v", host, got, want)
		}
	}
}

func TestCheckContainerHostOverride(t *testing.T) {
	ctx := context.Background()
	t.Setenv(envHostOverride, "172.17.0.1")
	err := checkContainerHost(ctx)
	if err == nil || !strings.Contains(err.Error(), envHostOverride) {
		t.Errorf("gateway override: err = %v, want a refusal naming %s", err, envHostOverride)
	}
	t.Setenv(envHostOverride, "localhost")
	if err := checkContainerHost(ctx); err != nil {
		t.Errorf("localhost override: %v", err)
	}
}

// TestPlanServers: KMSDB_TEST_CONTAINERS=1 never falls back to local servers; its errors say what to do.
func TestPlanServers(t *testing.T) {
	noEngine := func() error { return errors.New("Cannot connect to the Docker daemon at unix:///var/run/docker.sock") }
	engineOK := func() error { return nil }
	local := func(up bool) func(testdb.Engine) bool { return func(testdb.Engine) bool { return up } }
	env := func(kv ...string) func(string) string {
		return func(k string) string {
			for i := 0; i+1 < len(kv); i += 2 {
				if kv[i] == k {
					return kv[i+1]
				}
			}
			return ""
		}
	}
	both := []testdb.Engine{testdb.EnginePostgres, testdb.EngineMariaDB}
	for _, tc := range []struct {
		name    string
		mode    string
		getenv  func(string) string
		local   bool
		engine  func() error
		want    []testdb.Engine
		wantErr []string // substrings of the error
	}{
		{name: "containers only, no engine, local servers up", mode: "1", getenv: env(), local: true, engine: noEngine,
			wantErr: []string{"KMSDB_TEST_CONTAINERS=1", "Cannot connect to the Docker daemon", "make test-containers", "unset KMSDB_TEST_CONTAINERS"}},
		{name: "containers only, engine up, local servers up", mode: "1", getenv: env(), local: true, engine: engineOK, want: both},
		{name: "containers only and a DSN", mode: "1", getenv: env(testdb.EnvPostgresAdminDSN, "postgres://x@127.0.0.1/postgres"),
			engine: engineOK, wantErr: []string{"KMSDB_TEST_CONTAINERS=1", testdb.EnvPostgresAdminDSN, "unset one"}},
		{name: "never", mode: "0", getenv: env(), engine: engineOK},
		{name: "auto, local servers up", getenv: env(), local: true, engine: engineOK},
		{name: "auto, local servers down, engine up", getenv: env(), engine: engineOK, want: both},
		{name: "auto, MariaDB by DSN, PostgreSQL down", getenv: env(testdb.EnvMySQLAdminDSN, "root@tcp(127.0.0.1:3306)/"), engine: engineOK,
			want: []testdb.Engine{testdb.EnginePostgres}},
		{name: "auto, nothing", getenv: env(), engine: noEngine},
		{name: "bad mode", mode: "yes", getenv: env(), engine: engineOK, wantErr: []string{`KMSDB_TEST_CONTAINERS="yes"`, "want 1"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := planServers(tc.mode, tc.getenv, local(tc.local), tc.engine)
			if len(tc.wantErr) > 0 {
				if err == nil {
					t.Fatalf("planServers = %v, nil; want an error", got)
				}
				for _, s := range tc.wantErr {
					if !strings.Contains(err.Error(), s) {
						t.Errorf("error %q does not contain %q", err, s)
					}
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("planServers = %v, want %v", got, tc.want)
			}
		})
	}
}
