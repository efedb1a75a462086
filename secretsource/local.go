package secretsource

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// DefaultLocalEnvPrefix is the prefix of the environment variables FromEnv
// reads when given an empty prefix.
const DefaultLocalEnvPrefix = "KMSDB_SECRET_"

// LocalSource serves secrets from environment variables, a JSON or YAML
// file, or a map, for development and tests without KMS. It reads its inputs
// once, when built, and is safe for concurrent use. It implements Source and
// VersionSource (a file may give each secret an ACSPrevious version).
type LocalSource struct {
	secrets map[string]localSecret // by name
	env     map[string]string      // by environment variable name (FromEnv)
	prefix  string
}

type localSecret struct {
	current, previous *Secret
}

// LocalOption adds secrets to a LocalSource. When several options supply the
// same secret, the last one wins.
type LocalOption func(*LocalSource) error

// NewLocalSource builds a LocalSource from its options, in order.
//
//	src, err := secretsource.NewLocalSource(
//		secretsource.FromFile("secrets.yaml"),
//		secretsource.FromEnv(""), // KMSDB_SECRET_<NAME> overrides the file
//	)
func NewLocalSource(opts ...LocalOption) (*LocalSource, error) {
	l := &LocalSource{secrets: map[string]localSecret{}}
	for _, o := range opts {
		if err := o(l); err != nil {
			return nil, err
		}
	}
	return l, nil
}

// LocalEnvName is the environment variable FromEnv(prefix) reads for the
// secret called name: the prefix followed by the name in upper case, every
// character other than A-Z and 0-9 replaced by '_'. The secret "db/app-prod"
// is KMSDB_SECRET_DB_APP_PROD.
func LocalEnvName(prefix, name string) string {
	if prefix == "" {
		prefix = DefaultLocalEnvPrefix
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
// LocalEnvName(prefix, secretName) (prefix "" means KMSDB_SECRET_). Each
// value is the secret's text, of type Generic, version "local". The
// environment is read when the option is applied; a variable set later is
// not seen. Secrets from FromEnv take precedence over every other option.
func FromEnv(prefix string) LocalOption {
	return func(l *LocalSource) error {
		if prefix == "" {
			prefix = DefaultLocalEnvPrefix
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
func FromMap(secrets map[string]string) LocalOption {
	return func(l *LocalSource) error {
		for name, v := range secrets {
			l.secrets[name] = localSecret{current: localText(name, v)}
		}
		return nil
	}
}

func localText(name, value string) *Secret {
	return NewSecret(Fields{Name: name, VersionID: "local", VersionStages: []string{StageCurrent},
		SecretType: TypeGeneric, DataType: DataText, Value: []byte(value)})
}

// FromFile serves the secrets of a JSON or YAML file (YAML is a superset of
// JSON; the extension does not matter). The file maps secret names either to
// the secret's text, or to an object:
//
//	db/app:                        # a text value
//	  '{"AccountName":"app","AccountPassword":"…"}'
//	db/orders:
//	  type: Rds                    # Generic (default), Rds, RAMCredentials, ECS
//	  versionId: v2                # default "local"
//	  value:                       # a string, or an object stored as its JSON
//	    AccountName: orders
//	    AccountPassword: "…"
//	  extendedConfig: {CustomData: {host: db.internal, port: 3306}}
//	  previous:                    # optional ACSPrevious version
//	    versionId: v1
//	    value: {AccountName: orders, AccountPassword: "…"}
//	blob:
//	  dataType: binary             # value is base64, served decoded
//	  value: aGVsbG8=
//
// The file is read once, when the option is applied. Errors name the file,
// the secret and the field, never a value.
func FromFile(path string) LocalOption {
	return func(l *LocalSource) error {
		data, err := os.ReadFile(path)
		if err != nil {
			return &Error{Kind: KindConfig, Source: "local", Message: fmt.Sprintf("cannot read secrets file %q", path), Err: unwrapPathError(err)}
		}
		secrets, err := parseLocalFile(data)
		if err != nil {
			return &Error{Kind: KindConfig, Source: "local", Message: fmt.Sprintf("secrets file %q", filepath.Clean(path)), Err: err}
		}
		for name, s := range secrets {
			l.secrets[name] = s
		}
		return nil
	}
}

// unwrapPathError drops the path from an *os.PathError (the caller names it).
func unwrapPathError(err error) error {
	if pe, ok := err.(*os.PathError); ok {
		return pe.Err
	}
	return err
}

// parseLocalFile parses the document FromFile reads. Errors never quote a value.
func parseLocalFile(data []byte) (map[string]localSecret, error) {
	out := map[string]localSecret{}
	if len(bytes.TrimSpace(data)) == 0 {
		return out, nil
	}
	var doc map[string]any
	if err := yaml.Unmarshal(data, &doc); err != nil {
		// yaml errors quote the offending text; say where only.
		return nil, fmt.Errorf("not a JSON or YAML mapping of secret names (%s)", yamlErrorLine(err))
	}
	names := make([]string, 0, len(doc))
	for name := range doc {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		if strings.TrimSpace(name) == "" {
			return nil, fmt.Errorf("empty secret name")
		}
		entry := doc[name]
		if m, ok := entry.(map[string]any); ok {
			cur, err := localVersion(name, m, "versionId", StageCurrent)
			if err != nil {
				return nil, err
			}
			ls := localSecret{current: cur}
			if p, ok := m["previous"]; ok && p != nil {
				pm, ok := p.(map[string]any)
				if !ok {
					return nil, fmt.Errorf("secret %q: field \"previous\": expected an object with value and versionId", name)
				}
				for k, v := range m { // the previous version inherits type and data type
					if _, set := pm[k]; !set && (k == "type" || k == "dataType") {
						pm[k] = v
					}
				}
				if ls.previous, err = localVersion(name, pm, "versionId", StagePrevious); err != nil {
					return nil, err
				}
				if ls.previous.VersionID() == cur.VersionID() {
					return nil, fmt.Errorf("secret %q: field \"previous.versionId\": must differ from the current versionId", name)
				}
			}
			out[name] = ls
			continue
		}
		text, err := scalarText(entry)
		if err != nil {
			return nil, fmt.Errorf("secret %q: expected a string or an object with a value", name)
		}
		out[name] = localSecret{current: localText(name, text)}
	}
	return out, nil
}

func yamlErrorLine(err error) string {
	msg := err.Error()
	if i := strings.Index(msg, "line "); i >= 0 {
		end := strings.IndexByte(msg[i:], ':')
		if end > 0 {
			return msg[i : i+end]
		}
	}
	return "syntax error"
}

// scalarText renders a YAML scalar as the text a secret would hold.
func scalarText(v any) (string, error) {
	switch x := v.(type) {
	case string:
		return x, nil
	case int, int64, uint64, float64, bool:
		return fmt.Sprint(x), nil
	case nil:
		return "", fmt.Errorf("null")
	}
	return "", fmt.Errorf("not a scalar")
}

var localKnownKeys = []string{"type", "versionId", "value", "dataType", "extendedConfig", "previous",
	"createTime", "automaticRotation", "rotationInterval", "nextRotationDate", "lastRotationDate"}

func localVersion(name string, m map[string]any, versionKey, stage string) (*Secret, error) {
	field := func(k string) string {
		if stage == StagePrevious {
			return "previous." + k
		}
		return k
	}
	bad := func(k, want string) error {
		return fmt.Errorf("secret %q: field %q: %s", name, field(k), want)
	}
	for k := range m {
		if !slices.Contains(localKnownKeys, k) {
			return nil, bad(k, "unknown field; expected one of "+strings.Join(localKnownKeys, ", "))
		}
	}
	f := Fields{Name: name, VersionID: "local", VersionStages: []string{stage}, SecretType: TypeGeneric, DataType: DataText}
	if stage == StagePrevious {
		f.VersionID = "local-previous"
	}
	str := func(k string, dst *string) error {
		v, ok := m[k]
		if !ok || v == nil {
			return nil
		}
		s, err := scalarText(v)
		if err != nil {
			return bad(k, "expected a string")
		}
		*dst = s
		return nil
	}
	if err := str("type", &f.SecretType); err != nil {
		return nil, err
	}
	switch f.SecretType {
	case TypeGeneric, TypeRds, TypeRAM, TypeECS:
	default:
		return nil, bad("type", "expected Generic, Rds, RAMCredentials or ECS")
	}
	if err := str(versionKey, &f.VersionID); err != nil {
		return nil, err
	}
	if f.VersionID == "" {
		return nil, bad(versionKey, "must not be empty")
	}
	if err := str("dataType", &f.DataType); err != nil {
		return nil, err
	}
	if f.DataType != DataText && f.DataType != DataBinary {
		return nil, bad("dataType", "expected text or binary")
	}
	raw, ok := m["value"]
	if !ok || raw == nil {
		return nil, bad("value", "missing")
	}
	switch v := raw.(type) {
	case map[string]any, []any:
		if f.DataType == DataBinary {
			return nil, bad("value", "a binary secret needs a base64 string")
		}
		b, err := json.Marshal(v)
		if err != nil {
			return nil, bad("value", "cannot be stored as JSON")
		}
		f.Value = b
	default:
		text, err := scalarText(v)
		if err != nil {
			return nil, bad("value", "expected a string or an object")
		}
		f.Value = []byte(text)
		if f.DataType == DataBinary {
			if f.Value, err = base64.StdEncoding.DecodeString(strings.TrimSpace(text)); err != nil {
				return nil, bad("value", "expected base64 for a binary secret")
			}
		}
	}
	if ec, ok := m["extendedConfig"]; ok && ec != nil {
		switch v := ec.(type) {
		case string:
			f.ExtendedConfig = v
		case map[string]any:
			b, err := json.Marshal(v)
			if err != nil {
				return nil, bad("extendedConfig", "cannot be stored as JSON")
			}
			f.ExtendedConfig = string(b)
		default:
			return nil, bad("extendedConfig", "expected an object or a JSON string")
		}
	}
	if v, ok := m["automaticRotation"]; ok && v != nil {
		b, isBool := v.(bool)
		if !isBool {
			return nil, bad("automaticRotation", "expected true or false")
		}
		f.AutomaticRotation = b
	}
	if v, ok := m["rotationInterval"]; ok && v != nil {
		s, _ := scalarText(v)
		d, err := time.ParseDuration(s)
		if err != nil || d < 0 {
			return nil, bad("rotationInterval", "expected a Go duration such as 720h")
		}
		f.RotationInterval = d
	}
	for _, t := range []struct {
		key string
		dst *time.Time
	}{{"createTime", &f.CreateTime}, {"nextRotationDate", &f.NextRotationDate}, {"lastRotationDate", &f.LastRotationDate}} {
		v, ok := m[t.key]
		if !ok || v == nil {
			continue
		}
		switch x := v.(type) {
		case time.Time: // YAML timestamps
			*t.dst = x
		case string:
			tm, err := time.Parse(time.RFC3339, x)
			if err != nil {
				return nil, bad(t.key, "expected an RFC 3339 time")
			}
			*t.dst = tm
		default:
			return nil, bad(t.key, "expected an RFC 3339 time")
		}
	}
	return NewSecret(f), nil
}

// GetSecret returns the ACSCurrent version of name, or an *Error of
// KindNotFound.
func (l *LocalSource) GetSecret(ctx context.Context, name string) (*Secret, error) {
	return l.GetSecretVersion(ctx, name, VersionRef{})
}

// GetSecretVersion returns the version of name that ref selects: ACSCurrent
// (the zero ref), ACSPrevious when the file gives one, or a version id.
func (l *LocalSource) GetSecretVersion(ctx context.Context, name string, ref VersionRef) (*Secret, error) {
	if err := ctx.Err(); err != nil {
		return nil, &Error{Kind: KindTimeout, Secret: name, Source: "local", Err: err}
	}
	if l.env != nil {
		if v, ok := l.env[LocalEnvName(l.prefix, name)]; ok {
			s := localText(name, v)
			if matches(s, ref) {
				return s, nil
			}
			return nil, l.notFound(name, ref)
		}
	}
	ls, ok := l.secrets[name]
	if !ok {
		return nil, l.notFound(name, ref)
	}
	for _, s := range []*Secret{ls.current, ls.previous} {
		if s != nil && matches(s, ref) {
			return s, nil
		}
	}
	return nil, l.notFound(name, ref)
}

func matches(s *Secret, ref VersionRef) bool {
	if ref.VersionID != "" && ref.VersionID != s.VersionID() {
		return false
	}
	stage := ref.Stage
	if stage == "" && ref.VersionID == "" {
		stage = StageCurrent
	}
	return stage == "" || s.HasStage(stage)
}

func (l *LocalSource) notFound(name string, ref VersionRef) error {
	msg := "no such secret in the local source"
	if l.env != nil {
		msg += fmt.Sprintf(" (environment variable %s is not set)", LocalEnvName(l.prefix, name))
	}
	if ref != (VersionRef{}) {
		msg = fmt.Sprintf("no version with stage %q / version id %q in the local source", ref.Stage, ref.VersionID)
	}
	return &Error{Kind: KindNotFound, Secret: name, Source: "local", Message: msg}
}

// String describes the source by the names it serves, never a value. The
// formatting methods have value receivers so that a dereferenced LocalSource
// is redacted too.
func (l LocalSource) String() string {
	env := ""
	if l.env != nil {
		env = fmt.Sprintf(" env=%s* (%d variables)", l.prefix, len(l.env))
	}
	return fmt.Sprintf("secretsource.LocalSource(secrets=%q%s)", l.Names(), env)
}

// GoString is String, so %#v cannot print a value read from the environment.
func (l LocalSource) GoString() string { return l.String() }

// Format prints String for every verb.
func (l LocalSource) Format(st fmt.State, _ rune) { _, _ = fmt.Fprint(st, l.String()) }

// LogValue makes slog print String.
func (l LocalSource) LogValue() slog.Value { return slog.StringValue(l.String()) }

// Names lists the secrets the source holds from files and maps (secrets from
// FromEnv are looked up by name and not listed).
func (l *LocalSource) Names() []string {
	names := make([]string, 0, len(l.secrets))
	for n := range l.secrets {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}
