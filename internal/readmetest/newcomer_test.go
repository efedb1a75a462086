package readmetest

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/kmsdb/kmsdb/internal/dbrole"
	"github.com/kmsdb/kmsdb/internal/testdb"
)

// newcomerMarker precedes the README's newcomer block.
const newcomerMarker = "<!-- internal/readmetest runs the commands of this block (TestREADMENewcomerPath): keep it that way -->\n```sh\n"

// The --db-admin values the README shows, MySQL/MariaDB in the block, PostgreSQL in the line after it.
const (
	readmeMySQLAdmin = "'root@tcp(127.0.0.1:3306)/'"
	readmePGAdmin    = "'postgres://postgres@127.0.0.1:5432/postgres'"
)

// newcomerCommands returns the commands of the README's newcomer block, one per line.
func newcomerCommands(t *testing.T) []string {
	t.Helper()
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, rest, ok := strings.Cut(string(readme), newcomerMarker)
	block, _, ok2 := strings.Cut(rest, "```\n")
	if !ok || !ok2 {
		t.Fatalf("README lacks the newcomer block after %q", newcomerMarker)
	}
	if !strings.Contains(rest, "--db-admin "+readmePGAdmin) {
		t.Fatalf("README does not show --db-admin %s for PostgreSQL", readmePGAdmin)
	}
	return strings.Split(strings.TrimSuffix(block, "\n"), "\n")
}

// TestREADMENewcomerPath runs the README's newcomer commands as they are written, against the local MariaDB
// and, with the README's PostgreSQL --db-admin, the local PostgreSQL: in a copy of the checkout (what the first
// command, the clone, gives), with sh, the emulator as a real process. The quickstart must end with
// "N queries, 0 errors, R rotations", R >= 1, and exit 0; the emulator must state the account it manages.
// There must be at most 5 commands.
func TestREADMENewcomerPath(t *testing.T) {
	cmds := newcomerCommands(t)
	if len(cmds) > 5 {
		t.Fatalf("the newcomer path has %d commands, at most 5 allowed", len(cmds))
	}
	if !regexp.MustCompile(`^git clone \S+ && cd kmsdb$`).MatchString(cmds[0]) {
		t.Fatalf("the first command is not the clone: %q", cmds[0])
	}
	script := strings.Join(cmds[1:], "\n") + "\n"
	if !strings.Contains(script, "--db-admin "+readmeMySQLAdmin) {
		t.Fatalf("the README's block does not use --db-admin %s", readmeMySQLAdmin)
	}
	if testing.Short() {
		t.Skip("-short: the newcomer path takes about a minute")
	}
	clone := copyCheckout(t)
	for _, e := range []dbrole.Engine{dbrole.MariaDB, dbrole.Postgres} {
		t.Run(string(e), func(t *testing.T) {
			s := script
			dsn, envVar := testdb.DefaultMySQLAdminDSN, testdb.EnvMySQLAdminDSN
			if e == dbrole.Postgres {
				s = strings.ReplaceAll(s, "--db-admin "+readmeMySQLAdmin, "--db-admin "+readmePGAdmin)
				dsn, envVar = "postgres://postgres@127.0.0.1:5432/postgres", testdb.EnvPostgresAdminDSN
			}
			if v := os.Getenv(envVar); v != "" { // the test servers are elsewhere: the same commands, their DSN
				s = strings.ReplaceAll(s, "--db-admin "+readmeMySQLAdmin, "--db-admin '"+v+"'")
				s = strings.ReplaceAll(s, "--db-admin "+readmePGAdmin, "--db-admin '"+v+"'")
				dsn = v
			}
			dropAppAtEnd(t, e, dsn)
			runNewcomer(t, clone, s)
		})
	}
}

// runNewcomer runs script with sh in dir, in a process group of its own that is ended (the emulator with it)
// once the script returns.
func runNewcomer(t *testing.T, dir, script string) {
	t.Helper()
	_ = os.Remove(filepath.Join(dir, "emulator.env"))
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "sh", "-c", script)
	cmd.Dir = dir
	cmd.Env = newcomerEnv()
	// Files, not pipes: the emulator left running in the background holds them open after sh returns.
	outFile, errFile := filepath.Join(t.TempDir(), "stdout"), filepath.Join(t.TempDir(), "stderr")
	fo, err := os.Create(outFile)
	if err != nil {
		t.Fatal(err)
	}
	defer fo.Close()
	fe, err := os.Create(errFile)
	if err != nil {
		t.Fatal(err)
	}
	defer fe.Close()
	cmd.Stdout, cmd.Stderr = fo, fe
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pgid := cmd.Process.Pid
	err = cmd.Wait()
	// The emulator (go run and its child) is still running in the background: SIGTERM stops it as ^C would.
	_ = syscall.Kill(-pgid, syscall.SIGTERM)
	waitGroupGone(pgid)
	stdout, _ := os.ReadFile(outFile)
	stderr, _ := os.ReadFile(errFile)
	t.Logf("stdout:\n%s\nstderr:\n%s", stdout, stderr)
	if err != nil {
		t.Fatalf("the README's commands failed: %v", err)
	}
	m := regexp.MustCompile(`(?m)^(\d+) queries, 0 errors, (\d+) rotations$`).FindStringSubmatch(string(stdout))
	if m == nil || m[2] == "0" {
		t.Fatalf("the quickstart did not end with N queries, 0 errors, R>0 rotations")
	}
	if !bytes.Contains(stderr, []byte("kmsdb emulator: database account app on ")) ||
		!bytes.Contains(stderr, []byte("kmsdb emulator: rotated db-secret: ")) {
		t.Errorf("the emulator does not state the account or the rotations")
	}
	if bytes.Contains(stderr, []byte("WARNING")) {
		t.Errorf("the emulator warned")
	}
}

// newcomerEnv is the environment of a newcomer's shell: this one without kmsdb's or Alibaba's settings.
func newcomerEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(k, "KMSDB_") || strings.HasPrefix(k, "credentials_") || strings.HasPrefix(k, "cache_client_") ||
			strings.HasPrefix(k, "ALIBABA_CLOUD_") {
			continue
		}
		env = append(env, kv)
	}
	return env
}

// waitGroupGone waits (up to 30 s) until no process of group pgid is left.
func waitGroupGone(pgid int) {
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if err := syscall.Kill(-pgid, 0); err != nil {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	_ = syscall.Kill(-pgid, syscall.SIGKILL)
}

// copyCheckout copies the files git knows of (tracked, or new and not ignored) to a temporary directory: what a
// clone of this tree holds.
func copyCheckout(t *testing.T) string {
	t.Helper()
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("git", "-C", root, "ls-files", "-z", "--cached", "--others", "--exclude-standard").Output()
	if err != nil {
		t.Fatalf("git ls-files: %v", err)
	}
	dst := filepath.Join(t.TempDir(), "kmsdb")
	for _, f := range strings.Split(strings.TrimRight(string(out), "\x00"), "\x00") {
		b, err := os.ReadFile(filepath.Join(root, f))
		if os.IsNotExist(err) {
			continue // deleted in the work tree
		}
		if err != nil {
			t.Fatal(err)
		}
		fi, err := os.Stat(filepath.Join(root, f))
		if err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(dst, f)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, b, fi.Mode().Perm()); err != nil {
			t.Fatal(err)
		}
	}
	return dst
}

// dropAppAtEnd drops the seed's account app (and its DoubleUsers clone) when t ends, unless it existed before.
func dropAppAtEnd(t *testing.T, e dbrole.Engine, dsn string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	a, err := dbrole.Open(ctx, dbrole.Config{Engine: e, DSN: dsn, Database: "kmsdb_emulator"})
	if err != nil {
		t.Fatalf("%v; run `bash scripts/testdb.sh`", err)
	}
	t.Cleanup(func() { _ = a.Close() })
	existed, err := a.Exists(ctx, "app")
	if err != nil {
		t.Fatal(err)
	}
	if existed {
		t.Logf("the account app exists on %s already: the emulator sets its password, the test leaves it", a.Addr())
		return
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := a.Drop(ctx, "app"); err != nil {
			t.Error(err)
		}
	})
}
