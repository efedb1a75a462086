package kmstest

import (
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	kms3 "github.com/alibabacloud-go/kms-20160120/v3/client"
	"github.com/alibabacloud-go/tea/tea"
	sdkerr "github.com/aliyun/alibaba-cloud-sdk-go/sdk/errors"
	"github.com/aliyun/alibaba-cloud-sdk-go/sdk/requests"
	"github.com/aliyun/alibaba-cloud-sdk-go/services/kms"
)

func TestOfficialClientsFetchSecret(t *testing.T) {
	srv := newTestServer(t)
	for _, sc := range schemes() {
		t.Run(sc.name, func(t *testing.T) {
			v, code := sc.fetch(t, srv, testAK, testSK, "", rdsName)
			if code != "" {
				t.Fatalf("error code %s", code)
			}
			if v != rdsValue {
				t.Fatalf("got a different value (len %d)", len(v))
			}
		})
	}
	if n := srv.Calls("GetSecretValue", rdsName); n != len(schemes()) {
		t.Fatalf("Calls = %d, want %d", n, len(schemes()))
	}
}

func TestNegativePerScheme(t *testing.T) {
	srv := newTestServer(t)
	srv.AddAccessKey("LTAIrevoked", "revoked-secret")
	srv.RevokeAccessKey("LTAIrevoked")
	// An STS credential that expires in 10 minutes.
	tc := srv.issueTemp(10 * time.Minute)
	for _, sc := range schemes() {
		t.Run(sc.name, func(t *testing.T) {
			cases := []struct {
				name, ak, sk, tok, secret, code string
			}{
				{"wrong secret", testAK, "not-the-secret", "", rdsName, "SignatureDoesNotMatch"},
				{"unknown key", "LTAIunknown", testSK, "", rdsName, "InvalidAccessKeyId.NotFound"},
				{"revoked key", "LTAIrevoked", "revoked-secret", "", rdsName, "InvalidAccessKeyId.NotFound"},
				{"missing secret", testAK, testSK, "", "no-such-secret", "Forbidden.ResourceNotFound"},
				{"sts token of another key", tc.AccessKeyID, tc.AccessKeySecret, "CAISwrong", rdsName,
					"InvalidSecurityToken.MismatchWithAccessKey"},
				{"sts valid", tc.AccessKeyID, tc.AccessKeySecret, tc.SecurityToken, rdsName, ""},
			}
			for _, c := range cases {
				_, code := sc.fetch(t, srv, c.ak, c.sk, c.tok, c.secret)
				if code != c.code {
					t.Errorf("%s: code %q, want %q", c.name, code, c.code)
				}
			}
		})
	}
	srv.Advance(11 * time.Minute)
	for _, sc := range schemes() {
		t.Run(sc.name+"/expired sts", func(t *testing.T) {
			_, code := sc.fetch(t, srv, tc.AccessKeyID, tc.AccessKeySecret, tc.SecurityToken, rdsName)
			if code != "InvalidSecurityToken.Expired" {
				t.Fatalf("code %q, want InvalidSecurityToken.Expired", code)
			}
		})
	}
}

func TestTamperedRequests(t *testing.T) {
	srv := newTestServer(t)
	for _, sc := range schemes() {
		if sc.fetchVia == nil {
			continue // a proxy cannot change HTTPS requests; the signature code is the same
		}
		t.Run(sc.name, func(t *testing.T) {
			// Sanity: an honest proxy passes.
			if _, code := sc.fetchVia(t, srv, tamperProxy(t, func(_ *http.Request, b []byte) []byte { return b }), rdsName); code != "" {
				t.Fatalf("honest proxy: %s", code)
			}
			if _, code := sc.fetchVia(t, srv, tamperProxy(t, tamperQuery("SecretName", genericName)), rdsName); code != "SignatureDoesNotMatch" {
				t.Errorf("tampered parameter: code %q", code)
			}
			if _, code := sc.fetchVia(t, srv, tamperProxy(t, tamperBody("SecretName", genericName)), rdsName); code != "SignatureDoesNotMatch" {
				t.Errorf("tampered body: code %q", code)
			}
		})
	}
}

func TestSignatureDoesNotMatchCarriesStringToSign(t *testing.T) {
	srv := newTestServer(t)
	c := coreClient(t, srv, false, testAK, "wrong", "", "")
	req := kms.CreateGetSecretValueRequest()
	req.SecretName = rdsName
	_, err := c.GetSecretValue(req)
	var se *sdkerr.ServerError
	if !errors.As(err, &se) {
		t.Fatalf("got %T %v", err, err)
	}
	mustContain(t, se.Message(), "server string to sign is:POST&%2F&")
	if se.HttpStatus() != 400 || se.RequestId() == "" {
		t.Fatalf("status %d request id %q", se.HttpStatus(), se.RequestId())
	}
	// The SDK recognizes the message and says the secret is wrong.
	mustContain(t, se.Recommend(), "InvalidAccessKeySecret")
}

func TestGetSecretValueFields(t *testing.T) {
	clock := time.Date(2024, 5, 1, 10, 0, 0, 0, time.UTC)
	srv := newTestServer(t, WithClock(func() time.Time { return clock }),
		WithSecret(SecretSpec{Name: "rotating", Type: "Rds", Data: rdsValue, AutomaticRotation: true,
			RotationInterval: 7 * 24 * time.Hour}),
		WithSecret(SecretSpec{Name: "bin", DataType: "binary", Data: "AAEC/w=="}))
	c := coreClient(t, srv, false, testAK, testSK, "", "")

	req := kms.CreateGetSecretValueRequest()
	req.SecretName = "rotating"
	req.FetchExtendedConfig = requests.NewBoolean(true)
	resp, err := c.GetSecretValue(req)
	if err != nil {
		t.Fatal(err)
	}
	if resp.SecretType != "Rds" || resp.SecretDataType != "text" || resp.AutomaticRotation != "Enabled" ||
		resp.RotationInterval != "604800s" || resp.NextRotationDate != "2024-05-08T10:00:00Z" ||
		resp.CreateTime != "2024-05-01T10:00:00Z" || resp.ExtendedConfig != `{"SecretSubType":"SingleUser"}` ||
		strings.Join(resp.VersionStages.VersionStage, ",") != "ACSCurrent" || resp.VersionId == "" {
		t.Fatalf("unexpected response %+v", redactedResp(resp))
	}
	// Without FetchExtendedConfig, no ExtendedConfig.
	req.FetchExtendedConfig = requests.NewBoolean(false)
	if resp, err = c.GetSecretValue(req); err != nil || resp.ExtendedConfig != "" {
		t.Fatalf("ExtendedConfig %q err %v", resp.ExtendedConfig, err)
	}
	// Binary data comes back as base64 text, as KMS returns it.
	req.SecretName = "bin"
	if resp, err = c.GetSecretValue(req); err != nil || resp.SecretDataType != "binary" || resp.SecretData != "AAEC/w==" {
		t.Fatalf("binary: %+v %v", redactedResp(resp), err)
	}
	// Generic secrets carry no AutomaticRotation, as the service.
	req.SecretName = genericName
	if resp, err = c.GetSecretValue(req); err != nil || resp.AutomaticRotation != "" {
		t.Fatalf("generic: %q %v", resp.AutomaticRotation, err)
	}
}

func redactedResp(r *kms.GetSecretValueResponse) string {
	if r == nil {
		return "<nil>"
	}
	c := *r
	c.SecretData = "[redacted]"
	b, _ := json.Marshal(c)
	return string(b)
}

func TestVersionsAndStagesThroughTea(t *testing.T) {
	srv := newTestServer(t)
	c := teaClient(t, srv, false, "", staticCred(t, testAK, testSK, ""), "")
	st0, _ := srv.Secret(genericName)

	// PutSecretValue through the SDK moves ACSCurrent and makes the old version ACSPrevious.
	put, err := c.PutSecretValue(&kms3.PutSecretValueRequest{SecretName: tea.String(genericName),
		SecretData: tea.String("second value"), VersionId: tea.String("v-second")})
	if err != nil {
		t.Fatal(err)
	}
	if tea.StringValue(put.Body.VersionId) != "v-second" {
		t.Fatalf("put: %s", put.Body.String())
	}
	get := func(stage, version string) (string, string, string) {
		resp, err := c.GetSecretValue(&kms3.GetSecretValueRequest{SecretName: tea.String(genericName),
			VersionStage: tea.String(stage), VersionId: tea.String(version)})
		if err != nil {
			var se *tea.SDKError
			if errors.As(err, &se) {
				return "", "", tea.StringValue(se.Code)
			}
			t.Fatal(err)
		}
		return tea.StringValue(resp.Body.SecretData), tea.StringValue(resp.Body.VersionId), ""
	}
	if v, id, _ := get("", ""); v != "second value" || id != "v-second" {
		t.Fatalf("current: %s", id)
	}
	if v, id, _ := get("ACSPrevious", ""); v != "plain value" || id != st0.CurrentVersionID {
		t.Fatalf("previous: %s", id)
	}
	if v, _, _ := get("", st0.CurrentVersionID); v != "plain value" {
		t.Fatal("by version id")
	}
	if _, _, code := get("ACSCurrent", st0.CurrentVersionID); code != "Forbidden.ResourceNotFound" {
		t.Fatalf("stage+version mismatch: %q", code)
	}
	if _, _, code := get("ACSPending", ""); code != "Forbidden.ResourceNotFound" {
		t.Fatalf("pending: %q", code)
	}
	// The same version id with other data is rejected.
	_, err = c.PutSecretValue(&kms3.PutSecretValueRequest{SecretName: tea.String(genericName),
		SecretData: tea.String("other"), VersionId: tea.String("v-second")})
	var se *tea.SDKError
	if !errors.As(err, &se) || tea.StringValue(se.Code) != "Rejected.ResourceExist" {
		t.Fatalf("duplicate version: %v", err)
	}
	// A pending version does not move ACSCurrent.
	if _, err := c.PutSecretValue(&kms3.PutSecretValueRequest{SecretName: tea.String(genericName),
		SecretData: tea.String("pending"), VersionId: tea.String("v-pending"),
		VersionStages: tea.String(`["ACSPending"]`)}); err != nil {
		t.Fatal(err)
	}
	if v, _, _ := get("ACSPending", ""); v != "pending" {
		t.Fatal("pending value")
	}
	if _, id, _ := get("", ""); id != "v-second" {
		t.Fatalf("current moved to %s", id)
	}

	// RotateSecret, DescribeSecret, ListSecrets through the SDK.
	rot, err := c.RotateSecret(&kms3.RotateSecretRequest{SecretName: tea.String(rdsName), VersionId: tea.String("r2")})
	if err != nil || tea.StringValue(rot.Body.VersionId) != "r2" {
		t.Fatalf("rotate: %v", err)
	}
	desc, err := c.DescribeSecret(&kms3.DescribeSecretRequest{SecretName: tea.String(rdsName)})
	if err != nil || tea.StringValue(desc.Body.SecretType) != "Rds" || tea.StringValue(desc.Body.LastRotationDate) == "" ||
		tea.StringValue(desc.Body.AutomaticRotation) != "Disabled" {
		t.Fatalf("describe: %v %v", desc, err)
	}
	list, err := c.ListSecrets(&kms3.ListSecretsRequest{PageSize: tea.Int32(1), PageNumber: tea.Int32(2)})
	if err != nil || tea.Int32Value(list.Body.TotalCount) != 2 || len(list.Body.SecretList.Secret) != 1 ||
		tea.StringValue(list.Body.SecretList.Secret[0].SecretName) != genericName {
		t.Fatalf("list: %v %v", list, err)
	}
}

func TestFaults(t *testing.T) {
	srv := newTestServer(t)
	c := coreClient(t, srv, false, testAK, testSK, "", "")
	srv.InjectFault(Fault{Action: "GetSecretValue", Secret: rdsName, Code: "Rejected.Throttling", Times: 2})
	for i, want := range []string{"Rejected.Throttling", "Rejected.Throttling", ""} {
		if _, code := coreFetch(t, c, rdsName); code != want {
			t.Fatalf("call %d: code %q, want %q", i, code, want)
		}
	}
	// Other secrets are not hit.
	srv.InjectFault(Fault{Action: "*", Secret: rdsName, Code: "ServiceUnavailableTemporary"})
	if _, code := coreFetch(t, c, genericName); code != "" {
		t.Fatal(code)
	}
	req := kms.CreateGetSecretValueRequest()
	req.SecretName = rdsName
	_, err := c.GetSecretValue(req)
	var se *sdkerr.ServerError
	if !errors.As(err, &se) || se.ErrorCode() != "ServiceUnavailableTemporary" || se.HttpStatus() != 503 {
		t.Fatalf("503 fault: %v", err)
	}
	srv.ClearFaults()

	// A dropped connection is a network error for the SDK, not a service error.
	srv.InjectFault(Fault{Action: "GetSecretValue", Drop: true, Times: 1})
	if _, err := c.GetSecretValue(req); err == nil || errors.As(err, &se) {
		t.Fatalf("drop: %v", err)
	}
	// Latency only delays.
	srv.InjectFault(Fault{Action: "GetSecretValue", Latency: 50 * time.Millisecond, Times: 1})
	if _, code := coreFetch(t, c, rdsName); code != "" {
		t.Fatal(code)
	}
	if n := srv.Calls("GetSecretValue", rdsName); n != 6 {
		t.Fatalf("Calls(GetSecretValue, rds) = %d, want 6", n)
	}
	if n := srv.Calls("", ""); n != 7 {
		t.Fatalf("Calls = %d, want 7", n)
	}
	srv.ResetCalls()
	if n := srv.Calls("", ""); n != 0 {
		t.Fatal(n)
	}
}

func TestReplayAndTimestamp(t *testing.T) {
	srv := newTestServer(t)
	var captured *http.Request
	var capturedBody []byte
	proxy := tamperProxy(t, func(r *http.Request, b []byte) []byte {
		captured = r.Clone(r.Context())
		capturedBody = b
		return b
	})
	c := coreClient(t, srv, false, testAK, testSK, "", proxy)
	if _, code := coreFetch(t, c, rdsName); code != "" {
		t.Fatal(code)
	}
	// Replay the same signed request: same nonce.
	replay := func() string {
		req, err := http.NewRequest(captured.Method, captured.URL.String(), strings.NewReader(string(capturedBody)))
		if err != nil {
			t.Fatal(err)
		}
		req.Header = captured.Header.Clone()
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var body map[string]string
		if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
			t.Fatal(err)
		}
		return body["Code"]
	}
	t.Cleanup(http.DefaultClient.CloseIdleConnections)
	if code := replay(); code != "SignatureNonceUsed" {
		t.Fatalf("replay: %q", code)
	}
	// Advance does not touch request timestamps: the SDKs sign with the wall clock.
	srv.Advance(2 * time.Hour)
	if _, code := coreFetch(t, c, rdsName); code != "" {
		t.Fatalf("after Advance: %q", code)
	}
	// A request signed more than 15 minutes ago.
	srv.wallClock = func() time.Time { return time.Now().Add(16 * time.Minute) }
	if code := replay(); code != "InvalidTimeStamp.Expired" {
		t.Fatalf("old timestamp: %q", code)
	}
	if _, code := coreFetch(t, c, rdsName); code != "InvalidTimeStamp.Expired" {
		t.Fatalf("client clock 16 minutes behind: %q", code)
	}
}
