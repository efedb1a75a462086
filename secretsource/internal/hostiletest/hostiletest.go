// Package hostiletest holds the tests both KMS gateways' sources
// (secretsource/kms and secretsource/dkms) run against a hostile or broken
// server: a loopback server that answers whatever a test says (Fake), the
// password it plants in its answers (PW) and the checks that it never shows
// (AssertNoPassword), and the tests whose rules do not depend on the wire
// format (answers refused with a clear kind, oversized and slow bodies,
// redirects).
package hostiletest

import (
	"context"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kmsdb/kmsdb/secretsource"
)

// PW is the password a hostile or broken server puts in its answers. It
// holds a quote and a backslash so that its JSON-escaped forms differ from it;
// each of Parts is searched for on its own.
const PW = `hostile"pw\leak-77` //nolint:gosec // the password a test fake plants, not a credential

// Parts are the halves of PW searched for in errors and logs.
var Parts = []string{"hostile", "leak-77"}

// Value is a secret value (JSON of an Rds secret) holding PW.
var Value = func() string {
	b, _ := json.Marshal(map[string]string{"AccountName": "app", "AccountPassword": PW})
	return string(b)
}()

// AssertNoPassword fails when a part of PW shows in any formatting of err,
// down its Unwrap chain, or in extra (logs).
func AssertNoPassword(t testing.TB, err error, extra ...string) {
	t.Helper()
	texts := extra
	if err != nil {
		for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q"} {
			texts = append(texts, fmt.Sprintf(verb, err))
		}
		for e := err; e != nil; e = errors.Unwrap(e) {
			texts = append(texts, e.Error())
		}
	}
	for _, s := range texts {
		for _, p := range Parts {
			if strings.Contains(s, p) {
				t.Errorf("a part of the password (%q) shows: %s", p, s)
			}
		}
	}
}

// Fake is a loopback HTTP or HTTPS server that answers whatever its handler
// says, and counts requests.
type Fake struct {
	*httptest.Server
	CAFile      string // the PEM file of its certificate, for an HTTPS fake
	Calls       atomic.Int32
	contentType string
	handler     atomic.Pointer[http.HandlerFunc]
}

// Start starts a Fake, over HTTPS when tls is set, whose Answer sends
// contentType. It is closed at the end of the test.
func Start(t testing.TB, tls bool, contentType string) *Fake {
	t.Helper()
	f := &Fake{contentType: contentType}
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.Calls.Add(1)
		_, _ = io.Copy(io.Discard, r.Body)
		if h := f.handler.Load(); h != nil {
			(*h)(w, r)
		}
	})
	if !tls {
		f.Server = httptest.NewServer(h)
		t.Cleanup(f.Close)
		return f
	}
	f.Server = httptest.NewTLSServer(h)
	t.Cleanup(f.Close)
	f.CAFile = filepath.Join(t.TempDir(), "fake-ca.pem")
	if err := os.WriteFile(f.CAFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: f.Certificate().Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	return f
}

// Set makes h answer the next requests.
func (f *Fake) Set(h http.HandlerFunc) { f.handler.Store(&h) }

// Answer makes the next requests answered with status and body.
func (f *Fake) Answer(status int, body string) {
	f.Set(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", f.contentType)
		w.WriteHeader(status)
		_, _ = io.WriteString(w, body)
	})
}

// Source is a source under test, asking its Fake.
type Source struct {
	Get  func(ctx context.Context) (*secretsource.Secret, error) // GetSecret of the secret asked for
	Logs func() string                                           // what it logged; nil for none
	// Never are more values that must not show in its errors (a client key
	// password).
	Never []string
}

// NewSource makes a source for the Fake with the request timeout given.
type NewSource func(t *testing.T, timeout time.Duration) Source

func (s Source) logs() string {
	if s.Logs == nil {
		return ""
	}
	return s.Logs()
}

// Case is a hostile answer and the error it must give.
type Case struct {
	Name   string
	Status int
	Body   string
	Kind   secretsource.Kind
	Code   string
	Says   string // the error names what is wrong
}

// Cases converts a table written with a test's own type, defined as
// `type hostileCase hostiletest.Case` so that its rows need no field names.
func Cases[C ~struct {
	Name   string
	Status int
	Body   string
	Kind   secretsource.Kind
	Code   string
	Says   string // the error names what is wrong
}](cs []C) []Case {
	out := make([]Case, len(cs))
	for i, c := range cs {
		out[i] = Case(c)
	}
	return out
}

// TestAnswers: each answer of cases is an error of its kind and code, for
// the secret asked for, that says what is wrong and never shows PW; an
// invalid answer matches ErrInvalidAnswer and is retryable.
func TestAnswers(t *testing.T, f *Fake, secret string, newSource NewSource, cases []Case) {
	for _, c := range cases {
		t.Run(c.Name, func(t *testing.T) {
			src := newSource(t, 10*time.Second)
			f.Answer(c.Status, c.Body)
			sec, err := src.Get(context.Background())
			if err == nil {
				t.Fatalf("accepted %v", sec)
			}
			var e *secretsource.Error
			if !errors.As(err, &e) || e.Kind != c.Kind || e.Code != c.Code || e.Secret != secret {
				t.Fatalf("got %#v (%v), want kind %v code %q", err, err, c.Kind, c.Code)
			}
			if c.Kind == secretsource.KindInvalidAnswer && (!errors.Is(err, secretsource.ErrInvalidAnswer) || !e.Retryable()) {
				t.Errorf("an invalid answer must match ErrInvalidAnswer and be retryable: %v", err)
			}
			if !strings.Contains(err.Error(), c.Says) {
				t.Errorf("error %q does not say %q", err, c.Says)
			}
			AssertNoPassword(t, err, src.logs())
			for _, s := range src.Never {
				if strings.Contains(fmt.Sprintf("%+v", err), s) {
					t.Errorf("the error shows %q: %v", s, err)
				}
			}
		})
	}
}

// TestOversizedAnswer: a 64 MiB answer (chunk repeated) is refused after
// 1 MiB: the client stops reading (the server cannot send it all) and the
// heap does not grow with it.
func TestOversizedAnswer(t *testing.T, f *Fake, newSource NewSource, chunk string) {
	const size = 64 << 20
	var written atomic.Int64
	f.Set(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Length", fmt.Sprint(size))
		w.WriteHeader(200)
		for written.Load() < size {
			n, err := io.WriteString(w, chunk)
			written.Add(int64(n))
			if err != nil {
				return
			}
		}
	})
	src := newSource(t, 30*time.Second)
	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	_, err := src.Get(context.Background())
	runtime.ReadMemStats(&after)
	if !errors.Is(err, secretsource.ErrInvalidAnswer) || !strings.Contains(err.Error(), "larger than 1048576 bytes") {
		t.Fatalf("got %v", err)
	}
	f.CloseClientConnections() // the handler returns once its writes fail
	f.Close()
	if n := written.Load(); n >= size {
		t.Errorf("the whole %d-byte answer was read", n)
	}
	// A generous bound: reading the whole answer cost 349 MiB before.
	t.Logf("server wrote %d of %d bytes before the client hung up; the fetch allocated %.1f MiB",
		written.Load(), size, float64(after.TotalAlloc-before.TotalAlloc)/(1<<20))
	if grew := after.TotalAlloc - before.TotalAlloc; grew > 32<<20 {
		t.Errorf("the fetch allocated %d MiB", grew>>20)
	}
	AssertNoPassword(t, err, src.logs())
}

// TestSlowBodyCutAtTimeout: the source's timeout covers the body, not only
// the headers. filler is a byte the body may repeat without ending.
func TestSlowBodyCutAtTimeout(t *testing.T, f *Fake, newSource NewSource, filler string) {
	stop := make(chan struct{})
	f.Set(func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(200)
		for {
			if _, err := io.WriteString(w, filler); err != nil {
				return
			}
			w.(http.Flusher).Flush()
			select {
			case <-stop:
				return
			case <-time.After(20 * time.Millisecond):
			}
		}
	})
	defer close(stop)
	src := newSource(t, 300*time.Millisecond)
	_, err := src.Get(context.Background())
	if secretsource.KindOf(err) != secretsource.KindTimeout {
		t.Fatalf("want a timeout, got %v", err)
	}
}

// TestRedirectsNotFollowed: a 301, 302, 303, 307 or 308 to another loopback
// listener (thief, which answers thiefAnswer) is an error that says so and
// never names what must stay secret (never), and the signed request never
// reaches thief.
func TestRedirectsNotFollowed(t *testing.T, f *Fake, thief *Fake, thiefAnswer string, newSource NewSource, never ...string) {
	thief.Answer(200, thiefAnswer)
	for _, status := range []int{http.StatusMovedPermanently, http.StatusFound, http.StatusSeeOther,
		http.StatusTemporaryRedirect, http.StatusPermanentRedirect} {
		t.Run(fmt.Sprint(status), func(t *testing.T) {
			src := newSource(t, 10*time.Second)
			f.Set(func(w http.ResponseWriter, r *http.Request) {
				http.Redirect(w, r, thief.URL+r.URL.RequestURI(), status) //nolint:gosec // a test fake redirecting to its loopback thief on purpose
			})
			_, err := src.Get(context.Background())
			if !errors.Is(err, secretsource.ErrInvalidAnswer) || !strings.Contains(err.Error(), "redirect") {
				t.Fatalf("got %v", err)
			}
			for _, s := range never {
				if strings.Contains(err.Error(), s) {
					t.Errorf("the error shows the signed request (%q): %v", s, err)
				}
			}
		})
	}
	if n := thief.Calls.Load(); n != 0 {
		t.Errorf("the redirect target got %d requests", n)
	}
}
