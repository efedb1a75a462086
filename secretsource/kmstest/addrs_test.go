package kmstest

import (
	"net"
	"testing"
)

// freeAddr is a loopback address nothing listens on right now.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close()
	return addr
}

// TestWithAddrs: each listener binds the address WithAddrs gives it; an
// empty field keeps a free loopback port.
func TestWithAddrs(t *testing.T) {
	kms, tlsAddr, meta, proxy := freeAddr(t), freeAddr(t), freeAddr(t), freeAddr(t)
	srv := Start(t, WithAddrs(Addrs{KMS: kms, KMSTLS: tlsAddr, Metadata: meta, Proxy: proxy}))
	if srv.KMSAddr() != kms || srv.KMSTLSAddr() != tlsAddr || srv.MetadataURL() != "http://"+meta || srv.ProxyURL() != "http://"+proxy {
		t.Errorf("listeners at %s, %s, %s, %s; want %s, %s, %s, %s", srv.KMSAddr(), srv.KMSTLSAddr(), srv.MetadataURL(),
			srv.ProxyURL(), kms, tlsAddr, meta, proxy)
	}
	other := Start(t)
	if other.KMSAddr() == "" || other.KMSAddr() == kms {
		t.Errorf("default listener at %q", other.KMSAddr())
	}
}
