package kms_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aliyun/credentials-go/credentials"

	"github.com/kmsdb/kmsdb/internal/credtest"
	"github.com/kmsdb/kmsdb/internal/syncbuf"
	"github.com/kmsdb/kmsdb/secretsource"
	"github.com/kmsdb/kmsdb/secretsource/kms"
	"github.com/kmsdb/kmsdb/secretsource/kmstest"
)

const (
	testAK     = "LTAI5tKmsdbTestKeyId"
	testSecret = "AkSecret-do-not-print-7Qx"
	dbPassword = "Pa55w0rd-never-in-logs-91"
	secretName = "db/app"
	region     = "cn-hangzhou"
)

var rdsValue = `{"AccountName":"app","AccountPassword":"` + dbPassword + `"}`

func startEmulator(t testing.TB, opts ...kmstest.Option) *kmstest.Server {
	t.Helper()
	opts = append([]kmstest.Option{
		kmstest.WithAccessKey(testAK, testSecret),
		kmstest.WithSecret(kmstest.SecretSpec{Name: secretName, Type: "Rds", Data: rdsValue,
			ExtendedConfig: map[string]any{"SecretSubType": "SingleUser"}, AutomaticRotation: true,
			RotationInterval: 7 * 24 * time.Hour}),
	}, opts...)
	return kmstest.Start(t, opts...)
}

func accessKey(t *testing.T) credentials.Credential {
	t.Helper()
	c, err := kms.NewCredential(kms.CredentialOptions{Type: kms.CredentialAccessKey, AccessKeyID: testAK, AccessKeySecret: testSecret})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func newSource(t *testing.T, cfg kms.Config) (*kms.Source, *syncbuf.Buffer) {
	t.Helper()
	logs := &syncbuf.Buffer{}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = 10 * time.Second
	}
	s, err := kms.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s, logs
}

// tlsRegion is the emulator's HTTPS shared gateway as a region.
func tlsRegion(srv *kmstest.Server, id string) kms.Region {
	return kms.Region{ID: id, Endpoint: srv.KMSTLSAddr()}
}

func assertNoLeak(t *testing.T, texts ...string) {
	t.Helper()
	for _, s := range texts {
		for _, secret := range []string{dbPassword, testSecret} {
			if strings.Contains(s, secret) {
				t.Errorf("output leaks a secret: %s", s)
			}
		}
	}
}

func checkRds(t *testing.T, s *secretsource.Secret) {
	t.Helper()
	if s.Name() != secretName || s.Text() != rdsValue || s.Type() != "Rds" || s.VersionID() == "" ||
		!s.HasStage(secretsource.StageCurrent) || s.CreateTime().IsZero() {
		t.Fatalf("unexpected secret %v stages=%v created=%v", s, s.VersionStages(), s.CreateTime())
	}
}

func TestGetSecretHTTPS(t *testing.T) {
	credtest.Hermetic(t)
	srv := startEmulator(t)
	src, logs := newSource(t, kms.Config{Region: tlsRegion(srv, region), Credential: accessKey(t),
		RootCAs: srv.CertPool(), FetchExtendedConfig: true})
	s, err := src.GetSecret(context.Background(), secretName)
	if err != nil {
		t.Fatal(err)
	}
	checkRds(t, s)
	if !s.AutomaticRotation() || s.RotationInterval() != 7*24*time.Hour || s.NextRotationDate().IsZero() {
		t.Errorf("rotation fields: auto=%v interval=%v next=%v", s.AutomaticRotation(), s.RotationInterval(), s.NextRotationDate())
	}
	if !strings.Contains(s.ExtendedConfig(), "SingleUser") {
		t.Errorf("ExtendedConfig = %q", s.ExtendedConfig())
	}
	if o := s.Origin(); o.Source != "kms" || o.Region != region || o.Endpoint != srv.KMSTLSAddr() || o.RequestID == "" {
		t.Errorf("Origin = %+v, want kms, %s, endpoint %s and a request id", o, region, srv.KMSTLSAddr())
	}
	assertNoLeak(t, logs.String())
}

func TestGetSecretHTTPAndBinary(t *testing.T) {
	credtest.Hermetic(t)
	srv := startEmulator(t, kmstest.WithSecret(kmstest.SecretSpec{Name: "bin", DataType: "binary", Data: "AAEC/w=="}))
	src, _ := newSource(t, kms.Config{Region: kms.Region{ID: region, Endpoint: srv.KMSAddr()},
		Credential: accessKey(t), Scheme: "http"})
	s, err := src.GetSecret(context.Background(), "bin")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(s.Bytes(), []byte{0, 1, 2, 255}) || s.DataType() != secretsource.DataBinary || s.ExtendedConfig() != "" {
		t.Errorf("binary secret: %v %v %q", s.Bytes(), s.DataType(), s.ExtendedConfig())
	}
}

func TestTLSVerifiedByDefault(t *testing.T) {
	credtest.Hermetic(t)
	srv := startEmulator(t)
	src, _ := newSource(t, kms.Config{Region: tlsRegion(srv, region), Credential: accessKey(t)})
	_, err := src.GetSecret(context.Background(), secretName)
	var e *secretsource.Error
	if !errors.As(err, &e) || e.Kind != secretsource.KindTLS || e.Retryable() || !errors.Is(err, secretsource.ErrTLS) || !strings.Contains(e.Error(), "TLS") {
		t.Fatalf("want a TLS verification error, got %v", err)
	}
	if srv.Calls("GetSecretValue", "") != 0 {
		t.Error("the request reached the server despite an untrusted certificate")
	}
}

func TestGetSecretVersion(t *testing.T) {
	credtest.Hermetic(t)
	srv := startEmulator(t)
	before, _ := srv.Secret(secretName)
	newID, err := srv.RotateSecret(secretName)
	if err != nil {
		t.Fatal(err)
	}
	src, _ := newSource(t, kms.Config{Region: tlsRegion(srv, region), Credential: accessKey(t), RootCAs: srv.CertPool()})
	cur, err := src.GetSecret(context.Background(), secretName)
	if err != nil {
		t.Fatal(err)
	}
	if cur.VersionID() != newID || cur.Text() == rdsValue {
		t.Errorf("current after rotation: version %s (want %s)", cur.VersionID(), newID)
	}
	prev, err := src.GetSecretVersion(context.Background(), secretName, secretsource.VersionRef{Stage: secretsource.StagePrevious})
	if err != nil {
		t.Fatal(err)
	}
	if prev.VersionID() != before.CurrentVersionID || prev.Text() != rdsValue || !prev.HasStage(secretsource.StagePrevious) {
		t.Errorf("previous: version %s stages %v", prev.VersionID(), prev.VersionStages())
	}
	// secretName is an Rds secret: KMS checks a version id only together with a stage, and ignores it alone.
	byID, err := src.GetSecretVersion(context.Background(), secretName,
		secretsource.VersionRef{Stage: secretsource.StagePrevious, VersionID: before.CurrentVersionID})
	if err != nil || byID.VersionID() != before.CurrentVersionID {
		t.Errorf("by stage and version id: %v %v", byID, err)
	}
	_, err = src.GetSecretVersion(context.Background(), secretName,
		secretsource.VersionRef{Stage: secretsource.StagePrevious, VersionID: "no-such-version"})
	if !errors.Is(err, secretsource.ErrNotFound) {
		t.Errorf("unknown version: %v", err)
	}
}

func TestErrors(t *testing.T) {
	credtest.Hermetic(t)
	srv := startEmulator(t)
	cases := []struct {
		name   string
		cred   kms.CredentialOptions
		secret string
		kind   secretsource.Kind
		code   string
	}{
		{"not found", kms.CredentialOptions{Type: "access_key", AccessKeyID: testAK, AccessKeySecret: testSecret}, "missing",
			secretsource.KindNotFound, "Forbidden.ResourceNotFound"},
		{"wrong secret", kms.CredentialOptions{Type: "access_key", AccessKeyID: testAK, AccessKeySecret: "wrong-" + testSecret}, secretName,
			secretsource.KindInvalidCredentials, "SignatureDoesNotMatch"},
		{"unknown key", kms.CredentialOptions{Type: "access_key", AccessKeyID: "LTAInobody", AccessKeySecret: testSecret}, secretName,
			secretsource.KindInvalidCredentials, "InvalidAccessKeyId.NotFound"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cred, err := kms.NewCredential(c.cred)
			if err != nil {
				t.Fatal(err)
			}
			src, logs := newSource(t, kms.Config{Region: tlsRegion(srv, region), Credential: cred, RootCAs: srv.CertPool()})
			_, err = src.GetSecret(context.Background(), c.secret)
			var e *secretsource.Error
			if !errors.As(err, &e) {
				t.Fatalf("want *secretsource.Error, got %T %v", err, err)
			}
			if e.Kind != c.kind || e.Code != c.code || e.RequestID == "" || e.Secret != c.secret || e.Region != region {
				t.Errorf("got kind=%v code=%q request=%q secret=%q region=%q", e.Kind, e.Code, e.RequestID, e.Secret, e.Region)
			}
			if e.Retryable() {
				t.Error("permanent error reported retryable")
			}
			assertNoLeak(t, append(chainTexts(err), logs.String())...)
			if strings.Contains(err.Error(), testAK) && c.name != "not found" {
				// the AccessKeyId may appear in the server's string to sign: it must be cut.
				t.Errorf("error shows the AccessKeyId: %v", err)
			}
		})
	}
}

func TestCredentialTypes(t *testing.T) {
	credtest.Hermetic(t)
	srv := startEmulator(t)
	credtest.TrustForSTS(t, srv)
	ck, err := srv.NewClientKey()
	if err != nil {
		t.Fatal(err)
	}

	// A temporary key + token for the static "sts" type, issued by the
	// emulator's STS through credentials-go's RAM role provider.
	roleCred, err := kms.NewCredential(kms.CredentialOptions{Type: kms.CredentialRAMRoleARN, AccessKeyID: testAK,
		AccessKeySecret: testSecret, RoleARN: srv.RoleARN(), RoleSessionName: "kmsdb-test", STSEndpoint: srv.STSAddr()})
	if err != nil {
		t.Fatal(err)
	}
	tmp, err := roleCred.GetCredential()
	if err != nil {
		t.Fatal(err)
	}

	cases := []struct {
		name string
		opts kms.CredentialOptions
		env  map[string]string
	}{
		{"access_key", kms.CredentialOptions{Type: kms.CredentialAccessKey, AccessKeyID: testAK, AccessKeySecret: testSecret}, nil},
		{"sts", kms.CredentialOptions{Type: kms.CredentialSTS, AccessKeyID: *tmp.AccessKeyId, AccessKeySecret: *tmp.AccessKeySecret,
			SecurityToken: *tmp.SecurityToken}, nil},
		{"ram_role_arn", kms.CredentialOptions{Type: kms.CredentialRAMRoleARN, AccessKeyID: testAK, AccessKeySecret: testSecret,
			RoleARN: srv.RoleARN(), RoleSessionName: "kmsdb", STSEndpoint: srv.STSAddr(), SessionDuration: time.Hour}, nil},
		{"ecs_ram_role", kms.CredentialOptions{Type: kms.CredentialECSRAMRole, RoleName: srv.MetadataRoleName(), Proxy: srv.MetadataURL()},
			map[string]string{"ALIBABA_CLOUD_ECS_METADATA_DISABLED": "false"}},
		{"ecs_ram_role discovered role", kms.CredentialOptions{Type: kms.CredentialECSRAMRole, Proxy: srv.MetadataURL(), DisableIMDSv1: true},
			map[string]string{"ALIBABA_CLOUD_ECS_METADATA_DISABLED": "false"}},
		{"oidc_role_arn", kms.CredentialOptions{Type: kms.CredentialOIDCRoleARN, RoleARN: srv.RoleARN(),
			OIDCProviderARN: srv.OIDCProviderARN(), OIDCTokenFile: srv.OIDCTokenFile(), STSEndpoint: srv.STSAddr()}, nil},
		{"credentials_uri", kms.CredentialOptions{Type: kms.CredentialCredentialsURI, URL: srv.CredentialsURI()}, nil},
		{"default chain from env", kms.CredentialOptions{Type: kms.CredentialDefault},
			map[string]string{"ALIBABA_CLOUD_ACCESS_KEY_ID": testAK, "ALIBABA_CLOUD_ACCESS_KEY_SECRET": testSecret}},
		{"default chain, credentials URI", kms.CredentialOptions{Type: kms.CredentialDefault},
			map[string]string{"ALIBABA_CLOUD_CREDENTIALS_URI": srv.CredentialsURI()}},
		{"client_key", kms.CredentialOptions{Type: kms.CredentialClientKey, ClientKeyFile: ck.File, ClientKeyPassword: ck.Password}, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			for k, v := range c.env {
				t.Setenv(k, v)
			}
			cred, err := kms.NewCredential(c.opts)
			if err != nil {
				t.Fatal(err)
			}
			src, logs := newSource(t, kms.Config{Region: tlsRegion(srv, region), Credential: cred, RootCAs: srv.CertPool()})
			s, err := src.GetSecret(context.Background(), secretName)
			if err != nil {
				t.Fatal(err)
			}
			checkRds(t, s)
			// A second call reuses the cached temporary credential.
			if _, err := src.GetSecret(context.Background(), secretName); err != nil {
				t.Fatal(err)
			}
			assertNoLeak(t, logs.String(), *tmp.AccessKeySecret)
		})
	}
}

func TestCredentialErrors(t *testing.T) {
	credtest.Hermetic(t)
	srv := startEmulator(t)
	credtest.TrustForSTS(t, srv)
	cases := []struct {
		name string
		opts kms.CredentialOptions
		kind secretsource.Kind
	}{
		{"assume role with a wrong secret", kms.CredentialOptions{Type: kms.CredentialRAMRoleARN, AccessKeyID: testAK,
			AccessKeySecret: "wrong", RoleARN: srv.RoleARN(), STSEndpoint: srv.STSAddr()}, secretsource.KindInvalidCredentials},
		{"STS down", kms.CredentialOptions{Type: kms.CredentialRAMRoleARN, AccessKeyID: testAK,
			AccessKeySecret: testSecret, RoleARN: srv.RoleARN(), STSEndpoint: deadAddr(t)}, secretsource.KindNetwork},
		{"OIDC provider unknown", kms.CredentialOptions{Type: kms.CredentialOIDCRoleARN, RoleARN: srv.RoleARN(),
			OIDCProviderARN: "acs:ram::1:oidc-provider/nope", OIDCTokenFile: srv.OIDCTokenFile(), STSEndpoint: srv.STSAddr()},
			secretsource.KindInvalidCredentials},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cred, err := kms.NewCredential(c.opts)
			if err != nil {
				t.Fatal(err)
			}
			src, logs := newSource(t, kms.Config{Region: tlsRegion(srv, region), Credential: cred, RootCAs: srv.CertPool()})
			_, err = src.GetSecret(context.Background(), secretName)
			if secretsource.KindOf(err) != c.kind {
				t.Fatalf("kind %v, want %v: %v", secretsource.KindOf(err), c.kind, err)
			}
			texts := append(chainTexts(err), logs.String())
			assertNoLeak(t, texts...)
			for _, s := range texts {
				if strings.Contains(s, "Signature=") || strings.Contains(s, "AccessKeyId="+testAK) {
					t.Errorf("error chain shows the signed STS URL: %s", s)
				}
			}
		})
	}
}

func TestNewCredentialConfigErrors(t *testing.T) {
	credtest.Hermetic(t)
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.json")
	if err := os.WriteFile(bad, []byte("not json"), 0o600); err != nil {
		t.Fatal(err)
	}
	srv := startEmulator(t)
	ck, err := srv.NewClientKey()
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		opts kms.CredentialOptions
		want string
	}{
		{"unknown type", kms.CredentialOptions{Type: "magic"}, `unknown credential type "magic"`},
		{"ak without id", kms.CredentialOptions{Type: "access_key", AccessKeySecret: "x"}, "AccessKeyID"},
		{"ak without secret", kms.CredentialOptions{Type: "access_key", AccessKeyID: "x"}, "AccessKeySecret"},
		{"sts without token", kms.CredentialOptions{Type: "sts", AccessKeyID: "x", AccessKeySecret: "y"}, "SecurityToken"},
		{"role without arn", kms.CredentialOptions{Type: "ram_role_arn", AccessKeyID: "x", AccessKeySecret: "y"}, "RoleARN"},
		{"oidc without provider", kms.CredentialOptions{Type: "oidc_role_arn", RoleARN: "r", OIDCTokenFile: "f"}, "OIDCProviderARN"},
		{"uri without url", kms.CredentialOptions{Type: "credentials_uri"}, "URL"},
		{"ecs disabled", kms.CredentialOptions{Type: "ecs_ram_role"}, "ecs_ram_role"},
		{"client key missing file", kms.CredentialOptions{Type: "client_key", ClientKeyFile: filepath.Join(dir, "none.json"), ClientKeyPassword: "hunter2pw"}, "none.json"},
		{"client key not json", kms.CredentialOptions{Type: "client_key", ClientKeyFile: bad, ClientKeyPassword: "hunter2pw"}, "not a JSON object"},
		{"client key wrong password", kms.CredentialOptions{Type: "client_key", ClientKeyFile: ck.File, ClientKeyPassword: "hunter2pw"}, "wrong password"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := kms.NewCredential(c.opts)
			if !errors.Is(err, secretsource.ErrConfig) || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("got %v, want a config error mentioning %q", err, c.want)
			}
			if strings.Contains(err.Error(), "hunter2pw") {
				t.Errorf("error shows the password: %v", err)
			}
		})
	}
}

func TestNewConfigErrors(t *testing.T) {
	credtest.Hermetic(t)
	cred := accessKey(t)
	cases := []struct {
		name string
		cfg  kms.Config
		want string
	}{
		{"no region", kms.Config{Credential: cred}, "no region"},
		{"empty region id", kms.Config{Credential: cred, Region: kms.Region{VPC: true}}, "set the region id"},
		{"bad region id", kms.Config{Credential: cred, Region: kms.Region{ID: "cn/hz"}}, "cn/hz"},
		{"endpoint with scheme", kms.Config{Credential: cred, Region: kms.Region{ID: "cn", Endpoint: "https://x"}}, "has a scheme"},
		{"endpoint with userinfo", kms.Config{Credential: cred, Region: kms.Region{ID: "cn", Endpoint: "app:hunter2-kms@kms.example"}}, "holds '@'"},
		{"endpoint with a bad port", kms.Config{Credential: cred, Region: kms.Region{ID: "cn", Endpoint: "kms.example:0"}}, "port"},
		{"bad scheme", kms.Config{Credential: cred, Region: kms.Region{ID: "cn"}, Scheme: "ftp"}, "ftp"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := kms.New(c.cfg)
			if !errors.Is(err, secretsource.ErrConfig) || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("got %v, want a config error mentioning %q", err, c.want)
			}
			if strings.Contains(err.Error(), "hunter2") {
				t.Fatalf("the error quotes the endpoint's userinfo: %v", err)
			}
		})
	}
}

func TestRegionHost(t *testing.T) {
	for _, c := range []struct {
		r    kms.Region
		want string
	}{
		{kms.Region{ID: "cn-hangzhou"}, "kms.cn-hangzhou.aliyuncs.com"},
		{kms.Region{ID: "cn-hangzhou", VPC: true}, "kms-vpc.cn-hangzhou.aliyuncs.com"},
		{kms.Region{ID: "cn-hangzhou", VPC: true, Endpoint: "kst-1.cryptoservice.kms.aliyuncs.com"}, "kst-1.cryptoservice.kms.aliyuncs.com"},
	} {
		if got := c.r.Host(); got != c.want {
			t.Errorf("%+v.Host() = %q, want %q", c.r, got, c.want)
		}
	}
}
