package secretsource_test

import (
	"encoding/json"
	"strings"
	"sync"
	"testing"

	"github.com/kmsdb/kmsdb/secretsource"
)

// stringLeaves collects the JSON string values (and object keys' values) of
// data, the candidates a decoder must never put in an error.
func stringLeaves(data string) []string {
	var v any
	if json.Unmarshal([]byte(data), &v) != nil {
		return nil
	}
	var out []string
	var walk func(any)
	walk = func(v any) {
		switch x := v.(type) {
		case string:
			out = append(out, x)
		case []any:
			for _, e := range x {
				walk(e)
			}
		case map[string]any:
			for _, e := range x {
				walk(e)
			}
		}
	}
	walk(v)
	return out
}

// fixedMessages is the text of the decoders' fixed messages: one input per
// message (each missing, mistyped or malformed field), decoded once.
var fixedMessages = sync.OnceValue(func() string {
	var fixed strings.Builder
	for _, v := range [][2]string{
		{"x", ""}, {"{}", ""}, {`{"AccountName":"a"}`, ""}, {`{"AccessKeyId":"a"}`, ""}, {`{"UserName":"a"}`, ""},
		{`{"AccountName":1}`, ""}, {`{"AccountName":"a","AccountPassword":"b","port":"x"}`, ""},
		{`{"AccountName":"a","AccountPassword":"b"}`, "x"},
		{`{"AccountName":"a","AccountPassword":"b"}`, `{"CustomData":"x"}`},
		{`{"AccountName":"a","AccountPassword":"b"}`, `{"CustomData":{"port":"x"}}`},
		{`{"AccessKeyId":"a","AccessKeySecret":"b","GenerateTimestamp":"x"}`, ""},
		{`{"UserName":"a","PrivateKey":"x"}`, ""},
	} {
		for _, dec := range []func(*secretsource.Secret) error{
			func(s *secretsource.Secret) error { _, err := secretsource.DecodeDBAccount(s); return err },
			func(s *secretsource.Secret) error { _, err := secretsource.DecodeAccessKey(s); return err },
			func(s *secretsource.Secret) error { _, err := secretsource.DecodeECSCredential(s); return err },
		} {
			if e := dec(secretWith("Rds", v[0], v[1])); e != nil {
				fixed.WriteString(e.Error())
			}
		}
	}
	return fixed.String()
})

// checkFuzzErr fails when err shows a string of the value long enough not to
// be a field name or a word of the message by chance. Text that the
// decoders' fixed messages contain anyway (their hints quote JSON keys) is
// not a leak.
func checkFuzzErr(t *testing.T, err error, inputs ...string) {
	if err == nil {
		return
	}
	msg := err.Error()
	fixed := fixedMessages()
	if strings.Contains(fixed, msg) {
		return
	}
	for _, in := range inputs {
		if strings.Contains(fixed, in) {
			continue
		}
		for _, leaf := range stringLeaves(in) {
			if len(leaf) >= 12 && strings.Contains(msg, leaf) && !strings.Contains(fixed, leaf) {
				t.Fatalf("error %q contains the value string %q", msg, leaf)
			}
		}
		if len(in) >= 12 && strings.Contains(msg, in) {
			t.Fatalf("error %q contains the raw value", msg)
		}
	}
}

func addDBSeeds(f *testing.F) {
	for _, tt := range decodeErrTests {
		f.Add(tt.value, tt.ext)
	}
	f.Add(`{"AccountName":"app","AccountPassword":"p=="}`, `{"CustomData":{"host":"h","port":"1"}}`)
	f.Add(`{"username":"u","password":"p","Endpoint":"h:5432","dbname":"d"}`, "")
}

func FuzzDecodeDBAccount(f *testing.F) {
	addDBSeeds(f)
	f.Fuzz(func(t *testing.T, value, ext string) {
		a, err := secretsource.DecodeDBAccount(secretWith("Rds", value, ext))
		checkFuzzErr(t, err, value, ext)
		if err == nil && (a.Username == "" || a.Password == "" || a.Port < 0 || a.Port > 65535) {
			t.Fatalf("accepted an incomplete account: %v", a)
		}
	})
}

func FuzzDecodeAccessKey(f *testing.F) {
	f.Add(`{"AccessKeyId":"LTAI1","AccessKeySecret":"sk==","GenerateTimestamp":"2016-03-25T10:42:40Z"}`)
	f.Add(`{"AccessKeyId":"a","AccessKeySecret":"b","GenerateTimestamp":"bad-timestamp-value"}`)
	f.Add(`not json at all`)
	f.Fuzz(func(t *testing.T, value string) {
		k, err := secretsource.DecodeAccessKey(secretWith("RAMCredentials", value, ""))
		checkFuzzErr(t, err, value)
		if err == nil && (k.ID == "" || k.Secret == "") {
			t.Fatalf("accepted an incomplete key: %v", k)
		}
	})
}

func FuzzDecodeECSCredential(f *testing.F) {
	f.Add(`{"UserName":"root","Password":"pw"}`)
	f.Add(`{"UserName":"root","PrivateKey":"-----BEGIN RSA PRIVATE KEY-----\naGk=\n-----END RSA PRIVATE KEY-----\n"}`)
	f.Add(`{"UserName":"root","PrivateKey":"not-a-pem-private-key"}`)
	f.Fuzz(func(t *testing.T, value string) {
		c, err := secretsource.DecodeECSCredential(secretWith("ECS", value, ""))
		checkFuzzErr(t, err, value)
		if err == nil && (c.UserName == "" || (c.Password == "" && c.PrivateKey == "")) {
			t.Fatalf("accepted an incomplete credential: %v", c)
		}
	})
}
