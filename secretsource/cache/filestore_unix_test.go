//go:build unix

package cache

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kmsdb/kmsdb/secretsource"
)

// TestFileStoreRefusesUnsafeDirectory: like ssh with ~/.ssh, a directory
// that another user can write to (itself, or a parent without the sticky
// bit) or that another user owns is refused with the path and the fix.
func TestFileStoreRefusesUnsafeDirectory(t *testing.T) {
	mkdir := func(t *testing.T, path string, mode os.FileMode) string {
		t.Helper()
		if err := os.MkdirAll(path, 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(path, mode); err != nil { // not subject to the umask
			t.Fatal(err)
		}
		return path
	}
	tests := []struct {
		name  string
		setup func(t *testing.T, base string) string // returns the store directory
		want  string                                 // "" when accepted
	}{
		{"private", func(t *testing.T, base string) string { return mkdir(t, filepath.Join(base, "c"), 0o700) }, ""},
		{"group readable", func(t *testing.T, base string) string { return mkdir(t, filepath.Join(base, "c"), 0o750) }, ""},
		{"created", func(t *testing.T, base string) string { return filepath.Join(base, "new", "c") }, ""},
		{"group writable", func(t *testing.T, base string) string { return mkdir(t, filepath.Join(base, "c"), 0o770) },
			"is writable by group or others (mode 0770)"},
		{"world writable", func(t *testing.T, base string) string { return mkdir(t, filepath.Join(base, "c"), 0o707) },
			"is writable by group or others (mode 0707)"},
		{"world writable and sticky", func(t *testing.T, base string) string {
			return mkdir(t, filepath.Join(base, "c"), 0o777|os.ModeSticky)
		}, "is writable by group or others"},
		{"parent world writable", func(t *testing.T, base string) string {
			mkdir(t, filepath.Join(base, "p"), 0o777)
			return mkdir(t, filepath.Join(base, "p", "c"), 0o700)
		}, "above"},
		{"parent world writable and sticky, as /tmp", func(t *testing.T, base string) string {
			mkdir(t, filepath.Join(base, "p"), 0o777|os.ModeSticky)
			return mkdir(t, filepath.Join(base, "p", "c"), 0o700)
		}, ""},
		{"symlink to a group-writable directory", func(t *testing.T, base string) string {
			target := mkdir(t, filepath.Join(base, "real"), 0o770)
			link := filepath.Join(base, "link")
			if err := os.Symlink(target, link); err != nil {
				t.Fatal(err)
			}
			return link
		}, "is writable by group or others"},
		{"owned by another user", func(t *testing.T, base string) string {
			if os.Geteuid() != 0 {
				t.Skip("chown needs root")
			}
			dir := mkdir(t, filepath.Join(base, "c"), 0o700)
			if err := os.Chown(dir, 4242, 4242); err != nil {
				t.Fatal(err)
			}
			return dir
		}, "belongs to user id 4242"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := tt.setup(t, t.TempDir())
			st, err := NewFileStore(dir, testKey(t))
			if tt.want == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				if err := st.Save(context.Background(), Record{Secret: secretsource.NewSecret(secretsource.Fields{Name: "a", VersionID: "1", Value: []byte("x")})}); err != nil {
					t.Fatal(err)
				}
				return
			}
			if !errors.Is(err, ErrUnsafeDirectory) || !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), filepath.Base(dir)) {
				t.Fatalf("error %v, want ErrUnsafeDirectory with %q", err, tt.want)
			}
			if strings.Contains(err.Error(), "writable") && !strings.Contains(err.Error(), "chmod go-w") {
				t.Errorf("error does not say how to fix it: %v", err)
			}
		})
	}
}

// TestFileStoreRemovesStaleTemps: opening the store removes the temporary
// files of Saves interrupted between write and rename, once old enough not
// to be another process's Save in progress, and nothing else.
func TestFileStoreRemovesStaleTemps(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "c")
	key := testKey(t)
	st, err := NewFileStore(dir, key)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := st.Save(ctx, Record{Secret: secretsource.NewSecret(secretsource.Fields{Name: "a", VersionID: "1", Value: []byte("x")}), FetchedAt: t0}); err != nil {
		t.Fatal(err)
	}
	old := time.Now().Add(-time.Hour)
	write := func(name string, mtime time.Time) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte("half a record"), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(p, mtime, mtime); err != nil {
			t.Fatal(err)
		}
		return p
	}
	stale := write(".tmp-123456", old)
	fresh := write(".tmp-654321", time.Now())
	other := write("notes.txt", old)
	staleDir := filepath.Join(dir, ".tmp-dir")
	if err := os.Mkdir(staleDir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(staleDir, old, old); err != nil {
		t.Fatal(err)
	}

	st, err = NewFileStore(dir, key)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(stale); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("stale temporary file kept: %v", err)
	}
	for _, keep := range []string{fresh, other, staleDir} {
		if _, err := os.Stat(keep); err != nil {
			t.Errorf("%s removed: %v", filepath.Base(keep), err)
		}
	}
	if recs, err := st.Load(ctx); err != nil || len(recs) != 1 {
		t.Errorf("Load = %d records, %v", len(recs), err)
	}
}
