package config

import (
	"context"
	"testing"
	"time"

	"github.com/kmsdb/kmsdb/secretsource/kms"
	"github.com/kmsdb/kmsdb/secretsource/kmstest"
)

func TestCredentialTypes(t *testing.T) { // long: table
	dir := t.TempDir()
	ck, err := kmstest.WriteClientKey(dir)
	if err != nil {
		t.Fatal(err)
	}
	token := writeFile(t, dir, "token", "oidc-token")
	region := map[string]string{"cache_client_region_id": `[{"regionId":"cn-hangzhou"}]`}
	with := func(kv ...string) map[string]string {
		m := map[string]string{}
		for k, v := range region {
			m[k] = v
		}
		for i := 0; i < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		return m
	}
	tests := []struct {
		name  string
		env   map[string]string
		check func(t *testing.T, c kms.CredentialOptions)
	}{
		{"ak", with("credentials_type", "ak", "credentials_access_key_id", "i", "credentials_access_secret", "s"),
			func(t *testing.T, c kms.CredentialOptions) {
				expect(t, c.Type == "access_key" && c.AccessKeyID == "i" && c.AccessKeySecret == "s")
			}},
		{"token", with("credentials_type", "token", "credentials_access_token_id", "i", "credentials_access_token", "s"),
			func(t *testing.T, c kms.CredentialOptions) {
				expect(t, c.Type == "access_key" && c.AccessKeyID == "i" && c.AccessKeySecret == "s")
			}},
		{"sts", with("credentials_type", "sts", "credentials_access_key_id", "i", "credentials_access_secret", "s",
			"credentials_role_arn", "acs:ram::1:role/r", "credentials_role_session_name", "n", "credentials_policy", "{}"),
			func(t *testing.T, c kms.CredentialOptions) {
				expect(t, c.Type == "ram_role_arn" && c.RoleARN == "acs:ram::1:role/r" && c.RoleSessionName == "n" && c.Policy == "{}")
			}},
		{"ram_role without session name", with("credentials_type", "ram_role", "credentials_access_key_id", "i", "credentials_access_secret", "s",
			"credentials_role_arn", "acs:ram::1:role/r", "credentials_sts_endpoint", "127.0.0.1:1", "credentials_role_session_expiration", "1800"),
			func(t *testing.T, c kms.CredentialOptions) {
				expect(t, c.Type == "ram_role_arn" && c.STSEndpoint == "127.0.0.1:1" && c.SessionDuration == 30*time.Minute)
			}},
		{"sts_token", with("credentials_type", "sts_token", "credentials_access_key_id", "i", "credentials_access_secret", "s", "credentials_security_token", "t"),
			func(t *testing.T, c kms.CredentialOptions) { expect(t, c.Type == "sts" && c.SecurityToken == "t") }},
		{"ecs_ram_role", with("credentials_type", "ecs_ram_role", "credentials_role_name", "role", EnvIMDSv1Disabled, "true"),
			func(t *testing.T, c kms.CredentialOptions) {
				expect(t, c.Type == "ecs_ram_role" && c.RoleName == "role" && c.DisableIMDSv1)
			}},
		{"ecs_ram_role without role name", with("credentials_type", "ecs_ram_role"),
			func(t *testing.T, c kms.CredentialOptions) { expect(t, c.Type == "ecs_ram_role" && c.RoleName == "") }},
		{"client_key password env", with("credentials_type", "client_key", "client_key_private_key_path", ck.File,
			"client_key_password_from_env_variable", "MY_PW", "MY_PW", ck.Password),
			func(t *testing.T, c kms.CredentialOptions) {
				expect(t, c.ClientKeyFile == ck.File && c.ClientKeyPassword == ck.Password)
			}},
		{"client_key password file", with("credentials_type", "client_key", "client_key_private_key_path", ck.File,
			"client_key_password_from_file_path", ck.PasswordFile),
			func(t *testing.T, c kms.CredentialOptions) { expect(t, c.ClientKeyPassword == ck.Password) }},
		{"client_key both, env var empty: file", with("credentials_type", "client_key", "client_key_private_key_path", ck.File,
			"client_key_password_from_env_variable", "UNSET_PW", "client_key_password_from_file_path", ck.PasswordFile),
			func(t *testing.T, c kms.CredentialOptions) { expect(t, c.ClientKeyPassword == ck.Password) }},
		{"client_key fallback client_key_password", with("credentials_type", "client_key", "client_key_private_key_path", ck.File,
			"client_key_password", ck.Password),
			func(t *testing.T, c kms.CredentialOptions) { expect(t, c.ClientKeyPassword == ck.Password) }},
		{"oidc from credentials-go env", with("credentials_type", "oidc_role_arn", EnvRoleARN, "acs:ram::1:role/r",
			EnvOIDCProviderARN, "acs:ram::1:oidc-provider/p", EnvOIDCTokenFile, token, EnvRoleSessionName, "sess"),
			func(t *testing.T, c kms.CredentialOptions) {
				expect(t, c.Type == "oidc_role_arn" && c.OIDCTokenFile == token && c.RoleSessionName == "sess" && c.OIDCProviderARN != "")
			}},
		{"oidc from keys", with("credentials_type", "oidc_role_arn", "credentials_role_arn", "acs:ram::1:role/r",
			"credentials_oidc_provider_arn", "acs:ram::1:oidc-provider/p", "credentials_oidc_token_file", token),
			func(t *testing.T, c kms.CredentialOptions) { expect(t, c.RoleARN == "acs:ram::1:role/r") }},
		{"credentials_uri from env", with("credentials_type", "credentials_uri", EnvCredentialsURI, "http://127.0.0.1:1/c"),
			func(t *testing.T, c kms.CredentialOptions) {
				expect(t, c.Type == "credentials_uri" && c.URL == "http://127.0.0.1:1/c")
			}},
		{"default chain", with(), func(t *testing.T, c kms.CredentialOptions) { expect(t, c.Type == "default") }},
		{"case insensitive type", with("credentials_type", "AK", "credentials_access_key_id", "i", "credentials_access_secret", "s"),
			func(t *testing.T, c kms.CredentialOptions) { expect(t, c.Type == "access_key") }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := LoadSettings(context.Background(), WithoutPropertiesFile(), envOf(tt.env))
			if err != nil {
				t.Fatal(err)
			}
			tt.check(t, s.Credential)
		})
	}
}

func expect(t *testing.T, ok bool) {
	t.Helper()
	if !ok {
		t.Error("unexpected credential settings")
	}
}
