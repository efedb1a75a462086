package kms_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kmsdb/kmsdb/internal/credtest"
	"github.com/kmsdb/kmsdb/internal/syncbuf"
	"github.com/kmsdb/kmsdb/secretsource"
	"github.com/kmsdb/kmsdb/secretsource/kms"
)

// hostilePW is the password a hostile or broken gateway puts in its answers.
// It holds a quote and a backslash so that its JSON-escaped forms differ from
// it; each half is searched for on its own.
const hostilePW = `hostile"pw\leak-77`

var hostileParts = []string{"hostile", "leak-77"}

// hostileValue is the secret value (JSON of an Rds secret) holding hostilePW.
var hostileValue = func() string {
	b, _ := json.Marshal(map[string]string{"AccountName": "app", "AccountPassword": hostilePW})
	return string(b)
}()

// answer is a well-formed GetSecretValue answer of the shared gateway.
func answer(name, version string, stages []string, data string) map[string]any {
	return map[string]any{"RequestId": "REQ-1", "SecretName": name, "VersionId": version, "SecretType": "Rds",
		"SecretDataType": "text", "SecretData": data, "CreateTime": "2026-01-02T03:04:05Z",
		"VersionStages": map[string]any{"VersionStage": stages}}
}

func marshal(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return string(b)
}

// fakeKMS is a loopback HTTP server that answers whatever its handler says,
// and counts requests.
type fakeKMS struct {
	*httptest.Server
	handler atomic.Pointer[http.HandlerFunc]
	calls   atomic.Int32
}

func startFake(t *testing.T) *fakeKMS {
	t.Helper()
	f := &fakeKMS{}
	f.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.calls.Add(1)
		_, _ = io.Copy(io.Discard, r.Body)
		if h := f.handler.Load(); h != nil {
			(*h)(w, r)
		}
	}))
	t.Cleanup(f.Close)
	return f
}

func (f *fakeKMS) answer(status int, body string) {
	f.set(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_, _ = io.WriteString(w, body)
	})
}

func (f *fakeKMS) set(h http.HandlerFunc) { f.handler.Store(&h) }

func (f *fakeKMS) region() kms.Region {
	return kms.Region{ID: region, Endpoint: strings.TrimPrefix(f.URL, "http://")}
}

func hostileSource(t *testing.T, f *fakeKMS, timeout time.Duration) (*kms.Source, *syncbuf.Buffer) {
	t.Helper()
	return newSource(t, kms.Config{Region: f.region(), Credential: accessKey(t), Scheme: "http", Timeout: timeout})
}

// assertNoPassword fails when a part of hostilePW shows in any formatting of
// err or in the logs.
func assertNoPassword(t *testing.T, err error, logs string) {
	t.Helper()
	texts := []string{logs}
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q"} {
		texts = append(texts, fmt.Sprintf(verb, err))
	}
	for e := err; e != nil; e = errors.Unwrap(e) {
		texts = append(texts, e.Error())
	}
	for _, s := range texts {
		for _, p := range hostileParts {
			if strings.Contains(s, p) {
				t.Errorf("a part of the password (%q) shows: %s", p, s)
			}
		}
	}
}

// TestHostileAnswers: junk from the gateway is an error of a clear kind that
// never shows the secret, whatever the body holds.
func TestHostileAnswers(t *testing.T) {
	credtest.Hermetic(t)
	f := startFake(t)
	cur := []string{secretsource.StageCurrent}
	long := strings.Repeat("x", 4000) + hostilePW + strings.Repeat("y", 4000)
	cases := []struct {
		name   string
		status int
		body   string
		kind   secretsource.Kind
		code   string
		says   string // the error names what is wrong
	}{
		{"200 empty body", 200, "", secretsource.KindInvalidAnswer, "", "empty body"},
		{"200 {}", 200, "{}", secretsource.KindInvalidAnswer, "", "names no secret"},
		{"200 error document", 200, `{"Code":"Throttling","Message":"slow down"}`, secretsource.KindInvalidAnswer, "Throttling", "error code"},
		{"200 truncated JSON", 200, marshal(answer(secretName, "v1", cur, hostileValue))[:150], secretsource.KindInvalidAnswer, "", "truncated"},
		{"200 malformed JSON", 200, `{"SecretName":"db/app","SecretData":"` + strings.ReplaceAll(hostilePW, `"`, `\"`) + `" x}`,
			secretsource.KindInvalidAnswer, "", "malformed JSON at byte offset"},
		{"200 VersionStage as a string", 200, strings.Replace(marshal(answer(secretName, "v1", cur, hostileValue)),
			`{"VersionStage":["ACSCurrent"]}`, `{"VersionStage":"ACSCurrent"}`, 1), secretsource.KindInvalidAnswer, "", "VersionStages.VersionStage"},
		{"200 another secret", 200, marshal(answer("other/secret", "v1", cur, hostileValue)), secretsource.KindInvalidAnswer, "", "another secret"},
		{"200 no version id", 200, marshal(answer(secretName, "", cur, hostileValue)), secretsource.KindInvalidAnswer, "", "no version id"},
		{"200 no value", 200, marshal(answer(secretName, "v1", cur, "")), secretsource.KindInvalidAnswer, "", "no secret data"},
		{"200 not the stage asked for", 200, marshal(answer(secretName, "v1", []string{secretsource.StagePrevious}, hostileValue)),
			secretsource.KindInvalidAnswer, "", "ACSCurrent"},
		{"200 no stages", 200, marshal(answer(secretName, "v1", nil, hostileValue)), secretsource.KindInvalidAnswer, "", "ACSCurrent"},
		{"500 long text body", 500, long, secretsource.KindInternal, "", "not shown"},
		{"503 long JSON body without a code", 503, marshal(answer(secretName, "v1", cur, long)), secretsource.KindUnavailable, "", "temporarily unavailable"},
		{"400 error document quoting the value", 400, marshal(map[string]string{"Code": "InvalidParameter",
			"Message": "bad request: " + hostileValue, "RequestId": "REQ-2"}), secretsource.KindConfig, "InvalidParameter", "bad request"},
		{"400 error document of the wrong types", 400, `{"Code":5,"Message":[` + marshal(hostilePW) + `],"RequestId":{}}`,
			secretsource.KindInvalidAnswer, "", "HTTP 400"},
		{"400 body that is not JSON", 400, `{"Code":5,"Message":["` + hostilePW + `"]}`, secretsource.KindInvalidAnswer, "", "not shown"},
		{"403 code with a body", 403, `{"Code":"` + strings.Repeat("A", 300) + `"}`, secretsource.KindAccessDenied, "", ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			src, logs := hostileSource(t, f, 10*time.Second)
			f.answer(c.status, c.body)
			sec, err := src.GetSecret(context.Background(), secretName)
			if err == nil {
				t.Fatalf("accepted %v", sec)
			}
			var e *secretsource.Error
			if !errors.As(err, &e) || e.Kind != c.kind || e.Code != c.code || e.Secret != secretName {
				t.Fatalf("got %#v (%v), want kind %v code %q", err, err, c.kind, c.code)
			}
			if c.kind == secretsource.KindInvalidAnswer && (!errors.Is(err, secretsource.ErrInvalidAnswer) || !e.Retryable()) {
				t.Errorf("an invalid answer must match ErrInvalidAnswer and be retryable: %v", err)
			}
			if !strings.Contains(err.Error(), c.says) {
				t.Errorf("error %q does not say %q", err, c.says)
			}
			assertNoPassword(t, err, logs.String())
		})
	}
}

// TestAnswerForTheVersionAskedFor: a version asked for by stage or id must be
// the one answered.
func TestAnswerForTheVersionAskedFor(t *testing.T) {
	credtest.Hermetic(t)
	f := startFake(t)
	src, _ := hostileSource(t, f, 10*time.Second)
	f.answer(200, marshal(answer(secretName, "v2", []string{secretsource.StageCurrent}, hostileValue)))
	if _, err := src.GetSecretVersion(context.Background(), secretName, secretsource.VersionRef{Stage: secretsource.StagePrevious}); !errors.Is(err, secretsource.ErrInvalidAnswer) {
		t.Errorf("ACSPrevious answered by ACSCurrent: got %v, want an invalid answer", err)
	}
	// KMS itself answers ACSCurrent for a version id alone of a managed secret.
	if _, err := src.GetSecretVersion(context.Background(), secretName, secretsource.VersionRef{VersionID: "v1"}); !errors.Is(err, secretsource.ErrNotFound) {
		t.Errorf("v1 answered by v2: got %v, want not found", err)
	}
	if _, err := src.GetSecretVersion(context.Background(), secretName, secretsource.VersionRef{VersionID: "v2"}); err != nil {
		t.Errorf("the version asked for by id: %v", err)
	}
}

// TestOversizedAnswer: a 64 MiB answer is refused after 1 MiB: the client
// stops reading (the server cannot send it all) and the heap does not grow
// with it.
func TestOversizedAnswer(t *testing.T) {
	credtest.Hermetic(t)
	f := startFake(t)
	const size = 64 << 20
	var written atomic.Int64
	f.set(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Length", fmt.Sprint(size))
		w.WriteHeader(200)
		chunk := []byte(`{"SecretName":"db/app","SecretData":"` + strings.Repeat("A", 32<<10))
		for written.Load() < size {
			n, err := w.Write(chunk)
			written.Add(int64(n))
			if err != nil {
				return
			}
		}
	})
	src, logs := hostileSource(t, f, 30*time.Second)
	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	_, err := src.GetSecret(context.Background(), secretName)
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
	assertNoPassword(t, err, logs.String())
}

// TestSlowBodyCutAtTimeout: the source's timeout covers the body, not only
// the headers.
func TestSlowBodyCutAtTimeout(t *testing.T) {
	credtest.Hermetic(t)
	f := startFake(t)
	stop := make(chan struct{})
	f.set(func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(200)
		for {
			if _, err := io.WriteString(w, " "); err != nil {
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
	src, _ := hostileSource(t, f, 300*time.Millisecond)
	_, err := src.GetSecret(context.Background(), secretName)
	if secretsource.KindOf(err) != secretsource.KindTimeout {
		t.Fatalf("want a timeout, got %v", err)
	}
}

// TestRedirectsNotFollowed: a 302 or 307 to another loopback listener is an
// error, and the signed request never reaches that listener.
func TestRedirectsNotFollowed(t *testing.T) {
	credtest.Hermetic(t)
	var stolen atomic.Int32
	thief := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		stolen.Add(1)
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, marshal(answer(secretName, "v9", []string{secretsource.StageCurrent}, "thief-value")))
	}))
	defer thief.Close()
	f := startFake(t)
	for _, status := range []int{http.StatusMovedPermanently, http.StatusFound, http.StatusSeeOther,
		http.StatusTemporaryRedirect, http.StatusPermanentRedirect} {
		t.Run(fmt.Sprint(status), func(t *testing.T) {
			src, _ := hostileSource(t, f, 10*time.Second)
			f.set(func(w http.ResponseWriter, r *http.Request) {
				http.Redirect(w, r, thief.URL+r.URL.RequestURI(), status)
			})
			_, err := src.GetSecret(context.Background(), secretName)
			if !errors.Is(err, secretsource.ErrInvalidAnswer) || !strings.Contains(err.Error(), "redirect") {
				t.Fatalf("got %v", err)
			}
			if strings.Contains(err.Error(), "AccessKeyId") || strings.Contains(err.Error(), testAK) {
				t.Errorf("the error shows the signed request: %v", err)
			}
		})
	}
	if n := stolen.Load(); n != 0 {
		t.Errorf("the redirect target got %d requests", n)
	}
}

// TestHostileMetadataService: an ECS metadata answer without "Code" (which
// made credentials-go's provider dereference nil) is an unusable answer of
// the fetch, not a crash, and the next fetch does not hang on the
// credential's lock.
func TestHostileMetadataService(t *testing.T) {
	credtest.Hermetic(t)
	t.Setenv("ALIBABA_CLOUD_ECS_METADATA_DISABLED", "false")
	metadata := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// Reached as an HTTP proxy: r.URL is http://100.100.100.200/...
		switch {
		case r.Method == http.MethodPut && r.URL.Path == "/latest/api/token":
			_, _ = io.WriteString(w, "metadata-token")
		case strings.HasPrefix(r.URL.Path, "/latest/meta-data/ram/security-credentials/"):
			_, _ = io.WriteString(w, `{"AccessKeyId":"STS.x","AccessKeySecret":"`+hostilePW[:7]+`","SecurityToken":"t","Expiration":"2099-01-01T00:00:00Z"}`)
		default:
			http.NotFound(w, r)
		}
	}))
	defer metadata.Close()
	cred, err := kms.NewCredential(kms.CredentialOptions{Type: kms.CredentialECSRAMRole, RoleName: "role", Proxy: metadata.URL})
	if err != nil {
		t.Fatal(err)
	}
	f := startFake(t)
	src, logs := newSource(t, kms.Config{Region: f.region(), Credential: cred, Scheme: "http", Timeout: 10 * time.Second})
	for range 2 {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		_, err := src.GetSecret(ctx, secretName)
		cancel()
		if secretsource.KindOf(err) != secretsource.KindInvalidAnswer || !strings.Contains(err.Error(), "Code is not Success") {
			t.Fatalf("got %v, want the metadata answer refused", err)
		}
		assertNoPassword(t, err, logs.String())
	}
	if n := f.calls.Load(); n != 0 {
		t.Errorf("KMS got %d requests without credentials", n)
	}
}
