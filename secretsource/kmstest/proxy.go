package kmstest

import (
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
)

// The emulator's HTTP proxy (ProxyURL): it lets clients whose host names are fixed in code reach the emulator.
//
//   - CONNECT sts.aliyuncs.com:443 and sts.ap-northeast-1.aliyuncs.com:443 are tunnelled to the STS listener,
//     whose certificate names these hosts. The core SDK's RSA key pair provider (what Alibaba's secret client uses
//     with credentials type client_key) posts GenerateSessionAccessKey to https://sts.ap-northeast-1.aliyuncs.com
//     with an &http.Client{}, i.e. http.DefaultTransport: HTTPS_PROXY=ProxyURL and SSL_CERT_FILE=CAFile in its
//     environment bring that call here.
//   - CONNECT to one of the emulator's TLS listeners (127.0.0.1:PORT: shared gateway over HTTPS, dedicated
//     gateway, STS) is tunnelled to it, and an absolute-form http:// request to the plain shared gateway is served:
//     the core SDK's client applies HTTPS_PROXY / HTTP_PROXY to every request, loopback included, unless NO_PROXY
//     matches.
//   - Absolute-form http://100.100.100.200/... requests (ECS metadata) are answered by the metadata service
//     (the admin endpoint excepted).
//
// Anything else gets 403: it is not an open proxy.

// tunnelSet tracks the hijacked connections of CONNECT tunnels, so Close can end them.
type tunnelSet struct {
	mu     sync.Mutex
	closed bool
	conns  map[net.Conn]struct{}
	wg     sync.WaitGroup
}

// add registers the two ends of a tunnel and the two copying goroutines; false after closeAll.
func (ts *tunnelSet) add(a, b net.Conn) bool {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	if ts.closed {
		return false
	}
	if ts.conns == nil {
		ts.conns = map[net.Conn]struct{}{}
	}
	ts.conns[a], ts.conns[b] = struct{}{}, struct{}{}
	ts.wg.Add(2)
	return true
}

func (ts *tunnelSet) remove(c net.Conn) {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	delete(ts.conns, c)
}

// closeAll closes every tunnel, refuses new ones and waits for the copying goroutines.
func (ts *tunnelSet) closeAll() {
	ts.mu.Lock()
	ts.closed = true
	for c := range ts.conns {
		_ = c.Close()
	}
	ts.mu.Unlock()
	ts.wg.Wait()
}

// ProxyURL is the emulator's HTTP proxy, "http://127.0.0.1:PORT": set it as HTTPS_PROXY (with SSL_CERT_FILE set to
// CAFile) for clients that call STS at a fixed host, such as Alibaba's secret client with credentials type
// client_key. It tunnels CONNECT requests for sts.aliyuncs.com, sts.ap-northeast-1.aliyuncs.com and the
// emulator's TLS listeners, serves http://100.100.100.200 (ECS metadata) and the plain shared gateway, and
// refuses everything else.
func (s *Server) ProxyURL() string { return "http://" + lnAddr(s.proxyLn) }

// tunnelTarget maps a CONNECT authority to the listener that serves it; "" when the proxy refuses it.
func (s *Server) tunnelTarget(authority string) string {
	host, port, err := net.SplitHostPort(authority)
	if err != nil {
		return ""
	}
	host = strings.ToLower(strings.TrimSuffix(host, "."))
	for _, h := range stsHostNames {
		if host == h && port == "443" {
			return lnAddr(s.stsLn)
		}
	}
	for _, ln := range []net.Listener{s.kmsTLSLn, s.dkmsLn, s.stsLn} {
		a := lnAddr(ln)
		_, lnPort, _ := net.SplitHostPort(a)
		if a == "" || lnPort != port {
			continue
		}
		if ip := net.ParseIP(host); (ip != nil && ip.IsLoopback()) || host == "localhost" {
			return a
		}
	}
	return ""
}

func (s *Server) proxyHandler() http.Handler {
	meta, kms := s.metadataHandler(), s.openAPIHandler()
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodConnect {
			if r.URL.IsAbs() && r.URL.Scheme == "http" {
				switch {
				case r.URL.Hostname() == "100.100.100.200":
					meta.ServeHTTP(w, r) // the metadata handler refuses the admin endpoint in absolute form
					return
				case s.isOwnPlainKMS(r.URL.Host):
					kms.ServeHTTP(w, r)
					return
				}
			}
			noteAction(w, "proxy", "Forbidden")
			http.Error(w, "kmstest proxy: only CONNECT to "+strings.Join(stsHostNames, ", ")+
				" or the emulator, and http://100.100.100.200, are served", http.StatusForbidden)
			return
		}
		target := s.tunnelTarget(r.Host)
		noteAction(w, "proxy:CONNECT "+r.Host, "")
		if target == "" {
			noteAction(w, "", "Forbidden")
			http.Error(w, "kmstest proxy: CONNECT "+r.Host+" is not served; only "+
				strings.Join(stsHostNames, ", ")+" (port 443) and the emulator's TLS listeners", http.StatusForbidden)
			return
		}
		up, err := net.Dial("tcp", target)
		if err != nil {
			http.Error(w, "kmstest proxy: "+err.Error(), http.StatusBadGateway)
			return
		}
		conn, brw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			_ = up.Close()
			return
		}
		if !s.tunnels.add(conn, up) {
			_ = conn.Close()
			_ = up.Close()
			return
		}
		_, _ = brw.WriteString("HTTP/1.1 200 Connection established\r\n\r\n")
		_ = brw.Flush()
		pipe := func(dst net.Conn, src io.Reader, self net.Conn) {
			defer s.tunnels.wg.Done()
			_, _ = io.Copy(dst, src)
			// One direction ended: close both ends, which ends the other direction too.
			_ = dst.Close()
			_ = self.Close()
			s.tunnels.remove(dst)
			s.tunnels.remove(self)
		}
		go pipe(up, brw, conn) // brw holds whatever the client sent after the CONNECT header
		go pipe(conn, up, up)
	})
}

// isOwnPlainKMS tells whether authority names the plain-HTTP shared gateway (by a loopback address or localhost).
func (s *Server) isOwnPlainKMS(authority string) bool {
	host, port, err := net.SplitHostPort(authority)
	if err != nil || s.kmsLn == nil {
		return false
	}
	_, lnPort, _ := net.SplitHostPort(lnAddr(s.kmsLn))
	ip := net.ParseIP(host)
	return port == lnPort && ((ip != nil && ip.IsLoopback()) || host == "localhost")
}
