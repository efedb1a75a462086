//go:build unix

package cache

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
)

// checkPrivateDir refuses a directory that another user could write to, as
// ssh refuses a ~/.ssh it cannot trust: the directory itself must belong to
// this process's user (or root) and be writable by its owner only, and every
// directory above it must belong to this user or root and be writable by
// others only with the sticky bit (as /tmp), so nobody else can replace,
// delete or rename the cached secrets. Symlinks are resolved first. The
// error names the directory and the command that fixes it.
func checkPrivateDir(dir string) error {
	real, err := filepath.EvalSymlinks(dir)
	if err != nil {
		return fmt.Errorf("%w: directory %q: %w", ErrUnsafeDirectory, dir, err)
	}
	real, err = filepath.Abs(real)
	if err != nil {
		return fmt.Errorf("%w: directory %q: %w", ErrUnsafeDirectory, dir, err)
	}
	euid := os.Geteuid()
	for p, self := real, true; ; p, self = filepath.Dir(p), false {
		st, err := os.Stat(p)
		if err != nil {
			return fmt.Errorf("%w: directory %q: %w", ErrUnsafeDirectory, p, err)
		}
		if self && !st.IsDir() {
			return fmt.Errorf("%w: %q is not a directory", ErrUnsafeDirectory, dir)
		}
		what := fmt.Sprintf("directory %q", p)
		if !self {
			what = fmt.Sprintf("directory %q above %q", p, dir)
		}
		if uid, ok := ownerOf(st); ok && uid != euid && uid != 0 {
			return fmt.Errorf("%w: %s belongs to user id %d, not to this process's user (id %d) or root: "+
				"that user can replace the cached secrets; give it to this user (chown) or choose another directory",
				ErrUnsafeDirectory, what, uid, euid)
		}
		perm := st.Mode().Perm()
		sticky := st.Mode()&fs.ModeSticky != 0
		if perm&0o022 != 0 && (self || !sticky) {
			return fmt.Errorf("%w: %s is writable by group or others (mode %04o): they can replace or delete "+
				"the cached secrets; make it private: chmod go-w %q", ErrUnsafeDirectory, what, perm, p)
		}
		if parent := filepath.Dir(p); parent == p {
			return nil
		}
	}
}

func ownerOf(st fs.FileInfo) (int, bool) {
	if s, ok := st.Sys().(*syscall.Stat_t); ok {
		return int(s.Uid), true
	}
	return 0, false
}
