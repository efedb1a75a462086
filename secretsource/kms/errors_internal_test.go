package kms

import (
	"context"
	"errors"
	"net"
	"net/url"
	"strings"
	"syscall"
	"testing"
	"time"

	sdkerrors "github.com/aliyun/alibaba-cloud-sdk-go/sdk/errors"

	"github.com/kmsdb/kmsdb/secretsource"
	"github.com/kmsdb/kmsdb/secretsource/internal/wire"
)

const leakyURL = "https://kms.cn-hangzhou.aliyuncs.com/?AccessKeyId=LTAIleakyid&Action=GetSecretValue&SecurityToken=CAISsecrettoken&Signature=abc%2Bdef%3D"

func TestMapErrorServer(t *testing.T) {
	body := `{"RequestId":"req-1","HostId":"kms","Code":"SignatureDoesNotMatch","Message":"Specified signature is not matched with our calculation. server string to sign is:POST&%2F&AccessKeyId%3DLTAIleak%26SecurityToken%3Dsecrettok"}`
	se := sdkerrors.NewServerError(400, body, "").(*sdkerrors.ServerError)
	e := mapError(context.Background(), se, &secretsource.Error{Secret: "db", Source: "kms", Region: "cn-hangzhou"})
	if e.Kind != secretsource.KindInvalidCredentials || e.Code != "SignatureDoesNotMatch" || e.RequestID != "req-1" {
		t.Fatalf("got %+v", e)
	}
	for _, leak := range []string{"LTAIleak", "secrettok", "string to sign is:"} {
		if strings.Contains(e.Error(), leak) {
			t.Errorf("error %q leaks %q", e.Error(), leak)
		}
	}
	if e.Retryable() {
		t.Error("invalid credentials must not be retryable")
	}

	// A non-JSON body (a proxy's HTML page): classified by status, message cut short.
	se = sdkerrors.NewServerError(502, "<html>"+strings.Repeat("x", 2000)+"</html>", "").(*sdkerrors.ServerError)
	e = mapError(context.Background(), se, &secretsource.Error{Secret: "db", Source: "kms", Region: "r"})
	if e.Kind != secretsource.KindUnavailable || len(e.Message) > 400 {
		t.Errorf("got kind %v message length %d", e.Kind, len(e.Message))
	}
}

func TestMapErrorTransport(t *testing.T) {
	oe := &net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}
	ue := &url.Error{Op: "Post", URL: leakyURL, Err: oe}
	e := mapError(context.Background(), ue, &secretsource.Error{Secret: "db", Source: "kms", Region: "cn-hangzhou"})
	if e.Kind != secretsource.KindNetwork || !e.Retryable() {
		t.Fatalf("got %v", e.Kind)
	}
	if strings.Contains(e.Error(), "LTAIleakyid") || strings.Contains(e.Error(), "Signature=") {
		t.Errorf("error leaks the signed URL: %s", e)
	}
	if !errors.Is(e, syscall.ECONNREFUSED) || !errors.Is(e, secretsource.ErrNetwork) {
		t.Errorf("errors.Is lost the cause: %v", e)
	}

	ue = &url.Error{Op: "Post", URL: leakyURL, Err: context.DeadlineExceeded}
	if e := mapError(context.Background(), ue, &secretsource.Error{Secret: "db", Source: "kms", Region: "r"}); e.Kind != secretsource.KindTimeout {
		t.Errorf("deadline: got %v", e.Kind)
	}

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	e = mapError(ctx, ue, &secretsource.Error{Secret: "db", Source: "kms", Region: "r"})
	if !errors.Is(e, context.Canceled) || secretsource.IsRetryable(e) {
		t.Errorf("cancelled: got %v retryable=%v", e, secretsource.IsRetryable(e))
	}
	ctx, cancel = context.WithDeadline(context.Background(), time.Now().Add(-time.Second))
	defer cancel()
	if e := mapError(ctx, ue, &secretsource.Error{Secret: "db", Source: "kms", Region: "r"}); e.Kind != secretsource.KindTimeout {
		t.Errorf("deadline ctx: got %v", e.Kind)
	}
}

func TestMapCredentialError(t *testing.T) {
	cases := []struct {
		msg  string
		want secretsource.Kind
	}{
		{`refresh session token failed: {"RequestId":"r","Code":"InvalidAccessKeyId.NotFound","Message":"x"}`, secretsource.KindInvalidCredentials},
		{`refresh session token failed: {"Code":"Throttling.User"}`, secretsource.KindThrottled},
		{`get sts token failed with: {"Code":"EntityNotExist.OIDCProvider"}`, secretsource.KindInvalidCredentials},
		{`Post "https://sts.aliyuncs.com/?AccessKeyId=LTAIleakyid&Signature=x": dial tcp 127.0.0.1:9: connect: connection refused`, secretsource.KindNetwork},
		{`Post "https://sts.aliyuncs.com/": context deadline exceeded (Client.Timeout exceeded while awaiting headers)`, secretsource.KindTimeout},
		{`refresh KeyPair err: SessionAccessKeyId: a, SessionAccessKeySecret: verysecret, Expiration: `, secretsource.KindInvalidCredentials},
	}
	for _, c := range cases {
		e := mapError(context.Background(), &credentialError{provider: "ram_role_arn", msg: wire.Scrub(c.msg)}, &secretsource.Error{Secret: "db", Source: "kms", Region: "r"})
		if e.Kind != c.want {
			t.Errorf("%q: kind %v, want %v", c.msg, e.Kind, c.want)
		}
		for _, leak := range []string{"LTAIleakyid", "verysecret"} {
			if strings.Contains(e.Error(), leak) {
				t.Errorf("%q leaks %q: %s", c.msg, leak, e)
			}
		}
	}
}
