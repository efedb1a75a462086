package config

// Credentials: credentials_type and the keys each type reads, as one table.

import (
	"fmt"
	"net"
	"net/url"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/kmsdb/kmsdb/secretsource/internal/wire"
	"github.com/kmsdb/kmsdb/secretsource/kms"
)

// credentialType is one accepted credentials_type: the kms credential type it
// builds, the keys it reads (in order) and the checks run once they are read.
type credentialType struct {
	names []string // credentials_type values, lower case
	kind  string   // kms.Credential*
	keys  []credKey
	// envNote ends the "(or set ENV…)" hint of a required key that has a
	// credentials-go environment variable as fallback.
	envNote string
	checks  []credCheck
}

// credKey is one key a credential type reads into kms.CredentialOptions.
type credKey struct {
	key      string // properties key
	env      string // credentials-go environment variable read when key is unset; "" for none
	required bool
	dst      func(*kms.CredentialOptions) *string
}

// credCheck validates (and may complete) a credential once its keys are read.
type credCheck func(r *resolver, s *Settings, c *kms.CredentialOptions) error

// Fields of kms.CredentialOptions the table fills.
func accessKeyID(c *kms.CredentialOptions) *string     { return &c.AccessKeyID }
func accessKeySecret(c *kms.CredentialOptions) *string { return &c.AccessKeySecret }
func securityToken(c *kms.CredentialOptions) *string   { return &c.SecurityToken }
func roleARN(c *kms.CredentialOptions) *string         { return &c.RoleARN }
func roleSessionName(c *kms.CredentialOptions) *string { return &c.RoleSessionName }
func policy(c *kms.CredentialOptions) *string          { return &c.Policy }
func externalID(c *kms.CredentialOptions) *string      { return &c.ExternalID }
func roleName(c *kms.CredentialOptions) *string        { return &c.RoleName }
func clientKeyFile(c *kms.CredentialOptions) *string   { return &c.ClientKeyFile }
func oidcProviderARN(c *kms.CredentialOptions) *string { return &c.OIDCProviderARN }
func oidcTokenFile(c *kms.CredentialOptions) *string   { return &c.OIDCTokenFile }
func credentialsURL(c *kms.CredentialOptions) *string  { return &c.URL }

// accessKeyKeys are the AccessKey pair of ak, sts_token and the role types.
var accessKeyKeys = []credKey{
	{key: KeyAccessKeyID, required: true, dst: accessKeyID},
	{key: KeyAccessSecret, required: true, dst: accessKeySecret},
}

// credentialTypes are every accepted credentials_type: Alibaba's five (ak,
// sts, ram_role, ecs_ram_role, client_key) plus its undocumented token,
// credentials-go's names, and the types Alibaba's client lacks.
var credentialTypes = []credentialType{ // long: table
	{names: []string{"ak", "access_key"}, kind: kms.CredentialAccessKey, keys: accessKeyKeys},
	{names: []string{"token"}, kind: kms.CredentialAccessKey, keys: []credKey{
		{key: KeyAccessTokenID, required: true, dst: accessKeyID},
		{key: KeyAccessToken, required: true, dst: accessKeySecret},
	}},
	{names: []string{"sts_token"}, kind: kms.CredentialSTS, keys: append(slices.Clip(accessKeyKeys),
		credKey{key: KeySecurityToken, required: true, dst: securityToken})},
	{names: []string{"sts", "ram_role", "ram_role_arn"}, kind: kms.CredentialRAMRoleARN, keys: append(slices.Clip(accessKeyKeys),
		credKey{key: KeyRoleARN, required: true, dst: roleARN},
		// Alibaba's client requires a session name; credentials-go makes one up.
		credKey{key: KeyRoleSessionName, dst: roleSessionName},
		credKey{key: KeyPolicy, dst: policy},
		credKey{key: KeyExternalID, dst: externalID},
	), checks: []credCheck{checkRoleARN, readSTSSettings}},
	// Alibaba's client requires credentials_role_name (its README says
	// credentials_role_session_name); credentials-go asks the metadata
	// service for the role when it is empty.
	{names: []string{"ecs_ram_role"}, kind: kms.CredentialECSRAMRole, keys: []credKey{{key: KeyRoleName, dst: roleName}},
		checks: []credCheck{readIMDSv1Disabled}},
	{names: []string{"client_key"}, kind: kms.CredentialClientKey, keys: []credKey{{key: KeyClientKeyPath, required: true, dst: clientKeyFile}},
		checks: []credCheck{readClientKey}},
	{names: []string{"oidc_role_arn"}, kind: kms.CredentialOIDCRoleARN, envNote: ", as ACK's RRSA does", keys: []credKey{
		{key: KeyRoleARN, env: EnvRoleARN, required: true, dst: roleARN},
		{key: KeyOIDCProviderARN, env: EnvOIDCProviderARN, required: true, dst: oidcProviderARN},
		{key: KeyOIDCTokenFile, env: EnvOIDCTokenFile, required: true, dst: oidcTokenFile},
		{key: KeyRoleSessionName, env: EnvRoleSessionName, dst: roleSessionName},
		{key: KeyPolicy, dst: policy},
	}, checks: []credCheck{checkRoleARN, checkOIDCTokenFile, readSTSSettings}},
	{names: []string{"credentials_uri"}, kind: kms.CredentialCredentialsURI, keys: []credKey{
		{key: KeyCredentialsURI, env: EnvCredentialsURI, required: true, dst: credentialsURL},
	}, checks: []credCheck{checkCredentialsURI}},
	{names: []string{"default"}, kind: kms.CredentialDefault},
}

// credentialTypeOf returns the table entry of a credentials_type, any case.
func credentialTypeOf(typ string) (*credentialType, bool) {
	for i := range credentialTypes {
		if slices.Contains(credentialTypes[i].names, strings.ToLower(typ)) {
			return &credentialTypes[i], true
		}
	}
	return nil, false
}

func credentialTypeNames() string {
	var names []string
	for _, t := range credentialTypes {
		names = append(names, t.names...)
	}
	sort.Strings(names)
	return strings.Join(names, ", ")
}

// loadCredential resolves the KMS credential: WithCredential's, else the
// credentials_type's keys from code, environment and file, checked.
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
	t, ok := credentialTypeOf(typ)
	if !ok {
		return keyError(KeyCredentialsType, origin, fmt.Sprintf("unknown type %q: expected one of %s", typ, credentialTypeNames()))
	}
	s.CredentialOrigin = origin
	c := kms.CredentialOptions{Type: t.kind, Proxy: o.credProxy}
	for _, k := range t.keys {
		v, _ := r.get(k.key)
		if v == "" && k.env != "" {
			v = r.env(k.env)
		}
		if v == "" && k.required {
			return keyError(k.key, "", requiredText(typ, k, t.envNote))
		}
		*k.dst(&c) = v
	}
	for _, check := range t.checks {
		if err := check(r, s, &c); err != nil {
			return err
		}
	}
	s.Credential = c
	return nil
}

// requiredText is the problem of a required key left unset.
func requiredText(typ string, k credKey, envNote string) string {
	if k.env != "" {
		return fmt.Sprintf("required for credentials_type %q (or set %s%s)", typ, k.env, envNote)
	}
	return fmt.Sprintf("required for credentials_type %q (set it in the environment, in %s, or in code)", typ, DefaultPropertiesFile)
}

func checkRoleARN(r *resolver, _ *Settings, c *kms.CredentialOptions) error {
	if !strings.HasPrefix(c.RoleARN, "acs:ram::") {
		_, origin := r.get(KeyRoleARN)
		return keyError(KeyRoleARN, origin, "expected a RAM ARN such as acs:ram::123456789012:role/name")
	}
	return nil
}

// readSTSSettings reads where and for how long the role types assume their role.
func readSTSSettings(r *resolver, _ *Settings, c *kms.CredentialOptions) error {
	c.STSEndpoint, _ = r.get(KeySTSEndpoint)
	if c.STSEndpoint != "" {
		if problem, ok := wire.CheckEndpoint(c.STSEndpoint); !ok {
			return keyError(KeySTSEndpoint, "", "expected host or host:port: "+problem)
		}
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

func readIMDSv1Disabled(r *resolver, _ *Settings, c *kms.CredentialOptions) error {
	if v := r.env(EnvIMDSv1Disabled); v != "" {
		c.DisableIMDSv1, _ = strconv.ParseBool(v)
	}
	return nil
}

func readClientKey(r *resolver, _ *Settings, c *kms.CredentialOptions) error {
	if err := checkClientKey(KeyClientKeyPath, "", c.ClientKeyFile); err != nil {
		return err
	}
	pw, err := clientKeyPassword(r)
	c.ClientKeyPassword = pw
	return err
}

func checkOIDCTokenFile(_ *resolver, _ *Settings, c *kms.CredentialOptions) error {
	return checkReadable(KeyOIDCTokenFile, c.OIDCTokenFile)
}

func checkCredentialsURI(_ *resolver, s *Settings, c *kms.CredentialOptions) error {
	u, err := url.Parse(c.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return keyError(KeyCredentialsURI, "", "expected an http:// or https:// URL")
	}
	if u.Scheme == "http" && !isLoopback(u.Hostname()) {
		s.Warnings = append(s.Warnings, KeyCredentialsURI+": an http:// URL to a host other than this one: "+
			"the AccessKeys it answers travel unencrypted (use https://, or a local agent on 127.0.0.1)")
	}
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
