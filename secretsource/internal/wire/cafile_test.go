package wire

import (
	"crypto/x509"
	"encoding/pem"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestReadCAFile: the one rule set of every CA file (configuration, kms,
// dkms). The cases the three former checks disagreed on are marked.
func TestReadCAFile(t *testing.T) {
	dir := t.TempDir()
	now := time.Now()
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: selfSigned(t, now, now.Add(time.Hour)).Certificate[0]})
	certPEM2 := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: selfSigned(t, now, now.Add(time.Hour)).Certificate[0]})
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: []byte("not-a-real-key-sekrit")})
	broken := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: []byte("sekrit junk")})
	file := func(name string, data []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, data, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name, path string
		certs      int
		problem    string
	}{
		{"one certificate", file("one.pem", certPEM), 1, ""},
		{"a bundle with text between", file("bundle.pem", append(append(append([]byte("# bundle\n"), certPEM...), "text\n"...), certPEM2...)), 2, ""},
		// dkms refused a bundle whose first block was not a certificate.
		{"another block first", file("params.pem", append(pem.EncodeToMemory(&pem.Block{Type: "EC PARAMETERS", Bytes: []byte{6, 5}}), certPEM...)), 1, ""},
		{"not PEM", file("text.pem", []byte("no certificate here")), 0, "holds no PEM certificate"},
		{"empty", file("empty.pem", nil), 0, "holds no PEM certificate"},
		// kms and dkms skipped a broken certificate when another one parsed.
		{"a broken certificate in a bundle", file("broken.pem", append(append([]byte{}, certPEM...), broken...)), 0, "holds a certificate that cannot be parsed (certificate 2)"},
		{"a private key", file("key.pem", append(append([]byte{}, certPEM...), keyPEM...)), 0, "holds a private key: a CA file holds certificates only"},
		// kms and dkms read any size and hung on a FIFO.
		{"too large", file("big.pem", append(append([]byte{}, certPEM...), make([]byte, MaxCAFile)...)), 0, "is larger than 1024 KiB"},
		{"FIFO", fifo, 0, "is a FIFO, not a regular file"},
		{"directory", dir, 0, "is a directory, expected a file"},
		{"missing", filepath.Join(dir, "none.pem"), 0, "does not exist"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			certs, err := ReadCAFile("caFilePath", tt.path)
			if tt.problem == "" {
				if err != nil || len(certs) != tt.certs {
					t.Fatalf("got %d certificates, %v; want %d", len(certs), err, tt.certs)
				}
				return
			}
			var ce *CAFileError
			if !errors.As(err, &ce) || ce.Problem != tt.problem || ce.Path != tt.path || ce.Setting != "caFilePath" {
				t.Fatalf("err %#v, want problem %q", err, tt.problem)
			}
			want := `caFilePath: CA file "` + tt.path + `" ` + tt.problem
			if err.Error() != want {
				t.Errorf("Error() = %q, want %q", err, want)
			}
			if strings.Contains(err.Error(), "sekrit") {
				t.Errorf("the error quotes the file: %v", err)
			}
		})
	}
	_, err := ReadCAFile("caFilePath", filepath.Join(dir, "none.pem"))
	if !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("a missing file: errors.Is(err, fs.ErrNotExist) is false: %v", err)
	}
}

// TestCAPool: the file's certificates are added to a copy of base.
func TestCAPool(t *testing.T) {
	now := time.Now()
	a, b := selfSigned(t, now, now.Add(time.Hour)).Leaf, selfSigned(t, now, now.Add(time.Hour)).Leaf
	base := x509.NewCertPool()
	base.AddCert(a)
	pool := CAPool(base, []*x509.Certificate{b})
	for _, c := range []*x509.Certificate{a, b} {
		if _, err := c.Verify(x509.VerifyOptions{Roots: pool}); err != nil {
			t.Errorf("not trusted by the pool: %v", err)
		}
	}
	if _, err := b.Verify(x509.VerifyOptions{Roots: base}); err == nil {
		t.Error("base was changed")
	}
	if _, err := a.Verify(x509.VerifyOptions{Roots: CAPool(nil, []*x509.Certificate{b})}); err == nil {
		t.Error("a nil base holds certificates")
	}
}
