package config

import (
	"crypto/x509"
	"fmt"
	"log/slog"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/aliyun/credentials-go/credentials"

	"github.com/kmsdb/kmsdb/secretsource/dkms"
	"github.com/kmsdb/kmsdb/secretsource/kms"
	"github.com/kmsdb/kmsdb/secretsource/local"
)

// Option configures Load in code. Options take precedence over environment
// variables, which take precedence over the properties file.
type Option func(*options)

type options struct {
	code          map[string]string // properties keys set in code (WithSetting, WithAccessKey)
	credential    credentials.Credential
	regions       []kms.Region
	dkms          []dkms.Endpoint
	lookupEnv     func(string) (string, bool)
	propsFile     string
	noPropsFile   bool
	rootCAs       *x509.CertPool
	scheme        string
	timeout       time.Duration
	fetchExtended *bool
	logger        *slog.Logger
	credProxy     string
	local         []local.Option
	useLocal      bool
	errs          []error
}

// kmsInCode names an option that configures KMS in code ("" for none):
// regions, instances, a credential, a properties file, or a properties key
// other than the cache's.
func (o *options) kmsInCode() string {
	switch {
	case len(o.regions) > 0:
		return "WithRegion"
	case len(o.dkms) > 0:
		return "WithDKMS"
	case o.credential != nil:
		return "WithCredential"
	case o.propsFile != "":
		return "WithPropertiesFile"
	}
	keys := make([]string, 0, len(o.code))
	for k, v := range o.code {
		if k != KeySecretNames && k != KeyRefreshSecretTTL && strings.TrimSpace(v) != "" {
			keys = append(keys, k)
		}
	}
	if len(keys) == 0 {
		return ""
	}
	sort.Strings(keys)
	return keys[0] + " set in code"
}

func newOptions(opts []Option) *options {
	o := &options{code: map[string]string{}, lookupEnv: os.LookupEnv}
	for _, opt := range opts {
		if opt != nil {
			opt(o)
		}
	}
	return o
}

// WithSetting sets a secretsmanager.properties key in code, e.g.
// WithSetting("credentials_type", "ecs_ram_role"). It overrides the same key
// from the environment and the file.
func WithSetting(key, value string) Option {
	return func(o *options) { o.code[key] = value }
}

// WithRegion asks KMS in these regions, in order (the public endpoint of
// each; see WithRegions for VPC or explicit endpoints). Regions given in code
// replace cache_client_region_id from the environment and the file.
func WithRegion(regionIDs ...string) Option {
	return func(o *options) {
		for _, id := range regionIDs {
			o.regions = append(o.regions, kms.Region{ID: id})
		}
	}
}

// WithRegions is WithRegion with endpoints and VPC flags.
func WithRegions(regions ...kms.Region) Option {
	return func(o *options) { o.regions = append(o.regions, regions...) }
}

// WithAccessKey authenticates with a RAM AccessKey pair (credentials_type=ak).
// It overrides credentials from the environment and the file, and a file
// that sets only regions leaves it alone.
func WithAccessKey(id, secret string) Option {
	return func(o *options) {
		o.code[KeyCredentialsType] = "ak"
		o.code[KeyAccessKeyID] = id
		o.code[KeyAccessSecret] = secret
	}
}

// WithCredential authenticates with any credentials-go Credential (for
// example kms.NewCredential's, or a ramsecret provider). Every credentials_*
// key of the environment and the file is then ignored.
func WithCredential(c credentials.Credential) Option {
	return func(o *options) {
		if c == nil {
			o.errs = append(o.errs, keyError("WithCredential", originCode, "nil credential"))
		}
		o.credential = c
	}
}

// WithDKMS adds a dedicated KMS instance. Instances given in code replace
// cache_client_dkms_config_info from the environment and the file. The
// password is given directly (use WithSetting with the JSON key for the
// passwordFromEnvVariable / passwordFromFilePath forms).
func WithDKMS(e dkms.Endpoint) Option {
	return func(o *options) { o.dkms = append(o.dkms, e) }
}

// WithPropertiesFile reads this file instead of ./secretsmanager.properties
// (and instead of the file named by KMSDB_PROPERTIES_FILE). Unlike the
// default file, it must exist.
func WithPropertiesFile(path string) Option {
	return func(o *options) { o.propsFile, o.noPropsFile = path, false }
}

// WithoutPropertiesFile reads no properties file at all.
func WithoutPropertiesFile() Option {
	return func(o *options) { o.propsFile, o.noPropsFile = "", true }
}

// WithLookupEnv replaces os.LookupEnv, for programs that keep their
// environment elsewhere and for tests. Passwords named by
// client_key_password_from_env_variable and passwordFromEnvVariable are read
// through it too. WithLookupEnv(nil) reads no environment variable at all.
func WithLookupEnv(lookup func(key string) (string, bool)) Option {
	return func(o *options) {
		if lookup == nil {
			lookup = func(string) (string, bool) { return "", false }
		}
		o.lookupEnv = lookup
	}
}

// WithRootCAs verifies the KMS endpoints' certificates against pool instead
// of the system roots; a region's "caFilePath" adds its CA to a copy of pool.
// Configuration outside code names a CA file with that caFilePath instead.
// (Dedicated KMS instances take their CA from their own caFilePath.)
func WithRootCAs(pool *x509.CertPool) Option {
	return func(o *options) { o.rootCAs = pool }
}

// WithHTTP talks plain HTTP to the KMS endpoints: for an emulator
// (secretsource/kmstest) only, never for the real service.
func WithHTTP() Option {
	return func(o *options) { o.scheme = "http" }
}

// WithTimeout bounds each request to one region or instance (default
// kms.DefaultTimeout).
func WithTimeout(d time.Duration) Option {
	return func(o *options) {
		if d <= 0 {
			o.errs = append(o.errs, keyError("WithTimeout", originCode, fmt.Sprintf("expected a positive duration, got %s", d)))
		}
		o.timeout = d
	}
}

// WithFetchExtendedConfig says whether to fetch each secret's
// ExtendedConfig (default true, as Alibaba's client does: Rds secrets keep
// their endpoint in ExtendedConfig.CustomData).
func WithFetchExtendedConfig(fetch bool) Option {
	return func(o *options) { o.fetchExtended = &fetch }
}

// WithLogger receives warnings (unknown properties keys, ignoreSslCerts, a
// local source) and the sources' debug lines; never a secret value. Without
// it, warnings go to slog.Default() at Warn.
func WithLogger(l *slog.Logger) Option {
	return func(o *options) { o.logger = l }
}

// WithCredentialsProxy sends the credential provider's own requests (STS,
// ECS metadata, credentials URI) through this HTTP proxy URL. For
// ecs_ram_role it is the only way to reach a metadata service other than
// 100.100.100.200, such as the emulator's.
func WithCredentialsProxy(proxyURL string) Option {
	return func(o *options) { o.credProxy = proxyURL }
}

// WithLocal makes Load return a local.Source built from opts
// instead of a KMS source: for development and tests without KMS. Load logs
// a warning each time it serves a local source (KMSDB_LOCAL_SECRETS and
// KMSDB_LOCAL_SECRETS_FILE do the same from the environment, unless KMS is
// configured in code).
func WithLocal(opts ...local.Option) Option {
	return func(o *options) { o.useLocal, o.local = true, append(o.local, opts...) }
}
