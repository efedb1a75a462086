package config

// Keys of secretsmanager.properties, also read as environment variables of the
// same (lower-case) names, exactly as Alibaba's secret clients read them.
const (
	KeyCredentialsType = "credentials_type" // ak | token | sts | ram_role | ecs_ram_role | client_key | + kmsdb's

	KeyAccessKeyID     = "credentials_access_key_id"
	KeyAccessSecret    = "credentials_access_secret"
	KeyAccessTokenID   = "credentials_access_token_id" // credentials_type=token (an AccessKey under another name)
	KeyAccessToken     = "credentials_access_token"
	KeyRoleSessionName = "credentials_role_session_name"
	KeyRoleARN         = "credentials_role_arn"
	KeyPolicy          = "credentials_policy"
	KeyRoleName        = "credentials_role_name" // ecs_ram_role

	KeyClientKeyPath             = "client_key_private_key_path"
	KeyClientKeyPasswordEnv      = "client_key_password_from_env_variable" // the NAME of an env var
	KeyClientKeyPasswordFilePath = "client_key_password_from_file_path"
	EnvClientKeyPassword         = "client_key_password" // env var: Alibaba's last-resort client key password

	KeyRegions    = "cache_client_region_id"        // JSON [{"regionId","endpoint","vpc"}]
	KeyDKMSConfig = "cache_client_dkms_config_info" // JSON [{"regionId","endpoint","clientKeyFile",...}]

	// Cache keys, accepted and exposed in Settings for the cache to use.
	KeySecretNames      = "secret_names"       // comma separated; Alibaba's Go client parses and never uses it
	KeyRefreshSecretTTL = "refresh_secret_ttl" // milliseconds (Alibaba's JDBC/Java clients)

	// kmsdb extensions (not read by Alibaba's clients).
	KeySecurityToken   = "credentials_security_token"          // credentials_type=sts_token
	KeyOIDCProviderARN = "credentials_oidc_provider_arn"       // credentials_type=oidc_role_arn
	KeyOIDCTokenFile   = "credentials_oidc_token_file"         // credentials_type=oidc_role_arn
	KeyCredentialsURI  = "credentials_uri"                     // credentials_type=credentials_uri
	KeySTSEndpoint     = "credentials_sts_endpoint"            // sts, ram_role, oidc_role_arn: host[:port]
	KeyExternalID      = "credentials_external_id"             // sts, ram_role
	KeySessionDuration = "credentials_role_session_expiration" // seconds
)

// Environment variables that are not properties keys.
//
//nolint:gosec // not credentials: the names of environment variables
const (
	// EnvPropertiesFile names the properties file to read instead of
	// ./secretsmanager.properties. A kmsdb extension: Alibaba's Go client
	// (v1.1.5) has no such variable, only WithCustomConfigFile in code.
	EnvPropertiesFile = "KMSDB_PROPERTIES_FILE"
	// EnvLocalSecretsFile switches Load to a local.Source serving
	// this JSON/YAML file plus KMSDB_SECRET_<NAME> variables (development
	// without KMS), unless KMS is configured in code.
	EnvLocalSecretsFile = "KMSDB_LOCAL_SECRETS_FILE"
	// EnvLocal set to "true" switches Load to a local.Source serving only the
	// KMSDB_SECRET_<NAME> variables, unless KMS is configured in code.
	EnvLocal = "KMSDB_LOCAL_SECRETS"

	// credentials-go's variables, read as fallbacks for kmsdb's extension types.
	EnvRoleARN         = "ALIBABA_CLOUD_ROLE_ARN"
	EnvOIDCProviderARN = "ALIBABA_CLOUD_OIDC_PROVIDER_ARN"
	EnvOIDCTokenFile   = "ALIBABA_CLOUD_OIDC_TOKEN_FILE"
	EnvRoleSessionName = "ALIBABA_CLOUD_ROLE_SESSION_NAME"
	EnvCredentialsURI  = "ALIBABA_CLOUD_CREDENTIALS_URI"
	EnvIMDSv1Disabled  = "ALIBABA_CLOUD_IMDSV1_DISABLED"
	EnvAccessKeyID     = "ALIBABA_CLOUD_ACCESS_KEY_ID"
	EnvAccessKeySecret = "ALIBABA_CLOUD_ACCESS_KEY_SECRET"
	EnvSecurityToken   = "ALIBABA_CLOUD_SECURITY_TOKEN"
)

// knownKeys are every key Load reads; other keys of a properties file are
// reported in Settings.Warnings (Alibaba's clients ignore unknown keys too, and
// files are shared with the Java client, which has more).
var knownKeys = []string{
	KeyCredentialsType, KeyAccessKeyID, KeyAccessSecret, KeyAccessTokenID, KeyAccessToken, KeyRoleSessionName,
	KeyRoleARN, KeyPolicy, KeyRoleName, KeyClientKeyPath, KeyClientKeyPasswordEnv, KeyClientKeyPasswordFilePath,
	KeyRegions, KeyDKMSConfig, KeySecretNames, KeyRefreshSecretTTL, KeySecurityToken, KeyOIDCProviderARN,
	KeyOIDCTokenFile, KeyCredentialsURI, KeySTSEndpoint, KeyExternalID, KeySessionDuration,
}
