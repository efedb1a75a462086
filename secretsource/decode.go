package secretsource

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"unicode/utf8"
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

// jsonObject is a secret value (or extended config) parsed one level deep:
// its members in document order, each value as raw JSON text. Lookup is
// case-insensitive. Raw values are never put in errors.
//
// It is a scanner rather than json.Unmarshal into a map: the map cost an
// allocation per member and a second json.Unmarshal per field read, which
// made DecodeDBAccount 2x slower than json.Unmarshal into a struct
// (BenchmarkDecodeDBAccount). Here the value is converted to a string once
// and the fields read are substrings of it, unless they hold escapes or
// invalid UTF-8 (then json.Unmarshal decodes them, as before).
type jsonObject []jsonMember

type jsonMember struct {
	key string // as JSON decodes it
	raw string // the value's JSON text, without surrounding space
}

// parseObject parses text as a JSON object, appending its members to buf.
// Like json.Unmarshal into a map, it accepts only valid JSON whose top level
// is an object; of duplicate keys the last counts (lookup searches from the
// end). No JSON error is kept: its text can quote a character of the value.
func parseObject(text string, buf jsonObject) (jsonObject, bool) {
	text = strings.TrimSpace(text)
	if len(text) == 0 || text[0] != '{' || !json.Valid([]byte(text)) {
		return nil, false
	}
	obj := buf[:0]
	i := skipSpace(text, 1)
	if text[i] == '}' {
		return obj, true
	}
	for {
		end := stringEnd(text, i)
		key := decodeString(text[i:end])
		i = skipSpace(text, end)
		i = skipSpace(text, i+1) // the colon
		vend := valueEnd(text, i)
		obj = append(obj, jsonMember{key: key, raw: text[i:vend]})
		i = skipSpace(text, vend)
		if text[i] == '}' {
			return obj, true
		}
		i = skipSpace(text, i+1) // the comma
	}
}

// The scanning helpers below run on text that json.Valid accepted, so they
// need not check what they skip.

func skipSpace(text string, i int) int {
	for i < len(text) && (text[i] == ' ' || text[i] == '\t' || text[i] == '\n' || text[i] == '\r') {
		i++
	}
	return i
}

// stringEnd returns the index just past the JSON string starting at text[i].
func stringEnd(text string, i int) int {
	for i++; ; i++ {
		switch text[i] {
		case '\\':
			i++
		case '"':
			return i + 1
		}
	}
}

// valueEnd returns the index just past the JSON value starting at text[i].
func valueEnd(text string, i int) int {
	switch text[i] {
	case '"':
		return stringEnd(text, i)
	case '{', '[':
		depth := 0
		for ; ; i++ {
			switch text[i] {
			case '"':
				i = stringEnd(text, i) - 1
			case '{', '[':
				depth++
			case '}', ']':
				if depth--; depth == 0 {
					return i + 1
				}
			}
		}
	default: // number, true, false, null
		for i < len(text) && !strings.ContainsRune(" \t\n\r,}]", rune(text[i])) {
			i++
		}
		return i
	}
}

// decodeString decodes a JSON string literal (quotes included) that
// json.Valid accepted: a substring when it has no escapes and is valid UTF-8,
// else what json.Unmarshal makes of it (escapes decoded, invalid UTF-8
// replaced by U+FFFD).
func decodeString(lit string) string {
	inner := lit[1 : len(lit)-1]
	if !strings.ContainsRune(inner, '\\') && utf8.ValidString(inner) {
		return inner
	}
	var v string
	_ = json.Unmarshal([]byte(lit), &v)
	return v
}

// lookup returns the first of names present in o (exact spelling first, then
// case-insensitively) and the spelling found. JSON null counts as absent.
func (o jsonObject) lookup(names ...string) (raw, key string, ok bool) {
	for _, n := range names {
		for i := len(o) - 1; i >= 0; i-- {
			if o[i].key == n {
				if o[i].raw == "null" {
					break // the last of duplicate keys counts
				}
				return o[i].raw, n, true
			}
		}
	}
	for _, n := range names {
		for i := len(o) - 1; i >= 0; i-- {
			if strings.EqualFold(o[i].key, n) && o[i].raw != "null" && o.last(i) {
				return o[i].raw, o[i].key, true
			}
		}
	}
	return "", "", false
}

// last reports whether o[i] is the last member with its key.
func (o jsonObject) last(i int) bool {
	for _, m := range o[i+1:] {
		if m.key == o[i].key {
			return false
		}
	}
	return true
}

// str reads a string field. present is false when none of names is there;
// err is a FieldError when the field is not a JSON string.
func (o jsonObject) str(names ...string) (value string, present bool, err *FieldError) {
	raw, key, ok := o.lookup(names...)
	if !ok {
		return "", false, nil
	}
	if raw[0] != '"' {
		return "", true, &FieldError{Field: key, Problem: "expected a JSON string"}
	}
	return decodeString(raw), true, nil
}

// port reads a TCP port given as a JSON number or a string holding one.
func (o jsonObject) port(names ...string) (int, bool, *FieldError) {
	raw, key, ok := o.lookup(names...)
	if !ok {
		return 0, false, nil
	}
	const want = "expected a port number 1-65535, as a JSON number or a string"
	text := raw
	if raw[0] == '"' {
		text = strings.TrimSpace(decodeString(raw))
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
	var buf [16]jsonMember
	obj, ok := parseObject(string(s.fields().Value), buf[:0])
	if !ok {
		return DBAccount{}, decodeError(s, "", "secret value is not a JSON object; a database secret holds "+
			`{"AccountName":…,"AccountPassword":…} or {"username":…,"password":…}`)
	}
	a := DBAccount{SecretName: s.Name(), VersionID: s.VersionID()}
	if err := fillDBAccount(&a, obj); err != nil {
		return DBAccount{}, decodeError(s, err.Field, err.Problem)
	}
	if ext := strings.TrimSpace(s.ExtendedConfig()); len(ext) > 0 {
		var ebuf [16]jsonMember
		eo, ok := parseObject(ext, ebuf[:0])
		if !ok {
			return DBAccount{}, decodeError(s, "ExtendedConfig", "expected a JSON object")
		}
		if raw, key, ok := eo.lookup("CustomData"); ok {
			var cbuf [16]jsonMember
			cd, ok := parseObject(raw, cbuf[:0])
			if !ok && raw[0] == '"' {
				// KMS returns CustomData as an object; tolerate a JSON string holding one.
				cd, ok = parseObject(decodeString(raw), cbuf[:0])
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
