package main

import (
	"bufio"
	"context"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kmsdb/kmsdb/connector"
	"github.com/kmsdb/kmsdb/internal/syncbuf"
	"github.com/kmsdb/kmsdb/secretsource"
)

// envChild marks the child process of TestEmulatorPrintEnv.
const envChild = "KMSDB_TEST_PRINT_ENV_CHILD"

// TestEmulatorPrintEnv runs `kmsdb emulator --print-env` as the CLI does, sources the printed lines with sh into
// an otherwise empty environment (no credentials, no properties file, no CA option) and, in that environment,
// fetches the seed's secret through kmsdb's default cache.
func TestEmulatorPrintEnv(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	stderr := &syncbuf.Buffer{}
	done := make(chan error, 1)
	go func() {
		done <- runEmulator(ctx, []string{"--seed", filepath.Join("..", "..", "examples", "seed.json"), "--print-env"}, pw, stderr)
		pw.Close()
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("emulator returned %v", err)
		}
	})
	var lines []string
	sc := bufio.NewScanner(pr)
	for sc.Scan() {
		lines = append(lines, sc.Text())
		if strings.HasPrefix(sc.Text(), "export KMSDB_EMULATOR_ADMIN=") {
			break
		}
	}
	go func() { _, _ = io.Copy(io.Discard, pr) }()
	env := strings.Join(lines, "\n") + "\n"
	t.Logf("printed:\n%s", env)
	for _, want := range []string{"export credentials_type='ak'", "export credentials_access_key_id='LTAItest'",
		`"endpoint":"127.0.0.1:`, `"caFilePath":"`, "export KMSDB_EMULATOR_ADMIN='http://127.0.0.1:"} {
		if !strings.Contains(env, want) {
			t.Errorf("the lines lack %q; stderr:\n%s", want, stderr.String())
		}
	}
	if strings.Contains(env, "https://") {
		t.Error("an endpoint with a scheme, which cache_client_region_id rejects")
	}
	dir := t.TempDir()
	envFile := filepath.Join(dir, "emulator.env")
	if err := os.WriteFile(envFile, []byte(env), 0o600); err != nil {
		t.Fatal(err)
	}

	cmd := exec.Command("sh", "-c", `. "$1" && exec "$2" -test.run='^TestPrintEnvChild$' -test.v`, "sh", envFile, os.Args[0])
	cmd.Dir = dir // no secretsmanager.properties
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + dir, envChild + "=1",
		"ALIBABA_CLOUD_ECS_METADATA_DISABLED=true", "ALIBABA_CLOUD_CLI_PROFILE_DISABLED=true"}
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "fetched db-secret as app") {
		t.Fatalf("child: %v\n%s", err, out)
	}

	// The fetch reached this emulator.
	admin := strings.TrimSuffix(strings.TrimPrefix(lines[len(lines)-1], "export KMSDB_EMULATOR_ADMIN='"), "'")
	base, err := url.Parse(admin)
	if err != nil {
		t.Fatal(err)
	}
	c := &adminClient{base: base, http: &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{}}}
	defer c.http.CloseIdleConnections()
	var calls struct{ Calls int }
	if err := c.do(context.Background(), http.MethodGet, "calls", url.Values{"action": {"GetSecretValue"}, "secret": {"db-secret"}}, nil, &calls); err != nil {
		t.Fatal(err)
	}
	if calls.Calls == 0 {
		t.Error("the emulator counted no GetSecretValue for db-secret")
	}
}

// TestPrintEnvChild is the child process of TestEmulatorPrintEnv: the default cache, configured by the
// environment alone.
func TestPrintEnvChild(t *testing.T) {
	if os.Getenv(envChild) != "1" {
		t.Skip("run by TestEmulatorPrintEnv")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	p, err := connector.DefaultCache(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer connector.SetDefaultCache(nil) // closes the provider it built
	s, err := p.GetSecret(ctx, "db-secret")
	if err != nil {
		t.Fatal(err)
	}
	acct, err := secretsource.DecodeDBAccount(s)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("fetched %s as %s (version %s)", s.Name(), acct.Username, s.VersionID())
}

func TestShellQuote(t *testing.T) {
	for _, s := range []string{"", "plain", `it's "a" $HOME \n`, "/tmp/dir with space/ca.pem", `[{"a":"b"}]`} {
		out, err := exec.Command("sh", "-c", `printf %s `+shellQuote(s)).Output()
		if err != nil || string(out) != s {
			t.Errorf("%q: sh read %q (%v)", s, out, err)
		}
	}
}

// TestEmulatorPrintEnvWithoutSeedKey: with no AccessKey in a seed, --print-env makes one, and prints its secret
// only on stdout (the log on stderr never shows it).
func TestEmulatorPrintEnvWithoutSeedKey(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	stderr := &syncbuf.Buffer{}
	done := make(chan error, 1)
	go func() {
		done <- runEmulator(ctx, []string{"--state-dir", t.TempDir(), "--print-env"}, pw, stderr)
		pw.Close()
	}()
	var env []string
	sc := bufio.NewScanner(pr)
	for sc.Scan() {
		env = append(env, sc.Text())
		if strings.HasPrefix(sc.Text(), "export KMSDB_EMULATOR_ADMIN=") {
			break
		}
	}
	cancel()
	go func() { _, _ = io.Copy(io.Discard, pr) }()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	var secret string
	for _, l := range env {
		if v, ok := strings.CutPrefix(l, "export credentials_access_secret="); ok {
			secret = strings.Trim(v, "'")
		}
	}
	if !strings.Contains(strings.Join(env, "\n"), "export credentials_access_key_id='LTAIkmsdbEmulatorEnv'") || len(secret) < 16 {
		t.Fatalf("no generated AccessKey in:\n%s", strings.Join(env, "\n"))
	}
	if strings.Contains(stderr.String(), secret) {
		t.Error("the log shows the AccessKey secret")
	}
}
