package secretsource

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
)

// FieldError says which field of a secret value is missing or malformed. It
// never holds the value. Decoders return it wrapped in an *Error of
// KindConfig (retrying cannot help), so errors.As finds either.
type FieldError struct {
	Field   string // the field as the secret spells it, e.g. AccountPassword or port
	Problem string // what is wrong and what is expected
}

func (e *FieldError) Error() string {
	if e.Field == "" {
		return e.Problem
	}
	return fmt.Sprintf("field %q: %s", e.Field, e.Problem)
}

// decodeError builds the error every decoder returns.
func decodeError(s *Secret, field, problem string) error {
	return &Error{Kind: KindConfig, Secret: s.Name(), Source: "decode", Err: &FieldError{Field: field, Problem: problem}}
}

// jsonObject is a secret value (or extended config) parsed one level deep,
// with case-insensitive key lookup. Raw values are never put in errors.
type jsonObject map[string]json.RawMessage

// parseObject parses data as a JSON object. The JSON error is not kept: its
// text can quote a character of the value.
func parseObject(data []byte) (jsonObject, bool) {
	data = bytes.TrimSpace(data)
	if len(data) == 0 || data[0] != '{' {
		return nil, false
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(data, &m); err != nil {
		return nil, false
	}
	return jsonObject(m), true
}

// lookup returns the first of names present in o (exact spelling first, then
// case-insensitively) and the spelling found. JSON null counts as absent.
func (o jsonObject) lookup(names ...string) (raw json.RawMessage, key string, ok bool) {
	for _, n := range names {
		if v, found := o[n]; found && !isNull(v) {
			return v, n, true
		}
	}
	for _, n := range names {
		for k, v := range o {
			if strings.EqualFold(k, n) && !isNull(v) {
				return v, k, true
			}
		}
	}
	return nil, "", false
}

func isNull(raw json.RawMessage) bool { return string(bytes.TrimSpace(raw)) == "null" }

// str reads a string field. present is false when none of names is there;
// err is a FieldError when the field is not a JSON string.
func (o jsonObject) str(names ...string) (value string, present bool, err *FieldError) {
	raw, key, ok := o.lookup(names...)
	if !ok {
		return "", false, nil
	}
	if err := json.Unmarshal(raw, &value); err != nil {
		return "", true, &FieldError{Field: key, Problem: "expected a JSON string"}
	}
	return value, true, nil
}

// port reads a TCP port given as a JSON number or a string holding one.
func (o jsonObject) port(names ...string) (int, bool, *FieldError) {
	raw, key, ok := o.lookup(names...)
	if !ok {
		return 0, false, nil
	}
	const want = "expected a port number 1-65535, as a JSON number or a string"
	text := string(bytes.TrimSpace(raw))
	if strings.HasPrefix(text, `"`) {
		if err := json.Unmarshal(raw, &text); err != nil {
			return 0, true, &FieldError{Field: key, Problem: want}
		}
		text = strings.TrimSpace(text)
		if text == "" {
			return 0, false, nil
		}
	}
	p, err := strconv.Atoi(text)
	if err != nil || p < 1 || p > 65535 {
		return 0, true, &FieldError{Field: key, Problem: want}
	}
	return p, true, nil
}

// DBAccount is a database login decoded from a secret: an Rds secret
// (AccountName/AccountPassword) or a Generic secret that carries the
// account and, optionally, the endpoint.
// Its String, Format, LogValue and MarshalJSON never show the password.
type DBAccount struct {
	Username string
	Password string
	Host     string // empty when the secret does not carry the endpoint
	Port     int    // 0 when the secret does not carry it
	DBName   string
	Engine   string // lower case: mysql, postgres, ... when the secret says so

	SecretName string // the secret it came from
	VersionID  string // the version it came from
}

func (a DBAccount) String() string {
	return fmt.Sprintf("DBAccount(user=%q host=%q port=%d db=%q secret=%q version=%q password=REDACTED)",
		a.Username, a.Host, a.Port, a.DBName, a.SecretName, a.VersionID)
}

// GoString is the same as String.
func (a DBAccount) GoString() string { return a.String() }

// Format makes every fmt verb (%d and %x included) print the redacted form.
func (a DBAccount) Format(st fmt.State, verb rune) { _, _ = fmt.Fprint(st, a.String()) }

// LogValue makes slog print everything but the password.
func (a DBAccount) LogValue() slog.Value {
	return slog.GroupValue(slog.String("user", a.Username), slog.String("host", a.Host), slog.Int("port", a.Port),
		slog.String("db", a.DBName), slog.String("secret", a.SecretName), slog.String("version", a.VersionID),
		slog.String("password", "REDACTED"))
}

// MarshalJSON shows everything but the password.
func (a DBAccount) MarshalJSON() ([]byte, error) {
	return json.Marshal(struct {
		Username, Host string
		Port           int
		DBName, Engine string
		SecretName     string
		VersionID      string
		Password       string
	}{a.Username, a.Host, a.Port, a.DBName, a.Engine, a.SecretName, a.VersionID, "REDACTED"})
}

// Spellings accepted for each DBAccount field, in order of preference. The
// first spelling of each list is the Rds one; lookup is case-insensitive.
var (
	dbUserKeys     = []string{"AccountName", "username", "user", "UserName"}
	dbPasswordKeys = []string{"AccountPassword", "password"}
	dbHostKeys     = []string{"host", "Endpoint", "hostname", "address"}
	dbPortKeys     = []string{"port", "Port"}
	dbNameKeys     = []string{"dbname", "DBName", "database", "db"}
	dbEngineKeys   = []string{"engine", "Engine", "dbEngine"}
)

// DecodeDBAccount decodes a database account from s.
//
// The value is a JSON object. Rds secrets hold AccountName and
// AccountPassword; Generic secrets may use username/password and carry the
// endpoint as host/port/dbname/engine (AWS style) or Endpoint/Port/DBName
// (Alibaba JDBC style). Keys match case-insensitively; a port may be a number
// or a string, and an Endpoint of the form host:port sets both. Fields the
// value lacks are taken from ExtendedConfig.CustomData when the secret was
// fetched with its extended config (Rds secrets keep the endpoint there).
//
// The error names the secret and the missing or malformed field, never the value.
func DecodeDBAccount(s *Secret) (DBAccount, error) {
	if s == nil {
		return DBAccount{}, &Error{Kind: KindConfig, Source: "decode", Message: "nil secret"}
	}
	obj, ok := parseObject(s.fields().Value)
	if !ok {
		return DBAccount{}, decodeError(s, "", "secret value is not a JSON object; a database secret holds "+
			`{"AccountName":…,"AccountPassword":…} or {"username":…,"password":…}`)
	}
	a := DBAccount{SecretName: s.Name(), VersionID: s.VersionID()}
	if err := fillDBAccount(&a, obj); err != nil {
		return DBAccount{}, decodeError(s, err.Field, err.Problem)
	}
	if ext := bytes.TrimSpace([]byte(s.ExtendedConfig())); len(ext) > 0 {
		eo, ok := parseObject(ext)
		if !ok {
			return DBAccount{}, decodeError(s, "ExtendedConfig", "expected a JSON object")
		}
		if raw, key, ok := eo.lookup("CustomData"); ok {
			cd, ok := parseObject(raw)
			if !ok {
				// KMS returns CustomData as an object; tolerate a JSON string holding one.
				var text string
				if json.Unmarshal(raw, &text) == nil {
					cd, ok = parseObject([]byte(text))
				}
			}
			if !ok {
				return DBAccount{}, decodeError(s, "ExtendedConfig."+key, "expected a JSON object")
			}
			if err := fillDBAccount(&a, cd); err != nil {
				return DBAccount{}, decodeError(s, "ExtendedConfig.CustomData."+err.Field, err.Problem)
			}
		}
	}
	if a.Username == "" {
		return DBAccount{}, decodeError(s, "AccountName", `missing or empty (also accepted: "username")`)
	}
	if a.Password == "" {
		return DBAccount{}, decodeError(s, "AccountPassword", `missing or empty (also accepted: "password")`)
	}
	return a, nil
}

// fillDBAccount sets the fields of a that are still empty from obj.
func fillDBAccount(a *DBAccount, obj jsonObject) *FieldError {
	for _, f := range []struct {
		dst  *string
		keys []string
	}{
		{&a.Username, dbUserKeys}, {&a.Password, dbPasswordKeys}, {&a.Host, dbHostKeys},
		{&a.DBName, dbNameKeys}, {&a.Engine, dbEngineKeys},
	} {
		if *f.dst != "" {
			continue
		}
		v, _, err := obj.str(f.keys...)
		if err != nil {
			return err
		}
		*f.dst = v
	}
	a.Engine = strings.ToLower(strings.TrimSpace(a.Engine))
	a.Host = strings.TrimSpace(a.Host)
	if a.Port == 0 {
		p, _, err := obj.port(dbPortKeys...)
		if err != nil {
			return err
		}
		a.Port = p
	}
	// Alibaba consoles show endpoints as host:port; split one if the port is not given apart.
	if i := strings.LastIndexByte(a.Host, ':'); i > 0 && !strings.Contains(a.Host[:i], ":") {
		if p, err := strconv.Atoi(a.Host[i+1:]); err == nil && p >= 1 && p <= 65535 {
			if a.Port == 0 {
				a.Port = p
			}
			a.Host = a.Host[:i]
		}
	}
	return nil
}
