package integration

// The container path: database servers started with testcontainers-go for the
// whole test binary (TestMain), removed when it ends.
//
//	KMSDB_TEST_CONTAINERS=1          containers for both engines, never local servers; an engine that
//	                                 cannot be had is an error that says what to do (no fall-back)
//	KMSDB_TEST_CONTAINERS=0          never containers
//	unset                            the local servers (scripts/testdb.sh); containers for an engine whose
//	                                 local server does not answer, when a Docker engine answers
//	KMSDB_TEST_POSTGRES_IMAGE        PostgreSQL image (testcontainers postgres module), default
//	                                 kmsdb-test/postgres:15 (built by scripts/containers.sh); e.g. postgres:17
//	KMSDB_TEST_MARIADB_IMAGE         MariaDB image (mariadb module), default kmsdb-test/mariadb:10.11; e.g. mariadb:11
//	KMSDB_TEST_MYSQL_IMAGE           when set, MySQL from this image (mysql module) instead of MariaDB; e.g. mysql:8.4
//	KMSDB_TEST_CONTAINERS_RUN        value of the label org.kmsdb.test.run on every container (scripts/containers.sh
//	                                 sets it and removes what a crashed run left)
//
// The host the containers are reached at must be a loopback address: with
// /.dockerenv present testcontainers would otherwise use the Docker network's
// gateway, so TESTCONTAINERS_HOST_OVERRIDE=localhost is required there and
// anything else is refused before a container starts.

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/testcontainers/testcontainers-go"
	tcmariadb "github.com/testcontainers/testcontainers-go/modules/mariadb"
	tcmysql "github.com/testcontainers/testcontainers-go/modules/mysql"
	tcpostgres "github.com/testcontainers/testcontainers-go/modules/postgres"

	"github.com/kmsdb/kmsdb/internal/testdb"
)

const (
	envContainers     = "KMSDB_TEST_CONTAINERS"
	envPostgresImage  = "KMSDB_TEST_POSTGRES_IMAGE"
	envMariaDBImage   = "KMSDB_TEST_MARIADB_IMAGE"
	envMySQLImage     = "KMSDB_TEST_MYSQL_IMAGE"
	envContainersRun  = "KMSDB_TEST_CONTAINERS_RUN"
	envHostOverride   = "TESTCONTAINERS_HOST_OVERRIDE"
	runLabel          = "org.kmsdb.test.run"
	defaultPGImage    = "kmsdb-test/postgres:15"
	defaultMariaImage = "kmsdb-test/mariadb:10.11"

	containerAdminPassword = "kmsdb-admin-pw"
)

// engineHint is how to get a container engine, appended to engine errors.
const engineHint = "run `make test-containers` (it installs and starts Docker when missing, builds the local " +
	"images and stops what it started), or start Docker yourself and run `bash scripts/containers.sh images` " +
	"(or set " + envPostgresImage + " / " + envMariaDBImage + " to images you can pull)"

// adminDSNEnv is the testdb variable naming engine e's admin DSN.
func adminDSNEnv(e testdb.Engine) string {
	if e == testdb.EngineMariaDB {
		return testdb.EnvMySQLAdminDSN
	}
	return testdb.EnvPostgresAdminDSN
}

// planServers decides which engines get a container. mode is $KMSDB_TEST_CONTAINERS; localAnswers reports
// whether the engine's local (or DSN-given) server answers; engine reports whether a container engine
// answers, and why not.
func planServers(mode string, getenv func(string) string, localAnswers func(testdb.Engine) bool, engine func() error) ([]testdb.Engine, error) {
	engines := []testdb.Engine{testdb.EnginePostgres, testdb.EngineMariaDB}
	switch mode {
	case "0":
		return nil, nil
	case "1":
		for _, e := range engines {
			if v := adminDSNEnv(e); getenv(v) != "" {
				return nil, fmt.Errorf("%s=1 asks for containers, but %s names a server: unset one of them", envContainers, v)
			}
		}
		if err := engine(); err != nil {
			return nil, fmt.Errorf("%s=1 but no container engine: %w. To fix it, %s; or unset %s to test against local servers",
				envContainers, err, engineHint, envContainers)
		}
		return engines, nil
	case "":
		var want []testdb.Engine
		for _, e := range engines {
			if getenv(adminDSNEnv(e)) == "" && !localAnswers(e) {
				want = append(want, e)
			}
		}
		if len(want) == 0 || engine() != nil {
			return nil, nil // testdb fails the tests of a missing server with its own hint
		}
		return want, nil
	}
	return nil, fmt.Errorf("%s=%q: want 1 (containers only), 0 (never containers) or unset (containers only for an engine whose local server does not answer)",
		envContainers, mode)
}

// isLoopbackHost reports whether host is "localhost" or a loopback IP literal. No name is resolved: a lookup
// would itself dial a DNS server.
func isLoopbackHost(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(strings.TrimSuffix(strings.TrimPrefix(host, "["), "]"))
	return ip != nil && ip.IsLoopback()
}

// dockerEnvFiles are the files by which testcontainers decides it runs inside a container.
var dockerEnvFiles = []string{"/.dockerenv", "/run/.containerenv"}

// checkContainerHost refuses, before any container starts, a host that is not a loopback address.
func checkContainerHost(ctx context.Context) error {
	if v, ok := os.LookupEnv(envHostOverride); ok {
		if !isLoopbackHost(v) {
			return fmt.Errorf("%s=%q is not a loopback address: the tests reach containers on this machine only (set it to localhost)", envHostOverride, v)
		}
		return nil
	}
	for _, f := range dockerEnvFiles {
		if _, err := os.Stat(f); err == nil {
			return fmt.Errorf("%s exists, so testcontainers would reach the containers at the Docker network's gateway, "+
				"not at a loopback address: set %s=localhost (`make test-containers` does)", f, envHostOverride)
		}
	}
	p, err := testcontainers.NewDockerProvider()
	if err != nil {
		return fmt.Errorf("docker provider: %w", err)
	}
	defer func() { _ = p.Close() }()
	host, err := p.DaemonHost(ctx)
	if err != nil {
		return fmt.Errorf("docker daemon host: %w", err)
	}
	if !isLoopbackHost(host) {
		return fmt.Errorf("testcontainers would reach the containers at %q, not a loopback address: set %s=localhost or use a local Docker engine",
			host, envHostOverride)
	}
	return nil
}

// engineAnswers pings the Docker engine testcontainers would use (DOCKER_HOST, docker context, socket).
func engineAnswers() error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	where := "unix:///var/run/docker.sock (DOCKER_HOST unset)"
	if h := os.Getenv("DOCKER_HOST"); h != "" {
		where = "DOCKER_HOST=" + h
	}
	p, err := testcontainers.NewDockerProvider()
	if err != nil {
		return fmt.Errorf("none found at %s (testcontainers: %w)", where, err)
	}
	if err := p.Health(ctx); err != nil { // closes p
		return fmt.Errorf("the Docker engine at %s does not answer (%w)", where, err)
	}
	return nil
}

// started are the containers of this process, for TestServersAtLoopback.
var started struct {
	sync.Mutex
	ctrs map[testdb.Engine]testcontainers.Container
}

// prepareServers makes testdb find a server for each engine; it returns a
// function that removes the containers it started.
func prepareServers() (stop func() error, err error) {
	stop = func() error { return nil }
	engines, err := planServers(os.Getenv(envContainers), os.Getenv, serverAnswers, engineAnswers)
	if err != nil || len(engines) == 0 {
		return stop, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	if err := checkContainerHost(ctx); err != nil {
		return stop, err
	}
	if err := checkLocalImages(ctx, engines); err != nil {
		return stop, err
	}
	type result struct {
		e   testdb.Engine
		dsn string
		ctr testcontainers.Container
		err error
	}
	results := make(chan result, len(engines))
	for _, e := range engines {
		go func() {
			dsn, ctr, err := startContainer(ctx, e)
			results <- result{e, dsn, ctr, err}
		}()
	}
	var errs []error
	ctrs := map[testdb.Engine]testcontainers.Container{}
	dsns := map[testdb.Engine]string{}
	for range engines {
		r := <-results
		if r.ctr != nil {
			ctrs[r.e] = r.ctr
		}
		if r.err != nil {
			errs = append(errs, fmt.Errorf("%s container: %w", r.e, r.err))
		}
		dsns[r.e] = r.dsn
	}
	stop = func() error {
		var errs []error
		for e, c := range ctrs {
			if err := testcontainers.TerminateContainer(c); err != nil {
				errs = append(errs, fmt.Errorf("remove the %s container: %w", e, err))
			}
		}
		return errors.Join(errs...)
	}
	if len(errs) > 0 {
		return stop, errors.Join(append(errs, stop())...)
	}
	started.Lock()
	started.ctrs = ctrs
	started.Unlock()
	for _, e := range engines {
		if err := os.Setenv(adminDSNEnv(e), dsns[e]); err != nil {
			return stop, errors.Join(err, stop())
		}
		fmt.Fprintf(os.Stderr, "integration: %s in a container (%s); %s set for this run\n", e, imageOf(e), adminDSNEnv(e))
	}
	return stop, nil
}

// checkLocalImages fails at once, saying how to build them, when this project's images are not on the engine
// (they cannot be pulled: testcontainers would try a registry, and wait).
func checkLocalImages(ctx context.Context, engines []testdb.Engine) error {
	p, err := testcontainers.NewDockerProvider()
	if err != nil {
		return err
	}
	defer func() { _ = p.Close() }()
	for _, e := range engines {
		img := imageOf(e)
		if !strings.HasPrefix(img, "kmsdb-test/") {
			continue
		}
		if _, err := p.Client().ImageInspect(ctx, img); err != nil {
			return fmt.Errorf("image %s is not on the Docker engine (%v): build it with `bash scripts/containers.sh images` "+
				"(`make test-containers` does), or set %s to an image you can pull", img, err, imageEnv(e))
		}
	}
	return nil
}

// imageEnv is the variable choosing engine e's image.
func imageEnv(e testdb.Engine) string {
	switch {
	case e == testdb.EnginePostgres:
		return envPostgresImage
	case os.Getenv(envMySQLImage) != "":
		return envMySQLImage
	}
	return envMariaDBImage
}

// imageOf is the image engine e's container runs.
func imageOf(e testdb.Engine) string {
	if e == testdb.EnginePostgres {
		return envOrDefault(envPostgresImage, defaultPGImage)
	}
	if v := os.Getenv(envMySQLImage); v != "" {
		return v
	}
	return envOrDefault(envMariaDBImage, defaultMariaImage)
}

func envOrDefault(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

// startContainer runs engine e's container and returns its admin DSN in the form testdb reads. The images
// enforce passwords: scram-sha-256 for PostgreSQL over TCP when a password is set, passwords on every
// MariaDB/MySQL account.
func startContainer(ctx context.Context, e testdb.Engine) (dsn string, ctr testcontainers.Container, err error) {
	img := imageOf(e)
	run := envOrDefault(envContainersRun, "manual")
	labels := testcontainers.WithLabels(map[string]string{runLabel: run})
	switch {
	case e == testdb.EnginePostgres:
		c, err := tcpostgres.Run(ctx, img, labels,
			tcpostgres.WithUsername("postgres"), tcpostgres.WithPassword(containerAdminPassword),
			tcpostgres.WithDatabase("postgres"), tcpostgres.BasicWaitStrategies())
		if c != nil {
			ctr = c
		}
		if err != nil {
			return "", ctr, fmt.Errorf("image %s: %w", img, err)
		}
		dsn, err = c.ConnectionString(ctx, "sslmode=disable")
		return dsn, ctr, err
	case os.Getenv(envMySQLImage) != "":
		if os.Getenv(envMariaDBImage) != "" {
			return "", nil, fmt.Errorf("both %s and %s are set: one MySQL-protocol server per run, unset one", envMySQLImage, envMariaDBImage)
		}
		c, err := tcmysql.Run(ctx, img, labels, tcmysql.WithUsername("root"), tcmysql.WithPassword(containerAdminPassword))
		if c != nil {
			ctr = c
		}
		if err != nil {
			return "", ctr, fmt.Errorf("image %s: %w", img, err)
		}
	default:
		c, err := tcmariadb.Run(ctx, img, labels, tcmariadb.WithUsername("root"), tcmariadb.WithPassword(containerAdminPassword))
		if c != nil {
			ctr = c
		}
		if err != nil {
			return "", ctr, fmt.Errorf("image %s: %w", img, err)
		}
	}
	ep, err := ctr.PortEndpoint(ctx, "3306/tcp", "")
	if err != nil {
		return "", ctr, err
	}
	return "root:" + containerAdminPassword + "@tcp(" + ep + ")/", ctr, nil
}
