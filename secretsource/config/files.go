package config

// Reading the files a configuration names: the properties file, client key
// and password files, CA files. Each is a regular file of bounded size.

import (
	"errors"
	"fmt"
	"io/fs"
	"strings"

	"github.com/kmsdb/kmsdb/internal/regfile"
	"github.com/kmsdb/kmsdb/secretsource"
	"github.com/kmsdb/kmsdb/secretsource/internal/wire"
)

// loadFile reads the properties file (WithPropertiesFile, KMSDB_PROPERTIES_FILE
// or ./secretsmanager.properties) into r and notes its warnings.
func loadFile(s *Settings, r *resolver) error {
	o := r.o
	if o.noPropsFile {
		return nil
	}
	path, origin, explicit := DefaultPropertiesFile, "", false
	if o.propsFile != "" {
		path, origin, explicit = o.propsFile, "WithPropertiesFile", true
	} else if p := r.env(EnvPropertiesFile); p != "" {
		path, origin, explicit = p, EnvPropertiesFile, true
	}
	props, missing, err := readPropertiesFile(path)
	switch {
	case err != nil:
		return keyError(path, "properties file", err.Error())
	case missing && explicit:
		return keyError(origin, "", fmt.Sprintf("properties file %q does not exist", path))
	case missing:
		return nil
	}
	r.file, r.fileName, s.PropertiesFile = map[string]property{}, path, path
	for _, p := range props {
		r.file[p.key] = p
	}
	s.Warnings = append(s.Warnings, propertiesWarnings(path, props)...)
	return nil
}

// maxPropertiesFile bounds the properties file read (they hold a few lines).
const maxPropertiesFile = 1 << 20

// readPropertiesFile returns the pairs of path in file order. missing
// reports that the file does not exist (not an error for the default file).
// Only a regular file of at most 1 MiB is read. The file is read at every
// LoadSettings, as Alibaba's client reads it at every client construction:
// a file edited later is seen by the next Load.
func readPropertiesFile(path string) (props []property, missing bool, err error) {
	data, err := regfile.Read(path, maxPropertiesFile)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, true, nil
		}
		var pe *fs.PathError
		if errors.As(err, &pe) {
			err = pe.Err
		}
		return nil, false, fmt.Errorf("cannot read: %w", err)
	}
	props, err = parseProperties(data)
	return props, false, err
}

// Bounds of the files a configuration names.
const (
	maxPasswordFile = 64 << 10 // a client key password
	maxKeyFile      = 1 << 20  // a client key, a CA bundle, an OIDC token
)

// readConfigFile reads a file a setting names: a regular file (a FIFO would
// hang Load, a device would never end) of at most limit bytes. The error
// names the key and the path and says what is wrong.
func readConfigFile(key, origin, path string, limit int64) ([]byte, error) {
	b, err := regfile.Read(path, limit)
	if err != nil {
		return nil, keyError(key, origin, fmt.Sprintf("file %q %s", path, regfile.Describe(err, limit)))
	}
	return b, nil
}

// checkReadable fails with the key and the path unless path is a regular
// file of at most 1 MiB that can be read.
func checkReadable(key, path string) error {
	_, err := readConfigFile(key, "", path, maxKeyFile)
	return err
}

// checkClientKey fails with the key unless path is a client key file the
// sources can read: it is read by the function the kms and dkms sources read
// it with (wire.ReadClientKeyFile), so a file passes here if and only if it
// can be read there. The key is decoded by the source, with its password.
func checkClientKey(key, origin, path string) error {
	if _, err := wire.ReadClientKeyFile("config", path); err != nil {
		var se *secretsource.Error
		if errors.As(err, &se) {
			return keyError(key, origin, se.Message)
		}
		return err
	}
	return nil
}

// readPasswordFile reads a password file, trimmed of surrounding blanks as
// Alibaba's client does.
func readPasswordFile(key, origin, path string) (string, error) {
	b, err := readConfigFile(key, origin, path, maxPasswordFile)
	if err != nil {
		return "", err
	}
	pw := strings.TrimSpace(string(b))
	if pw == "" {
		return "", keyError(key, origin, fmt.Sprintf("file %q is empty", path))
	}
	return pw, nil
}

// checkCAFile fails with the key unless path is a CA file the sources accept:
// it is read by the same function (wire.ReadCAFile), with the same rules.
func checkCAFile(key, origin, path string) error {
	if _, err := wire.ReadCAFile(key, path); err != nil {
		var ce *wire.CAFileError
		if errors.As(err, &ce) {
			return keyError(key, origin, fmt.Sprintf("CA file %q %s", path, ce.Problem))
		}
		return err
	}
	return nil
}
