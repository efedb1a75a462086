package credprov

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aliyun/credentials-go/credentials/providers"
	"go.uber.org/goleak"

	"github.com/kmsdb/kmsdb/internal/credtest"
	"github.com/kmsdb/kmsdb/secretsource/kmstest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

const (
	testAK     = "LTAIcredprovtest"
	testSecret = "credprov-ak-secret-9f2c1"
)

// startEmulator is an emulator knowing testAK, its STS reached over HTTPS
// with its CA, after credtest.Hermetic.
func startEmulator(t *testing.T, opts ...kmstest.Option) *kmstest.Server {
	t.Helper()
	credtest.Hermetic(t)
	return kmstest.Start(t, append([]kmstest.Option{kmstest.WithAccessKey(testAK, testSecret)}, opts...)...)
}

// staticAK is the previous provider of AssumeRole.
func staticAK(t *testing.T, id, secret string) providers.CredentialsProvider {
	t.Helper()
	p, err := providers.NewStaticAKCredentialsProviderBuilder().WithAccessKeyId(id).WithAccessKeySecret(secret).Build()
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// hostile is a loopback server answering every request with handle, and a
// second one (the thief) that must never be reached: it counts its hits.
type hostile struct {
	srv, thief *httptest.Server
	hits       atomic.Int32 // requests the hostile server got
	stolen     atomic.Int32 // requests the thief got
	handle     atomic.Value // func(http.ResponseWriter, *http.Request)
}

// startHostile starts both servers, over TLS when tlsOn (STS is always
// HTTPS); both present httptest's certificate, so a followed redirect would
// succeed.
func startHostile(t *testing.T, tlsOn bool) *hostile {
	t.Helper()
	h := &hostile{}
	start := httptest.NewServer
	if tlsOn {
		start = httptest.NewTLSServer
	}
	steal := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		h.stolen.Add(1)
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"Code":"Success","AccessKeyId":"STS.thief","AccessKeySecret":"x","SecurityToken":"y",`+
			`"Expiration":"2099-01-01T00:00:00Z","Credentials":{"AccessKeyId":"STS.thief","AccessKeySecret":"x",`+
			`"SecurityToken":"y","Expiration":"2099-01-01T00:00:00Z"}}`)
	})
	h.thief = start(steal)
	h.srv = start(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.IsAbs() && r.URL.Host == h.thief.Listener.Addr().String() {
			// A client using this server as its proxy (ecs_ram_role) that
			// followed the redirect: the thief got the request.
			steal(w, r)
			return
		}
		h.hits.Add(1)
		_, _ = io.Copy(io.Discard, r.Body)
		h.handle.Load().(func(http.ResponseWriter, *http.Request))(w, r)
	}))
	t.Cleanup(func() {
		h.srv.Close()
		h.thief.Close()
	})
	return h
}

func (h *hostile) set(f func(http.ResponseWriter, *http.Request)) { h.handle.Store(f) }

// redirect answers every request with status to the thief, with a query
// that must not show in an error.
func (h *hostile) redirect(status int) {
	h.set(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, h.thief.URL+"/steal?stolen-query=leaked-location-query", status)
	})
}

// tlsConfig trusts the hostile servers' certificate.
func (h *hostile) tlsConfig() *tls.Config {
	p := x509.NewCertPool()
	p.AddCert(h.srv.Certificate())
	return &tls.Config{RootCAs: p, MinVersion: tls.VersionTLS12}
}

// host is the hostile server's host:port.
func (h *hostile) host() string {
	return strings.TrimPrefix(strings.TrimPrefix(h.srv.URL, "https://"), "http://")
}

// oversized answers 200 with a JSON body over MaxBody, with or without a
// Content-Length.
func oversized(declared bool) func(http.ResponseWriter, *http.Request) {
	return func(w http.ResponseWriter, _ *http.Request) {
		body := `{"Code":"Success","AccessKeyId":"STS.big","AccessKeySecret":"x","SecurityToken":"` +
			strings.Repeat("A", MaxBody) + `","Expiration":"2099-01-01T00:00:00Z"}`
		if declared {
			w.Header().Set("Content-Length", fmt.Sprint(len(body)))
		} else {
			w.(http.Flusher).Flush() // chunked: no length known in advance
		}
		_, _ = io.WriteString(w, body)
	}
}

// mustNotShow fails when any text reachable from err holds one of secrets.
func mustNotShow(t *testing.T, err error, secrets ...string) {
	t.Helper()
	for e := err; e != nil; e = errors.Unwrap(e) {
		text := e.Error() + fmt.Sprintf(" %+v %#v", e, e)
		for _, s := range secrets {
			if s != "" && strings.Contains(text, s) {
				t.Errorf("the error shows %q: %s", s, text)
			}
		}
	}
}

// writeFile writes content to a new file in a temporary directory.
func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// shift moves a provider's clock by d.
func shift(c *cached, d time.Duration) {
	c.mu.Lock()
	c.now = func() time.Time { return time.Now().Add(d) }
	c.mu.Unlock()
}
