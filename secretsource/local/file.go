package local

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/kmsdb/kmsdb/secretsource"
)

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
func FromFile(path string) Option {
	return func(l *Source) error {
		data, err := os.ReadFile(path)
		if err != nil {
			return &secretsource.Error{Kind: secretsource.KindConfig, Source: "local", Message: fmt.Sprintf("cannot read secrets file %q", path), Err: unwrapPathError(err)}
		}
		secrets, err := parseLocalFile(data)
		if err != nil {
			return &secretsource.Error{Kind: secretsource.KindConfig, Source: "local", Message: fmt.Sprintf("secrets file %q", filepath.Clean(path)), Err: err}
		}
		for name, s := range secrets {
			l.secrets[name] = s
		}
		return nil
	}
}

// unwrapPathError drops the path from an *os.PathError (the caller names it).
func unwrapPathError(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
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
			cur, err := localVersion(name, m, "versionId", secretsource.StageCurrent)
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
				if ls.previous, err = localVersion(name, pm, "versionId", secretsource.StagePrevious); err != nil {
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

func localVersion(name string, m map[string]any, versionKey, stage string) (*secretsource.Secret, error) {
	field := func(k string) string {
		if stage == secretsource.StagePrevious {
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
	f := secretsource.Fields{Name: name, VersionID: "local", VersionStages: []string{stage}, SecretType: secretsource.TypeGeneric, DataType: secretsource.DataText}
	if stage == secretsource.StagePrevious {
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
	case secretsource.TypeGeneric, secretsource.TypeRds, secretsource.TypeRAM, secretsource.TypeECS:
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
	if f.DataType != secretsource.DataText && f.DataType != secretsource.DataBinary {
		return nil, bad("dataType", "expected text or binary")
	}
	if err := localValue(&f, m, bad); err != nil {
		return nil, err
	}
	if err := localMetadata(&f, m, bad); err != nil {
		return nil, err
	}
	f.Origin = secretsource.Origin{Source: "local"}
	return secretsource.NewSecret(f), nil
}

// localValue sets f.Value from the entry's "value": a string (base64 for a
// binary secret), or an object or array stored as its JSON.
func localValue(f *secretsource.Fields, m map[string]any, bad func(key, want string) error) error {
	raw, ok := m["value"]
	if !ok || raw == nil {
		return bad("value", "missing")
	}
	switch v := raw.(type) {
	case map[string]any, []any:
		if f.DataType == secretsource.DataBinary {
			return bad("value", "a binary secret needs a base64 string")
		}
		b, err := json.Marshal(v)
		if err != nil {
			return bad("value", "cannot be stored as JSON")
		}
		f.Value = b
	default:
		text, err := scalarText(v)
		if err != nil {
			return bad("value", "expected a string or an object")
		}
		f.Value = []byte(text)
		if f.DataType == secretsource.DataBinary {
			if f.Value, err = base64.StdEncoding.DecodeString(strings.TrimSpace(text)); err != nil {
				return bad("value", "expected base64 for a binary secret")
			}
		}
	}
	return nil
}

// localMetadata sets the optional fields of f: extendedConfig, rotation and
// times.
func localMetadata(f *secretsource.Fields, m map[string]any, bad func(key, want string) error) error {
	if ec, ok := m["extendedConfig"]; ok && ec != nil {
		switch v := ec.(type) {
		case string:
			f.ExtendedConfig = v
		case map[string]any:
			b, err := json.Marshal(v)
			if err != nil {
				return bad("extendedConfig", "cannot be stored as JSON")
			}
			f.ExtendedConfig = string(b)
		default:
			return bad("extendedConfig", "expected an object or a JSON string")
		}
	}
	if v, ok := m["automaticRotation"]; ok && v != nil {
		b, isBool := v.(bool)
		if !isBool {
			return bad("automaticRotation", "expected true or false")
		}
		f.AutomaticRotation = b
	}
	if v, ok := m["rotationInterval"]; ok && v != nil {
		s, _ := scalarText(v)
		d, err := time.ParseDuration(s)
		if err != nil || d < 0 {
			return bad("rotationInterval", "expected a Go duration such as 720h")
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
				return bad(t.key, "expected an RFC 3339 time")
			}
			*t.dst = tm
		default:
			return bad(t.key, "expected an RFC 3339 time")
		}
	}
	return nil
}
