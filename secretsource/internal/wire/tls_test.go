package wire

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

// TestIsTLSVerification: real handshakes against loopback servers. The
// certificate failures (unknown authority, wrong name, expired) are
// verification failures; a refused connection and a server that does not
// speak TLS are not.
func TestIsTLSVerification(t *testing.T) {
	ok := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {})
	good := httptest.NewTLSServer(ok)
	defer good.Close()
	trusted := x509.NewCertPool()
	trusted.AddCert(good.Certificate())

	expired := httptest.NewUnstartedServer(ok)
	expiredCert := selfSigned(t, time.Now().Add(-48*time.Hour), time.Now().Add(-24*time.Hour))
	expired.TLS = &tls.Config{Certificates: []tls.Certificate{expiredCert}}
	expired.StartTLS()
	defer expired.Close()
	expiredPool := x509.NewCertPool()
	expiredPool.AddCert(expiredCert.Leaf)

	plain := httptest.NewServer(ok)
	defer plain.Close()

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	// A server that hangs up at once (not a closed port, which another
	// test's server may take meanwhile): the handshake fails, and not
	// because of verification.
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	hangsUp := "https://" + ln.Addr().String()

	get := func(url string, cfg *tls.Config) error {
		c := &http.Client{Transport: &http.Transport{TLSClientConfig: cfg}, Timeout: 10 * time.Second}
		defer c.CloseIdleConnections()
		resp, err := c.Get(url)
		if err == nil {
			resp.Body.Close()
		}
		return err
	}
	cases := []struct {
		name string
		err  error
		want bool
	}{
		{"unknown authority", get(good.URL, &tls.Config{}), true},
		{"hostname mismatch", get(good.URL, &tls.Config{RootCAs: trusted, ServerName: "kms.example"}), true},
		{"expired", get(expired.URL, &tls.Config{RootCAs: expiredPool}), true},
		{"hangs up", get(hangsUp, &tls.Config{RootCAs: trusted}), false},
		{"not TLS", get("https://"+plain.Listener.Addr().String(), &tls.Config{RootCAs: trusted}), false},
	}
	for _, c := range cases {
		if c.err == nil {
			t.Fatalf("%s: the request succeeded", c.name)
		}
		if got := IsTLSVerification(c.err); got != c.want {
			t.Errorf("%s: IsTLSVerification(%v) = %v, want %v", c.name, c.err, got, c.want)
		}
	}
	if !IsTLSVerification(errorString("Get https://kms: x509: certificate signed by unknown authority")) {
		t.Error("an SDK error formatted as text is not recognised")
	}
	if IsTLSVerification(nil) {
		t.Error("nil is a TLS error")
	}
}

type errorString string

func (e errorString) Error() string { return string(e) }

func selfSigned(t *testing.T, notBefore, notAfter time.Time) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "127.0.0.1"},
		NotBefore: notBefore, NotAfter: notAfter, IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign, BasicConstraintsValid: true, IsCA: true,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}
}
