package secretsource

import (
	"bytes"
	"encoding/json"
	"strconv"
	"strings"
	"testing"
)

// refObject is the decoder's former parser, json.Unmarshal into a map, kept
// as the reference the scanner must agree with (FuzzParseObjectMatchesMap).
type refObject map[string]json.RawMessage

func refParse(data []byte) (refObject, bool) {
	data = bytes.TrimSpace(data)
	if len(data) == 0 || data[0] != '{' {
		return nil, false
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(data, &m); err != nil {
		return nil, false
	}
	return refObject(m), true
}

func (o refObject) lookup(names ...string) (json.RawMessage, string, bool) {
	isNull := func(raw json.RawMessage) bool { return string(bytes.TrimSpace(raw)) == "null" }
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

func (o refObject) str(names ...string) (string, bool, bool) {
	raw, _, ok := o.lookup(names...)
	if !ok {
		return "", false, false
	}
	var v string
	if json.Unmarshal(raw, &v) != nil {
		return "", true, true
	}
	return v, true, false
}

func (o refObject) port(names ...string) (int, bool, bool) {
	raw, _, ok := o.lookup(names...)
	if !ok {
		return 0, false, false
	}
	text := string(bytes.TrimSpace(raw))
	if strings.HasPrefix(text, `"`) {
		if json.Unmarshal(raw, &text) != nil {
			return 0, true, true
		}
		if text = strings.TrimSpace(text); text == "" {
			return 0, false, false
		}
	}
	p, err := strconv.Atoi(text)
	if err != nil || p < 1 || p > 65535 {
		return 0, true, true
	}
	return p, true, false
}

// foldClash reports whether two different keys of o fold to the same: then the
// reference's pick depends on map order and cannot be compared.
func (o refObject) foldClash() bool {
	seen := map[string]bool{}
	for k := range o {
		f := strings.ToLower(strings.ToUpper(k))
		if seen[f] {
			return true
		}
		seen[f] = true
	}
	return false
}

// FuzzParseObjectMatchesMap: for any text, the scanner accepts exactly what
// json.Unmarshal into a map accepted, and every field the decoders read
// (each list of spellings) comes out the same: value, presence, error.
func FuzzParseObjectMatchesMap(f *testing.F) {
	for _, s := range []string{
		`{"AccountName":"app","AccountPassword":"p=="}`, ` {"username":"u","password":"p\"w","port":"5432","host":" h:1 "} `,
		`{"USER":"a","user":null,"Port":5432,"port":null}`, `{"a":{"b":[1,"}",{"c":"]"}]},"AccountName":"\u0061pp"}`,
		`{"AccountName":"a","AccountName":"b"}`, `{"Account\u004eame":"x","password":"\xff"}`, `{}`, `[]`, `{"a":1,}`,
		`{"dbname":"d","Endpoint":"e","port":" 7 ","engine":"MySQL"}`, `{"port":1e3}`, `{"port":"-1"}`, "{\"host\":\"h\"}\x85",
	} {
		f.Add(s)
	}
	lists := [][]string{dbUserKeys, dbPasswordKeys, dbHostKeys, dbPortKeys, dbNameKeys, dbEngineKeys, {"CustomData"},
		{"UserName"}, {"Password"}, {"PrivateKey"}, {"AccessKeyId"}, {"AccessKeySecret"}, {"GenerateTimestamp"}}
	f.Fuzz(func(t *testing.T, text string) {
		ref, rok := refParse([]byte(text))
		obj, ok := parseObject(text, nil)
		if ok != rok {
			t.Fatalf("parseObject(%q) ok = %v, json.Unmarshal into a map: %v", text, ok, rok)
		}
		if !ok || ref.foldClash() {
			return
		}
		for _, names := range lists {
			v, p, e := obj.str(names...)
			rv, rp, re := ref.str(names...)
			if v != rv || p != rp || (e != nil) != re {
				t.Fatalf("%q str%v = %q %v %v, reference %q %v %v", text, names, v, p, e, rv, rp, re)
			}
			n, p, e := obj.port(names...)
			rn, rp, re := ref.port(names...)
			if n != rn || p != rp || (e != nil) != re {
				t.Fatalf("%q port%v = %d %v %v, reference %d %v %v", text, names, n, p, e, rn, rp, re)
			}
		}
	})
}
