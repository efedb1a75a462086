package kmstest

import (
	"bufio"
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/alibabacloud-go/tea/tea"
	credgo "github.com/aliyun/credentials-go/credentials"
)

// connectVia sends CONNECT authority to the proxy and returns the status and the open connection.
func connectVia(t *testing.T, proxyAddr, authority string) (int, net.Conn) {
	t.Helper()
	conn, err := net.Dial("tcp", proxyAddr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	if _, err := io.WriteString(conn, "CONNECT "+authority+" HTTP/1.1\r\nHost: "+authority+"\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, &http.Request{Method: http.MethodConnect})
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		resp.Body.Close()
	}
	return resp.StatusCode, conn
}

func TestProxy(t *testing.T) {
	srv := newTestServer(t)
	proxyURL, _ := url.Parse(srv.ProxyURL())
	pAddr := proxyURL.Host

	t.Run("refuses other hosts", func(t *testing.T) {
		for _, a := range []string{"example.com:443", "sts.aliyuncs.com:80", "kms.cn-hangzhou.aliyuncs.com:443",
			srv.KMSAddr(), strings.TrimPrefix(srv.MetadataURL(), "http://"), pAddr, "10.0.0.1:" + portOf(srv.STSAddr())} {
			if code, _ := connectVia(t, pAddr, a); code != http.StatusForbidden {
				t.Errorf("CONNECT %s: %d", a, code)
			}
		}
		ptr := &http.Transport{Proxy: http.ProxyURL(proxyURL)}
		defer ptr.CloseIdleConnections()
		resp, err := (&http.Client{Transport: ptr}).Get("http://example.com/")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusForbidden {
			t.Errorf("GET http://example.com through the proxy: %d", resp.StatusCode)
		}
	})

	t.Run("STS host names reach STS with a verified certificate", func(t *testing.T) {
		for _, h := range stsHostNames {
			code, conn := connectVia(t, pAddr, h+":443")
			if code != http.StatusOK {
				t.Fatalf("CONNECT %s: %d", h, code)
			}
			tc := tls.Client(conn, &tls.Config{ServerName: h, RootCAs: srv.CertPool(), MinVersion: tls.VersionTLS12})
			if err := tc.Handshake(); err != nil {
				t.Fatalf("TLS to %s through the proxy: %v", h, err)
			}
			tc.Close()
		}
	})

	t.Run("credentials-go ram_role_arn at sts.aliyuncs.com", func(t *testing.T) {
		trustEmulatorInDefaultTransport(t, srv)
		cred, err := credgo.NewCredential(&credgo.Config{Type: tea.String("ram_role_arn"),
			AccessKeyId: tea.String(testAK), AccessKeySecret: tea.String(testSK), RoleArn: tea.String(srv.RoleARN()),
			RoleSessionName: tea.String("proxy-test"), STSEndpoint: tea.String("sts.aliyuncs.com"),
			Proxy: tea.String(srv.ProxyURL())})
		if err != nil {
			t.Fatal(err)
		}
		if v, code := fetchWith(t, srv, cred); code != "" || v != rdsValue {
			t.Fatalf("fetch with the assumed role: code %q", code)
		}
		if n := srv.Calls("sts:AssumeRole", ""); n != 1 {
			t.Fatalf("AssumeRole calls %d", n)
		}
	})

	t.Run("own listeners", func(t *testing.T) {
		// The core SDK applies its proxy to loopback too: plain HTTP in absolute form, HTTPS by CONNECT.
		if v, code := coreFetch(t, coreClient(t, srv, false, testAK, testSK, "", srv.ProxyURL()), rdsName); code != "" || v != rdsValue {
			t.Fatalf("plain shared gateway through the proxy: %q", code)
		}
		for _, a := range []string{srv.KMSTLSAddr(), "localhost:" + portOf(srv.DKMSAddr()), srv.STSAddr()} {
			if code, _ := connectVia(t, pAddr, a); code != http.StatusOK {
				t.Errorf("CONNECT %s: %d", a, code)
			}
		}
	})

	t.Run("ECS metadata", func(t *testing.T) {
		ptr := &http.Transport{Proxy: http.ProxyURL(proxyURL)}
		defer ptr.CloseIdleConnections()
		resp, err := (&http.Client{Transport: ptr}).Get("http://100.100.100.200/latest/meta-data/ram/security-credentials/")
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || string(b) != srv.MetadataRoleName() {
			t.Fatalf("%d %q", resp.StatusCode, b)
		}
	})
}

func portOf(addr string) string {
	_, p, _ := net.SplitHostPort(addr)
	return p
}

// TestProxyCloseEndsTunnels: Close returns with a tunnel open, and the client sees the tunnel end.
func TestProxyCloseEndsTunnels(t *testing.T) {
	srv, err := NewServer()
	if err != nil {
		t.Fatal(err)
	}
	proxyURL, _ := url.Parse(srv.ProxyURL())
	code, conn := connectVia(t, proxyURL.Host, "sts.aliyuncs.com:443")
	if code != http.StatusOK {
		srv.Close()
		t.Fatalf("CONNECT: %d", code)
	}
	done := make(chan struct{})
	go func() {
		srv.Close()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("Close did not return with a tunnel open")
	}
	_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := conn.Read(make([]byte, 1)); err == nil {
		t.Fatal("the tunnel is still open after Close")
	}
}
