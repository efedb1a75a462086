package config

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
)

// DefaultPropertiesFile is the file Alibaba's secret clients read from the
// working directory when no other file is named.
const DefaultPropertiesFile = "secretsmanager.properties"

// parseProperties reads the subset of the Java properties format that
// Alibaba's clients write: one key=value per line, '#' or '!' comments,
// blank lines. Unlike Alibaba's Go client it
//
//   - splits at the first '=' (or ':') only, so values containing '=' —
//     base64 secrets end in "==" — are kept whole instead of dropped;
//   - treats lines that start with whitespace and then '#' as comments;
//   - rejects a non-blank line without a separator, naming its line number
//     (never its text, which may hold a secret), instead of ignoring it.
//
// Values are taken verbatim after trimming surrounding blanks: no backslash
// escapes and no line continuations (Windows paths stay as written, as in
// Alibaba's Go client). A key given twice keeps its last value.
func parseProperties(r io.Reader) (map[string]string, error) {
	out := map[string]string{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64*1024), 1<<20)
	line := 0
	for sc.Scan() {
		line++
		text := sc.Text()
		if line == 1 {
			text = strings.TrimPrefix(text, "\ufeff")
		}
		text = strings.TrimSpace(text)
		if text == "" || text[0] == '#' || text[0] == '!' {
			continue
		}
		i := strings.IndexAny(text, "=:")
		if i < 0 {
			return nil, fmt.Errorf("line %d: expected key=value", line)
		}
		key := strings.TrimSpace(text[:i])
		if key == "" {
			return nil, fmt.Errorf("line %d: empty key before %q", line, text[i:i+1])
		}
		out[key] = strings.TrimSpace(text[i+1:])
	}
	if err := sc.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			return nil, fmt.Errorf("line %d: longer than 1 MiB", line+1)
		}
		return nil, err
	}
	return out, nil
}

// propertiesFile is one properties file, read at most once per process.
type propertiesFile struct {
	once    sync.Once
	values  map[string]string
	missing bool
	err     error
}

// propertiesFiles memoizes files by absolute path: Alibaba's client reads its
// file at every client construction; kmsdb reads each file once per process,
// so a file edited later is seen after a restart (or ResetPropertiesCache).
var propertiesFiles sync.Map // string -> *propertiesFile

// readPropertiesFile returns the key/values of path, reading it only the
// first time. missing reports that the file does not exist (not an error
// for the default file).
func readPropertiesFile(path string) (values map[string]string, missing bool, err error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, false, err
	}
	v, _ := propertiesFiles.LoadOrStore(abs, &propertiesFile{})
	pf := v.(*propertiesFile)
	pf.once.Do(func() {
		data, err := os.ReadFile(abs)
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				pf.missing = true
				return
			}
			var pe *fs.PathError
			if errors.As(err, &pe) {
				err = pe.Err
			}
			pf.err = fmt.Errorf("cannot read: %w", err)
			return
		}
		pf.values, pf.err = parseProperties(bytes.NewReader(data))
	})
	return pf.values, pf.missing, pf.err
}

// ResetPropertiesCache forgets every properties file read so far, so the
// next Load reads them again. Meant for tests and for programs that reload
// their configuration on a signal.
func ResetPropertiesCache() {
	propertiesFiles.Range(func(k, _ any) bool {
		propertiesFiles.Delete(k)
		return true
	})
}
