//go:build unix

package credprov

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/kmsdb/kmsdb/internal/credtest"
	"github.com/kmsdb/kmsdb/secretsource"
)

// TestFilesRegularAndBounded: the OIDC token file, the CLI configuration and
// the credentials file must be regular files of bounded size. A FIFO with no
// writer is refused instead of blocking the fetch, and an oversized file is
// refused without its content reaching the error; both errors name the file.
func TestFilesRegularAndBounded(t *testing.T) {
	credtest.Hermetic(t)
	const secret = "file-secret-value-9f3c"
	fifo := func(t *testing.T) string {
		f := filepath.Join(t.TempDir(), "fifo")
		if err := syscall.Mkfifo(f, 0o600); err != nil {
			t.Skipf("no FIFO here: %v", err)
		}
		return f
	}
	big := func(t *testing.T, n int) string {
		f := filepath.Join(t.TempDir(), "big")
		if err := os.WriteFile(f, []byte(strings.Repeat(secret, n/len(secret)+1)), 0o600); err != nil {
			t.Fatal(err)
		}
		return f
	}
	// The readers run on another goroutine: they report, never t.Fatal.
	oidc := func(_ *testing.T, file string) error {
		p, err := NewOIDCRoleARN(OIDCOptions{OIDCProviderARN: "p", OIDCTokenFile: file},
			STSOptions{RoleARN: "acs:ram::1:role/r", STSEndpoint: "127.0.0.1:1"})
		if err != nil {
			return err
		}
		_, err = p.GetCredentials()
		return err
	}
	cli := func(_ *testing.T, file string) error {
		p, err := NewCLIProfile(file, "", HTTPOptions{})
		if err != nil {
			return err
		}
		_, err = p.GetCredentials()
		return err
	}
	credentialsFile := func(_ *testing.T, file string) error {
		_, err := NewProfile("", HTTPOptions{}).GetCredentials()
		return err
	}
	cases := []struct {
		name string
		file func(*testing.T) string
		read func(*testing.T, string) error
		want string
	}{
		{"oidc/fifo", fifo, oidc, "is a FIFO, not a regular file"},
		{"oidc/oversized", func(t *testing.T) string { return big(t, MaxTokenFile+1) }, oidc, "is larger than 64 KiB"},
		{"cli/fifo", fifo, cli, "is a FIFO, not a regular file"},
		{"cli/oversized", func(t *testing.T) string { return big(t, MaxProfileFile+1) }, cli, "is larger than 1024 KiB"},
		{"credentials/fifo", fifo, credentialsFile, "is a FIFO, not a regular file"},
		{"credentials/oversized", func(t *testing.T) string { return big(t, MaxProfileFile+1) }, credentialsFile, "is larger than 1024 KiB"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			file := c.file(t)
			t.Setenv("ALIBABA_CLOUD_CLI_PROFILE_DISABLED", "false")
			t.Setenv("ALIBABA_CLOUD_CREDENTIALS_FILE", file)
			done := make(chan error, 1)
			go func() { done <- c.read(t, file) }()
			var err error
			select {
			case err = <-done:
			case <-time.After(time.Minute): // only so that a hang fails rather than stalls the run
				t.Fatalf("reading %s did not return: blocked on the file", file)
			}
			var e *Error
			if !errors.As(err, &e) || e.Kind != secretsource.KindConfig || !strings.Contains(err.Error(), file) ||
				!strings.Contains(err.Error(), c.want) {
				t.Fatalf("got %v, want a config error naming %s and saying %q", err, file, c.want)
			}
			mustNotShow(t, err, secret)
		})
	}
}
