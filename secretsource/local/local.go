// Package local is a secret source for development and tests without KMS:
// secrets from environment variables (KMSDB_SECRET_<NAME>), a JSON or YAML
// file, or a map. secretsource/config's Load returns one when
// KMSDB_LOCAL_SECRETS_FILE or KMSDB_LOCAL_SECRETS=true is set, or with
// config.WithLocal. It is its own package so that programs using only KMS do
// not link a YAML parser.
package local

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"sort"
	"strings"

	"github.com/kmsdb/kmsdb/secretsource"
)

// DefaultEnvPrefix is the prefix of the environment variables FromEnv
// reads when given an empty prefix.
const DefaultEnvPrefix = "KMSDB_SECRET_"

// Source serves secrets from environment variables, a JSON or YAML
// file, or a map, for development and tests without KMS. It reads its inputs
// once, when built, and is safe for concurrent use. It implements
// secretsource.Source and secretsource.VersionSource (a file may give each
// secret an ACSPrevious version).
type Source struct {
	secrets map[string]localSecret // by name
	env     map[string]string      // by environment variable name (FromEnv)
	prefix  string
}

type localSecret struct {
	current, previous *secretsource.Secret
}

// Option adds secrets to a Source. When several options supply the
// same secret, the last one wins.
type Option func(*Source) error

// New builds a Source from its options, in order.
//
//	src, err := local.New(
//		local.FromFile("secrets.yaml"),
//		local.FromEnv(""), // KMSDB_SECRET_<NAME> overrides the file
//	)
func New(opts ...Option) (*Source, error) {
	l := &Source{secrets: map[string]localSecret{}}
	for _, o := range opts {
		if err := o(l); err != nil {
			return nil, err
		}
	}
	return l, nil
}

// EnvName is the environment variable FromEnv(prefix) reads for the
// secret called name: the prefix followed by the name in upper case, every
// character other than A-Z and 0-9 replaced by '_'. The secret "db/app-prod"
// is KMSDB_SECRET_DB_APP_PROD.
func EnvName(prefix, name string) string {
	if prefix == "" {
		prefix = DefaultEnvPrefix
	}
	b := []byte(strings.ToUpper(name))
	for i, c := range b {
		if (c < 'A' || c > 'Z') && (c < '0' || c > '9') {
			b[i] = '_'
		}
	}
	return prefix + string(b)
}

// FromEnv serves the secrets found in environment variables named
// EnvName(prefix, secretName) (prefix "" means KMSDB_SECRET_). Each
// value is the secret's text, of type Generic, version "local". The
// environment is read when the option is applied; a variable set later is
// not seen. Secrets from FromEnv take precedence over every other option.
func FromEnv(prefix string) Option {
	return func(l *Source) error {
		if prefix == "" {
			prefix = DefaultEnvPrefix
		}
		l.prefix = prefix
		l.env = map[string]string{}
		for _, kv := range os.Environ() {
			if k, v, ok := strings.Cut(kv, "="); ok && strings.HasPrefix(k, prefix) && len(k) > len(prefix) {
				l.env[k] = v
			}
		}
		return nil
	}
}

// FromMap serves each value of secrets as the text of a Generic secret, version "local".
func FromMap(secrets map[string]string) Option {
	return func(l *Source) error {
		for name, v := range secrets {
			l.secrets[name] = localSecret{current: localText(name, v)}
		}
		return nil
	}
}

func localText(name, value string) *secretsource.Secret {
	return secretsource.NewSecret(secretsource.Fields{Name: name, VersionID: "local", VersionStages: []string{secretsource.StageCurrent},
		SecretType: secretsource.TypeGeneric, DataType: secretsource.DataText, Value: []byte(value),
		Origin: secretsource.Origin{Source: "local"}})
}

// GetSecret returns the ACSCurrent version of name, or an *secretsource.Error of
// secretsource.KindNotFound.
func (l *Source) GetSecret(ctx context.Context, name string) (*secretsource.Secret, error) {
	return l.GetSecretVersion(ctx, name, secretsource.VersionRef{})
}

// GetSecretVersion returns the version of name that ref selects: ACSCurrent
// (the zero ref), ACSPrevious when the file gives one, or a version id.
func (l *Source) GetSecretVersion(ctx context.Context, name string, ref secretsource.VersionRef) (*secretsource.Secret, error) {
	if err := ctx.Err(); err != nil {
		return nil, &secretsource.Error{Kind: secretsource.KindTimeout, Secret: name, Source: "local", Err: err}
	}
	if l.env != nil {
		if v, ok := l.env[EnvName(l.prefix, name)]; ok {
			s := localText(name, v)
			if ref.Matches(s) {
				return s, nil
			}
			return nil, l.notFound(name, ref)
		}
	}
	ls, ok := l.secrets[name]
	if !ok {
		return nil, l.notFound(name, ref)
	}
	for _, s := range []*secretsource.Secret{ls.current, ls.previous} {
		if s != nil && ref.Matches(s) {
			return s, nil
		}
	}
	return nil, l.notFound(name, ref)
}

func (l *Source) notFound(name string, ref secretsource.VersionRef) error {
	msg := "no such secret in the local source"
	if l.env != nil {
		msg += fmt.Sprintf(" (environment variable %s is not set)", EnvName(l.prefix, name))
	}
	if ref != (secretsource.VersionRef{}) {
		msg = fmt.Sprintf("no version with stage %q / version id %q in the local source", ref.Stage, ref.VersionID)
	}
	return &secretsource.Error{Kind: secretsource.KindNotFound, Secret: name, Source: "local", Message: msg}
}

// String describes the source by the names it serves, never a value. The
// formatting methods have value receivers so that a dereferenced Source
// is redacted too.
func (l Source) String() string {
	env := ""
	if l.env != nil {
		env = fmt.Sprintf(" env=%s* (%d variables)", l.prefix, len(l.env))
	}
	return fmt.Sprintf("local.Source(secrets=%q%s)", l.Names(), env)
}

// GoString is String, so %#v cannot print a value read from the environment.
func (l Source) GoString() string { return l.String() }

// Format prints String for every verb.
func (l Source) Format(st fmt.State, _ rune) { _, _ = fmt.Fprint(st, l.String()) }

// LogValue makes slog print String.
func (l Source) LogValue() slog.Value { return slog.StringValue(l.String()) }

// Names lists the secrets the source holds from files and maps (secrets from
// FromEnv are looked up by name and not listed).
func (l *Source) Names() []string {
	names := make([]string, 0, len(l.secrets))
	for n := range l.secrets {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}
