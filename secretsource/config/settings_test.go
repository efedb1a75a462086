package config

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/kmsdb/kmsdb/secretsource"
	"github.com/kmsdb/kmsdb/secretsource/dkms"
	"github.com/kmsdb/kmsdb/secretsource/kms"
	"github.com/kmsdb/kmsdb/secretsource/kmstest"
	"github.com/kmsdb/kmsdb/secretsource/local"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// envOf is a WithLookupEnv for a fixed environment.
func envOf(m map[string]string) Option {
	return WithLookupEnv(func(k string) (string, bool) { v, ok := m[k]; return v, ok })
}

func writeFile(t testing.TB, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestPropertiesFileReadAtEachLoad: there is no process-wide cache of
// properties files: a file edited between two loads is read anew, by
// concurrent loads too.
func TestPropertiesFileReadAtEachLoad(t *testing.T) {
	dir := t.TempDir()
	p := writeFile(t, dir, "a.properties", `cache_client_region_id=[{"regionId":"cn-hangzhou"}]`)
	load := func() *Settings {
		s, err := LoadSettings(context.Background(), WithPropertiesFile(p), WithLookupEnv(nil), WithAccessKey("id", "secret"))
		if err != nil {
			t.Error(err)
			return &Settings{Regions: []kms.Region{{}}}
		}
		return s
	}
	if got := load().Regions[0].ID; got != "cn-hangzhou" {
		t.Fatalf("region %s", got)
	}
	writeFile(t, dir, "a.properties", `cache_client_region_id=[{"regionId":"cn-shanghai"}]`)
	var wg sync.WaitGroup
	for range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if got := load().Regions[0].ID; got != "cn-shanghai" {
				t.Errorf("edited file not read again: region %s", got)
			}
		}()
	}
	wg.Wait()
}

func TestPrecedence(t *testing.T) {
	file, regionsOnly := precedenceFiles(t)
	ctx := context.Background()

	t.Run("file alone", func(t *testing.T) {
		s, err := LoadSettings(ctx, WithPropertiesFile(file), WithLookupEnv(nil))
		if err != nil {
			t.Fatal(err)
		}
		if s.Credential.Type != kms.CredentialAccessKey || s.Credential.AccessKeyID != "file-id" ||
			s.Credential.AccessKeySecret != "file-secret==" || s.Regions[0].ID != "cn-file" {
			t.Errorf("settings %+v", s.Credential.AccessKeyID)
		}
		if !strings.HasPrefix(s.CredentialOrigin, "properties file") || s.RefreshSecretTTL != time.Minute ||
			strings.Join(s.SecretNames, "|") != "a|b|c" || s.PropertiesFile != file {
			t.Errorf("origin %q ttl %v names %q", s.CredentialOrigin, s.RefreshSecretTTL, s.SecretNames)
		}
	})
	t.Run("env over file, key by key", func(t *testing.T) {
		s, err := LoadSettings(ctx, WithPropertiesFile(file), envOf(map[string]string{
			"credentials_access_secret": "env-secret", "cache_client_region_id": `[{"regionId":"cn-env"}]`,
		}))
		if err != nil {
			t.Fatal(err)
		}
		if s.Credential.AccessKeyID != "file-id" || s.Credential.AccessKeySecret != "env-secret" || s.Regions[0].ID != "cn-env" ||
			s.RegionsOrigin != originEnv {
			t.Errorf("got id %q, env secret %v, region %q from %q", s.Credential.AccessKeyID, s.Credential.AccessKeySecret == "env-secret", s.Regions[0].ID, s.RegionsOrigin)
		}
	})
	t.Run("code over env over file", func(t *testing.T) {
		s, err := LoadSettings(ctx, WithPropertiesFile(file), WithRegion("cn-code"), WithAccessKey("code-id", "code-secret"),
			envOf(map[string]string{"credentials_type": "ecs_ram_role", "credentials_access_key_id": "env-id",
				"cache_client_region_id": `[{"regionId":"cn-env"}]`}))
		if err != nil {
			t.Fatal(err)
		}
		if s.Credential.Type != kms.CredentialAccessKey || s.Credential.AccessKeyID != "code-id" || s.Regions[0].ID != "cn-code" ||
			len(s.Regions) != 1 || s.CredentialOrigin != originCode {
			t.Errorf("got %s %q %q", s.Credential.Type, s.Credential.AccessKeyID, s.Regions[0].ID)
		}
	})
	t.Run("file with only regions keeps code credentials", func(t *testing.T) {
		s, err := LoadSettings(ctx, WithPropertiesFile(regionsOnly), WithAccessKey("code-id", "code-secret"), WithLookupEnv(nil))
		if err != nil {
			t.Fatal(err)
		}
		if s.Credential.AccessKeyID != "code-id" || s.Regions[0].ID != "cn-file" || !s.Regions[0].VPC {
			t.Errorf("got %q %+v", s.Credential.AccessKeyID, s.Regions)
		}
	})
	t.Run("WithCredential ignores broken credential keys", func(t *testing.T) {
		cred, err := kms.NewCredential(kms.CredentialOptions{Type: kms.CredentialAccessKey, AccessKeyID: "a", AccessKeySecret: "b"})
		if err != nil {
			t.Fatal(err)
		}
		s, err := LoadSettings(ctx, WithoutPropertiesFile(), WithCredential(cred),
			envOf(map[string]string{"credentials_type": "bogus", "cache_client_region_id": "cn-hangzhou, cn-shanghai"}))
		if err != nil {
			t.Fatal(err)
		}
		if s.credential != cred || len(s.Regions) != 2 || s.Regions[1].ID != "cn-shanghai" {
			t.Errorf("got %v", s)
		}
	})
}

// precedenceFiles writes a properties file setting a credential, a region
// and the cache keys, and one setting only a region.
func precedenceFiles(t *testing.T) (file, regionsOnly string) {
	dir := t.TempDir()
	file = writeFile(t, dir, "p.properties", strings.Join([]string{
		"credentials_type=ak",
		"credentials_access_key_id=file-id",
		"credentials_access_secret=file-secret==",
		`cache_client_region_id=[{"regionId":"cn-file"}]`,
		"refresh_secret_ttl=60000",
		"secret_names=a, b ,c",
	}, "\n"))
	regionsOnly = writeFile(t, dir, "regions.properties", `cache_client_region_id=[{"regionId":"cn-file","vpc":"true"}]`)
	return file, regionsOnly
}

// TestPropertiesFileLocation: ./secretsmanager.properties is read when no
// file is named, KMSDB_PROPERTIES_FILE names another, and a missing default
// file is no error.
func TestPropertiesFileLocation(t *testing.T) {
	file, _ := precedenceFiles(t)
	ctx := context.Background()
	t.Run("default file in working directory", func(t *testing.T) {
		wd := t.TempDir()
		writeFile(t, wd, DefaultPropertiesFile, "credentials_type=ak\ncredentials_access_key_id=wd\ncredentials_access_secret=x==\n"+
			`cache_client_region_id=[{"regionId":"cn-wd"}]`+"\nunknown_key=1\n")
		t.Chdir(wd)
		s, err := LoadSettings(ctx, WithLookupEnv(nil))
		if err != nil {
			t.Fatal(err)
		}
		if s.Credential.AccessKeyID != "wd" || s.Credential.AccessKeySecret != "x==" || len(s.Warnings) != 1 ||
			!strings.Contains(s.Warnings[0], "line 5: unknown key ignored") || strings.Contains(s.Warnings[0], "unknown_key") {
			t.Errorf("got %q warnings %q", s.Credential.AccessKeyID, s.Warnings)
		}
		// KMSDB_PROPERTIES_FILE names another file.
		s, err = LoadSettings(ctx, envOf(map[string]string{EnvPropertiesFile: file}))
		if err != nil || s.Credential.AccessKeyID != "file-id" {
			t.Errorf("KMSDB_PROPERTIES_FILE: %v %v", s, err)
		}
	})
	t.Run("no default file, env only", func(t *testing.T) {
		t.Chdir(t.TempDir())
		s, err := LoadSettings(ctx, envOf(map[string]string{"cache_client_region_id": `[{"regionId":"cn-hangzhou"}]`}))
		if err != nil {
			t.Fatal(err)
		}
		if s.PropertiesFile != "" || s.Credential.Type != kms.CredentialDefault {
			t.Errorf("got file %q credential %q", s.PropertiesFile, s.Credential.Type)
		}
	})
}

// fixtures are files the broken-configuration table points at.
type fixtures struct {
	dir, clientKey, clientKeyPassword, passwordFile, emptyFile, notPEM, ca, notJSON string
}

func newFixtures(t *testing.T) fixtures {
	dir := t.TempDir()
	ck, err := kmstest.WriteClientKey(dir)
	if err != nil {
		t.Fatal(err)
	}
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "ca"}, NotBefore: time.Now(),
		NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return fixtures{
		dir: dir, clientKey: ck.File, clientKeyPassword: ck.Password, passwordFile: ck.PasswordFile,
		emptyFile: writeFile(t, dir, "empty", "  \n"),
		notPEM:    writeFile(t, dir, "notpem.crt", "hunter2"),
		ca:        writeFile(t, dir, "ca.crt", string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))),
		notJSON:   writeFile(t, dir, "notjson.json", "hunter2"),
	}
}

const secretValue = "hunter2"

func TestBrokenConfigurations(t *testing.T) { // long: table
	fx := newFixtures(t)
	const region = `[{"regionId":"cn-hangzhou"}]`
	ak := map[string]string{"credentials_type": "ak", "credentials_access_key_id": "LTAI", "credentials_access_secret": secretValue, "cache_client_region_id": region}
	env := func(base map[string]string, kv ...string) map[string]string {
		m := map[string]string{}
		for k, v := range base {
			m[k] = v
		}
		for i := 0; i < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		return m
	}
	dkmsEnv := func(entry string) map[string]string {
		return map[string]string{"cache_client_dkms_config_info": "[" + entry + "]", "DKMS_PW": secretValue}
	}
	dk := func(extra string) string {
		return `{"regionId":"cn-hangzhou","endpoint":"kst-1.cryptoservice.kms.aliyuncs.com","clientKeyFile":"` + fx.clientKey + `"` + extra + `}`
	}
	tests := []struct {
		name  string
		env   map[string]string
		props string // properties file content, if any
		opts  []Option
		want  string // the error must contain it (the key, and often what is expected)
	}{
		{"unknown credentials_type", env(ak, "credentials_type", "password"), "", nil, `credentials_type (environment variable): unknown type "password"`},
		{"ak without id", env(ak, "credentials_access_key_id", ""), "", nil, "credentials_access_key_id: required for credentials_type \"ak\""},
		{"ak without secret", env(ak, "credentials_access_secret", ""), "", nil, "credentials_access_secret: required"},
		{"ak in file without secret", nil, "credentials_type=ak\ncredentials_access_key_id=LTAI\ncache_client_region_id=" + region, nil, "credentials_access_secret: required"},
		{"token without token", env(ak, "credentials_type", "token", "credentials_access_token_id", "x"), "", nil, "credentials_access_token: required"},
		{"sts without role arn", env(ak, "credentials_type", "sts"), "", nil, "credentials_role_arn: required for credentials_type \"sts\""},
		{"ram_role with malformed arn", env(ak, "credentials_type", "ram_role", "credentials_role_arn", "role/x"), "", nil, "credentials_role_arn (environment variable): expected a RAM ARN"},
		{"sts_token without token", env(ak, "credentials_type", "sts_token"), "", nil, "credentials_security_token: required"},
		{"sts endpoint with scheme", env(ak, "credentials_type", "sts", "credentials_role_arn", "acs:ram::1:role/r", "credentials_sts_endpoint", "https://sts"), "", nil, "credentials_sts_endpoint: expected host or host:port"},
		{"session expiration out of range", env(ak, "credentials_type", "sts", "credentials_role_arn", "acs:ram::1:role/r", "credentials_role_session_expiration", "60"), "", nil, "credentials_role_session_expiration (environment variable): expected a number of seconds"},
		{"client_key without path", env(ak, "credentials_type", "client_key"), "", nil, "client_key_private_key_path: required"},
		{"client_key file missing", env(ak, "credentials_type", "client_key", "client_key_private_key_path", fx.dir+"/nope.json"), "", nil, "client_key_private_key_path: client key file \"" + fx.dir + "/nope.json\" does not exist"},
		{"client_key file is a directory", env(ak, "credentials_type", "client_key", "client_key_private_key_path", fx.dir), "", nil, "is a directory"},
		{"client_key password env unset", env(ak, "credentials_type", "client_key", "client_key_private_key_path", fx.clientKey, "client_key_password_from_env_variable", "NO_SUCH_VAR"), "", nil, "client_key_password_from_env_variable (environment variable): names the environment variable NO_SUCH_VAR, which is unset or empty"},
		{"client_key without password", env(ak, "credentials_type", "client_key", "client_key_private_key_path", fx.clientKey), "", nil, "client_key needs its password"},
		{"client_key password file missing", env(ak, "credentials_type", "client_key", "client_key_private_key_path", fx.clientKey, "client_key_password_from_file_path", fx.dir+"/nope"), "", nil, "client_key_password_from_file_path (environment variable): file"},
		{"client_key password file empty", env(ak, "credentials_type", "client_key", "client_key_private_key_path", fx.clientKey, "client_key_password_from_file_path", fx.emptyFile), "", nil, "is empty"},
		{"client_key wrong password", env(ak, "credentials_type", "client_key", "client_key_private_key_path", fx.clientKey, "client_key_password", secretValue), "", nil, "wrong password"},
		{"client_key not JSON", env(ak, "credentials_type", "client_key", "client_key_private_key_path", fx.notJSON, "client_key_password", secretValue), "", nil, "is not a JSON object"},
		{"oidc without provider", env(ak, "credentials_type", "oidc_role_arn", EnvRoleARN, "acs:ram::1:role/r"), "", nil, "credentials_oidc_provider_arn: required for credentials_type \"oidc_role_arn\" (or set ALIBABA_CLOUD_OIDC_PROVIDER_ARN, as ACK's RRSA does)"},
		{"oidc token file missing", env(ak, "credentials_type", "oidc_role_arn", EnvRoleARN, "acs:ram::1:role/r", EnvOIDCProviderARN, "p", EnvOIDCTokenFile, fx.dir+"/token"), "", nil, "credentials_oidc_token_file: file"},
		{"credentials_uri missing", env(ak, "credentials_type", "credentials_uri"), "", nil, `credentials_uri: required for credentials_type "credentials_uri" (or set ALIBABA_CLOUD_CREDENTIALS_URI)`},
		{"credentials_uri not http", env(ak, "credentials_type", "credentials_uri", "credentials_uri", "ftp://x/"), "", nil, "credentials_uri: expected an http:// or https:// URL"},
		{"region JSON malformed", env(ak, "cache_client_region_id", `[{"regionId":"cn-hangzhou"`), "", nil, "cache_client_region_id (environment variable): truncated JSON"},
		{"region JSON syntax", env(ak, "cache_client_region_id", `[{regionId:"cn-hangzhou"}]`), "", nil, "invalid JSON at byte 3"},
		{"region JSON object not array", env(ak, "cache_client_region_id", `{"regionId":"cn-hangzhou"}`), "", nil, "expected a JSON array of objects, found a JSON object"},
		{"region JSON empty", env(ak, "cache_client_region_id", `[]`), "", nil, "empty array"},
		{"region without regionId", env(ak, "cache_client_region_id", `[{"endpoint":"kms.cn-hangzhou.aliyuncs.com"}]`), "", nil, `entry 0: "regionId" is required`},
		{"region id not a string", env(ak, "cache_client_region_id", `[{"regionId":7}]`), "", nil, `"regionId": expected a JSON string`},
		{"region vpc not bool", env(ak, "cache_client_region_id", `[{"regionId":"a"},{"regionId":"b","vpc":"maybe"}]`), "", nil, `entry 1: "vpc": expected true or false`},
		{"region unknown field", env(ak, "cache_client_region_id", `[{"regionId":"a","isVpc":true}]`), "", nil, `unknown field "isVpc"`},
		{"region endpoint with scheme", env(ak, "cache_client_region_id", `[{"regionId":"a","endpoint":"https://kms.a.aliyuncs.com"}]`), "", nil, `"endpoint": expected host or host:port: it has a scheme`},
		{"region endpoint with userinfo", env(ak, "cache_client_region_id", `[{"regionId":"a","endpoint":"app:hunter2-region@kms.a.aliyuncs.com"}]`), "", nil, `"endpoint": expected host or host:port: it holds '@'`},
		{"region list with a space", env(ak, "cache_client_region_id", `cn hangzhou`), "", nil, "expected a region id"},
		{"no region at all", env(ak, "cache_client_region_id", ""), "", nil, "no KMS region and no dedicated KMS instance configured"},
		{"dkms JSON malformed", dkmsEnv(`{"regionId":`), "", nil, "cache_client_dkms_config_info (environment variable): "},
		{"dkms without clientKeyFile", dkmsEnv(`{"regionId":"a","endpoint":"e"}`), "", nil, `"clientKeyFile" is required`},
		{"dkms password in env and file", dkmsEnv(dk(`,"passwordFromEnvVariable":"DKMS_PW","passwordFromFilePath":"` + fx.passwordFile + `"`)), "", nil, `set only one of "passwordFromEnvVariable" and "passwordFromFilePath"`},
		{"dkms password env unset", dkmsEnv(dk(`,"passwordFromEnvVariable":"NOPE"`)), "", nil, "cache_client_dkms_config_info[0].passwordFromEnvVariable (environment variable): names the environment variable NOPE"},
		{"dkms no password", dkmsEnv(dk(``)), "", nil, "no password for the client key"},
		{"dkms password file empty", dkmsEnv(dk(`,"passwordFromFilePath":"` + fx.emptyFile + `"`)), "", nil, "is empty"},
		{"dkms inline password", dkmsEnv(dk(`,"password":"hunter2"`)), "", nil, `"password": an inline password is not read`},
		{"dkms client key missing", dkmsEnv(`{"regionId":"a","endpoint":"e","clientKeyFile":"/nonexistent/ck.json","passwordFromEnvVariable":"DKMS_PW"}`), "", nil, "cache_client_dkms_config_info[0].clientKeyFile (environment variable): client key file \"/nonexistent/ck.json\" does not exist"},
		{"dkms CA file missing", dkmsEnv(dk(`,"passwordFromEnvVariable":"DKMS_PW","caFilePath":"/nonexistent/ca.pem"`)), "", nil, "cache_client_dkms_config_info[0].caFilePath (environment variable): CA file \"/nonexistent/ca.pem\" does not exist"},
		{"dkms CA file not PEM", dkmsEnv(dk(`,"passwordFromEnvVariable":"DKMS_PW","caFilePath":"` + fx.notPEM + `"`)), "", nil, "holds no PEM certificate"},
		{"dkms wrong client key password", dkmsEnv(dk(`,"passwordFromEnvVariable":"DKMS_PW"`)), "", nil, "wrong password"},
		{"dkms http protocol", dkmsEnv(dk(`,"passwordFromEnvVariable":"DKMS_PW","protocol":"http"`)), "", nil, `"protocol": dedicated KMS is reached over https only`},
		{"dkms ignoreSslCerts not bool", dkmsEnv(dk(`,"passwordFromEnvVariable":"DKMS_PW","ignoreSslCerts":"yes"`)), "", nil, `"ignoreSslCerts": expected true or false`},
		{"dkms unknown field", dkmsEnv(dk(`,"passwordFromEnv":"DKMS_PW"`)), "", nil, `unknown field "passwordFromEnv"`},
		{"properties malformed \\u escape", nil, "credentials_access_secret=hunter2\\u12\n", nil, "line 1: malformed \\uXXXX escape"},
		{"explicit properties file missing", ak, "", []Option{WithPropertiesFile(fx.dir + "/none.properties")}, "WithPropertiesFile: properties file"},
		{"KMSDB_PROPERTIES_FILE missing", env(ak, EnvPropertiesFile, fx.dir+"/none.properties"), "", nil, "KMSDB_PROPERTIES_FILE: properties file"},
		{"refresh_secret_ttl not a number", env(ak, "refresh_secret_ttl", "1h"), "", nil, "refresh_secret_ttl (environment variable): expected a positive number of milliseconds"},
		{"KMSDB_LOCAL_SECRETS not bool", env(ak, EnvLocal, "maybe"), "", nil, "KMSDB_LOCAL_SECRETS (environment variable): expected true or false"},
		{"negative timeout", ak, "", []Option{WithTimeout(-time.Second)}, "WithTimeout (option): expected a positive duration"},
		{"nil credential", ak, "", []Option{WithCredential(nil)}, "WithCredential (option): nil credential"},
		{"bad region in code", ak, "", []Option{WithRegion("cn hangzhou")}, "WithRegion (option): region 0"},
		{"dkms in code without password", ak, "", []Option{WithDKMS(dkms.Endpoint{RegionID: "a", Endpoint: "e", ClientKeyFile: fx.clientKey})}, "WithDKMS (option): instance 0: Password is required"},
	}
	if len(tests) < 25 {
		t.Fatalf("only %d broken configurations", len(tests))
	}
	t.Chdir(t.TempDir()) // no ./secretsmanager.properties
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			opts := []Option{envOf(tt.env)}
			if tt.props != "" {
				opts = append(opts, WithPropertiesFile(writeFile(t, t.TempDir(), "p.properties", tt.props)))
			}
			src, err := Load(context.Background(), append(opts, tt.opts...)...)
			if err == nil {
				src.Close()
				t.Fatal("Load accepted a broken configuration")
			}
			msg := err.Error()
			if !strings.Contains(msg, tt.want) {
				t.Errorf("error %q\ndoes not contain %q", msg, tt.want)
			}
			if strings.Contains(msg, secretValue) || strings.Contains(msg, fx.clientKeyPassword) || strings.Contains(msg, "hunter2") {
				t.Errorf("error leaks a secret: %s", msg)
			}
			if !errors.Is(err, secretsource.ErrConfig) || secretsource.IsRetryable(err) {
				t.Errorf("not a permanent configuration error: %v", err)
			}
		})
	}
}

func TestLocalSettings(t *testing.T) {
	dir := t.TempDir()
	file := writeFile(t, dir, "s.yaml", "db/app: '{\"username\":\"u\",\"password\":\"p\"}'\n")
	ctx := context.Background()
	src, err := Load(ctx, envOf(map[string]string{EnvLocalSecretsFile: file}))
	if err != nil {
		t.Fatal(err)
	}
	if s, err := src.GetSecret(ctx, "db/app"); err != nil || s.VersionID() != "local" {
		t.Errorf("local file: %v %v", s, err)
	}
	t.Setenv("KMSDB_SECRET_DB_OTHER", "x")
	src, err = Load(ctx, envOf(map[string]string{EnvLocal: "true"}))
	if err != nil {
		t.Fatal(err)
	}
	if s, err := src.GetSecret(ctx, "db/other"); err != nil || s.Text() != "x" {
		t.Errorf("local env: %v %v", s, err)
	}
	src, err = Load(ctx, WithLocal(local.FromMap(map[string]string{"a": "b"})))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := src.GetSecret(ctx, "a"); err != nil {
		t.Error(err)
	}
}

func TestSettingsNeverPrintSecrets(t *testing.T) {
	s, err := LoadSettings(context.Background(), WithoutPropertiesFile(), WithLookupEnv(nil),
		WithRegion("cn-hangzhou"), WithAccessKey("LTAI", secretValue))
	if err != nil {
		t.Fatal(err)
	}
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%x", "%d"} {
		if out := fmt.Sprintf(verb, s); strings.Contains(out, secretValue) || strings.Contains(out, fmt.Sprintf("%x", secretValue)) {
			t.Errorf("%s prints the secret: %s", verb, out)
		}
	}
}

// TestSettingsValuesNeverPrintSecrets covers the forms the pointer test does
// not: a dereferenced Settings, its fields on their own, slog's text and
// JSON handlers and encoding/json, with an AccessKey secret, an STS token and
// a DKMS client key password in it.
func TestSettingsValuesNeverPrintSecrets(t *testing.T) {
	fx := newFixtures(t)
	const token, dkmsPW = "sts-token-value-9", "dkms-password-value-8"
	entry := `[{"regionId":"cn-hangzhou","endpoint":"kst-1.cryptoservice.kms.aliyuncs.com","clientKeyFile":"` + fx.clientKey +
		`","passwordFromEnvVariable":"DKMS_PW","caFilePath":"` + fx.ca + `"}]`
	s, err := LoadSettings(context.Background(), WithoutPropertiesFile(), envOf(map[string]string{
		"cache_client_dkms_config_info": entry, "DKMS_PW": dkmsPW,
		"credentials_type": "sts_token", "credentials_access_key_id": "LTAI", "credentials_access_secret": secretValue,
		"credentials_security_token": token,
	}))
	if err != nil {
		t.Fatal(err)
	}
	if s.Credential.SecurityToken != token || s.DKMS[0].Password != dkmsPW {
		t.Fatalf("the fixture did not load the secrets: %v", s)
	}
	var buf bytes.Buffer
	slog.New(slog.NewTextHandler(&buf, nil)).Info("settings", "v", *s, "p", s, "cred", s.Credential, "dkms", s.DKMS)
	slog.New(slog.NewJSONHandler(&buf, nil)).Info("settings", "v", *s, "p", s, "cred", s.Credential, "dkms", s.DKMS)
	js, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	outputs := []string{buf.String(), string(js)}
	for _, verb := range []string{"%v", "%+v", "%#v", "%s"} {
		outputs = append(outputs, fmt.Sprintf(verb, *s), fmt.Sprintf(verb, s.Credential), fmt.Sprintf(verb, s.DKMS))
	}
	for _, out := range outputs {
		for _, secret := range []string{secretValue, token, dkmsPW} {
			if strings.Contains(out, secret) {
				t.Errorf("a secret shows: %s", out)
			}
		}
	}
}
