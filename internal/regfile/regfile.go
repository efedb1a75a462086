// Package regfile reads the small files a configuration names (properties
// files, password files, CA and client key files) without the ways a file
// path can hang or exhaust a process: it opens without blocking, so a FIFO
// with no writer cannot stall the caller, accepts regular files only (after
// following symlinks, as Kubernetes secret volumes need), and bounds the size
// read.
package regfile

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"syscall"
)

var (
	// ErrNotRegular: the path names a FIFO, socket, device or other
	// non-regular file.
	ErrNotRegular = errors.New("not a regular file")
	// ErrIsDir: the path names a directory.
	ErrIsDir = errors.New("is a directory")
	// ErrTooLarge: the file is larger than the limit given.
	ErrTooLarge = errors.New("file too large")
)

// NotRegularError is the error Open returns for a file that is neither
// regular nor a directory; errors.Is(err, ErrNotRegular) holds.
type NotRegularError struct {
	Kind string // "a FIFO", "a socket", "a device", ...
}

func (e *NotRegularError) Error() string { return "is " + e.Kind + ", not a regular file" }

// Is makes errors.Is(err, ErrNotRegular) true.
func (e *NotRegularError) Is(target error) bool { return target == ErrNotRegular }

// Open opens path for reading if it is a regular file. Opening never blocks:
// O_NONBLOCK makes open(2) of a FIFO return at once, and the FIFO is then
// refused with ErrNotRegular.
func Open(path string) (*os.File, fs.FileInfo, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, nil, err
	}
	st, err := f.Stat()
	switch {
	case err != nil:
	case st.IsDir():
		err = ErrIsDir
	case !st.Mode().IsRegular():
		err = &NotRegularError{Kind: kind(st.Mode())}
	}
	if err != nil {
		f.Close()
		return nil, nil, err
	}
	return f, st, nil
}

// Read returns the content of the regular file path, or ErrTooLarge when it
// holds more than limit bytes.
func Read(path string, limit int64) ([]byte, error) {
	f, st, err := Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if st.Size() > limit {
		return nil, fmt.Errorf("%w: more than %d bytes", ErrTooLarge, limit)
	}
	b, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > limit { // grew since Stat
		return nil, fmt.Errorf("%w: more than %d bytes", ErrTooLarge, limit)
	}
	return b, nil
}

func kind(m fs.FileMode) string {
	switch {
	case m&fs.ModeNamedPipe != 0:
		return "a FIFO"
	case m&fs.ModeSocket != 0:
		return "a socket"
	case m&fs.ModeDevice != 0, m&fs.ModeCharDevice != 0:
		return "a device"
	}
	return "mode " + m.Type().String()
}

// Describe says in a few words what is wrong with the file path, for an error
// Read returned with that limit: "does not exist", "is a directory, expected
// a file", "is a FIFO, not a regular file", "is larger than 1024 KiB", ...
// The callers put it after the file's name; it never holds file content.
func Describe(err error, limit int64) string {
	var notRegular *NotRegularError
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return "does not exist"
	case errors.Is(err, fs.ErrPermission):
		return "is not readable (permission denied)"
	case errors.Is(err, ErrIsDir):
		return "is a directory, expected a file"
	case errors.As(err, &notRegular):
		return notRegular.Error()
	case errors.Is(err, ErrTooLarge):
		if limit >= 1<<10 {
			return fmt.Sprintf("is larger than %d KiB", limit>>10)
		}
		return fmt.Sprintf("is larger than %d bytes", limit)
	}
	return "cannot be read"
}
