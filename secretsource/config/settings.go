package config

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/aliyun/credentials-go/credentials"

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

// loadLocal decides whether a local source serves the secrets (WithLocal, or
// KMSDB_LOCAL_SECRETS[_FILE] unless KMS is configured in code).
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

// loadRegions reads the KMS regions: WithRegion(s), else cache_client_region_id.
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
			if err := checkCAFile(fmt.Sprintf("%s[%d].caFilePath", KeyRegions, i), origin, reg.CAFile); err != nil {
				return err
			}
		}
	}
	s.Regions, s.RegionsOrigin = regions, origin
	return nil
}

// loadCache reads the keys meant for a cache: secret_names, refresh_secret_ttl.
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
