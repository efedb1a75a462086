package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/aliyun/alibaba-cloud-sdk-go/sdk"
	sdkcred "github.com/aliyun/alibaba-cloud-sdk-go/sdk/auth/credentials"
	"github.com/aliyun/alibaba-cloud-sdk-go/services/kms"

	"github.com/kmsdb/kmsdb/internal/syncbuf"
)

// emulatorChildEnv holds the JSON array of arguments when this test binary runs as `kmsdb emulator`.
const emulatorChildEnv = "KMSDB_EMULATOR_CHILD_ARGS"

// TestEmulatorProcessChild is `kmsdb emulator` in a child process (this test binary re-executed), so a test can
// stop it with a real SIGTERM. It does nothing in a normal run.
func TestEmulatorProcessChild(t *testing.T) {
	raw := os.Getenv(emulatorChildEnv)
	if raw == "" {
		t.Skip("child process of the emulator process tests")
	}
	var args []string
	if err := json.Unmarshal([]byte(raw), &args); err != nil {
		t.Fatal(err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := runMain(ctx, append([]string{"emulator"}, args...), os.Stdout, os.Stderr)
	stop()
	os.Exit(code) // before the test framework prints anything on stdout
}

// emulatorProcess is a running `kmsdb emulator` child.
type emulatorProcess struct {
	cmd    *exec.Cmd
	info   emulatorInfo
	stderr *syncbuf.Buffer
	exited chan error
}

func startEmulatorProcess(t *testing.T, args ...string) *emulatorProcess {
	t.Helper()
	b, _ := json.Marshal(args)
	cmd := exec.Command(os.Args[0], "-test.run=^TestEmulatorProcessChild$")
	cmd.Env = append(os.Environ(), emulatorChildEnv+"="+string(b))
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	p := &emulatorProcess{cmd: cmd, stderr: &syncbuf.Buffer{}, exited: make(chan error, 1)}
	cmd.Stderr = p.stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.exited <- cmd.Wait() }()
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
			<-p.exited
		}
	})
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		t.Fatalf("no JSON line (%v); stderr:\n%s", err, p.stderr.String())
	}
	if err := json.Unmarshal([]byte(line), &p.info); err != nil {
		t.Fatalf("JSON line %q: %v", line, err)
	}
	go func() { _, _ = io.Copy(io.Discard, out) }()
	return p
}

// stop sends SIGTERM and waits for a clean exit.
func (p *emulatorProcess) stop(t *testing.T) {
	t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-p.exited:
		p.exited <- err // for the cleanup
		if err != nil {
			t.Fatalf("emulator exit after SIGTERM: %v\n%s", err, p.stderr.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the emulator did not exit on SIGTERM")
	}
}

// coreKMS is the core SDK's KMS client over HTTPS, trusting only caFile.
func coreKMS(t *testing.T, info emulatorInfo) *kms.Client {
	t.Helper()
	pem, err := os.ReadFile(info.CAFile)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		t.Fatal("caFile holds no certificate")
	}
	cfg := sdk.NewConfig()
	cfg.Scheme = "HTTPS"
	cfg.AutoRetry = false
	cfg.HttpTransport = &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}
	c, err := kms.NewClientWithOptions("cn-hangzhou", cfg, sdkcred.NewStaticAKCredentialsProvider("LTAItest", "test-secret"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Shutdown(); cfg.HttpTransport.CloseIdleConnections() })
	c.Domain = strings.TrimPrefix(info.KMS, "https://")
	return c
}

func getValue(t *testing.T, c *kms.Client, name string) (value, versionID string) {
	t.Helper()
	req := kms.CreateGetSecretValueRequest()
	req.SecretName = name
	resp, err := c.GetSecretValue(req)
	if err != nil {
		t.Fatalf("GetSecretValue %s: %v", name, err)
	}
	return resp.SecretData, resp.VersionId
}

// TestEmulatorStateDirRestart: start, rotate through the real SDK, stop with SIGTERM, start again with the same
// --state-dir: same CA file, same client key, the rotated value still current (and the CA saved by the client
// still verifies the new process).
func TestEmulatorStateDirRestart(t *testing.T) {
	if testing.Short() {
		t.Skip("starts child processes")
	}
	dir := filepath.Join(t.TempDir(), "state")
	args := []string{"--seed", filepath.Join("..", "..", "examples", "seed.json"), "--tls", "--state-dir", dir}

	p1 := startEmulatorProcess(t, args...)
	caBefore, err := os.ReadFile(p1.info.CAFile)
	if err != nil {
		t.Fatal(err)
	}
	savedCA := filepath.Join(t.TempDir(), "client-ca.pem") // what a client keeps
	if err := os.WriteFile(savedCA, caBefore, 0o600); err != nil {
		t.Fatal(err)
	}
	c1 := coreKMS(t, p1.info)
	rot := kms.CreateRotateSecretRequest()
	rot.SecretName = "db-secret"
	rresp, err := c1.RotateSecret(rot)
	if err != nil {
		t.Fatalf("RotateSecret: %v", err)
	}
	rotated, vid := getValue(t, c1, "db-secret")
	if vid != rresp.VersionId || rotated == `{"AccountName":"app","AccountPassword":"p@ss=w0rd"}` {
		t.Fatalf("after rotation: version %s, want %s", vid, rresp.VersionId)
	}
	p1.stop(t)
	if strings.Contains(p1.stderr.String(), rotated) {
		t.Fatal("the emulator logged the rotated value")
	}

	p2 := startEmulatorProcess(t, args...)
	defer p2.stop(t)
	if p2.info.CAFile != p1.info.CAFile || p2.info.ClientKeyID != p1.info.ClientKeyID ||
		p2.info.ClientKeyFile != p1.info.ClientKeyFile || p2.info.ClientKeyPasswordFile != p1.info.ClientKeyPasswordFile {
		t.Fatalf("files changed across the restart:\n%+v\n%+v", p1.info, p2.info)
	}
	if caAfter, _ := os.ReadFile(p2.info.CAFile); !bytes.Equal(caAfter, caBefore) {
		t.Fatal("the CA file changed across the restart")
	}
	info := p2.info
	info.CAFile = savedCA
	got, gotVID := getValue(t, coreKMS(t, info), "db-secret")
	if got != rotated || gotVID != vid {
		t.Fatalf("after restart: version %s (want %s), value kept: %v", gotVID, vid, got == rotated)
	}
	prev := kms.CreateGetSecretValueRequest()
	prev.SecretName = "db-secret"
	prev.VersionStage = "ACSPrevious"
	presp, err := coreKMS(t, info).GetSecretValue(prev)
	if err != nil || presp.SecretData != `{"AccountName":"app","AccountPassword":"p@ss=w0rd"}` {
		t.Fatalf("ACSPrevious after restart: %v", err)
	}
	for _, f := range []string{"state.json", "ca.pem", filepath.Base(p2.info.ClientKeyFile), filepath.Base(p2.info.ClientKeyPasswordFile)} {
		fi, err := os.Stat(filepath.Join(dir, f))
		if err != nil || fi.Mode().Perm() != 0o600 {
			t.Errorf("%s: %v %v", f, err, fi)
		}
	}
}

// TestEmulatorCtl drives a running emulator with `kmsdb emulator-ctl`.
func TestEmulatorCtl(t *testing.T) {
	info, _ := startEmulator(t, "--seed", filepath.Join("..", "..", "examples", "seed.json"), "--tls")
	c := coreKMS(t, info)
	ctl := func(args ...string) (string, error) {
		var out, errb bytes.Buffer
		err := runEmulatorCtl(context.Background(), append([]string{"--admin", info.Admin}, args...), &out, &errb)
		return strings.TrimSpace(out.String()), err
	}
	mustCtl := func(args ...string) string {
		t.Helper()
		out, err := ctl(args...)
		if err != nil {
			t.Fatalf("emulator-ctl %v: %v", args, err)
		}
		return out
	}

	before, _ := getValue(t, c, "db-secret")
	vid := mustCtl("rotate", "db-secret")
	after, gotVID := getValue(t, c, "db-secret")
	if vid == "" || gotVID != vid || after == before {
		t.Fatalf("rotate printed %q; the SDK reads version %s", vid, gotVID)
	}
	mustCtl("rotate", "acs/ram/user/app")
	sec := mustCtl("secret", "db-secret")
	if !strings.Contains(sec, `"currentVersionId": "`+vid+`"`) || strings.Contains(sec, "p@ss") || strings.Contains(sec, after) {
		t.Fatalf("secret output:\n%s", sec)
	}

	// add-version: a managed secret's version with a value the test chose, from a file.
	const chosen = `{"AccountName":"app","AccountPassword":"chosen-by-ctl-4c1"}`
	valueFile := filepath.Join(t.TempDir(), "value.json")
	if err := os.WriteFile(valueFile, []byte(chosen), 0o600); err != nil {
		t.Fatal(err)
	}
	if out := mustCtl("add-version", "db-secret", "v-ctl-1", valueFile); out != "v-ctl-1" {
		t.Fatalf("add-version printed %q", out)
	}
	if v, gotVID := getValue(t, c, "db-secret"); v != chosen || gotVID != "v-ctl-1" {
		t.Fatalf("after add-version the SDK reads version %s", gotVID)
	}
	if out := mustCtl("add-version", "--stage", "ACSPending", "db-secret", "v-ctl-2", valueFile); out != "v-ctl-2" {
		t.Fatalf("add-version --stage printed %q", out)
	}
	if _, gotVID := getValue(t, c, "db-secret"); gotVID != "v-ctl-1" {
		t.Fatalf("a version staged ACSPending became current: %s", gotVID)
	}
	if _, err := ctl("add-version", "db-secret", "v-ctl-3"); !errors.Is(err, errUsage) {
		t.Fatalf("add-version without a value file: %v", err)
	}
	// Another value under an existing version id is refused, the value not quoted.
	if err := os.WriteFile(valueFile, []byte(`{"AccountName":"app","AccountPassword":"chosen-by-ctl-other"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := ctl("add-version", "db-secret", "v-ctl-1", valueFile); err == nil || strings.Contains(err.Error(), "chosen-by-ctl") {
		t.Fatalf("add-version of an existing version id with another value: %v", err)
	}

	mustCtl("reset-calls")
	mustCtl("fault", "--action", "GetSecretValue", "--secret", "db-secret", "--code", "Rejected.Throttling", "--times", "1")
	req := kms.CreateGetSecretValueRequest()
	req.SecretName = "db-secret"
	if _, err := c.GetSecretValue(req); err == nil || !strings.Contains(err.Error(), "Rejected.Throttling") {
		t.Fatalf("with the fault: %v", err)
	}
	getValue(t, c, "db-secret")
	if n := mustCtl("calls", "--action", "GetSecretValue", "--secret", "db-secret"); n != "2" {
		t.Fatalf("calls = %s", n)
	}
	mustCtl("fault", "--code", "InternalFailure", "--latency", "1ms")
	if _, err := c.GetSecretValue(req); err == nil || !strings.Contains(err.Error(), "InternalFailure") {
		t.Fatalf("with the fault on every action: %v", err)
	}
	mustCtl("clear-faults")
	getValue(t, c, "db-secret")
	mustCtl("advance", "1h")

	// --info reads the admin URL from the JSON line; the environment variable works too.
	infoFile := filepath.Join(t.TempDir(), "info.json")
	line, _ := json.Marshal(info)
	if err := os.WriteFile(infoFile, line, 0o600); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := runEmulatorCtl(context.Background(), []string{"--info", infoFile, "calls"}, &out, io.Discard); err != nil || strings.TrimSpace(out.String()) == "" {
		t.Fatalf("--info: %v %q", err, out.String())
	}
	t.Setenv("KMSDB_EMULATOR_ADMIN", info.Admin)
	if err := runEmulatorCtl(context.Background(), []string{"reset-calls"}, io.Discard, io.Discard); err != nil {
		t.Fatalf("KMSDB_EMULATOR_ADMIN: %v", err)
	}

	// Errors.
	if _, err := ctl("rotate", "nope"); err == nil || !strings.Contains(err.Error(), "Forbidden.ResourceNotFound") {
		t.Errorf("rotate a missing secret: %v", err)
	}
	if _, err := ctl("fault", "--times", "-1", "--code", "X"); err == nil || !strings.Contains(err.Error(), "times") {
		t.Errorf("bad fault: %v", err)
	}
	for _, args := range [][]string{{}, {"nope"}, {"rotate"}, {"advance", "soon"}, {"fault", "extra"}} {
		if _, err := ctl(args...); !errors.Is(err, errUsage) {
			t.Errorf("%v: %v, want a usage error", args, err)
		}
	}
	t.Setenv("KMSDB_EMULATOR_ADMIN", "")
	if err := runEmulatorCtl(context.Background(), []string{"calls"}, io.Discard, io.Discard); !errors.Is(err, errUsage) {
		t.Errorf("no admin URL: %v", err)
	}
}

// TestEmulatorPolarDBAndRedisSecrets: a seed file declares PolarDB and Redis secrets (the Rds value format);
// the SDK reads them with their type, emulator-ctl rotates them as Rds (DoubleUsers swaps the accounts) and
// shows their type, and a version id given alone is ignored as KMS ignores it for database secrets.
func TestEmulatorPolarDBAndRedisSecrets(t *testing.T) {
	seed := filepath.Join(t.TempDir(), "seed.json")
	if err := os.WriteFile(seed, []byte(`{"accessKeys": [{"id": "LTAItest", "secret": "test-secret"}],
 "secrets": [
  {"name": "polar", "type": "PolarDB", "data": "{\"AccountName\":\"app\",\"AccountPassword\":\"polar-pw-1\"}",
   "extendedConfig": {"SecretSubType": "DoubleUsers", "DBClusterId": "pc-test"}},
  {"name": "redis", "type": "Redis", "data": "{\"AccountName\":\"app\",\"AccountPassword\":\"redis-pw-1\"}"}]}`), 0o600); err != nil {
		t.Fatal(err)
	}
	info, _ := startEmulator(t, "--seed", seed, "--tls")
	c := coreKMS(t, info)
	ctl := func(args ...string) string {
		t.Helper()
		var out bytes.Buffer
		if err := runEmulatorCtl(context.Background(), append([]string{"--admin", info.Admin}, args...), &out, io.Discard); err != nil {
			t.Fatalf("emulator-ctl %v: %v", args, err)
		}
		return strings.TrimSpace(out.String())
	}
	account := func(value string) string {
		t.Helper()
		var a struct{ AccountName, AccountPassword string }
		if err := json.Unmarshal([]byte(value), &a); err != nil || a.AccountPassword == "" {
			t.Fatalf("value is not {AccountName, AccountPassword}: %v", err)
		}
		return a.AccountName
	}
	for _, tc := range []struct{ name, typ, account string }{{"polar", "PolarDB", "app_clone"}, {"redis", "Redis", "app"}} {
		req := kms.CreateGetSecretValueRequest()
		req.SecretName = tc.name
		resp, err := c.GetSecretValue(req)
		if err != nil || resp.SecretType != tc.typ {
			t.Fatalf("%s: type %q, %v", tc.name, resp.SecretType, err)
		}
		first := resp.VersionId
		vid := ctl("rotate", tc.name)
		value, got := getValue(t, c, tc.name)
		if got != vid || value == resp.SecretData || account(value) != tc.account {
			t.Fatalf("%s after rotate: version %s (want %s), account %q (want %q)", tc.name, got, vid, account(value), tc.account)
		}
		if sec := ctl("secret", tc.name); !strings.Contains(sec, `"type": "`+tc.typ+`"`) || strings.Contains(sec, "-pw-") {
			t.Fatalf("%s: secret output:\n%s", tc.name, sec)
		}
		req.VersionId = first // ignored: ACSCurrent is returned
		if resp, err := c.GetSecretValue(req); err != nil || resp.VersionId != vid {
			t.Fatalf("%s by the first version id alone: version %s, want ACSCurrent %s (%v)", tc.name, resp.VersionId, vid, err)
		}
	}
}
