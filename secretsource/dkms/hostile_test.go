package dkms_test

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

	"github.com/aliyun/alibabacloud-dkms-gcs-go-sdk/openapi-util/protobuf/api"
	"google.golang.org/protobuf/proto"

	"github.com/kmsdb/kmsdb/secretsource"
	"github.com/kmsdb/kmsdb/secretsource/dkms"
)

// hostilePW is the password a hostile or broken instance puts in its answers;
// its halves are searched for on their own (its JSON forms differ from it).
const hostilePW = `hostile"pw\leak-77`

var hostileParts = []string{"hostile", "leak-77"}

var hostileValue = func() string {
	b, _ := json.Marshal(map[string]string{"AccountName": "app", "AccountPassword": hostilePW})
	return string(b)
}()

func pb(m proto.Message) string {
	b, err := proto.Marshal(m)
	if err != nil {
		panic(err)
	}
	return string(b)
}

func answer(name, version string, stages []string, data string) *api.GetSecretValueResponse {
	return &api.GetSecretValueResponse{SecretName: name, VersionId: version, VersionStages: stages, SecretData: data,
		SecretType: "Rds", SecretDataType: "text", RequestId: "REQ-1", CreateTime: "2026-01-02T03:04:05Z"}
}

// fakeInstance is a loopback HTTPS server answering whatever its handler says.
type fakeInstance struct {
	*httptest.Server
	handler atomic.Pointer[http.HandlerFunc]
	caFile  string
	key     instance // an emulator only to mint the client key the sources sign with
}

func startFakeInstance(t *testing.T) *fakeInstance {
	t.Helper()
	f := &fakeInstance{}
	f.Server = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		if h := f.handler.Load(); h != nil {
			(*h)(w, r)
		}
	}))
	t.Cleanup(f.Close)
	f.caFile = filepath.Join(t.TempDir(), "fake-ca.pem")
	pemCert := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: f.Certificate().Raw})
	if err := os.WriteFile(f.caFile, pemCert, 0o600); err != nil {
		t.Fatal(err)
	}
	f.key = startInstance(t)
	return f
}

func (f *fakeInstance) set(h http.HandlerFunc) { f.handler.Store(&h) }

func (f *fakeInstance) answer(status int, body string) {
	f.set(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/x-protobuf")
		w.WriteHeader(status)
		_, _ = io.WriteString(w, body)
	})
}

// source is a dkms.Source for f, signing with a client key minted by an
// emulator (the fake does not check signatures).
func (f *fakeInstance) source(t *testing.T, timeout time.Duration) (*dkms.Source, string) {
	t.Helper()
	in := f.key
	src, logs := newSource(t, dkms.Config{Timeout: timeout, Endpoint: dkms.Endpoint{RegionID: "cn-hangzhou",
		Endpoint: strings.TrimPrefix(f.URL, "https://"), ClientKeyFile: in.key.File, Password: in.key.Password, CAFile: f.caFile}})
	t.Cleanup(func() { assertNoPassword(t, nil, logs.String()) })
	return src, in.key.Password
}

func assertNoPassword(t *testing.T, err error, extra ...string) {
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
		for _, p := range hostileParts {
			if strings.Contains(s, p) {
				t.Errorf("a part of the password (%q) shows: %s", p, s)
			}
		}
	}
}

// TestHostileAnswers: junk from the instance is an error of a clear kind that
// never shows the secret.
func TestHostileAnswers(t *testing.T) {
	f := startFakeInstance(t)
	cur := []string{secretsource.StageCurrent}
	long := strings.Repeat("x", 4000) + hostilePW + strings.Repeat("y", 4000)
	good := pb(answer(secretName, "v1", cur, hostileValue))
	cases := []struct {
		name   string
		status int
		body   string
		kind   secretsource.Kind
		code   string
		says   string
	}{
		{"200 empty body", 200, "", secretsource.KindInvalidAnswer, "", "names no secret"},
		{"200 truncated", 200, good[:len(good)-40], secretsource.KindInvalidAnswer, "", "not shown"},
		{"200 text", 200, long, secretsource.KindInvalidAnswer, "", ""},
		{"200 another secret", 200, pb(answer("other/secret", "v1", cur, hostileValue)), secretsource.KindInvalidAnswer, "", "another secret"},
		{"200 no version id", 200, pb(answer(secretName, "", cur, hostileValue)), secretsource.KindInvalidAnswer, "", "no version id"},
		{"200 no value", 200, pb(answer(secretName, "v1", cur, "")), secretsource.KindInvalidAnswer, "", "no secret data"},
		{"200 not the stage asked for", 200, pb(answer(secretName, "v1", []string{secretsource.StagePrevious}, hostileValue)),
			secretsource.KindInvalidAnswer, "", "ACSCurrent"},
		{"500 long text body", 500, long, secretsource.KindInternal, "", ""},
		{"503 answer body", 503, good, secretsource.KindUnavailable, "", ""},
		{"400 error quoting the value", 400, pb(&api.Error{StatusCode: 400, ErrorCode: "InvalidParam",
			ErrorMessage: "bad: " + hostileValue, RequestId: "REQ-2"}), secretsource.KindConfig, "InvalidParam", "bad"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			src, keyPassword := f.source(t, 10*time.Second)
			f.answer(c.status, c.body)
			sec, err := src.GetSecret(context.Background(), secretName)
			if err == nil {
				t.Fatalf("accepted %v", sec)
			}
			var e *secretsource.Error
			if !errors.As(err, &e) || e.Kind != c.kind || e.Code != c.code || e.Secret != secretName {
				t.Fatalf("got %v, want kind %v code %q", err, c.kind, c.code)
			}
			if !strings.Contains(err.Error(), c.says) {
				t.Errorf("error %q does not say %q", err, c.says)
			}
			assertNoPassword(t, err)
			assertNoLeak(t, []string{keyPassword}, err.Error())
		})
	}
}

// TestOversizedAnswer: a 64 MiB answer is refused after 1 MiB.
func TestOversizedAnswer(t *testing.T) {
	f := startFakeInstance(t)
	const size = 64 << 20
	var written atomic.Int64
	f.set(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Length", fmt.Sprint(size))
		w.WriteHeader(200)
		chunk := []byte(strings.Repeat("A", 32<<10))
		for written.Load() < size {
			n, err := w.Write(chunk)
			written.Add(int64(n))
			if err != nil {
				return
			}
		}
	})
	src, _ := f.source(t, 30*time.Second)
	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	_, err := src.GetSecret(context.Background(), secretName)
	runtime.ReadMemStats(&after)
	if !errors.Is(err, secretsource.ErrInvalidAnswer) || !strings.Contains(err.Error(), "larger than 1048576 bytes") {
		t.Fatalf("got %v", err)
	}
	f.CloseClientConnections()
	f.Close()
	if n := written.Load(); n >= size {
		t.Errorf("the whole %d-byte answer was read", n)
	}
	t.Logf("server wrote %d of %d bytes before the client hung up; the fetch allocated %.1f MiB",
		written.Load(), size, float64(after.TotalAlloc-before.TotalAlloc)/(1<<20))
	if grew := after.TotalAlloc - before.TotalAlloc; grew > 32<<20 {
		t.Errorf("the fetch allocated %d MiB", grew>>20)
	}
}

// TestSlowBodyCutAtTimeout: the timeout covers the body too.
func TestSlowBodyCutAtTimeout(t *testing.T) {
	f := startFakeInstance(t)
	stop := make(chan struct{})
	f.set(func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(200)
		for {
			if _, err := io.WriteString(w, "\x0a"); err != nil {
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
	src, _ := f.source(t, 300*time.Millisecond)
	_, err := src.GetSecret(context.Background(), secretName)
	if secretsource.KindOf(err) != secretsource.KindTimeout {
		t.Fatalf("want a timeout, got %v", err)
	}
}

// TestRedirectsNotFollowed: the signed request never reaches the target of a
// redirect.
func TestRedirectsNotFollowed(t *testing.T) {
	var stolen atomic.Int32
	thief := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		stolen.Add(1)
		_, _ = io.WriteString(w, pb(answer(secretName, "v9", []string{secretsource.StageCurrent}, "thief-value")))
	}))
	defer thief.Close()
	f := startFakeInstance(t)
	for _, status := range []int{http.StatusMovedPermanently, http.StatusFound, http.StatusSeeOther,
		http.StatusTemporaryRedirect, http.StatusPermanentRedirect} {
		t.Run(fmt.Sprint(status), func(t *testing.T) {
			src, _ := f.source(t, 10*time.Second)
			f.set(func(w http.ResponseWriter, r *http.Request) { http.Redirect(w, r, thief.URL+"/", status) })
			_, err := src.GetSecret(context.Background(), secretName)
			if !errors.Is(err, secretsource.ErrInvalidAnswer) || !strings.Contains(err.Error(), "redirect") {
				t.Fatalf("got %v", err)
			}
		})
	}
	if n := stolen.Load(); n != 0 {
		t.Errorf("the redirect target got %d requests", n)
	}
}

// TestEachSourceItsOwnCA: two sources for the same endpoint with different CA
// files each verify with their own, whichever goes first. (The Tea runtime
// kept one client per host for the process: the second source used the
// first one's CA.)
func TestEachSourceItsOwnCA(t *testing.T) {
	in := startInstance(t)
	wrongCA := startFakeInstance(t).caFile
	for _, order := range []string{"right first", "wrong first"} {
		t.Run(order, func(t *testing.T) {
			right := in.endpoint()
			wrong := in.endpoint()
			wrong.CAFile = wrongCA
			rightSrc, _ := newSource(t, dkms.Config{Endpoint: right})
			wrongSrc, _ := newSource(t, dkms.Config{Endpoint: wrong})
			try := func(src *dkms.Source, wantOK bool) {
				t.Helper()
				_, err := src.GetSecret(context.Background(), secretName)
				switch {
				case wantOK && err != nil:
					t.Errorf("the source with the instance's CA failed: %v", err)
				case !wantOK && (err == nil || !strings.Contains(err.Error(), "TLS")):
					t.Errorf("the source with another CA got %v, want a TLS verification error", err)
				}
			}
			if order == "right first" {
				try(rightSrc, true)
				try(wrongSrc, false)
			} else {
				try(wrongSrc, false)
				try(rightSrc, true)
			}
			// And again, now that both have connected.
			try(rightSrc, true)
			try(wrongSrc, false)
		})
	}
}
