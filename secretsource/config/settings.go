package config

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/url"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/aliyun/credentials-go/credentials"

	"github.com/kmsdb/kmsdb/internal/regfile"
	"github.com/kmsdb/kmsdb/secretsource"
	"github.com/kmsdb/kmsdb/secretsource/dkms"
	"github.com/kmsdb/kmsdb/secretsource/kms"
	"github.com/kmsdb/kmsdb/secretsource/local"
)

// Where a setting came from, as errors name it.
const (
	originCode = "option"
	originEnv  = "environment variable"
)

// KeyError says which setting is wrong and what is expected. It never holds a
// secret. Load returns it wrapped in a *secretsource.Error of KindConfig.
type KeyError struct {
	Key     string // properties key / environment variable, or the option's name
	Origin  string // "option", "environment variable" or "properties file <path>"
	Problem string
}

func (e *KeyError) Error() string {
	if e.Origin == "" {
		return fmt.Sprintf("%s: %s", e.Key, e.Problem)
	}
	return fmt.Sprintf("%s (%s): %s", e.Key, e.Origin, e.Problem)
}

func keyError(key, origin, problem string) error {
	return &secretsource.Error{Kind: secretsource.KindConfig, Source: "config", Err: &KeyError{Key: key, Origin: origin, Problem: problem}}
}

// Settings is the configuration Load resolved from options, environment
// and properties file, before any source is built. LoadSettings returns it
// so programs can inspect or adjust it; Source builds the sources from it.
type Settings struct {
	// Credential describes the KMS credential (Type "" means credentials-go's
	// default chain); ignored when a credential was given with WithCredential.
	Credential       kms.CredentialOptions
	CredentialOrigin string // where credentials_type came from; "" for none

	Regions       []kms.Region    // KMS regions, in order
	RegionsOrigin string          // where they came from
	DKMS          []dkms.Endpoint // dedicated KMS instances, in order; asked before the regions
	DKMSOrigin    string
	// DKMSTimeout bounds each request to a dedicated instance when Timeout is
	// zero: the largest readTimeout + connectTimeout of the entries.
	DKMSTimeout time.Duration

	Scheme              string // "https" or "http" (WithHTTP)
	RootCAs             *x509.CertPool
	Timeout             time.Duration // 0: the sources' default
	FetchExtendedConfig bool
	// Logger receives the warnings and the sources' debug lines. Nil sends
	// warnings to slog.Default() at Warn and discards the rest: a setting
	// that weakens security is never silent.
	Logger *slog.Logger

	PropertiesFile   string        // the properties file read, "" if none
	SecretNames      []string      // secret_names: secrets connector.DefaultCache fetches at start
	RefreshSecretTTL time.Duration // refresh_secret_ttl (milliseconds in the file): connector.DefaultCache's cache TTL; 0 when unset

	// Local: Load returns a local.Source (WithLocal, or KMSDB_LOCAL_SECRETS_FILE
	// or KMSDB_LOCAL_SECRETS when no KMS setting is given in code).
	Local        bool
	localOptions []local.Option

	// Warnings are configuration oddities that are not errors: unknown
	// properties keys, ignoreSslCerts, an explicit CA that is ignored, a
	// local source serving the secrets. Source logs each one at Warn every
	// time it builds a source. None holds a value.
	Warnings []string
	// loggedBySource are the Warnings the sources log themselves (the DKMS
	// source warns about each ignoreSslCerts endpoint), so Source does not
	// log them twice.
	loggedBySource map[string]bool

	credential credentials.Credential // WithCredential
}

// String summarizes s without any secret. The methods that format Settings
// have value receivers so that a dereferenced Settings (fmt.Print(*s),
// slog.Any("settings", *s)) is redacted too.
func (s Settings) String() string {
	cred := s.Credential.Type
	if s.credential != nil {
		cred = "option"
	}
	return fmt.Sprintf("config.Settings(credential=%q regions=%d dkms=%d file=%q local=%v)",
		cred, len(s.Regions), len(s.DKMS), s.PropertiesFile, s.Local)
}

// GoString is String, so %#v cannot print a credential.
func (s Settings) GoString() string { return s.String() }

// Format prints String for every verb.
func (s Settings) Format(st fmt.State, _ rune) { _, _ = io.WriteString(st, s.String()) }

// LogValue shows the summary only.
func (s Settings) LogValue() slog.Value { return slog.StringValue(s.String()) }

// resolver looks a key up in code options, then the environment, then the file.
type resolver struct {
	o        *options
	file     map[string]property // last pair of each key
	fileName string
}

// get returns the value of key, trimmed of surrounding blanks wherever it
// comes from (no value Load reads can start or end with one).
func (r *resolver) get(key string) (value, origin string) {
	if v := strings.TrimSpace(r.o.code[key]); v != "" {
		return v, originCode
	}
	if v, ok := r.o.lookupEnv(key); ok && strings.TrimSpace(v) != "" {
		return strings.TrimSpace(v), originEnv
	}
	if p, ok := r.file[key]; ok && strings.TrimSpace(p.value) != "" {
		return strings.TrimSpace(p.value), fmt.Sprintf("properties file %s line %d", r.fileName, p.line)
	}
	return "", ""
}

// env reads an environment variable that is not a properties key.
func (r *resolver) env(name string) string {
	v, _ := r.o.lookupEnv(name)
	return strings.TrimSpace(v)
}

// LoadSettings resolves the configuration the way Load does, reads the
// properties file (again at every call) and checks every setting, but
// builds no source and makes no network call.
func LoadSettings(ctx context.Context, opts ...Option) (*Settings, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	o := newOptions(opts)
	if len(o.errs) > 0 {
		return nil, errors.Join(o.errs...)
	}
	s := &Settings{Scheme: "https", FetchExtendedConfig: true, RootCAs: o.rootCAs, Timeout: o.timeout, Logger: o.logger}
	if o.scheme != "" {
		s.Scheme = o.scheme
	}
	if o.fetchExtended != nil {
		s.FetchExtendedConfig = *o.fetchExtended
	}
	r := &resolver{o: o}

	// Local development source: nothing else is read.
	if err := loadLocal(s, r); err != nil || s.Local {
		return s, err
	}

	if err := loadFile(s, r); err != nil {
		return nil, err
	}
	if err := loadCredential(s, r); err != nil {
		return nil, err
	}
	if err := loadRegions(s, r); err != nil {
		return nil, err
	}
	if err := loadDKMS(s, r); err != nil {
		return nil, err
	}
	if len(s.Regions) == 0 && len(s.DKMS) == 0 {
		return nil, keyError(KeyRegions, "", `no KMS region and no dedicated KMS instance configured: set `+
			`cache_client_region_id (e.g. [{"regionId":"cn-hangzhou"}]) or cache_client_dkms_config_info, `+
			`in the environment, in secretsmanager.properties, or with config.WithRegion`)
	}
	if err := loadCache(s, r); err != nil {
		return nil, err
	}
	if s.Scheme == "http" && len(s.Regions) > 0 {
		s.Warnings = append(s.Warnings, "WithHTTP: requests to the KMS regions go over plain HTTP, unencrypted and "+
			"unauthenticated: for an emulator only, never for the real service")
	}
	return s, nil
}

func loadLocal(s *Settings, r *resolver) error {
	o := r.o
	var origin string
	switch {
	case o.useLocal:
		s.localOptions, origin = o.local, "config.WithLocal"
	case r.env(EnvLocalSecretsFile) != "" || r.env(EnvLocal) != "":
		name := EnvLocalSecretsFile
		if r.env(EnvLocalSecretsFile) == "" {
			name = EnvLocal
		}
		// Code beats the environment: a variable cannot swap the KMS source a
		// program configured for secrets it makes up.
		if what := o.kmsInCode(); what != "" {
			s.Warnings = append(s.Warnings, fmt.Sprintf("%s is set in the environment but ignored: KMS is configured in code (%s), "+
				"which takes precedence; secrets come from KMS", name, what))
			return nil
		}
		if name == EnvLocalSecretsFile {
			path := r.env(EnvLocalSecretsFile)
			s.localOptions = []local.Option{local.FromFile(path), local.FromEnv("")}
			origin = fmt.Sprintf("%s=%s", EnvLocalSecretsFile, path)
			break
		}
		on, err := strconv.ParseBool(r.env(EnvLocal))
		if err != nil {
			return keyError(EnvLocal, originEnv, "expected true or false")
		}
		if !on {
			return nil
		}
		s.localOptions, origin = []local.Option{local.FromEnv("")}, EnvLocal+"=true"
	default:
		return nil
	}
	s.Local = true
	s.Warnings = append(s.Warnings, fmt.Sprintf("secrets are served by a local source (%s), not by KMS: for development and tests only", origin))
	return nil
}

func loadFile(s *Settings, r *resolver) error {
	o := r.o
	if o.noPropsFile {
		return nil
	}
	path, origin, explicit := DefaultPropertiesFile, "", false
	if o.propsFile != "" {
		path, origin, explicit = o.propsFile, "WithPropertiesFile", true
	} else if p := r.env(EnvPropertiesFile); p != "" {
		path, origin, explicit = p, EnvPropertiesFile, true
	}
	props, missing, err := readPropertiesFile(path)
	switch {
	case err != nil:
		return keyError(path, "properties file", err.Error())
	case missing && explicit:
		return keyError(origin, "", fmt.Sprintf("properties file %q does not exist", path))
	case missing:
		return nil
	}
	r.file, r.fileName, s.PropertiesFile = map[string]property{}, path, path
	for _, p := range props {
		r.file[p.key] = p
	}
	s.Warnings = append(s.Warnings, propertiesWarnings(path, props)...)
	return nil
}

// propertiesWarnings reports the pairs of a properties file that Load
// ignores or that may not say what was meant. A warning names a known key
// and a line number, never a value, and never the text of an unknown key:
// that text may be the tail of a secret whose line lost its continuation
// backslash.
func propertiesWarnings(path string, props []property) []string {
	var out []string
	last := map[string]int{} // line of the pair that wins, per key
	for _, p := range props {
		last[p.key] = p.line
	}
	for _, p := range props {
		if l := last[p.key]; l != p.line && slices.Contains(knownKeys, p.key) {
			out = append(out, fmt.Sprintf("properties file %s line %d: %s is given again on line %d, which wins", path, p.line, p.key, l))
		}
		if !slices.Contains(knownKeys, p.key) {
			hint := "not a key kmsdb reads (files shared with the Java client may hold others)"
			switch {
			case closestKey(p.key) != "":
				hint = fmt.Sprintf("did you mean %s?", closestKey(p.key))
			case !p.hasSep:
				hint = "a line without '=' or ':': if it continues the value on the line before, end that line with a backslash"
			}
			out = append(out, fmt.Sprintf("properties file %s line %d: unknown key ignored (%s)", path, p.line, hint))
			continue
		}
		if p.lossyEscape {
			out = append(out, fmt.Sprintf("properties file %s line %d: %s: a backslash escape changed the value, "+
				`as java.util.Properties reads it (\t, \n, \r, \f are control characters; a backslash before another `+
				`character is dropped): write \\ for a backslash (C:\\keys\\key.json) or use '/'`, path, p.line, p.key))
		}
	}
	return out
}

// closestKey returns the known key within two edits of key (a typo such as
// refresh_secret_tll), or "". Keys shorter than six characters match nothing.
func closestKey(key string) string {
	if len(key) < 6 {
		return ""
	}
	best, bestD := "", 3
	for _, k := range knownKeys {
		if d := editDistance(strings.ToLower(key), k, bestD); d < bestD {
			best, bestD = k, d
		}
	}
	return best
}

// editDistance is the Levenshtein distance of a and b, or limit when it is at
// least limit.
func editDistance(a, b string, limit int) int {
	if d := len(a) - len(b); d >= limit || -d >= limit {
		return limit
	}
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		rowMin := cur[0]
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
			rowMin = min(rowMin, cur[j])
		}
		if rowMin >= limit {
			return limit
		}
		prev, cur = cur, prev
	}
	return min(prev[len(b)], limit)
}

// credentialTypes maps every accepted credentials_type to the kms credential
// type it builds. Alibaba's five (ak, sts, ram_role, ecs_ram_role,
// client_key) plus its undocumented token, credentials-go's names, and the
// types Alibaba's client lacks.
var credentialTypes = map[string]string{
	"ak": kms.CredentialAccessKey, "access_key": kms.CredentialAccessKey, "token": kms.CredentialAccessKey,
	"sts": kms.CredentialRAMRoleARN, "ram_role": kms.CredentialRAMRoleARN, "ram_role_arn": kms.CredentialRAMRoleARN,
	"sts_token":     kms.CredentialSTS,
	"ecs_ram_role":  kms.CredentialECSRAMRole,
	"client_key":    kms.CredentialClientKey,
	"oidc_role_arn": kms.CredentialOIDCRoleARN, "credentials_uri": kms.CredentialCredentialsURI,
	"default": kms.CredentialDefault,
}

func credentialTypeNames() string {
	names := make([]string, 0, len(credentialTypes))
	for k := range credentialTypes {
		names = append(names, k)
	}
	sort.Strings(names)
	return strings.Join(names, ", ")
}

func loadCredential(s *Settings, r *resolver) error {
	o := r.o
	if o.credential != nil {
		s.credential, s.CredentialOrigin = o.credential, originCode
		return nil
	}
	typ, origin := r.get(KeyCredentialsType)
	if typ == "" {
		// Not configured: credentials-go's default chain (ALIBABA_CLOUD_* env,
		// RRSA OIDC, CLI profile, ECS role, credentials URI). Alibaba's client
		// refuses to start instead.
		s.Credential.Type = kms.CredentialDefault
		return nil
	}
	kind, ok := credentialTypes[strings.ToLower(typ)]
	if !ok {
		return keyError(KeyCredentialsType, origin, fmt.Sprintf("unknown type %q: expected one of %s", typ, credentialTypeNames()))
	}
	s.CredentialOrigin = origin
	c := kms.CredentialOptions{Type: kind, Proxy: o.credProxy}
	need := func(key string) (string, error) {
		v, _ := r.get(key)
		if v == "" {
			return "", keyError(key, "", fmt.Sprintf("required for credentials_type %q (set it in the environment, in %s, or in code)", typ, DefaultPropertiesFile))
		}
		return v, nil
	}
	var err error
	stsEndpoint := func() error {
		c.STSEndpoint, _ = r.get(KeySTSEndpoint)
		if c.STSEndpoint != "" && strings.ContainsAny(c.STSEndpoint, "/ ") {
			return keyError(KeySTSEndpoint, "", "expected host or host:port, without scheme or path")
		}
		if v, orig := r.get(KeySessionDuration); v != "" {
			secs, err := strconv.Atoi(v)
			if err != nil || secs < 900 || secs > 43200 {
				return keyError(KeySessionDuration, orig, "expected a number of seconds between 900 and 43200")
			}
			c.SessionDuration = time.Duration(secs) * time.Second
		}
		return nil
	}
	switch strings.ToLower(typ) {
	case "ak", "access_key":
		if c.AccessKeyID, err = need(KeyAccessKeyID); err != nil {
			return err
		}
		if c.AccessKeySecret, err = need(KeyAccessSecret); err != nil {
			return err
		}
	case "token":
		if c.AccessKeyID, err = need(KeyAccessTokenID); err != nil {
			return err
		}
		if c.AccessKeySecret, err = need(KeyAccessToken); err != nil {
			return err
		}
	case "sts_token":
		if c.AccessKeyID, err = need(KeyAccessKeyID); err != nil {
			return err
		}
		if c.AccessKeySecret, err = need(KeyAccessSecret); err != nil {
			return err
		}
		if c.SecurityToken, err = need(KeySecurityToken); err != nil {
			return err
		}
	case "sts", "ram_role", "ram_role_arn":
		if c.AccessKeyID, err = need(KeyAccessKeyID); err != nil {
			return err
		}
		if c.AccessKeySecret, err = need(KeyAccessSecret); err != nil {
			return err
		}
		if c.RoleARN, err = need(KeyRoleARN); err != nil {
			return err
		}
		if err := checkARN(r, KeyRoleARN, c.RoleARN); err != nil {
			return err
		}
		// Alibaba's client requires a session name; credentials-go makes one up.
		c.RoleSessionName, _ = r.get(KeyRoleSessionName)
		c.Policy, _ = r.get(KeyPolicy)
		c.ExternalID, _ = r.get(KeyExternalID)
		if err := stsEndpoint(); err != nil {
			return err
		}
	case "ecs_ram_role":
		// Alibaba's client requires credentials_role_name (its README says
		// credentials_role_session_name); credentials-go asks the metadata
		// service for the role when it is empty.
		c.RoleName, _ = r.get(KeyRoleName)
		if v := r.env(EnvIMDSv1Disabled); v != "" {
			c.DisableIMDSv1, _ = strconv.ParseBool(v)
		}
	case "client_key":
		if c.ClientKeyFile, err = need(KeyClientKeyPath); err != nil {
			return err
		}
		if err := checkReadable(KeyClientKeyPath, c.ClientKeyFile); err != nil {
			return err
		}
		if c.ClientKeyPassword, err = clientKeyPassword(r); err != nil {
			return err
		}
	case "oidc_role_arn":
		c.RoleARN = firstOf(r, KeyRoleARN, EnvRoleARN)
		c.OIDCProviderARN = firstOf(r, KeyOIDCProviderARN, EnvOIDCProviderARN)
		c.OIDCTokenFile = firstOf(r, KeyOIDCTokenFile, EnvOIDCTokenFile)
		c.RoleSessionName = firstOf(r, KeyRoleSessionName, EnvRoleSessionName)
		c.Policy, _ = r.get(KeyPolicy)
		for _, f := range []struct{ v, key, env string }{
			{c.RoleARN, KeyRoleARN, EnvRoleARN}, {c.OIDCProviderARN, KeyOIDCProviderARN, EnvOIDCProviderARN},
			{c.OIDCTokenFile, KeyOIDCTokenFile, EnvOIDCTokenFile},
		} {
			if f.v == "" {
				return keyError(f.key, "", fmt.Sprintf("required for credentials_type %q (or set %s, as ACK's RRSA does)", typ, f.env))
			}
		}
		if err := checkARN(r, KeyRoleARN, c.RoleARN); err != nil {
			return err
		}
		if err := checkReadable(KeyOIDCTokenFile, c.OIDCTokenFile); err != nil {
			return err
		}
		if err := stsEndpoint(); err != nil {
			return err
		}
	case "credentials_uri":
		c.URL = firstOf(r, KeyCredentialsURI, EnvCredentialsURI)
		if c.URL == "" {
			return keyError(KeyCredentialsURI, "", fmt.Sprintf("required for credentials_type %q (or set %s)", typ, EnvCredentialsURI))
		}
		u, err := url.Parse(c.URL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return keyError(KeyCredentialsURI, "", "expected an http:// or https:// URL")
		}
		if u.Scheme == "http" && !isLoopback(u.Hostname()) {
			s.Warnings = append(s.Warnings, KeyCredentialsURI+": an http:// URL to a host other than this one: "+
				"the AccessKeys it answers travel unencrypted (use https://, or a local agent on 127.0.0.1)")
		}
	case "default":
	}
	s.Credential = c
	return nil
}

// isLoopback reports whether host names this machine (localhost or a
// loopback address).
func isLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// firstOf reads a properties key, then a credentials-go environment variable.
func firstOf(r *resolver, key, envName string) string {
	if v, _ := r.get(key); v != "" {
		return v
	}
	return r.env(envName)
}

func checkARN(r *resolver, key, arn string) error {
	if !strings.HasPrefix(arn, "acs:ram::") {
		_, origin := r.get(key)
		return keyError(key, origin, "expected a RAM ARN such as acs:ram::123456789012:role/name")
	}
	return nil
}

// Bounds of the files a configuration names.
const (
	maxPasswordFile = 64 << 10 // a client key password
	maxKeyFile      = 1 << 20  // a client key, a CA bundle, an OIDC token
)

// readConfigFile reads a file a setting names: a regular file (a FIFO would
// hang Load, a device would never end) of at most limit bytes. The error
// names the key and the path and says what is wrong.
func readConfigFile(key, origin, path string, limit int64) ([]byte, error) {
	b, err := regfile.Read(path, limit)
	if err == nil {
		return b, nil
	}
	why := "cannot be read"
	var notRegular *regfile.NotRegularError
	switch {
	case errors.Is(err, fs.ErrNotExist):
		why = "does not exist"
	case errors.Is(err, fs.ErrPermission):
		why = "is not readable (permission denied)"
	case errors.Is(err, regfile.ErrIsDir):
		return nil, keyError(key, origin, fmt.Sprintf("%q is a directory, expected a file", path))
	case errors.As(err, &notRegular):
		why = notRegular.Error()
	case errors.Is(err, regfile.ErrTooLarge):
		why = fmt.Sprintf("is larger than %d KiB", limit>>10)
	}
	return nil, keyError(key, origin, fmt.Sprintf("file %q %s", path, why))
}

// checkReadable fails with the key and the path unless path is a regular
// file of at most 1 MiB that can be read.
func checkReadable(key, path string) error {
	_, err := readConfigFile(key, "", path, maxKeyFile)
	return err
}

// clientKeyPassword finds the client key password as Alibaba's client does:
// the env var named by client_key_password_from_env_variable, else the file
// client_key_password_from_file_path, else the env var client_key_password.
func clientKeyPassword(r *resolver) (string, error) {
	if name, origin := r.get(KeyClientKeyPasswordEnv); name != "" {
		if v, ok := r.o.lookupEnv(name); ok && v != "" {
			return v, nil
		}
		if path, _ := r.get(KeyClientKeyPasswordFilePath); path == "" && r.env(EnvClientKeyPassword) == "" {
			return "", keyError(KeyClientKeyPasswordEnv, origin, fmt.Sprintf("names the environment variable %s, which is unset or empty", name))
		}
	}
	if path, origin := r.get(KeyClientKeyPasswordFilePath); path != "" {
		return readPasswordFile(KeyClientKeyPasswordFilePath, origin, path)
	}
	if v, ok := r.o.lookupEnv(EnvClientKeyPassword); ok && v != "" {
		return v, nil
	}
	return "", keyError(KeyClientKeyPasswordEnv, "", "client_key needs its password: set client_key_password_from_env_variable "+
		"(the name of an environment variable holding it) or client_key_password_from_file_path")
}

// readPasswordFile reads a password file, trimmed of surrounding blanks as
// Alibaba's client does.
func readPasswordFile(key, origin, path string) (string, error) {
	b, err := readConfigFile(key, origin, path, maxPasswordFile)
	if err != nil {
		return "", err
	}
	pw := strings.TrimSpace(string(b))
	if pw == "" {
		return "", keyError(key, origin, fmt.Sprintf("file %q is empty", path))
	}
	return pw, nil
}

func loadRegions(s *Settings, r *resolver) error {
	if len(r.o.regions) > 0 {
		for i, reg := range r.o.regions {
			if !validRegionID(reg.ID) {
				return keyError("WithRegion", originCode, fmt.Sprintf("region %d: expected a region id such as cn-hangzhou", i))
			}
		}
		s.Regions, s.RegionsOrigin = slices.Clone(r.o.regions), originCode
		return nil
	}
	value, origin := r.get(KeyRegions)
	if value == "" {
		return nil
	}
	regions, err := parseRegions(value)
	if err != nil {
		return keyError(KeyRegions, origin, err.Error()+`; expected e.g. [{"regionId":"cn-hangzhou","endpoint":"","vpc":false}]`)
	}
	for i, reg := range regions {
		if reg.CAFile != "" {
			if err := checkCAFile(fmt.Sprintf("%s[%d].caFilePath", KeyRegions, i), reg.CAFile); err != nil {
				return err
			}
		}
	}
	s.Regions, s.RegionsOrigin = regions, origin
	return nil
}

func loadDKMS(s *Settings, r *resolver) error {
	if len(r.o.dkms) > 0 {
		for i, e := range r.o.dkms {
			if e.RegionID == "" || e.Endpoint == "" || e.ClientKeyFile == "" {
				return keyError("WithDKMS", originCode, fmt.Sprintf("instance %d: RegionID, Endpoint and ClientKeyFile are required", i))
			}
			if e.Password == "" {
				return keyError("WithDKMS", originCode, fmt.Sprintf("instance %d: Password is required", i))
			}
			if err := checkReadable("WithDKMS ClientKeyFile", e.ClientKeyFile); err != nil {
				return err
			}
			if e.CAFile != "" && !e.IgnoreSSLCerts {
				if err := checkCAFile("WithDKMS CAFile", e.CAFile); err != nil {
					return err
				}
			}
			if e.IgnoreSSLCerts {
				s.warnLoggedBySource(fmt.Sprintf("WithDKMS instance %d: IgnoreSSLCerts is true: the instance's certificate is NOT verified", i))
			}
		}
		s.DKMS, s.DKMSOrigin = slices.Clone(r.o.dkms), originCode
		return nil
	}
	value, origin := r.get(KeyDKMSConfig)
	if value == "" {
		return nil
	}
	entries, err := parseDKMS(value)
	if err != nil {
		return keyError(KeyDKMSConfig, origin, err.Error())
	}
	for _, d := range entries {
		e, err := resolveDKMS(r, origin, d, s)
		if err != nil {
			return err
		}
		s.DKMS = append(s.DKMS, e)
		s.DKMSTimeout = max(s.DKMSTimeout, d.timeout)
	}
	s.DKMSOrigin = origin
	return nil
}

func resolveDKMS(r *resolver, origin string, d dkmsEntry, s *Settings) (dkms.Endpoint, error) {
	key := func(field string) string { return fmt.Sprintf("%s[%d].%s", KeyDKMSConfig, d.index, field) }
	e := dkms.Endpoint{RegionID: d.regionID, Endpoint: d.endpoint, ClientKeyFile: d.clientKey, IgnoreSSLCerts: d.ignoreSSL}
	if err := checkReadable(key("clientKeyFile"), d.clientKey); err != nil {
		return e, err
	}
	switch {
	case d.passwordFile != "":
		pw, err := readPasswordFile(key("passwordFromFilePath"), origin, d.passwordFile)
		if err != nil {
			return e, err
		}
		e.Password = pw
	case d.passwordEnv != "":
		v, ok := r.o.lookupEnv(d.passwordEnv)
		if !ok || v == "" {
			return e, keyError(key("passwordFromEnvVariable"), origin,
				fmt.Sprintf("names the environment variable %s, which is unset or empty", d.passwordEnv))
		}
		e.Password = v
	case d.passwordFilePathEnv != "":
		path, ok := r.o.lookupEnv(d.passwordFilePathEnv)
		if !ok || path == "" {
			return e, keyError(key("passwordFromFilePathName"), origin,
				fmt.Sprintf("names the environment variable %s, which is unset or empty", d.passwordFilePathEnv))
		}
		pw, err := readPasswordFile(key("passwordFromFilePathName"), origin, path)
		if err != nil {
			return e, err
		}
		e.Password = pw
	default:
		// Alibaba's fallbacks: the client_key_password env var, then (file only)
		// the client key password of the properties file.
		if v, ok := r.o.lookupEnv(EnvClientKeyPassword); ok && v != "" {
			e.Password = v
		} else if pw, err := clientKeyPassword(r); err == nil {
			e.Password = pw
		} else {
			return e, keyError(key("passwordFromEnvVariable"), origin,
				"no password for the client key: set passwordFromEnvVariable (the name of an environment variable holding it) or passwordFromFilePath")
		}
	}
	ca := d.caFile
	caKey := key("caFilePath")
	if d.caCert != "" {
		caKey = key("caCert")
		if strings.Contains(d.caCert, "-----BEGIN CERTIFICATE-----") {
			return e, keyError(caKey, origin, "an inline PEM certificate is not supported: put it in a file and set caFilePath")
		}
		ca = d.caCert
	}
	switch {
	case d.ignoreSSL:
		msg := fmt.Sprintf("%s: ignoreSslCerts is true: the instance's certificate is NOT verified", key("ignoreSslCerts"))
		if ca != "" {
			msg += " (the CA file is ignored)"
		}
		s.warnLoggedBySource(msg)
	case ca != "":
		if err := checkCAFile(caKey, ca); err != nil {
			return e, err
		}
		e.CAFile = ca
	}
	return e, nil
}

// checkCAFile fails unless path holds at least one PEM certificate.
func checkCAFile(key, path string) error {
	b, err := readConfigFile(key, "", path, maxKeyFile)
	if err != nil {
		return err
	}
	for rest := b; ; {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			return keyError(key, "", fmt.Sprintf("file %q holds no PEM certificate", path))
		}
		if block.Type == "CERTIFICATE" {
			if _, err := x509.ParseCertificate(block.Bytes); err != nil {
				return keyError(key, "", fmt.Sprintf("file %q: certificate cannot be parsed", path))
			}
			return nil
		}
	}
}

// warnLoggedBySource records a warning that a source logs itself when built.
func (s *Settings) warnLoggedBySource(msg string) {
	s.Warnings = append(s.Warnings, msg)
	if s.loggedBySource == nil {
		s.loggedBySource = map[string]bool{}
	}
	s.loggedBySource[msg] = true
}

func loadCache(s *Settings, r *resolver) error {
	if v, _ := r.get(KeySecretNames); v != "" {
		for _, n := range strings.Split(v, ",") {
			if n = strings.TrimSpace(n); n != "" {
				s.SecretNames = append(s.SecretNames, n)
			}
		}
	}
	if v, origin := r.get(KeyRefreshSecretTTL); v != "" {
		ms, err := strconv.ParseInt(v, 10, 64)
		if err != nil || ms <= 0 {
			return keyError(KeyRefreshSecretTTL, origin, "expected a positive number of milliseconds")
		}
		s.RefreshSecretTTL = time.Duration(ms) * time.Millisecond
	}
	return nil
}
