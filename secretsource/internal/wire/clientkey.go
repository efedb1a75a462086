package wire

import (
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"strings"

	"golang.org/x/crypto/pkcs12"

	"github.com/kmsdb/kmsdb/internal/regfile"

	"github.com/kmsdb/kmsdb/secretsource"
)

// ClientKey is a decrypted application access point client key: the
// {"KeyId": ..., "PrivateKeyData": "<base64 PKCS#12>"} file both gateways
// accept (kms.ClientKey signs shared-gateway requests with it; dkms checks it
// before the dedicated KMS SDK loads it, whose errors are terse and which
// panics on some malformed files).
type ClientKey struct {
	KeyID string
	Key   *rsa.PrivateKey
	Cert  *x509.Certificate // the key's certificate, nil when the file has none
}

// ConfigError is the error of a setting that cannot work, for source ("kms",
// "dkms"): a *secretsource.Error of KindConfig (retrying cannot help) with
// msg, which names the setting or file and never a secret, and err as its
// cause (nil, or an error known to hold no secret).
func ConfigError(source, msg string, err error) *secretsource.Error {
	return &secretsource.Error{Kind: secretsource.KindConfig, Source: source, Message: msg, Err: err}
}

// LoadClientKey reads a client key file and decrypts it with password. Errors
// are *secretsource.Error of KindConfig for source ("kms", "dkms") naming the
// file and what is wrong (unreadable, not JSON, no KeyId, wrong password, not
// an RSA key); they never contain the password.
func LoadClientKey(source, file, password string) (*ClientKey, error) {
	k, _, err := ReadClientKey(source, file, password)
	return k, err
}

// MaxClientKeyFile bounds a client key file (they hold a few KiB).
const MaxClientKeyFile = 1 << 20

// ReadClientKey is LoadClientKey that also returns the file's bytes, for a
// caller that hands them on (the DKMS SDK takes the content, not the path):
// the file is read once, so both see the same key. Only a regular file of at
// most MaxClientKeyFile bytes is read (a FIFO would hang, a device never end),
// the rule of every file a configuration names.
func ReadClientKey(source, file, password string) (*ClientKey, []byte, error) {
	data, err := ReadClientKeyFile(source, file)
	if err != nil {
		return nil, nil, err
	}
	k, err := ParseClientKey(source, data, password, file)
	if err != nil {
		return nil, nil, err
	}
	return k, data, nil
}

// ReadClientKeyFile reads the client key file without decoding it: a regular
// file of at most MaxClientKeyFile bytes. It is the one reader of client key
// files: ReadClientKey reads with it, and the config package checks the files
// a configuration names with it before any password is resolved. Errors are
// *secretsource.Error of KindConfig naming the file and what is wrong.
func ReadClientKeyFile(source, file string) ([]byte, error) {
	data, err := regfile.Read(file, MaxClientKeyFile)
	if err != nil {
		return nil, ConfigError(source, fmt.Sprintf("client key file %q %s", file, regfile.Describe(err, MaxClientKeyFile)), pathError(err))
	}
	return data, nil
}

// pathError keeps the errno (for errors.Is(err, fs.ErrNotExist)) without
// repeating the path.
func pathError(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// ParseClientKey is LoadClientKey for a client key in memory; file, when not
// empty, names it in errors.
func ParseClientKey(source string, data []byte, password, file string) (*ClientKey, error) {
	what := "client key"
	if file != "" {
		what = fmt.Sprintf("client key file %q", file)
	}
	var raw struct {
		KeyID          string `json:"KeyId"`
		PrivateKeyData string `json:"PrivateKeyData"`
	}
	if err := json.Unmarshal(data, &raw); err != nil {
		return nil, ConfigError(source, what+` is not a JSON object {"KeyId": ..., "PrivateKeyData": ...}`, nil)
	}
	if raw.KeyID == "" {
		return nil, ConfigError(source, what+" has no KeyId", nil)
	}
	if raw.PrivateKeyData == "" {
		return nil, ConfigError(source, what+" has no PrivateKeyData", nil)
	}
	pfx, err := base64.StdEncoding.DecodeString(strings.TrimSpace(raw.PrivateKeyData))
	if err != nil {
		return nil, ConfigError(source, what+": PrivateKeyData is not valid base64", nil)
	}
	// x/crypto/pkcs12 is what the dedicated KMS SDK decodes with: a key that
	// passes here also passes there.
	blocks, err := pkcs12.ToPEM(pfx, password)
	if err != nil {
		if errors.Is(err, pkcs12.ErrIncorrectPassword) {
			return nil, ConfigError(source, what+": wrong password (PKCS#12 decryption failed)", nil)
		}
		return nil, ConfigError(source, what+": PrivateKeyData is not a PKCS#12 key this client can decode: "+Scrub(err.Error()), nil)
	}
	k := &ClientKey{KeyID: raw.KeyID}
	for _, b := range blocks {
		switch b.Type {
		case "PRIVATE KEY", "RSA PRIVATE KEY":
			key, err := parseRSAKey(b)
			if err != nil {
				return nil, ConfigError(source, what+": "+err.Error(), nil)
			}
			k.Key = key
		case "CERTIFICATE":
			if c, err := x509.ParseCertificate(b.Bytes); err == nil && k.Cert == nil {
				k.Cert = c
			}
		}
	}
	if k.Key == nil {
		return nil, ConfigError(source, what+": the PKCS#12 data holds no private key", nil)
	}
	return k, nil
}

func parseRSAKey(b *pem.Block) (*rsa.PrivateKey, error) {
	if key, err := x509.ParsePKCS1PrivateKey(b.Bytes); err == nil {
		return key, nil
	}
	key, err := x509.ParsePKCS8PrivateKey(b.Bytes)
	if err != nil {
		return nil, errors.New("the private key cannot be parsed")
	}
	rk, ok := key.(*rsa.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("the private key is %T, not RSA", key)
	}
	return rk, nil
}
