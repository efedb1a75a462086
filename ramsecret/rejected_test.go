package ramsecret

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"

	openapi "github.com/alibabacloud-go/darabonba-openapi/v2/client"
	"github.com/alibabacloud-go/tea/dara"
	"github.com/alibabacloud-go/tea/tea"
	sdkerrors "github.com/aliyun/alibaba-cloud-sdk-go/sdk/errors"

	"github.com/kmsdb/kmsdb/secretsource"
)

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
