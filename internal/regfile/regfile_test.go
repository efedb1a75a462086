//go:build unix

package regfile

import (
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

func TestRead(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "pw")
	if err := os.WriteFile(file, []byte("hunter2\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, "link")
	if err := os.Symlink(file, link); err != nil {
		t.Fatal(err)
	}
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name, path string
		limit      int64
		want       error
	}{
		{"regular", file, 64, nil},
		{"symlink to regular", link, 64, nil},
		{"at the limit", file, 8, nil},
		{"over the limit", file, 7, ErrTooLarge},
		{"FIFO without writer", fifo, 64, ErrNotRegular}, // would block forever in os.ReadFile
		{"directory", dir, 64, ErrIsDir},
		{"device", os.DevNull, 64, ErrNotRegular},
		{"missing", filepath.Join(dir, "none"), 64, os.ErrNotExist},
	} {
		t.Run(tt.name, func(t *testing.T) {
			b, err := Read(tt.path, tt.limit)
			if !errors.Is(err, tt.want) {
				t.Fatalf("err %v, want %v", err, tt.want)
			}
			if tt.want == nil && string(b) != "hunter2\n" {
				t.Fatalf("read %q", b)
			}
		})
	}
}

func TestDescribe(t *testing.T) {
	dir := t.TempDir()
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	big := filepath.Join(dir, "big")
	if err := os.WriteFile(big, make([]byte, 4096), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		path  string
		limit int64
		want  string
	}{
		{filepath.Join(dir, "none"), 64, "does not exist"},
		{dir, 64, "is a directory, expected a file"},
		{fifo, 64, "is a FIFO, not a regular file"},
		{os.DevNull, 64, "is a device, not a regular file"},
		{big, 2048, "is larger than 2 KiB"},
		{big, 100, "is larger than 100 bytes"},
	} {
		_, err := Read(tt.path, tt.limit)
		if got := Describe(err, tt.limit); got != tt.want {
			t.Errorf("%s: Describe = %q, want %q", tt.path, got, tt.want)
		}
	}
}
