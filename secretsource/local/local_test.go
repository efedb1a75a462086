package local_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kmsdb/kmsdb/secretsource"
	"github.com/kmsdb/kmsdb/secretsource/local"
)

func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

const localYAML = `
db/app: '{"AccountName":"app","AccountPassword":"pw=="}'
db/orders:
  type: Rds
  versionId: v2
  value:
    AccountName: orders
    AccountPassword: "new=="
  extendedConfig: {CustomData: {host: db.internal, port: 3306}}
  automaticRotation: true
  rotationInterval: 720h
  nextRotationDate: 2030-01-02T03:04:05Z
  previous:
    versionId: v1
    value: {AccountName: orders, AccountPassword: "old=="}
blob:
  dataType: binary
  value: aGVsbG8=
number: 42
`

func TestLocalSourceFile(t *testing.T) {
	ctx := context.Background()
	for _, name := range []string{"s.yaml", "s.unknown-ext"} {
		src, err := local.New(local.FromFile(writeFile(t, name, localYAML)))
		if err != nil {
			t.Fatal(err)
		}
		if got := strings.Join(src.Names(), ","); got != "blob,db/app,db/orders,number" {
			t.Errorf("names = %s", got)
		}
		s, err := src.GetSecret(ctx, "db/app")
		if err != nil || s.Text() != `{"AccountName":"app","AccountPassword":"pw=="}` || s.VersionID() != "local" || !s.HasStage(secretsource.StageCurrent) {
			t.Errorf("db/app: %v %v", s, err)
		}
		s, err = src.GetSecret(ctx, "db/orders")
		if err != nil {
			t.Fatal(err)
		}
		a, err := secretsource.DecodeDBAccount(s)
		if err != nil || a.Password != "new==" || a.Host != "db.internal" || a.Port != 3306 || s.VersionID() != "v2" || s.Type() != "Rds" {
			t.Errorf("db/orders: %v %v", a, err)
		}
		if !s.AutomaticRotation() || s.RotationInterval() != 720*time.Hour || !s.NextRotationDate().Equal(time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)) {
			t.Errorf("rotation metadata: %v %v %v", s.AutomaticRotation(), s.RotationInterval(), s.NextRotationDate())
		}
		var vs secretsource.VersionSource = src
		prev, err := vs.GetSecretVersion(ctx, "db/orders", secretsource.VersionRef{Stage: secretsource.StagePrevious})
		if err != nil || prev.VersionID() != "v1" || !strings.Contains(prev.Text(), "old==") || prev.Type() != "Rds" {
			t.Errorf("previous: %v %v", prev, err)
		}
		if byID, err := vs.GetSecretVersion(ctx, "db/orders", secretsource.VersionRef{VersionID: "v1"}); err != nil || byID.VersionID() != "v1" {
			t.Errorf("by id: %v %v", byID, err)
		}
		if _, err := vs.GetSecretVersion(ctx, "db/app", secretsource.VersionRef{Stage: secretsource.StagePrevious}); !errors.Is(err, secretsource.ErrNotFound) {
			t.Errorf("missing previous: %v", err)
		}
		if b, err := src.GetSecret(ctx, "blob"); err != nil || string(b.Bytes()) != "hello" || b.DataType() != "binary" {
			t.Errorf("blob: %v %v", b, err)
		}
		if n, err := src.GetSecret(ctx, "number"); err != nil || n.Text() != "42" {
			t.Errorf("number: %v %v", n, err)
		}
	}
}

func TestLocalSourceJSONFile(t *testing.T) {
	p := writeFile(t, "s.json", `{"a":"x=y==","b":{"type":"ECS","value":{"UserName":"root","Password":"p"}}}`)
	src, err := local.New(local.FromFile(p))
	if err != nil {
		t.Fatal(err)
	}
	if s, err := src.GetSecret(context.Background(), "a"); err != nil || s.Text() != "x=y==" {
		t.Errorf("a: %v %v", s, err)
	}
	s, _ := src.GetSecret(context.Background(), "b")
	if c, err := secretsource.DecodeECSCredential(s); err != nil || c.Password != "p" {
		t.Errorf("b: %v %v", c, err)
	}
}

func TestLocalSourceEnv(t *testing.T) {
	t.Setenv("KMSDB_SECRET_DB_APP_PROD", `{"username":"u","password":"from=env"}`)
	t.Setenv("MYAPP_X", "custom")
	p := writeFile(t, "s.yaml", "db/app-prod: from-file\nother: file-only\n")
	src, err := local.New(local.FromFile(p), local.FromEnv(""), local.FromMap(map[string]string{"m": "map"}))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if s, err := src.GetSecret(ctx, "db/app-prod"); err != nil || !strings.Contains(s.Text(), "from=env") {
		t.Errorf("env should win over the file: %v %v", s, err)
	}
	for name, want := range map[string]string{"other": "file-only", "m": "map"} {
		if s, err := src.GetSecret(ctx, name); err != nil || s.Text() != want {
			t.Errorf("%s: %v %v", name, s, err)
		}
	}
	_, err = src.GetSecret(ctx, "missing")
	if !errors.Is(err, secretsource.ErrNotFound) || !strings.Contains(err.Error(), "KMSDB_SECRET_MISSING") {
		t.Errorf("missing: %v", err)
	}
	custom, _ := local.New(local.FromEnv("MYAPP_"))
	if s, err := custom.GetSecret(ctx, "x"); err != nil || s.Text() != "custom" {
		t.Errorf("custom prefix: %v %v", s, err)
	}
	if got := local.EnvName("", "acs/ram/user/app.1"); got != "KMSDB_SECRET_ACS_RAM_USER_APP_1" {
		t.Errorf("EnvName = %s", got)
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := src.GetSecret(cctx, "other"); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled: %v", err)
	}
}

func TestLocalSourceFileErrors(t *testing.T) {
	tests := []struct{ name, content, want string }{
		{"not yaml", "a: [hunter2", "line"},
		{"list", "- hunter2", "mapping"},
		{"bad type", "a: {type: Nope, value: hunter2}", `field "type"`},
		{"no value", "a: {type: Rds}", `field "value"`},
		{"bad binary", "a: {dataType: binary, value: 'hunter2!!'}", `field "value"`},
		{"bad data type", "a: {dataType: hex, value: hunter2}", `field "dataType"`},
		{"unknown key", "a: {valeu: hunter2}", `field "valeu"`},
		{"bad previous", "a: {value: hunter2, previous: hunter2}", `field "previous"`},
		{"same previous version", "a: {value: hunter2, previous: {value: hunter2}, versionId: local-previous}", `previous.versionId`},
		{"bad interval", "a: {value: hunter2, rotationInterval: often}", `rotationInterval`},
		{"bad date", "a: {value: hunter2, nextRotationDate: soon}", `nextRotationDate`},
		{"null entry", "a: ~", `secret "a"`},
		{"list entry", "a: [hunter2]", `secret "a"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := local.New(local.FromFile(writeFile(t, "s.yaml", tt.content)))
			if err == nil {
				t.Fatal("no error")
			}
			if strings.Contains(err.Error(), "hunter2") || !strings.Contains(err.Error(), tt.want) || !errors.Is(err, secretsource.ErrConfig) {
				t.Errorf("error %q: want %q, no value, ErrConfig", err, tt.want)
			}
		})
	}
	_, err := local.New(local.FromFile(filepath.Join(t.TempDir(), "nope.yaml")))
	if !errors.Is(err, secretsource.ErrConfig) || !errors.Is(err, os.ErrNotExist) || !strings.Contains(err.Error(), "nope.yaml") {
		t.Errorf("missing file: %v", err)
	}
}

// checkFuzzErr fails when err shows the file's content or one of its JSON
// string values long enough not to be a field name or a word of the message
// by chance (secret names, the document's keys, are named on purpose).
func checkFuzzErr(t *testing.T, err error, content string) {
	t.Helper()
	msg := err.Error()
	var doc any
	if json.Unmarshal([]byte(content), &doc) == nil {
		var walk func(any)
		walk = func(v any) {
			switch x := v.(type) {
			case string:
				if len(x) >= 12 && strings.Contains(msg, x) {
					t.Fatalf("error %q contains the value string %q", msg, x)
				}
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
		walk(doc)
	}
	if len(content) >= 12 && strings.Contains(msg, content) {
		t.Fatalf("error %q contains the raw value", msg)
	}
}

func FuzzLocalFile(f *testing.F) {
	f.Add(localYAML)
	f.Add(`{"a":"x","b":{"value":{"k":"v"}}}`)
	f.Fuzz(func(t *testing.T, content string) {
		p := filepath.Join(t.TempDir(), "s.yaml")
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		src, err := local.New(local.FromFile(p))
		if err != nil {
			checkFuzzErr(t, err, content)
			return
		}
		for _, n := range src.Names() {
			if _, err := src.GetSecret(context.Background(), n); err != nil {
				t.Fatalf("listed secret %q not served: %v", n, err)
			}
		}
	})
}

func ExampleNew() {
	os.Setenv("KMSDB_SECRET_DB_APP", `{"username":"app","password":"dev-only"}`)
	defer os.Unsetenv("KMSDB_SECRET_DB_APP")
	src, err := local.New(local.FromEnv(""))
	if err != nil {
		fmt.Println(err)
		return
	}
	s, err := src.GetSecret(context.Background(), "db/app")
	if err != nil {
		fmt.Println(err)
		return
	}
	a, _ := secretsource.DecodeDBAccount(s)
	fmt.Println(a.Username, s)
	// Output: app secret(name="db/app" version="local" type="Generic" value=REDACTED)
}

// TestLocalSourceNeverPrintsValues formats a Source holding values from
// the environment, a file and a map, with every verb and through slog.
func TestLocalSourceNeverPrintsValues(t *testing.T) {
	t.Setenv("KMSDB_SECRET_DB_LEAK", `{"username":"u","password":"env-password-11"}`)
	p := writeFile(t, "leak.yaml", "from-file: file-password-12\n")
	src, err := local.New(local.FromFile(p), local.FromEnv(""),
		local.FromMap(map[string]string{"from-map": "map-password-13"}))
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	slog.New(slog.NewTextHandler(&buf, nil)).Info("src", "p", src, "v", *src)
	slog.New(slog.NewJSONHandler(&buf, nil)).Info("src", "p", src, "v", *src)
	outputs := []string{buf.String()}
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%x"} {
		outputs = append(outputs, fmt.Sprintf(verb, src), fmt.Sprintf(verb, *src))
	}
	for _, out := range outputs {
		for _, v := range []string{"env-password-11", "file-password-12", "map-password-13"} {
			if strings.Contains(out, v) {
				t.Errorf("a value shows: %s", out)
			}
		}
	}
	if s := src.String(); !strings.Contains(s, "from-file") || !strings.Contains(s, "KMSDB_SECRET_") {
		t.Errorf("String() = %s, want the names and the prefix", s)
	}
}

// TestLocalSourceFileFormats: the file's dates, intervals and binary values
// are read with the parsers of KMS's answers: the documented forms (RFC 3339,
// Go durations, standard base64) and KMS's own (seconds, URL-safe base64).
func TestLocalSourceFileFormats(t *testing.T) {
	src, err := local.New(local.FromFile(writeFile(t, "s.yaml", `
go: {value: x, rotationInterval: 720h, createTime: "2026-01-02T03:04:05+08:00"}
kms: {value: x, rotationInterval: 604800s, createTime: "2026-01-02T03:04:05Z"}
std: {dataType: binary, value: "aGk/Pz8="}
url: {dataType: binary, value: "aGk_Pz8"}
`)))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for name, want := range map[string]time.Duration{"go": 720 * time.Hour, "kms": 7 * 24 * time.Hour} {
		s, err := src.GetSecret(ctx, name)
		if err != nil || s.RotationInterval() != want {
			t.Errorf("%s: interval %v, %v; want %v", name, s.RotationInterval(), err, want)
		}
	}
	g, _ := src.GetSecret(ctx, "go")
	if want := time.Date(2026, 1, 1, 19, 4, 5, 0, time.UTC); !g.CreateTime().Equal(want) {
		t.Errorf("createTime %v, want %v", g.CreateTime(), want)
	}
	for _, name := range []string{"std", "url"} {
		if s, err := src.GetSecret(ctx, name); err != nil || string(s.Bytes()) != "hi???" {
			t.Errorf("%s: %q, %v", name, s.Bytes(), err)
		}
	}
}
