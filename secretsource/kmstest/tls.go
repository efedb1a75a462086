package kmstest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"
)

// stsHostNames are the STS host names the SDKs call with a fixed host (the core SDK's RSA key pair provider uses
// sts.ap-northeast-1.aliyuncs.com, credentials-go's default is sts.aliyuncs.com). The leaf certificate names them
// so that a client reaching STS through ProxyURL verifies the emulator's certificate.
var stsHostNames = []string{"sts.aliyuncs.com", "sts.ap-northeast-1.aliyuncs.com"}

// initTLS makes the CA (a new one, or the one kept in the state directory: caDER and caKey non-nil) and a new
// leaf certificate for 127.0.0.1, ::1, localhost and stsHostNames, shared by every TLS listener, and writes the
// CA to CAFile.
func (s *Server) initTLS(caDER []byte, caKey *ecdsa.PrivateKey) error {
	notBefore := time.Now().Add(-time.Hour)
	notAfter := time.Now().Add(10 * 365 * 24 * time.Hour) // wall clock: Advance must not expire the certificates
	if caDER == nil || caKey == nil {
		var err error
		caKey, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return fmt.Errorf("kmstest: CA key: %w", err)
		}
		caTmpl := &x509.Certificate{
			SerialNumber:          serial(),
			Subject:               pkix.Name{CommonName: "kmstest CA", Organization: []string{"kmsdb emulator"}},
			NotBefore:             notBefore,
			NotAfter:              notAfter,
			KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
			BasicConstraintsValid: true,
			IsCA:                  true,
			MaxPathLenZero:        true,
		}
		caDER, err = x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
		if err != nil {
			return fmt.Errorf("kmstest: CA certificate: %w", err)
		}
	}
	var err error
	if s.caCert, err = x509.ParseCertificate(caDER); err != nil {
		return fmt.Errorf("kmstest: CA certificate: %w", err)
	}
	if pub, ok := s.caCert.PublicKey.(*ecdsa.PublicKey); !ok || !pub.Equal(&caKey.PublicKey) {
		return errors.New("kmstest: the CA certificate does not match the CA key")
	}
	s.caKey = caKey
	if notAfter.After(s.caCert.NotAfter) {
		notAfter = s.caCert.NotAfter
	}
	leafKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return fmt.Errorf("kmstest: leaf key: %w", err)
	}
	leafTmpl := &x509.Certificate{
		SerialNumber: serial(),
		Subject:      pkix.Name{CommonName: "localhost", Organization: []string{"kmsdb emulator"}},
		NotBefore:    notBefore,
		NotAfter:     notAfter,
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames:     append([]string{"localhost"}, stsHostNames...),
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
	}
	leafDER, err := x509.CreateCertificate(rand.Reader, leafTmpl, s.caCert, &leafKey.PublicKey, caKey)
	if err != nil {
		return fmt.Errorf("kmstest: leaf certificate: %w", err)
	}
	leaf, err := x509.ParseCertificate(leafDER)
	if err != nil {
		return fmt.Errorf("kmstest: leaf certificate: %w", err)
	}
	s.tlsCert = tls.Certificate{Certificate: [][]byte{leafDER, caDER}, PrivateKey: leafKey, Leaf: leaf}
	s.caPEM = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER})
	s.caFile = filepath.Join(s.dir, "ca.pem")
	if err := writeFileAtomic(s.caFile, s.caPEM); err != nil {
		return fmt.Errorf("kmstest: write CA file: %w", err)
	}
	return nil
}

// writeFileAtomic writes data to path with mode 0600 through a temporary file and a rename, so a reader (or a
// crash) never sees half a file.
func writeFileAtomic(path string, data []byte) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*.tmp")
	if err != nil {
		return err
	}
	tmp := f.Name()
	_, werr := f.Write(data)
	if err := f.Chmod(0o600); werr == nil {
		werr = err
	}
	if err := f.Close(); werr == nil {
		werr = err
	}
	if werr == nil {
		werr = os.Rename(tmp, path)
	}
	if werr != nil {
		_ = os.Remove(tmp)
	}
	return werr
}

func serial() *big.Int {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 120))
	if err != nil {
		panic(err) // crypto/rand never fails on supported platforms
	}
	return n
}

// CACertPEM is the PEM of the CA that signed every TLS listener's certificate (pass it as Tea openapi.Config.Ca).
func (s *Server) CACertPEM() []byte { return append([]byte(nil), s.caPEM...) }

// CAFile is a file holding CACertPEM, removed on Close (kept with WithStateDir).
func (s *Server) CAFile() string { return s.caFile }

// CertPool is a pool holding only the emulator's CA.
func (s *Server) CertPool() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(s.caCert)
	return p
}

// TLSClientConfig is a client configuration that trusts the emulator's CA (and nothing else).
func (s *Server) TLSClientConfig() *tls.Config {
	return &tls.Config{RootCAs: s.CertPool(), MinVersion: tls.VersionTLS12}
}
