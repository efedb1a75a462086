package config_test

import (
	"context"
	"crypto/x509"
	"errors"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kmsdb/kmsdb/internal/credtest"
	"github.com/kmsdb/kmsdb/secretsource"
	"github.com/kmsdb/kmsdb/secretsource/config"
	"github.com/kmsdb/kmsdb/secretsource/kms"
	"github.com/kmsdb/kmsdb/secretsource/kmstest"
)

const (
	testAK     = "LTAI5tConfigTestKey"
	testSecret = "cfg/Secret+with=equals==" // base64-like: Alibaba's Go client drops this line from a properties file
	dbPassword = "Pa55-config-never-printed"
	secretName = "db/app"
)

var rdsValue = `{"AccountName":"app","AccountPassword":"` + dbPassword + `"}`

// hermetic keeps credentials-go and config away from the machine's own
// configuration and from ./secretsmanager.properties.
func hermetic(t *testing.T) {
	t.Helper()
	credtest.Hermetic(t, "credentials_type", "credentials_access_key_id", "credentials_access_secret", "cache_client_region_id",
		"cache_client_dkms_config_info", "client_key_password", config.EnvPropertiesFile, config.EnvLocal, config.EnvLocalSecretsFile)
	t.Chdir(t.TempDir())
}

func startEmulator(t *testing.T) *kmstest.Server {
	t.Helper()
	return kmstest.Start(t, kmstest.WithAccessKey(testAK, testSecret),
		kmstest.WithSecret(kmstest.SecretSpec{Name: secretName, Type: "Rds", Data: rdsValue,
			ExtendedConfig: map[string]any{"SecretSubType": "SingleUser", "CustomData": map[string]any{"host": "db.internal", "port": 3306}}}))
}

func regionJSON(srv *kmstest.Server) string {
	return `[{"regionId":"cn-hangzhou","endpoint":"` + srv.KMSTLSAddr() + `"}]`
}

// fetch loads the source with opts, fetches the test secret and checks it.
func fetch(t *testing.T, srv *kmstest.Server, opts ...config.Option) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	src, err := config.Load(ctx, append([]config.Option{config.WithRootCAs(srv.CertPool())}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	s, err := src.GetSecret(ctx, secretName)
	if err != nil {
		if strings.Contains(err.Error(), testSecret) || strings.Contains(err.Error(), dbPassword) {
			t.Errorf("error leaks a secret")
		}
		t.Fatal(err)
	}
	a, err := secretsource.DecodeDBAccount(s)
	if err != nil {
		t.Fatal(err)
	}
	if a.Username != "app" || a.Password != dbPassword || a.Host != "db.internal" || a.Port != 3306 {
		t.Errorf("decoded %v (password ok: %v)", a, a.Password == dbPassword)
	}
}

// TestEnvAsAlibabaDocuments configures through the environment variables of
// Alibaba's README_environment.md (plus the emulator's CA in code).
func TestEnvAsAlibabaDocuments(t *testing.T) {
	hermetic(t)
	srv := startEmulator(t)
	t.Setenv("credentials_type", "ak")
	t.Setenv("credentials_access_key_id", testAK)
	t.Setenv("credentials_access_secret", testSecret)
	t.Setenv("cache_client_region_id", regionJSON(srv))
	fetch(t, srv)

	// Load's source fetches versions too (every member is a VersionSource).
	src, err := config.Load(context.Background(), config.WithRootCAs(srv.CertPool()))
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	cur, err := src.GetSecret(context.Background(), secretName)
	if err != nil {
		t.Fatal(err)
	}
	v, err := src.GetSecretVersion(context.Background(), secretName, secretsource.VersionRef{Stage: secretsource.StageCurrent})
	if err != nil || v.VersionID() != cur.VersionID() {
		t.Errorf("GetSecretVersion(ACSCurrent) = %v, %v; want version %s", v, err, cur.VersionID())
	}
	if s := src.String(); s != "config.Source(kms(cn-hangzhou))" {
		t.Errorf("String() = %s", s)
	}
	if err := src.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := src.GetSecret(context.Background(), secretName); !errors.Is(err, secretsource.ErrConfig) {
		t.Errorf("GetSecret after Close = %v, want a KindConfig error", err)
	}
}

// TestPropertiesFileAsAlibabaDocuments configures through
// ./secretsmanager.properties as Alibaba's README_config.md shows, with an
// AccessKey secret containing '=' (which Alibaba's Go client drops).
func TestPropertiesFileAsAlibabaDocuments(t *testing.T) {
	hermetic(t)
	srv := startEmulator(t)
	props := "# the type of access credentials\ncredentials_type=ak\n# AK\ncredentials_access_key_id=" + testAK +
		"\n# SK\ncredentials_access_secret=" + testSecret + "\n# the region information\ncache_client_region_id=" + regionJSON(srv) + "\n"
	if err := os.WriteFile(config.DefaultPropertiesFile, []byte(props), 0o600); err != nil {
		t.Fatal(err)
	}
	fetch(t, srv)

	// The same file named by KMSDB_PROPERTIES_FILE from another directory.
	abs, _ := filepath.Abs(config.DefaultPropertiesFile)
	t.Chdir(t.TempDir())
	t.Setenv(config.EnvPropertiesFile, abs)
	fetch(t, srv)
}

// TestFileRegionsKeepCodeCredentials: a file that sets only regions does not
// wipe the AccessKey given in code (it does in Alibaba's client).
func TestFileRegionsKeepCodeCredentials(t *testing.T) {
	hermetic(t)
	srv := startEmulator(t)
	p := filepath.Join(t.TempDir(), "regions.properties")
	if err := os.WriteFile(p, []byte("cache_client_region_id="+regionJSON(srv)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	fetch(t, srv, config.WithPropertiesFile(p), config.WithAccessKey(testAK, testSecret))

	// And code beats a wrong AccessKey in the environment.
	t.Setenv("credentials_type", "ak")
	t.Setenv("credentials_access_key_id", "LTAIwrong")
	t.Setenv("credentials_access_secret", "wrong")
	fetch(t, srv, config.WithPropertiesFile(p), config.WithAccessKey(testAK, testSecret))
}

func TestCredentialTypesAgainstEmulator(t *testing.T) {
	hermetic(t)
	srv := startEmulator(t)
	credtest.TrustForSTS(t, srv)
	ck, err := srv.NewClientKey()
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		env  map[string]string
		opts []config.Option
	}{
		{"sts", map[string]string{"credentials_type": "sts", "credentials_access_key_id": testAK, "credentials_access_secret": testSecret,
			"credentials_role_arn": srv.RoleARN(), "credentials_role_session_name": "kmsdb", "credentials_sts_endpoint": srv.STSAddr()}, nil},
		{"ram_role", map[string]string{"credentials_type": "ram_role", "credentials_access_key_id": testAK, "credentials_access_secret": testSecret,
			"credentials_role_arn": srv.RoleARN(), "credentials_role_session_name": "kmsdb"}, []config.Option{config.WithSetting(config.KeySTSEndpoint, srv.STSAddr())}},
		{"ecs_ram_role", map[string]string{"credentials_type": "ecs_ram_role", "credentials_role_name": srv.MetadataRoleName(),
			"ALIBABA_CLOUD_ECS_METADATA_DISABLED": "false"},
			[]config.Option{config.WithCredentialsProxy(srv.MetadataURL())}},
		{"client_key", map[string]string{"credentials_type": "client_key", "client_key_private_key_path": ck.File,
			"client_key_password_from_file_path": ck.PasswordFile}, nil},
		{"client_key password env", map[string]string{"credentials_type": "client_key", "client_key_private_key_path": ck.File,
			"client_key_password_from_env_variable": "MY_CK_PASSWORD", "MY_CK_PASSWORD": ck.Password}, nil},
		{"oidc_role_arn (RRSA env)", map[string]string{"credentials_type": "oidc_role_arn", "ALIBABA_CLOUD_ROLE_ARN": srv.RoleARN(),
			"ALIBABA_CLOUD_OIDC_PROVIDER_ARN": srv.OIDCProviderARN(), "ALIBABA_CLOUD_OIDC_TOKEN_FILE": srv.OIDCTokenFile(),
			"credentials_sts_endpoint": srv.STSAddr()}, nil},
		{"credentials_uri", map[string]string{"credentials_type": "credentials_uri", "ALIBABA_CLOUD_CREDENTIALS_URI": srv.CredentialsURI()}, nil},
		{"default chain", map[string]string{"ALIBABA_CLOUD_ACCESS_KEY_ID": testAK, "ALIBABA_CLOUD_ACCESS_KEY_SECRET": testSecret}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			t.Setenv("cache_client_region_id", regionJSON(srv))
			if strings.HasPrefix(tt.name, "client_key") && !clientKeyOnSharedGateway(t, srv) {
				t.Skip("the emulator's shared gateway does not accept client-key (SHA256withRSA) signatures yet")
			}
			fetch(t, srv, tt.opts...)
		})
	}
}

// clientKeyOnSharedGateway reports whether the emulator accepts a client key
// on the shared gateway, probing with the kms source directly (a limitation
// of the emulator or the kms source, not of config).
func clientKeyOnSharedGateway(t *testing.T, srv *kmstest.Server) bool {
	ck, err := srv.NewClientKey()
	if err != nil {
		t.Fatal(err)
	}
	src, err := config.Load(context.Background(), config.WithRootCAs(srv.CertPool()), config.WithLookupEnv(nil),
		config.WithoutPropertiesFile(), config.WithRegions(kms.Region{ID: "cn-hangzhou", Endpoint: srv.KMSTLSAddr()}),
		config.WithSetting(config.KeyCredentialsType, "client_key"), config.WithSetting(config.KeyClientKeyPath, ck.File),
		config.WithSetting(config.KeyClientKeyPasswordFilePath, ck.PasswordFile))
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	_, err = src.GetSecret(context.Background(), secretName)
	return !errors.Is(err, secretsource.ErrInvalidCredentials)
}

// TestRegionFailover: the first region is down, the second answers.
func TestRegionFailover(t *testing.T) {
	hermetic(t)
	srv := startEmulator(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := ln.Addr().String()
	ln.Close()
	t.Setenv("cache_client_region_id", `[{"regionId":"cn-down","endpoint":"`+dead+`"},{"regionId":"cn-hangzhou","endpoint":"`+srv.KMSTLSAddr()+`"}]`)
	fetch(t, srv, config.WithAccessKey(testAK, testSecret), config.WithTimeout(5*time.Second))

	// No failover on a permanent error.
	srv.ResetCalls()
	t.Setenv("cache_client_region_id", `[{"regionId":"cn-a","endpoint":"`+srv.KMSTLSAddr()+`"},{"regionId":"cn-b","endpoint":"`+srv.KMSTLSAddr()+`"}]`)
	src, err := config.Load(context.Background(), config.WithRootCAs(srv.CertPool()), config.WithAccessKey(testAK, testSecret))
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	_, err = src.GetSecret(context.Background(), "no/such/secret")
	if !errors.Is(err, secretsource.ErrNotFound) {
		t.Fatalf("want not found, got %v", err)
	}
	if n := srv.Calls("GetSecretValue", "no/such/secret"); n != 1 {
		t.Errorf("%d calls for a missing secret, want 1 (no failover on a permanent error)", n)
	}
}

// dkmsJSON is a cache_client_dkms_config_info for the emulator's dedicated
// gateway, as Alibaba's README shows it.
func dkmsJSON(t *testing.T, srv *kmstest.Server, passwordEnv string) string {
	t.Helper()
	ck, err := srv.NewClientKey()
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv(passwordEnv, ck.Password)
	return `[{"regionId":"cn-hangzhou","endpoint":"` + srv.DKMSAddr() + `","passwordFromEnvVariable":"` + passwordEnv +
		`","clientKeyFile":"` + ck.File + `","ignoreSslCerts":false,"caFilePath":"` + srv.CAFile() + `"}]`
}

// TestDKMSFromEnv configures the dedicated gateway through the environment,
// as Alibaba's README_environment.md shows (no credentials_type needed).
func TestDKMSFromEnv(t *testing.T) {
	hermetic(t)
	srv := startEmulator(t)
	t.Setenv("cache_client_dkms_config_info", dkmsJSON(t, srv, "MY_DKMS_PASSWORD"))
	fetch(t, srv)
	if srv.Calls("dkms:GetSecretValue", secretName) == 0 {
		t.Error("the dedicated gateway was not asked")
	}
}

// TestDKMSFromPropertiesFile: the same through secretsmanager.properties,
// passwordFromFilePath this time.
func TestDKMSFromPropertiesFile(t *testing.T) {
	hermetic(t)
	srv := startEmulator(t)
	ck, err := srv.NewClientKey()
	if err != nil {
		t.Fatal(err)
	}
	line := `cache_client_dkms_config_info=[{"regionId":"cn-hangzhou","endpoint":"` + srv.DKMSAddr() + `","passwordFromFilePath":"` +
		ck.PasswordFile + `","clientKeyFile":"` + ck.File + `","ignoreSslCerts":false,"caFilePath":"` + srv.CAFile() + `"}]`
	if err := os.WriteFile(config.DefaultPropertiesFile, []byte(line+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	fetch(t, srv)
}

// TestDKMSThenKMSFailover: DKMS instances come first; when the instance is
// unavailable the KMS region answers; a permanent error does not fail over.
func TestDKMSThenKMSFailover(t *testing.T) {
	hermetic(t)
	srv := startEmulator(t)
	t.Setenv("cache_client_dkms_config_info", dkmsJSON(t, srv, "MY_DKMS_PASSWORD"))
	t.Setenv("cache_client_region_id", regionJSON(srv))
	t.Setenv("credentials_type", "ak")
	t.Setenv("credentials_access_key_id", testAK)
	t.Setenv("credentials_access_secret", testSecret)

	fetch(t, srv)
	if srv.Calls("dkms:GetSecretValue", secretName) != 1 || srv.Calls("GetSecretValue", secretName) != 0 {
		t.Errorf("healthy DKMS: dkms %d, kms %d calls; want 1, 0", srv.Calls("dkms:GetSecretValue", secretName), srv.Calls("GetSecretValue", secretName))
	}

	srv.ResetCalls()
	srv.InjectFault(kmstest.Fault{Action: "dkms:GetSecretValue", Code: "ServiceUnavailableTemporary"})
	fetch(t, srv)
	if srv.Calls("GetSecretValue", secretName) != 1 {
		t.Errorf("DKMS down: the KMS region was asked %d times, want 1", srv.Calls("GetSecretValue", secretName))
	}
	srv.ClearFaults()

	srv.ResetCalls()
	src, err := config.Load(context.Background(), config.WithRootCAs(srv.CertPool()))
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	if _, err := src.GetSecret(context.Background(), "no/such/secret"); !errors.Is(err, secretsource.ErrNotFound) {
		t.Fatalf("want not found, got %v", err)
	}
	if n := srv.Calls("GetSecretValue", "no/such/secret"); n != 0 {
		t.Errorf("a permanent DKMS error failed over to KMS (%d calls)", n)
	}
}

// TestRegionCAFile: "caFilePath" in a cache_client_region_id entry, from the
// environment or the properties file, makes the region's HTTPS endpoint
// trusted with no code option and without touching the process's other TLS
// clients; without it the TLS error names the setting to use.
func TestRegionCAFile(t *testing.T) {
	hermetic(t)
	srv := startEmulator(t)
	t.Setenv("credentials_type", "ak")
	t.Setenv("credentials_access_key_id", testAK)
	t.Setenv("credentials_access_secret", testSecret)
	get := func(t *testing.T, opts ...config.Option) error {
		t.Helper()
		src, err := config.Load(context.Background(), opts...)
		if err != nil {
			t.Fatal(err)
		}
		defer src.Close()
		_, err = src.GetSecret(context.Background(), secretName)
		return err
	}
	withCA := `[{"regionId":"cn-hangzhou","endpoint":"` + srv.KMSTLSAddr() + `","caFilePath":"` + srv.CAFile() + `"}]`

	t.Run("without", func(t *testing.T) {
		t.Setenv("cache_client_region_id", regionJSON(srv))
		err := get(t)
		if !errors.Is(err, secretsource.ErrNetwork) || !strings.Contains(err.Error(), "caFilePath") ||
			!strings.Contains(err.Error(), "cache_client_region_id") {
			t.Fatalf("want a TLS error that names caFilePath in cache_client_region_id, got %v", err)
		}
	})
	t.Run("environment", func(t *testing.T) {
		t.Setenv("cache_client_region_id", withCA)
		if err := get(t); err != nil {
			t.Fatal(err)
		}
		// The CA reached the kms source's transport only.
		if _, err := http.DefaultClient.Get("https://" + srv.KMSTLSAddr() + "/"); err == nil {
			t.Error("the process-wide HTTP client trusts the emulator's CA")
		}
	})
	t.Run("properties file", func(t *testing.T) {
		if err := os.WriteFile(config.DefaultPropertiesFile, []byte("cache_client_region_id="+withCA+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := get(t); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("with WithRootCAs", func(t *testing.T) {
		// The file adds to a code pool too: an unrelated pool plus the file trusts the emulator.
		t.Setenv("cache_client_region_id", withCA)
		if err := get(t, config.WithRootCAs(x509.NewCertPool())); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("bad file", func(t *testing.T) {
		dir := t.TempDir()
		notPEM := filepath.Join(dir, "ca.txt")
		if err := os.WriteFile(notPEM, []byte("not a certificate"), 0o600); err != nil {
			t.Fatal(err)
		}
		for path, want := range map[string]string{filepath.Join(dir, "missing.pem"): "does not exist", notPEM: "holds no PEM certificate"} {
			t.Setenv("cache_client_region_id", `[{"regionId":"cn-hangzhou","endpoint":"`+srv.KMSTLSAddr()+`","caFilePath":"`+path+`"}]`)
			_, err := config.LoadSettings(context.Background())
			if !errors.Is(err, secretsource.ErrConfig) || !strings.Contains(err.Error(), "cache_client_region_id[0].caFilePath") ||
				!strings.Contains(err.Error(), want) {
				t.Errorf("%s: want a config error naming cache_client_region_id[0].caFilePath and %q, got %v", path, want, err)
			}
		}
	})
}
