package dkms_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/aliyun/alibabacloud-dkms-gcs-go-sdk/openapi-util/protobuf/api"
	"google.golang.org/protobuf/proto"

	"github.com/kmsdb/kmsdb/secretsource"
	"github.com/kmsdb/kmsdb/secretsource/dkms"
	"github.com/kmsdb/kmsdb/secretsource/internal/hostiletest"
)

// The hostile password and value, and the tests that do not depend on the
// wire format, are shared with the kms source (internal/hostiletest).
const hostilePW = hostiletest.PW

var hostileValue = hostiletest.Value

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

// fakeInstance is a loopback HTTPS server answering whatever its handler
// says, with a client key minted by an emulator for the sources to sign with
// (the fake does not check signatures).
type fakeInstance struct {
	*hostiletest.Fake
	key instance
}

func startFakeInstance(t *testing.T) *fakeInstance {
	t.Helper()
	return &fakeInstance{Fake: hostiletest.Start(t, true, "application/x-protobuf"), key: startInstance(t)}
}

// sources makes the sources of the shared tests: a dkms.Source for f.
func (f *fakeInstance) sources() hostiletest.NewSource {
	return func(t *testing.T, timeout time.Duration) hostiletest.Source {
		in := f.key
		src, logs := newSource(t, dkms.Config{Timeout: timeout, Endpoint: dkms.Endpoint{RegionID: "cn-hangzhou",
			Endpoint: strings.TrimPrefix(f.URL, "https://"), ClientKeyFile: in.key.File, Password: in.key.Password, CAFile: f.CAFile}})
		t.Cleanup(func() { hostiletest.AssertNoPassword(t, nil, logs.String()) })
		return hostiletest.Source{Get: func(ctx context.Context) (*secretsource.Secret, error) { return src.GetSecret(ctx, secretName) },
			Logs: logs.String, Never: []string{in.key.Password}}
	}
}

// hostileCase is a hostiletest.Case written without field names.
type hostileCase hostiletest.Case

// TestHostileAnswers: junk from the instance is an error of a clear kind that
// never shows the secret.
func TestHostileAnswers(t *testing.T) {
	f := startFakeInstance(t)
	cur := []string{secretsource.StageCurrent}
	long := strings.Repeat("x", 4000) + hostilePW + strings.Repeat("y", 4000)
	good := pb(answer(secretName, "v1", cur, hostileValue))
	cases := []hostileCase{
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
	hostiletest.TestAnswers(t, f.Fake, secretName, f.sources(), hostiletest.Cases(cases))
}

// TestOversizedAnswer: a 64 MiB answer is refused after 1 MiB.
func TestOversizedAnswer(t *testing.T) {
	f := startFakeInstance(t)
	hostiletest.TestOversizedAnswer(t, f.Fake, f.sources(), strings.Repeat("A", 32<<10))
}

// TestSlowBodyCutAtTimeout: the timeout covers the body too.
func TestSlowBodyCutAtTimeout(t *testing.T) {
	f := startFakeInstance(t)
	hostiletest.TestSlowBodyCutAtTimeout(t, f.Fake, f.sources(), "\x0a")
}

// TestRedirectsNotFollowed: the signed request never reaches the target of a
// redirect.
func TestRedirectsNotFollowed(t *testing.T) {
	f := startFakeInstance(t)
	thief := hostiletest.Start(t, true, "application/x-protobuf")
	hostiletest.TestRedirectsNotFollowed(t, f.Fake, thief,
		pb(answer(secretName, "v9", []string{secretsource.StageCurrent}, "thief-value")), f.sources())
}

// TestEachSourceItsOwnCA: two sources for the same endpoint with different CA
// files each verify with their own, whichever goes first. (The Tea runtime
// kept one client per host for the process: the second source used the
// first one's CA.)
func TestEachSourceItsOwnCA(t *testing.T) {
	in := startInstance(t)
	wrongCA := hostiletest.Start(t, true, "application/x-protobuf").CAFile
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
