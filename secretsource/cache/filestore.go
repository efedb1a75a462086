package cache

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/kmsdb/kmsdb/internal/regfile"
	"github.com/kmsdb/kmsdb/secretsource"
)

// fileExt names the files of a FileStore; everything else in the directory is ignored.
const fileExt = ".kmsdb"

// fileFormat is the first byte of each file, the format version.
const fileFormat byte = 1

// FileStore is an encrypted Store on disk, for restarts while KMS is
// unreachable. Each secret is one file in the directory, named by a hash of
// the secret's name (the name itself is only inside the ciphertext), sealed
// with AES-GCM under the caller's key with a random nonce, written to a
// temporary file with mode 0600 and renamed into place. The key is held in
// memory only: keep it apart from the directory (an environment variable, a
// mounted secret, a KMS data key), never beside the files. A file that fails
// to decrypt (wrong key, tampering) is skipped and reported by Load.
//
// The directory must be private to the process's user (see NewFileStore):
// encryption stops others from reading or forging records, not from deleting
// them or putting back older ones.
type FileStore struct {
	dir  string
	aead cipher.AEAD
}

// ErrUnsafeDirectory is returned (wrapped, with the directory and the fix)
// by NewFileStore for a directory that another user could write to.
// Retrying does not help; fixing the permissions does.
var ErrUnsafeDirectory = errors.New("cache: file store: unsafe directory")

// tmpPrefix starts the names of the temporary files Save writes and renames.
const tmpPrefix = ".tmp-"

// staleTmpAge is the age past which a temporary file is taken for the
// remains of an interrupted Save (a Save takes milliseconds) and removed.
const staleTmpAge = 5 * time.Minute

// NewFileStore opens (creating it with mode 0700 if needed) the directory dir
// and returns a store sealing records with key, which must be 16, 24 or 32
// bytes long (AES-128, -192 or -256; 32 recommended).
//
// On Unix, as ssh does with ~/.ssh, it refuses (ErrUnsafeDirectory) a
// directory that belongs to another user or that group or others can write
// to, and a directory under one that others can write to without the sticky
// bit. It removes the temporary files of Saves interrupted more than five
// minutes ago (a crash between write and rename).
func NewFileStore(dir string, key []byte) (*FileStore, error) {
	if dir == "" {
		return nil, errors.New("cache: file store: directory is empty")
	}
	switch len(key) {
	case 16, 24, 32:
	default:
		return nil, fmt.Errorf("cache: file store: key must be 16, 24 or 32 bytes, got %d", len(key))
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("cache: file store: directory %q: %w", dir, err)
	}
	if err := checkPrivateDir(dir); err != nil {
		return nil, err
	}
	removeStaleTemps(dir, time.Now())
	block, err := aes.NewCipher(key) // copies the key schedule; the caller's slice is not kept
	if err != nil {
		return nil, fmt.Errorf("cache: file store: %w", err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("cache: file store: %w", err)
	}
	return &FileStore{dir: dir, aead: aead}, nil
}

// removeStaleTemps removes the temporary files of Saves interrupted before
// their rename, once they are older than staleTmpAge (a younger one may be
// another process's Save in progress). Only regular files named .tmp-* are
// touched; failures are left for the next open.
func removeStaleTemps(dir string, now time.Time) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	for _, e := range ents {
		if !strings.HasPrefix(e.Name(), tmpPrefix) || !e.Type().IsRegular() {
			continue
		}
		if info, err := e.Info(); err == nil && now.Sub(info.ModTime()) > staleTmpAge {
			_ = os.Remove(filepath.Join(dir, e.Name()))
		}
	}
}

// fileRecord is the plaintext inside one file.
type fileRecord struct {
	Name              string    `json:"name"`
	VersionID         string    `json:"versionId"`
	VersionStages     []string  `json:"versionStages,omitempty"`
	SecretType        string    `json:"secretType,omitempty"`
	DataType          string    `json:"dataType,omitempty"`
	Value             []byte    `json:"value"`
	CreateTime        time.Time `json:"createTime"`
	AutomaticRotation bool      `json:"automaticRotation,omitempty"`
	RotationInterval  int64     `json:"rotationIntervalNs,omitempty"`
	NextRotationDate  time.Time `json:"nextRotationDate"`
	LastRotationDate  time.Time `json:"lastRotationDate"`
	ExtendedConfig    string    `json:"extendedConfig,omitempty"`
	FetchedAt         time.Time `json:"fetchedAt"`
}

func (s *FileStore) fileName(name string) string {
	sum := sha256.Sum256([]byte(name))
	return hex.EncodeToString(sum[:16]) + fileExt
}

// Save seals r and replaces the file of its secret atomically.
func (s *FileStore) Save(_ context.Context, r Record) error {
	if r.Secret == nil {
		return errors.New("cache: file store: record without a secret")
	}
	f := r.Secret.Fields()
	plain, err := json.Marshal(fileRecord{
		Name: f.Name, VersionID: f.VersionID, VersionStages: f.VersionStages, SecretType: f.SecretType,
		DataType: f.DataType, Value: f.Value, CreateTime: f.CreateTime, AutomaticRotation: f.AutomaticRotation,
		RotationInterval: int64(f.RotationInterval), NextRotationDate: f.NextRotationDate,
		LastRotationDate: f.LastRotationDate, ExtendedConfig: f.ExtendedConfig, FetchedAt: r.FetchedAt,
	})
	clear(f.Value)
	if err != nil {
		return fmt.Errorf("cache: file store: encode secret %q: %w", f.Name, err)
	}
	base := s.fileName(f.Name)
	nonce := make([]byte, s.aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return fmt.Errorf("cache: file store: nonce: %w", err)
	}
	out := make([]byte, 0, 1+len(nonce)+len(plain)+s.aead.Overhead())
	out = append(out, fileFormat)
	out = append(out, nonce...)
	out = s.aead.Seal(out, nonce, plain, []byte(base))
	clear(plain)

	tmp, err := os.CreateTemp(s.dir, tmpPrefix+"*") // mode 0600
	if err != nil {
		return fmt.Errorf("cache: file store: save secret %q: %w", f.Name, err)
	}
	defer os.Remove(tmp.Name()) // no-op after the rename
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return fmt.Errorf("cache: file store: save secret %q: %w", f.Name, err)
	}
	if _, err := tmp.Write(out); err != nil {
		tmp.Close()
		return fmt.Errorf("cache: file store: save secret %q: %w", f.Name, err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("cache: file store: save secret %q: %w", f.Name, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("cache: file store: save secret %q: %w", f.Name, err)
	}
	if err := os.Rename(tmp.Name(), filepath.Join(s.dir, base)); err != nil {
		return fmt.Errorf("cache: file store: save secret %q: %w", f.Name, err)
	}
	return nil
}

// Delete removes the file of name; a missing file is not an error.
func (s *FileStore) Delete(_ context.Context, name string) error {
	err := os.Remove(filepath.Join(s.dir, s.fileName(name)))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("cache: file store: delete secret %q: %w", name, err)
	}
	return nil
}

// Load decrypts every file. Files that cannot be read or decrypted are
// skipped; the returned error then lists them (by file name) beside the
// records that did load.
func (s *FileStore) Load(_ context.Context) ([]Record, error) {
	ents, err := os.ReadDir(s.dir)
	if err != nil {
		return nil, fmt.Errorf("cache: file store: directory %q: %w", s.dir, err)
	}
	var out []Record
	var errs []error
	for _, e := range ents {
		base := e.Name()
		if !e.Type().IsRegular() || !strings.HasSuffix(base, fileExt) {
			continue
		}
		r, err := s.open(base)
		if errors.Is(err, fs.ErrNotExist) {
			continue // deleted or replaced since ReadDir
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("cache: file store: %s: %w", filepath.Join(s.dir, base), err))
			continue
		}
		out = append(out, r)
	}
	return out, errors.Join(errs...)
}

var errNotOurs = errors.New("cannot decrypt (wrong key, corrupted or tampered file)")

// maxFileRecord bounds a file Load reads: many times the largest secret KMS
// stores, with its metadata.
const maxFileRecord = 4 << 20

func (s *FileStore) open(base string) (Record, error) {
	data, err := regfile.Read(filepath.Join(s.dir, base), maxFileRecord)
	if err != nil {
		return Record{}, err
	}
	ns := s.aead.NonceSize()
	if len(data) < 1+ns+s.aead.Overhead() || data[0] != fileFormat {
		return Record{}, errors.New("not a kmsdb cache file of a known format")
	}
	plain, err := s.aead.Open(nil, data[1:1+ns], data[1+ns:], []byte(base))
	if err != nil {
		return Record{}, errNotOurs
	}
	defer clear(plain)
	var fr fileRecord
	if err := json.Unmarshal(plain, &fr); err != nil {
		return Record{}, errors.New("decrypted record is not valid")
	}
	defer clear(fr.Value)
	if s.fileName(fr.Name) != base {
		return Record{}, errors.New("record belongs to another file name")
	}
	sec := secretsource.NewSecret(secretsource.Fields{
		Name: fr.Name, VersionID: fr.VersionID, VersionStages: fr.VersionStages, SecretType: fr.SecretType,
		DataType: fr.DataType, Value: fr.Value, CreateTime: fr.CreateTime, AutomaticRotation: fr.AutomaticRotation,
		RotationInterval: time.Duration(fr.RotationInterval), NextRotationDate: fr.NextRotationDate,
		LastRotationDate: fr.LastRotationDate, ExtendedConfig: fr.ExtendedConfig,
	})
	return Record{Secret: sec, FetchedAt: fr.FetchedAt}, nil
}
