//go:build unix

package local_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/kmsdb/kmsdb/secretsource"
	"github.com/kmsdb/kmsdb/secretsource/local"
)

// TestLocalSourceFileBounded: FromFile reads a pipe (a decrypted file that
// never touches the disk) but stops at MaxFileSize, for a pipe as for a file.
func TestLocalSourceFileBounded(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		_, _ = w.Write([]byte("db: hunter2\n"))
		w.Close()
	}()
	src, err := local.New(local.FromFile(fmt.Sprintf("/dev/fd/%d", r.Fd())))
	r.Close()
	if err != nil {
		t.Fatal(err)
	}
	if s, err := src.GetSecret(context.Background(), "db"); err != nil || s.Text() != "hunter2" {
		t.Fatalf("from a pipe: %v", err)
	}

	r2, w2, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { // a writer that would never stop
		defer close(done)
		chunk := bytes.Repeat([]byte("# padding\n"), 4096)
		for {
			if _, err := w2.Write(chunk); err != nil {
				return
			}
		}
	}()
	_, err = local.New(local.FromFile(fmt.Sprintf("/dev/fd/%d", r2.Fd())))
	r2.Close()
	<-done
	w2.Close()
	if !errors.Is(err, secretsource.ErrConfig) || !strings.Contains(err.Error(), "larger than 16 MiB") {
		t.Errorf("an endless pipe: %v", err)
	}
	big := writeFile(t, "big.yaml", strings.Repeat("# padding\n", local.MaxFileSize/10+1))
	if _, err := local.New(local.FromFile(big)); !errors.Is(err, secretsource.ErrConfig) || !strings.Contains(err.Error(), "larger than") {
		t.Errorf("a file over MaxFileSize: %v", err)
	}
}
