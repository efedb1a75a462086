package credprov

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kmsdb/kmsdb/internal/credtest"
	"github.com/kmsdb/kmsdb/secretsource"
)

// captureStdout runs f with os.Stdout redirected to a pipe and returns what
// was written there.
func captureStdout(t *testing.T, f func()) string {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	old := os.Stdout
	os.Stdout = w
	got := make(chan string)
	go func() {
		b, _ := io.ReadAll(r)
		got <- string(b)
	}()
	defer func() {
		os.Stdout = old
	}()
	f()
	os.Stdout = old
	_ = w.Close()
	out := <-got
	_ = r.Close()
	return out
}

func script(t *testing.T, body string) string {
	t.Helper()
	f := filepath.Join(t.TempDir(), "cred.sh")
	if err := os.WriteFile(f, []byte("#!/bin/sh\n"+body), 0o700); err != nil {
		t.Fatal(err)
	}
	return f
}

// TestExternalNeverShowsOutput: a process_command that prints its secret in
// non-JSON, in stderr, or exits non-zero gives an error that says what went
// wrong, and neither that error nor os.Stdout holds the secret or stderr
// (credentials-go prints the command and its output, and quotes stderr).
func TestExternalNeverShowsOutput(t *testing.T) {
	const secret = "ext-leak-secret-4711"
	cases := []struct {
		name, body, want string
		kind             secretsource.Kind
	}{
		{"not JSON", "echo 'access_key_secret: " + secret + "'\necho 'stderr " + secret + "' >&2\n",
			"not valid JSON: syntax error at offset 1", secretsource.KindInvalidAnswer},
		{"JSON then junk", `printf '{"access_key_id":"id","access_key_secret":"` + secret + `"} x'` + "\n",
			"not valid JSON: syntax error at offset", secretsource.KindInvalidAnswer},
		{"exit status", "echo '" + secret + "' >&2\nexit 3\n", "exit status 3 (stderr: 21 bytes, not shown)", secretsource.KindUnknown},
		{"no secret field", `echo '{"mode":"AK","access_key_id":"id","sts_token":"` + secret + `"}'` + "\n",
			"no access_key_id or no access_key_secret", secretsource.KindInvalidAnswer},
		{"StsToken without token", `echo '{"mode":"StsToken","access_key_id":"id","access_key_secret":"` + secret + `"}'` + "\n",
			"mode StsToken without sts_token", secretsource.KindInvalidAnswer},
		{"huge", "i=0; while [ $i -lt 2000 ]; do echo '" + secret + secret + secret + "'; i=$((i+1)); done\n",
			"longer than 64 KiB", secretsource.KindInvalidAnswer},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p, err := NewExternal(script(t, c.body))
			if err != nil {
				t.Fatal(err)
			}
			var gerr error
			out := captureStdout(t, func() { _, gerr = p.GetCredentials() })
			if out != "" {
				t.Errorf("printed on stdout: %q", out)
			}
			if gerr == nil || !strings.Contains(gerr.Error(), c.want) {
				t.Fatalf("error %v, want it to say %q", gerr, c.want)
			}
			if strings.Contains(gerr.Error(), secret) || strings.Contains(gerr.Error(), "stderr "+secret[:4]) {
				t.Errorf("error shows the output: %v", gerr)
			}
			var e *Error
			if !errors.As(gerr, &e) || e.Kind != c.kind {
				t.Errorf("kind %v, want %v", e, c.kind)
			}
		})
	}
}

// TestExternalModes: AK and StsToken answers; an expiration keeps the
// credentials (the command runs once), none runs it at every call; the
// command is split as credentials-go splits it (quotes, escapes).
func TestExternalModes(t *testing.T) {
	dir := t.TempDir()
	count := filepath.Join(dir, "count")
	body := `echo x >> "$1"
if [ "$2" = "sts" ]; then
  echo '{"mode":"StsToken","access_key_id":"STS.id","access_key_secret":"s","sts_token":"tok","expiration":"2999-01-01T00:00:00Z"}'
else
  echo '{"mode":"AK","access_key_id":"ak id","access_key_secret":"s"}'
fi
`
	sh := script(t, body)
	runs := func() int {
		b, _ := os.ReadFile(count)
		return strings.Count(string(b), "x")
	}
	sts, err := NewExternal(`'` + sh + `' "` + count + `" sts`)
	if err != nil {
		t.Fatal(err)
	}
	for range 3 {
		cc, err := sts.GetCredentials()
		if err != nil || cc.AccessKeyId != "STS.id" || cc.SecurityToken != "tok" || cc.ProviderName != "external" {
			t.Fatalf("%v %+v", err, cc)
		}
	}
	if n := runs(); n != 1 {
		t.Errorf("StsToken with expiration: %d runs, want 1", n)
	}
	ak, err := NewExternal(sh + ` ` + strings.ReplaceAll(count, "/", `\/`) + ` ak`)
	if err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if cc, err := ak.GetCredentials(); err != nil || cc.AccessKeyId != "ak id" || cc.SecurityToken != "" {
			t.Fatalf("%v %+v", err, cc)
		}
	}
	if n := runs(); n != 3 {
		t.Errorf("AK without expiration: %d runs in all, want 3", n)
	}
	if _, err := NewExternal(`"unclosed`); err == nil || !strings.Contains(err.Error(), "unclosed quote") {
		t.Errorf("unclosed quote: %v", err)
	}
	if _, err := NewExternal("  "); err == nil || !strings.Contains(err.Error(), "empty") {
		t.Errorf("empty: %v", err)
	}
}

// TestCLIProfileExternalQuiet: through a CLI profile too (credentials-go ran
// it before), non-JSON output is neither printed nor quoted.
func TestCLIProfileExternalQuiet(t *testing.T) {
	credtest.Hermetic(t)
	t.Setenv("ALIBABA_CLOUD_CLI_PROFILE_DISABLED", "")
	t.Setenv("ALIBABA_CLOUD_PROFILE", "")
	const secret = "ext-leak-secret-4712"
	sh := script(t, "echo 'access_key_secret: "+secret+"'\necho 'stderr "+secret+"' >&2\nexit 1\n")
	sh2 := script(t, "echo 'access_key_secret: "+secret+"'\n")
	for _, cmd := range []string{sh, sh2} {
		t.Setenv("ALIBABA_CLOUD_CONFIG_FILE", writeFile(t, "ext.json", cliConfig("x",
			`{"name":"x","mode":"External","process_command":"`+cmd+`"}`)))
		p, err := NewCLIProfile("", "", HTTPOptions{})
		if err != nil {
			t.Fatal(err)
		}
		var gerr error
		out := captureStdout(t, func() { _, gerr = p.GetCredentials() })
		if out != "" {
			t.Errorf("printed on stdout: %q", out)
		}
		if gerr == nil || strings.Contains(gerr.Error(), secret) {
			t.Errorf("error %v: want one without the output", gerr)
		}
	}
}
