package wire

import (
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"strings"

	"github.com/kmsdb/kmsdb/internal/regfile"
)

// MaxCAFile bounds a CA file: a PEM bundle of a few hundred certificates
// (the system bundle of a Linux distribution is about 220 KiB).
const MaxCAFile = 1 << 20

// CAFileError says what is wrong with the CA file a setting names. It never
// holds the file's content.
type CAFileError struct {
	Setting string // the setting that names the file: "caFilePath", "Region.CAFile", ...
	Path    string
	Problem string // "does not exist", "holds no PEM certificate", ...
	Err     error  // the errno when the file cannot be read, for errors.Is(err, fs.ErrNotExist)
}

func (e *CAFileError) Error() string {
	return fmt.Sprintf("%s: CA file %q %s", e.Setting, e.Path, e.Problem)
}

func (e *CAFileError) Unwrap() error { return e.Err }

// ReadCAFile reads the PEM CA file path that setting names, with the one rule
// set every CA file of the configuration, the kms and the dkms sources
// follows: a regular file (a FIFO would hang, a device never end) of at most
// MaxCAFile bytes, holding at least one CERTIFICATE block, every one of which
// parses (x509.CertPool.AppendCertsFromPEM would skip a broken one silently,
// hiding a truncated bundle), and no private key (a CA file holds public
// certificates; a key there was put in the wrong file). Other PEM blocks and
// text between blocks are ignored, as OpenSSL does. Errors are
// *CAFileError.
func ReadCAFile(setting, path string) ([]*x509.Certificate, error) {
	fail := func(problem string, err error) error {
		return &CAFileError{Setting: setting, Path: path, Problem: problem, Err: err}
	}
	b, err := regfile.Read(path, MaxCAFile)
	if err != nil {
		return nil, fail(regfile.Describe(err, MaxCAFile), pathError(err))
	}
	var certs []*x509.Certificate
	for rest, n := b, 0; ; {
		var block *pem.Block
		if block, rest = pem.Decode(rest); block == nil {
			break
		}
		switch {
		case block.Type == "CERTIFICATE":
			n++
			c, err := x509.ParseCertificate(block.Bytes)
			if err != nil {
				return nil, fail(fmt.Sprintf("holds a certificate that cannot be parsed (certificate %d)", n), nil)
			}
			certs = append(certs, c)
		case strings.Contains(block.Type, "PRIVATE KEY"):
			return nil, fail("holds a private key: a CA file holds certificates only", nil)
		}
	}
	if len(certs) == 0 {
		return nil, fail("holds no PEM certificate", nil)
	}
	return certs, nil
}

// CAPool returns a pool of base's certificates (a new pool when base is nil)
// plus certs. base itself is not changed.
func CAPool(base *x509.CertPool, certs []*x509.Certificate) *x509.CertPool {
	pool := x509.NewCertPool()
	if base != nil {
		pool = base.Clone()
	}
	for _, c := range certs {
		pool.AddCert(c)
	}
	return pool
}
