package credprov

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kmsdb/kmsdb/internal/credtest"
	"github.com/kmsdb/kmsdb/secretsource"
)

// TestBuildErrors: a provider that cannot work is refused when built, with
// a KindConfig error saying what is missing or malformed.
func TestBuildErrors(t *testing.T) {
	credtest.Hermetic(t)
	prev := staticAK(t, testAK, testSecret)
	role := "acs:ram::1:role/r"
	build := map[string]func() error{
		"the url is empty": func() error { _, err := NewURI("", HTTPOptions{}); return err },
		"not an http:// or https:// URL": func() error {
			_, err := NewURI("ftp://127.0.0.1/c", HTTPOptions{})
			return err
		},
		"the proxy is not": func() error {
			_, err := NewURI("http://127.0.0.1/c", HTTPOptions{Proxy: "127.0.0.1:3128"})
			return err
		},
		"the RoleArn is empty": func() error { _, err := NewRAMRoleARN(prev, "", STSOptions{}); return err },
		"at least 900 s": func() error {
			_, err := NewRAMRoleARN(prev, "", STSOptions{RoleARN: role, SessionDuration: 10 * time.Minute})
			return err
		},
		"previous credentials provider": func() error { _, err := NewRAMRoleARN(nil, "", STSOptions{RoleARN: role}); return err },
		"the OIDCTokenFilePath is empty": func() error {
			_, err := NewOIDCRoleARN(OIDCOptions{OIDCProviderARN: "p"}, STSOptions{RoleARN: role})
			return err
		},
		"the OIDCProviderARN is empty": func() error {
			_, err := NewOIDCRoleARN(OIDCOptions{OIDCTokenFile: "f"}, STSOptions{RoleARN: role})
			return err
		},
		"IMDS credentials is disabled": func() error { _, err := NewECSRAMRole(ECSOptions{}); return err },
	}
	for want, f := range build {
		t.Run(want, func(t *testing.T) {
			err := f()
			var e *Error
			if !errors.As(err, &e) || e.Kind != secretsource.KindConfig || !strings.Contains(err.Error(), want) {
				t.Fatalf("got %v, want a config error saying %q", err, want)
			}
		})
	}
}

// TestOIDCTokenFileUnreadable: the token file is read at every fetch; an
// unreadable one is an error naming the file.
func TestOIDCTokenFileUnreadable(t *testing.T) {
	credtest.Hermetic(t)
	missing := filepath.Join(t.TempDir(), "no-token")
	p, err := NewOIDCRoleARN(OIDCOptions{OIDCProviderARN: "p", OIDCTokenFile: missing},
		STSOptions{RoleARN: "acs:ram::1:role/r", STSEndpoint: "127.0.0.1:1"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.GetCredentials(); err == nil || !strings.Contains(err.Error(), missing) {
		t.Fatalf("got %v, want the file named", err)
	}
}

// TestSTSEndpointRule: credentials-go v1.4.14's choice of STS host.
func TestSTSEndpointRule(t *testing.T) {
	credtest.Hermetic(t, "ALIBABA_CLOUD_VPC_ENDPOINT_ENABLED")
	cases := []struct {
		endpoint, region string
		vpc              bool
		env              map[string]string
		want             string
	}{
		{"127.0.0.1:9", "cn-x", true, nil, "127.0.0.1:9"},
		{"", "", false, nil, "sts.aliyuncs.com"},
		{"", "cn-x", false, nil, "sts.cn-x.aliyuncs.com"},
		{"", "cn-x", true, nil, "sts-vpc.cn-x.aliyuncs.com"},
		{"", "", false, map[string]string{"ALIBABA_CLOUD_STS_REGION": "cn-y"}, "sts.cn-y.aliyuncs.com"},
		{"", "", false, map[string]string{"ALIBABA_CLOUD_STS_REGION": "cn-y", "ALIBABA_CLOUD_VPC_ENDPOINT_ENABLED": "TRUE"},
			"sts-vpc.cn-y.aliyuncs.com"},
		{"", "", false, map[string]string{"ALIBABA_CLOUD_VPC_ENDPOINT_ENABLED": "true"}, "sts.aliyuncs.com"},
	}
	for _, c := range cases {
		for k, v := range c.env {
			t.Setenv(k, v)
		}
		if got := stsEndpoint(c.endpoint, c.region, c.vpc); got != c.want {
			t.Errorf("stsEndpoint(%q, %q, %v) with %v = %q, want %q", c.endpoint, c.region, c.vpc, c.env, got, c.want)
		}
		for k := range c.env {
			t.Setenv(k, "")
		}
	}
}
