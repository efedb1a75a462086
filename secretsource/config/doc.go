// Package config builds a secret source the way Alibaba Cloud's secret
// clients are configured: the same environment variables, the same
// secretsmanager.properties keys, and options in code. A program configured
// for aliyun-secretsmanager-client-go works unchanged:
//
//	src, err := config.Load(ctx)                        // env + ./secretsmanager.properties
//	src, err := config.Load(ctx, config.WithRegion("cn-hangzhou"),
//		config.WithAccessKey(id, secret))                 // the seed's "method 3"
//
// # Precedence
//
// Each key is looked up in code options, then in the environment variable of
// the same name, then in the properties file; the first non-empty value wins.
// Keys are independent: a file that sets only cache_client_region_id does not
// wipe credentials given in code or in the environment. WithCredential,
// WithRegion(s) and WithDKMS replace the corresponding keys as a whole.
//
// The properties file is, in order: WithPropertiesFile, the file named by
// KMSDB_PROPERTIES_FILE, or ./secretsmanager.properties (only this default
// may be missing). The file is read again at every Load and LoadSettings,
// so an edited file is seen by the next one.
//
// # Keys
//
//	credentials_type                 ak | sts | ram_role | ecs_ram_role | client_key   (Alibaba's)
//	                                 token                                            (Alibaba's, undocumented: an AccessKey)
//	                                 oidc_role_arn | credentials_uri | sts_token | default   (kmsdb)
//	credentials_access_key_id        ak, sts, ram_role, sts_token
//	credentials_access_secret        ak, sts, ram_role, sts_token
//	credentials_access_token_id      token
//	credentials_access_token         token
//	credentials_role_arn             sts, ram_role, oidc_role_arn (else ALIBABA_CLOUD_ROLE_ARN)
//	credentials_role_session_name    sts, ram_role, oidc_role_arn (optional; else ALIBABA_CLOUD_ROLE_SESSION_NAME)
//	credentials_policy               sts, ram_role, oidc_role_arn (optional)
//	credentials_role_name            ecs_ram_role (optional: the metadata service names the role)
//	client_key_private_key_path      client_key
//	client_key_password_from_env_variable   client_key: the NAME of an env var holding the password
//	client_key_password_from_file_path      client_key: a file holding the password
//	client_key_password (env only)          client_key and DKMS: last-resort password
//	cache_client_region_id           [{"regionId":"cn-hangzhou","endpoint":"…","vpc":false,"caFilePath":"…"}]
//	                                 (or "cn-hangzhou,cn-shanghai"; caFilePath: see TLS below)
//	cache_client_dkms_config_info    [{"regionId","endpoint","clientKeyFile","passwordFromEnvVariable"|
//	                                   "passwordFromFilePath","caFilePath","ignoreSslCerts"}]
//	secret_names                     comma-separated; Settings.SecretNames (connector's default cache fetches them at start)
//	refresh_secret_ttl               milliseconds; Settings.RefreshSecretTTL (connector's default cache: the cache TTL)
//	credentials_security_token       sts_token (kmsdb)
//	credentials_oidc_provider_arn    oidc_role_arn (kmsdb; else ALIBABA_CLOUD_OIDC_PROVIDER_ARN)
//	credentials_oidc_token_file      oidc_role_arn (kmsdb; else ALIBABA_CLOUD_OIDC_TOKEN_FILE)
//	credentials_uri                  credentials_uri (kmsdb; else ALIBABA_CLOUD_CREDENTIALS_URI)
//	credentials_sts_endpoint         sts, ram_role, oidc_role_arn: STS host[:port] (kmsdb)
//	credentials_external_id          sts, ram_role (kmsdb)
//	credentials_role_session_expiration   seconds, 900-43200 (kmsdb)
//
// With no credentials_type, the KMS source uses the default chain
// (ALIBABA_CLOUD_ACCESS_KEY_ID/SECRET, RRSA's ALIBABA_CLOUD_ROLE_ARN +
// ALIBABA_CLOUD_OIDC_PROVIDER_ARN + ALIBABA_CLOUD_OIDC_TOKEN_FILE, the CLI
// profile (~/.aliyun/config.json), the credentials file
// (~/.alibabacloud/credentials), the ECS role,
// ALIBABA_CLOUD_CREDENTIALS_URI). Dedicated KMS
// instances authenticate with their client key and need no credential.
//
// Sources are asked in this order: the dedicated KMS instances, then the KMS
// regions, each in the order configured, moving on only on a retryable error
// (secretsource.Failover). Alibaba's client orders them the same way when it
// parses them, then re-sorts every region by a TCP ping at start; kmsdb keeps
// the configured order, so failover is predictable.
//
// # TLS
//
// The KMS endpoints are verified against the system roots (or WithRootCAs).
// For an endpoint behind a private CA (a private gateway, the kmstest
// emulator), name a PEM file in the region's entry:
//
//	cache_client_region_id=[{"regionId":"cn-hangzhou","endpoint":"kms.internal:443","caFilePath":"/etc/kms/ca.pem"}]
//
// Its certificates are added to a copy of the roots for that region only;
// nothing process-wide changes, unlike SSL_CERT_FILE, which replaces the
// roots of every TLS client in the process and which Go ignores on macOS and
// Windows. The field is Alibaba's: its V2 secrets manager clients read
// caFilePath in cache_client_region_id entries, for the KMS instance gateway
// (<kst-…>.cryptoservice.kms.aliyuncs.com), where the file replaces the roots;
// kmsdb honours it for any endpoint and keeps the roots. The same field of
// cache_client_dkms_config_info serves the dedicated gateway.
//
// # Local development
//
// KMSDB_LOCAL_SECRETS_FILE=secrets.yaml (or KMSDB_LOCAL_SECRETS=true, or
// WithLocal) makes Load return a local.Source: the file's
// secrets and KMSDB_SECRET_<NAME> environment variables, no KMS at all.
// Code beats the environment here too: when the program configures KMS in
// code (WithRegion(s), WithDKMS, WithCredential, WithAccessKey,
// WithPropertiesFile or WithSetting of a KMS key), the two variables are
// ignored with a warning, so an environment cannot swap the program's KMS
// for secrets it makes up. Each Load that serves a local source logs so at
// Warn.
//
// # Where Alibaba's client is wrong and kmsdb is not
//
//   - A properties value containing '=' is kept whole (Alibaba's Go client
//     splits on every '=' and silently drops the line: base64 secrets end in
//     "==").
//   - Properties are applied key by key under code and environment; Alibaba's
//     client replaces the credential given in code with the file's (nil when
//     the file sets only regions).
//   - Every misconfiguration fails Load with a *secretsource.Error of
//     KindConfig whose *KeyError names the key, where it came from and what
//     is expected; no error holds a secret value.
//   - A DKMS entry with both passwordFromEnvVariable and passwordFromFilePath
//     is rejected (Alibaba's client silently takes the file).
//   - caFilePath is honoured from the environment too (Alibaba's client reads
//     it only from the file), and a CA is optional: without one, the system
//     roots verify the instance. ignoreSslCerts is a warning, never a default.
//   - TLS is verified on the public KMS endpoints (Alibaba's client disables
//     verification there).
//   - Unknown JSON fields in cache_client_region_id and
//     cache_client_dkms_config_info are errors (typos would otherwise be
//     ignored); unknown properties keys are warnings, since files are shared
//     with the Java client.
//
// # The properties format
//
// secretsmanager.properties is read as java.util.Properties reads it, since
// Alibaba's Java client reads the same file so: '#' and '!' comments, '=',
// ':' or blanks between key and value, a line ending in an odd number of
// backslashes continued on the next (whose leading blanks are dropped), and
// the escapes \t \n \r \f \uXXXX \= \: \# \! \\ (a backslash before any
// other character is dropped). So a Windows path is written C:\\keys\\k.json
// or C:/keys/k.json; a value whose escapes changed it is warned about.
// Differences: the file is UTF-8 (Java reads ISO-8859-1; a file that is not
// valid UTF-8 is read so too), a byte order mark is skipped, and every value
// is trimmed of surrounding blanks, as environment variables are. Files are
// regular files of at most 1 MiB.
//
// # Warnings
//
// Unknown keys, ignoreSslCerts, KMSDB_LOCAL_SECRETS overridden by code, and
// the switch to a local source are warnings: Settings.Warnings lists them and
// Load logs each at Warn to the WithLogger logger, or to slog.Default() when
// none is given (so the default cache's configuration is never silently
// weakened). A warning names a key and a line, never a value, and never the
// text of an unknown key (it may be the tail of a secret whose continuation
// backslash is missing); a key within two typos of a known one is named as
// the likely meant key.
//
// Accepted for compatibility: password files are trimmed of surrounding
// blanks, JSON keys match case-insensitively, "vpc"/"ignoreSslCerts" may be
// booleans or "true"/"false" strings.
package config
