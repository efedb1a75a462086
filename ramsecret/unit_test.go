package ramsecret

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	openapi "github.com/alibabacloud-go/darabonba-openapi/v2/client"
	"github.com/alibabacloud-go/tea/dara"
	"github.com/alibabacloud-go/tea/tea"
	sdkerrors "github.com/aliyun/alibaba-cloud-sdk-go/sdk/errors"

	"github.com/kmsdb/kmsdb/secretsource"
)

// memCache is a stand-in for *cache.Cache in the pure unit tests: it serves
// a version chosen by the test and counts refreshes. The emulator tests use
// the real cache.
type memCache struct {
	mu        sync.Mutex
	current   *secretsource.Secret // what GetSecret returns
	latest    *secretsource.Secret // what Refresh finds in "KMS"
	refreshes atomic.Int64
	gate      chan struct{} // when set, Refresh waits for it
}

func (m *memCache) GetSecret(ctx context.Context, name string) (*secretsource.Secret, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.current == nil {
		return nil, &secretsource.Error{Kind: secretsource.KindNotFound, Secret: name}
	}
	return m.current, nil
}

func (m *memCache) Invalidate(name, rejectedVersion string) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.current != nil && m.current.VersionID() == rejectedVersion
}

func (m *memCache) Refresh(ctx context.Context, name string) (*secretsource.Secret, error) {
	m.refreshes.Add(1)
	if m.gate != nil {
		<-m.gate
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.current = m.latest
	return m.current, nil
}

func (m *memCache) rotate(s *secretsource.Secret) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.latest = s
}

func ramSecret(version, id, secret string) *secretsource.Secret {
	return secretsource.NewSecret(secretsource.Fields{
		Name: "acs/ram/user/unit", VersionID: version, SecretType: secretsource.TypeRAM, DataType: secretsource.DataText,
		Value: fmt.Appendf(nil, `{"AccessKeyId":%q,"AccessKeySecret":%q,"GenerateTimestamp":"2024-01-02T03:04:05Z"}`, id, secret),
	})
}

// Shapes of the OSS v1 and SLS error types (not dependencies of this module):
// their code is an exported field with no method.
type ossV1ServiceError struct {
	Code, Message, RequestID string
	StatusCode               int
}

func (e ossV1ServiceError) Error() string { return "oss: service returned error: " + e.Code }

type slsError struct {
	HTTPCode  int32
	Code      string
	Message   string
	RequestID string
}

func (e slsError) Error() string { return e.Code }

type ossV2ServiceError struct{ Code string }

func (e *ossV2ServiceError) Error() string     { return "Error returned by Service" }
func (e *ossV2ServiceError) errorCode() string { return e.Code }

func TestErrorCodeAndIsRejectedKey(t *testing.T) {
	coreErr := func(code string) error {
		return sdkerrors.NewServerError(404, fmt.Sprintf(`{"RequestId":"r","HostId":"h","Code":%q,"Message":"m"}`, code), "")
	}
	cases := []struct {
		name     string
		err      error
		code     string
		rejected bool
	}{
		{"core NotFound", coreErr("InvalidAccessKeyId.NotFound"), "InvalidAccessKeyId.NotFound", true},
		{"core Inactive", coreErr("InvalidAccessKeyId.Inactive"), "InvalidAccessKeyId.Inactive", true},
		{"core wrapped", fmt.Errorf("listing: %w", coreErr("InvalidAccessKeyId.NotFound")), "InvalidAccessKeyId.NotFound", true},
		{"core signature", coreErr("SignatureDoesNotMatch"), "SignatureDoesNotMatch", false},
		{"core throttling", coreErr("Rejected.Throttling"), "Rejected.Throttling", false},
		{"core client error", sdkerrors.NewClientError("SDK.TimeoutError", "timeout", nil), "SDK.TimeoutError", false},
		{"tea SDKError", tea.NewSDKError(map[string]any{"code": "InvalidAccessKeyId.NotFound", "statusCode": 404}), "InvalidAccessKeyId.NotFound", true},
		{"tea SDKError other", tea.NewSDKError(map[string]any{"code": "Forbidden.ResourceNotFound"}), "Forbidden.ResourceNotFound", false},
		{"dara SDKError", dara.NewSDKError(map[string]any{"code": "InvalidAccessKeyId.Inactive"}), "InvalidAccessKeyId.Inactive", true},
		{"openapi ClientError", &openapi.ClientError{Code: tea.String("InvalidAccessKeyId.NotFound")}, "InvalidAccessKeyId.NotFound", true},
		{"oss v1", ossV1ServiceError{Code: "InvalidAccessKeyId", StatusCode: 403}, "InvalidAccessKeyId", true},
		{"oss v1 pointer", &ossV1ServiceError{Code: "NoSuchBucket"}, "NoSuchBucket", false},
		{"oss v2", fmt.Errorf("operation error GetObject: %w", &ossV2ServiceError{Code: "InvalidAccessKeyId"}), "InvalidAccessKeyId", true},
		{"sls", &slsError{HTTPCode: 401, Code: "Unauthorized"}, "Unauthorized", true},
		{"joined", errors.Join(errors.New("x"), coreErr("InvalidAccessKeyId.NotFound")), "InvalidAccessKeyId.NotFound", true},
		{"plain", errors.New("InvalidAccessKeyId.NotFound"), "", false},
		{"nil", nil, "", false},
		{"context", context.Canceled, "", false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			code, ok := errorCode(c.err)
			if code != c.code || ok != (c.code != "") {
				t.Errorf("errorCode = %q, %v; want %q", code, ok, c.code)
			}
			if got := IsRejectedKey(c.err); got != c.rejected {
				t.Errorf("IsRejectedKey = %v, want %v", got, c.rejected)
			}
		})
	}
}

func TestProviderOptionsClassify(t *testing.T) {
	c := &memCache{current: ramSecret("v1", "AKID1", "unit-secret-1")}
	type otsError struct{ error }
	p, err := New(c, "acs/ram/user/unit",
		WithRejectedKeyCodes("OTSAuthFailed"),
		WithRejectedKeyFunc(func(err error) bool { var o otsError; return errors.As(err, &o) }))
	if err != nil {
		t.Fatal(err)
	}
	if !p.IsRejectedKey(&slsError{Code: "OTSAuthFailed"}) {
		t.Error("added code not classified")
	}
	if !p.IsRejectedKey(fmt.Errorf("w: %w", otsError{errors.New("x")})) {
		t.Error("classifier not consulted")
	}
	if p.IsRejectedKey(errors.New("x")) {
		t.Error("plain error classified as rejected")
	}
	for _, bad := range []Option{WithTimeout(0), WithProviderName(""), WithRejectedKeyCodes(""), WithRejectedKeyFunc(nil)} {
		if _, err := New(c, "n", bad); err == nil {
			t.Error("bad option accepted")
		}
	}
	if _, err := New(nil, "n"); err == nil {
		t.Error("nil cache accepted")
	}
	if _, err := New(c, ""); err == nil {
		t.Error("empty name accepted")
	}
}

func TestProviderAdapters(t *testing.T) {
	c := &memCache{current: ramSecret("v1", "AKID1", "unit-secret-1")}
	p, err := New(c, "acs/ram/user/unit")
	if err != nil {
		t.Fatal(err)
	}
	m, err := p.GetCredential()
	if err != nil {
		t.Fatal(err)
	}
	if tea.StringValue(m.AccessKeyId) != "AKID1" || tea.StringValue(m.AccessKeySecret) != "unit-secret-1" ||
		tea.StringValue(m.Type) != "access_key" || tea.StringValue(m.ProviderName) != DefaultProviderName {
		t.Errorf("GetCredential: unexpected model (id %q)", tea.StringValue(m.AccessKeyId))
	}
	m2, _ := p.GetCredential()
	if m2 == m || m2.AccessKeyId == m.AccessKeyId {
		t.Error("GetCredential must return a fresh model each call")
	}
	cc, err := p.GetCredentials()
	if err != nil || cc.AccessKeyId != "AKID1" || cc.AccessKeySecret != "unit-secret-1" || cc.SecurityToken != "" {
		t.Errorf("GetCredentials: %v", err)
	}
	if p.GetProviderName() != DefaultProviderName || tea.StringValue(p.GetType()) != "access_key" ||
		tea.StringValue(p.GetBearerToken()) != "" {
		t.Error("names")
	}
	if r, err := p.Resolve(); err != nil || r != p {
		t.Error("Resolve must return the provider")
	}
	id, _ := p.GetAccessKeyId()
	sec, _ := p.GetAccessKeySecret()
	tok, _ := p.GetSecurityToken()
	if *id != "AKID1" || *sec != "unit-secret-1" || *tok != "" {
		t.Error("deprecated getters")
	}

	// A missing secret surfaces with its name, through every adapter.
	empty, _ := New(&memCache{}, "acs/ram/user/missing")
	if _, err := empty.GetCredential(); err == nil || !errors.Is(err, secretsource.ErrNotFound) {
		t.Errorf("GetCredential on a missing secret: %v", err)
	}
	if _, err := empty.GetCredentials(); err == nil {
		t.Error("GetCredentials on a missing secret: no error")
	}
}

func TestAccessKeyWarmDoesNotAllocate(t *testing.T) {
	c := &memCache{current: ramSecret("v1", "AKID1", "unit-secret-1")}
	p, _ := New(c, "acs/ram/user/unit")
	ctx := context.Background()
	if _, err := p.AccessKey(ctx); err != nil {
		t.Fatal(err)
	}
	// memCache locks but does not allocate; the decode is memoised per *Secret.
	if n := testing.AllocsPerRun(100, func() { _, _ = p.AccessKey(ctx) }); n != 0 {
		t.Errorf("AccessKey on a warm cache allocates %.0f times", n)
	}
}

// No torn reads: while versions swap underneath, every key handed out is one
// of the pairs, whole.
func TestNoTornKeys(t *testing.T) {
	c := &memCache{current: ramSecret("v0", "AKID0", "s0")}
	p, _ := New(c, "acs/ram/user/unit")
	ctx := context.Background()
	var stop atomic.Bool
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !stop.Load() {
				k, err := p.AccessKey(ctx)
				if err != nil {
					t.Error(err)
					return
				}
				m, err := p.GetCredential()
				if err != nil {
					t.Error(err)
					return
				}
				for _, pair := range [][2]string{{k.ID, k.Secret}, {*m.AccessKeyId, *m.AccessKeySecret}} {
					if "AKID"+pair[1][1:] != pair[0] {
						t.Errorf("torn key: id %q with the secret of another version", pair[0])
						return
					}
				}
			}
		}()
	}
	for i := 1; i <= 2000; i++ {
		s := ramSecret(fmt.Sprintf("v%d", i), fmt.Sprintf("AKID%d", i), fmt.Sprintf("s%d", i))
		c.mu.Lock()
		c.current = s
		c.mu.Unlock()
	}
	stop.Store(true)
	wg.Wait()
}

func rejectedErr() error {
	return sdkerrors.NewServerError(404, `{"RequestId":"r","HostId":"h","Code":"InvalidAccessKeyId.NotFound","Message":"Specified access key is not found."}`, "")
}

func TestDoRecoversOnce(t *testing.T) {
	c := &memCache{current: ramSecret("v1", "AKID1", "s1")}
	c.rotate(ramSecret("v2", "AKID2", "s2"))
	p, _ := New(c, "acs/ram/user/unit")
	var used []string
	got, err := Do(context.Background(), p, func(ctx context.Context, k secretsource.AccessKey) (string, error) {
		used = append(used, k.ID)
		if k.ID != "AKID2" {
			return "", rejectedErr()
		}
		return "ok", nil
	})
	if err != nil || got != "ok" {
		t.Fatalf("Do = %q, %v", got, err)
	}
	if fmt.Sprint(used) != "[AKID1 AKID2]" {
		t.Errorf("keys used: %v", used)
	}
	if st := p.Stats(); st != (Stats{Rejected: 1, Refreshes: 1, Retries: 1}) {
		t.Errorf("stats %+v", st)
	}
}

func TestDoNoNewerVersion(t *testing.T) {
	c := &memCache{current: ramSecret("v1", "AKID1", "s1")}
	c.rotate(c.current)
	p, _ := New(c, "acs/ram/user/unit")
	calls := 0
	_, err := Do(context.Background(), p, func(ctx context.Context, k secretsource.AccessKey) (int, error) {
		calls++
		return 0, rejectedErr()
	})
	var rk *RejectedKeyError
	if !errors.As(err, &rk) || rk.Retried || rk.VersionID != "v1" || rk.Code != "InvalidAccessKeyId.NotFound" {
		t.Fatalf("err = %v", err)
	}
	var se *sdkerrors.ServerError
	if !errors.As(err, &se) {
		t.Error("the SDK's error must stay reachable with errors.As")
	}
	if calls != 1 {
		t.Errorf("called %d times, want 1 (nothing newer to retry with)", calls)
	}
}

func TestDoRetryRejectedToo(t *testing.T) {
	c := &memCache{current: ramSecret("v1", "AKID1", "s1")}
	c.rotate(ramSecret("v2", "AKID2", "s2"))
	p, _ := New(c, "acs/ram/user/unit")
	calls := 0
	_, err := DoClient(context.Background(), p, func(ctx context.Context) (int, error) {
		calls++
		return 0, rejectedErr()
	})
	var rk *RejectedKeyError
	if !errors.As(err, &rk) || !rk.Retried || rk.VersionID != "v2" {
		t.Fatalf("err = %v", err)
	}
	if calls != 2 {
		t.Errorf("called %d times, want 2", calls)
	}
}

func TestDoOtherErrorsUntouched(t *testing.T) {
	c := &memCache{current: ramSecret("v1", "AKID1", "s1")}
	p, _ := New(c, "acs/ram/user/unit")
	want := errors.New("boom")
	calls := 0
	_, err := Do(context.Background(), p, func(ctx context.Context, k secretsource.AccessKey) (int, error) { calls++; return 0, want })
	if err != want || calls != 1 || c.refreshes.Load() != 0 {
		t.Errorf("err %v calls %d refreshes %d", err, calls, c.refreshes.Load())
	}
	if _, err := Do[int](context.Background(), p, nil); err == nil {
		t.Error("nil call accepted")
	}
}

// N concurrent failures on one key: one refresh.
func TestConcurrentRejectionsOneRefresh(t *testing.T) {
	c := &memCache{current: ramSecret("v1", "AKID1", "s1"), gate: make(chan struct{})}
	c.rotate(ramSecret("v2", "AKID2", "s2"))
	p, _ := New(c, "acs/ram/user/unit")
	const n = 200
	var failed, ok atomic.Int64
	var wg, rejectedAll sync.WaitGroup
	rejectedAll.Add(n)
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			first := true
			_, err := Do(context.Background(), p, func(ctx context.Context, k secretsource.AccessKey) (int, error) {
				if k.ID == "AKID1" {
					if first {
						first = false
						rejectedAll.Done()
					}
					return 0, rejectedErr()
				}
				return 1, nil
			})
			if err != nil {
				failed.Add(1)
			} else {
				ok.Add(1)
			}
		}()
	}
	rejectedAll.Wait() // every goroutine has seen AKID1 rejected
	close(c.gate)
	wg.Wait()
	if failed.Load() != 0 || ok.Load() != n {
		t.Errorf("failed %d ok %d", failed.Load(), ok.Load())
	}
	if r := c.refreshes.Load(); r != 1 {
		t.Errorf("%d refreshes for %d concurrent rejections, want 1", r, n)
	}
	if st := p.Stats(); st.Rejected != n || st.Retries != n || st.Refreshes != 1 {
		t.Errorf("stats %+v", st)
	}
}

// A caller whose context ends stops waiting; the shared recovery goes on for the others.
func TestRecoveryCallerContext(t *testing.T) {
	c := &memCache{current: ramSecret("v1", "AKID1", "s1"), gate: make(chan struct{})}
	c.rotate(ramSecret("v2", "AKID2", "s2"))
	p, _ := New(c, "acs/ram/user/unit")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() {
		_, err := Do(ctx, p, func(ctx context.Context, k secretsource.AccessKey) (int, error) { return 0, rejectedErr() })
		done <- err
	}()
	for c.refreshes.Load() == 0 {
		runtimeGosched()
	}
	cancel()
	err := <-done
	var rk *RejectedKeyError
	if !errors.As(err, &rk) || !errors.Is(err, context.Canceled) {
		t.Errorf("err = %v", err)
	}
	close(c.gate)
	// The shared refresh completed on its own context.
	k, err := p.AccessKey(context.Background())
	for err == nil && k.VersionID != "v2" {
		runtimeGosched()
		k, err = p.AccessKey(context.Background())
	}
	if err != nil {
		t.Fatal(err)
	}
}

func TestFormattingHidesSecret(t *testing.T) {
	c := &memCache{current: ramSecret("v1", "AKID1", "very-secret-value")}
	p, _ := New(c, "acs/ram/user/unit")
	k, _ := p.AccessKey(context.Background())
	rk := &RejectedKeyError{Secret: "acs/ram/user/unit", VersionID: "v1", Code: "InvalidAccessKeyId.NotFound", Err: rejectedErr()}
	e, _ := NewECS(c, "acs/ram/user/unit")
	var out bytes.Buffer
	for _, v := range []any{k, &k, p, e, rk, struct{ K, P, E any }{k, p, e}} {
		for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%d", "%T"} {
			fmt.Fprintf(&out, verb+"\n", v)
		}
		if b, err := json.Marshal(v); err == nil {
			out.Write(b)
		}
		slog.New(slog.NewTextHandler(&out, nil)).Info("m", "v", v)
		slog.New(slog.NewJSONHandler(&out, nil)).Info("m", "v", v)
	}
	for _, secret := range []string{"very-secret-value", fmt.Sprintf("%x", "very-secret-value")} {
		if containsSecret(out.String(), secret) {
			t.Errorf("secret in %q", out.String())
		}
	}
	if !strings.Contains(out.String(), "acs/ram/user/unit") {
		t.Errorf("the output does not name the secret: %q", out.String())
	}
}

// After a recovery found nothing newer, failures on that version within the
// hold get the answer at once: no refresh queue behind the rate limit.
func TestNoNewerVersionHold(t *testing.T) {
	c := &memCache{current: ramSecret("v1", "AKID1", "s1")}
	c.rotate(c.current)
	p, _ := New(c, "acs/ram/user/unit")
	for i := 0; i < 5; i++ {
		_, err := Do(context.Background(), p, func(ctx context.Context, k secretsource.AccessKey) (int, error) { return 0, rejectedErr() })
		var rk *RejectedKeyError
		if !errors.As(err, &rk) {
			t.Fatalf("err = %v", err)
		}
	}
	if n := c.refreshes.Load(); n != 1 {
		t.Errorf("%d refreshes for 5 sequential rejections of a version with nothing newer, want 1", n)
	}
}

// TestRejectedKeyCodesIsACopy: the list cannot be changed from outside (it
// was an exported variable any package could overwrite).
func TestRejectedKeyCodesIsACopy(t *testing.T) {
	codes := RejectedKeyCodes()
	if !slices.Contains(codes, "InvalidAccessKeyId.NotFound") {
		t.Fatalf("RejectedKeyCodes() = %v", codes)
	}
	for i := range codes {
		codes[i] = "changed"
	}
	if !slices.Contains(RejectedKeyCodes(), "InvalidAccessKeyId.NotFound") ||
		!IsRejectedKey(&secretsource.Error{Code: "InvalidAccessKeyId.NotFound"}) {
		t.Error("changing the returned slice changed the list")
	}
}
