package kms_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/kmsdb/kmsdb/internal/credtest"
	"github.com/kmsdb/kmsdb/secretsource"
	"github.com/kmsdb/kmsdb/secretsource/internal/hostiletest"
	"github.com/kmsdb/kmsdb/secretsource/kms"
)

// The hostile password and value, and the tests that do not depend on the
// wire format, are shared with the dkms source (internal/hostiletest).
const hostilePW = hostiletest.PW

var hostileValue = hostiletest.Value

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

// hostileCase is a hostiletest.Case written without field names.
type hostileCase hostiletest.Case

// startFake is a loopback HTTP server answering JSON as the shared gateway.
func startFake(t *testing.T) *hostiletest.Fake {
	return hostiletest.Start(t, false, "application/json")
}

func fakeRegion(f *hostiletest.Fake) kms.Region {
	return kms.Region{ID: region, Endpoint: strings.TrimPrefix(f.URL, "http://")}
}

// hostileSources makes the sources of the shared tests: an AccessKey source
// for f, over HTTP.
func hostileSources(f *hostiletest.Fake) hostiletest.NewSource {
	return func(t *testing.T, timeout time.Duration) hostiletest.Source {
		src, logs := newSource(t, kms.Config{Region: fakeRegion(f), Credential: accessKey(t), Scheme: "http", Timeout: timeout})
		return hostiletest.Source{Get: func(ctx context.Context) (*secretsource.Secret, error) { return src.GetSecret(ctx, secretName) },
			Logs: logs.String}
	}
}

// TestHostileAnswers: junk from the gateway is an error of a clear kind that
// never shows the secret, whatever the body holds.
func TestHostileAnswers(t *testing.T) {
	credtest.Hermetic(t)
	f := startFake(t)
	cur := []string{secretsource.StageCurrent}
	long := strings.Repeat("x", 4000) + hostilePW + strings.Repeat("y", 4000)
	cases := []hostileCase{
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
	hostiletest.TestAnswers(t, f, secretName, hostileSources(f), hostiletest.Cases(cases))
}

// TestAnswerForTheVersionAskedFor: a version asked for by stage or id must be
// the one answered.
func TestAnswerForTheVersionAskedFor(t *testing.T) {
	credtest.Hermetic(t)
	f := startFake(t)
	src, _ := newSource(t, kms.Config{Region: fakeRegion(f), Credential: accessKey(t), Scheme: "http", Timeout: 10 * time.Second})
	f.Answer(200, marshal(answer(secretName, "v2", []string{secretsource.StageCurrent}, hostileValue)))
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

// TestOversizedAnswer: a 64 MiB answer is refused after 1 MiB
// (hostiletest.TestOversizedAnswer).
func TestOversizedAnswer(t *testing.T) {
	credtest.Hermetic(t)
	f := startFake(t)
	hostiletest.TestOversizedAnswer(t, f, hostileSources(f), `{"SecretName":"db/app","SecretData":"`+strings.Repeat("A", 32<<10))
}

// TestSlowBodyCutAtTimeout: the source's timeout covers the body, not only
// the headers.
func TestSlowBodyCutAtTimeout(t *testing.T) {
	credtest.Hermetic(t)
	f := startFake(t)
	hostiletest.TestSlowBodyCutAtTimeout(t, f, hostileSources(f), " ")
}

// TestRedirectsNotFollowed: a redirect to another loopback listener is an
// error, and the signed request never reaches that listener.
func TestRedirectsNotFollowed(t *testing.T) {
	credtest.Hermetic(t)
	f := startFake(t)
	hostiletest.TestRedirectsNotFollowed(t, f, startFake(t),
		marshal(answer(secretName, "v9", []string{secretsource.StageCurrent}, "thief-value")), hostileSources(f), "AccessKeyId", testAK)
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
	src, logs := newSource(t, kms.Config{Region: fakeRegion(f), Credential: cred, Scheme: "http", Timeout: 10 * time.Second})
	for range 2 {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		_, err := src.GetSecret(ctx, secretName)
		cancel()
		if secretsource.KindOf(err) != secretsource.KindInvalidAnswer || !strings.Contains(err.Error(), "Code is not Success") {
			t.Fatalf("got %v, want the metadata answer refused", err)
		}
		hostiletest.AssertNoPassword(t, err, logs.String())
	}
	if n := f.Calls.Load(); n != 0 {
		t.Errorf("KMS got %d requests without credentials", n)
	}
}
