package kms_test

import (
	"crypto/x509"
	"fmt"
	"net"
	"testing"

	"github.com/kmsdb/kmsdb/secretsource/kmstest"
)

// deadAddr is a local address nothing listens on.
func deadAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close()
	return addr
}

// pool trusts the CAs of several emulators.
func pool(srvs ...*kmstest.Server) *x509.CertPool {
	p := x509.NewCertPool()
	for _, s := range srvs {
		p.AppendCertsFromPEM(s.CACertPEM())
	}
	return p
}

// chainTexts is every text reachable from err: Error() of each error in its
// tree and the Go-syntax form, as a caller walking the chain could print them.
func chainTexts(err error) []string {
	var out []string
	var walk func(error)
	walk = func(e error) {
		if e == nil {
			return
		}
		out = append(out, e.Error(), fmt.Sprintf("%+v %#v", e, e))
		switch u := e.(type) { //nolint:errorlint // walks the error tree itself, node by node
		case interface{ Unwrap() error }:
			walk(u.Unwrap())
		case interface{ Unwrap() []error }:
			for _, x := range u.Unwrap() {
				walk(x)
			}
		}
	}
	walk(err)
	return out
}
