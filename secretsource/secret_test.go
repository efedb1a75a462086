package secretsource_test

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/kmsdb/kmsdb/secretsource"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const leakValue = `{"AccountName":"app","AccountPassword":"pW-l3ak-canary=="}`

// leakNeedles are the forms in which a leak of leakValue would show up.
func leakNeedles() []string {
	pw := "pW-l3ak-canary"
	return []string{
		pw,
		hex.EncodeToString([]byte(pw)),
		strings.ToUpper(hex.EncodeToString([]byte(pw))),
		base64.StdEncoding.EncodeToString([]byte(leakValue)),
		"AccountPassword",
	}
}

func assertNoLeak(t *testing.T, what, out string) {
	t.Helper()
	for _, n := range leakNeedles() {
		if strings.Contains(out, n) {
			t.Errorf("%s leaks the value (%q found) in %q", what, n, out)
		}
	}
}

func leakSecret() *secretsource.Secret {
	return secretsource.NewSecret(secretsource.Fields{
		Name:          "db/app",
		VersionID:     "v7",
		VersionStages: []string{secretsource.StageCurrent},
		SecretType:    secretsource.TypeRds,
		DataType:      secretsource.DataText,
		Value:         []byte(leakValue),
		CreateTime:    time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC),
	})
}

func TestSecretNeverFormatsItsValue(t *testing.T) {
	s := leakSecret()
	f := s.Fields()
	type holder struct {
		S *secretsource.Secret
		F secretsource.Fields
	}
	values := map[string]any{
		"*Secret":       s,
		"Secret":        *s, // a dereferenced copy has no methods of its own
		"Fields":        f,
		"*Fields":       &f,
		"[]*Secret":     []*secretsource.Secret{s, s},
		"map":           map[string]*secretsource.Secret{"a": s},
		"struct":        holder{S: s, F: f},
		"*struct":       &holder{S: s, F: f},
		"any(*Secret)":  any(s),
		"nil *Secret":   (*secretsource.Secret)(nil),
		"zero Secret":   &secretsource.Secret{},
		"DBAccount":     secretsource.DBAccount{Username: "app", Password: "pW-l3ak-canary"},
		"AccessKey":     secretsource.AccessKey{ID: "LTAI", Secret: "pW-l3ak-canary"},
		"ECSCredential": secretsource.ECSCredential{UserName: "root", Password: "pW-l3ak-canary", PrivateKey: "pW-l3ak-canary"},
	}
	verbs := []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%X", "%d", "%T %v"}
	for name, v := range values {
		for _, verb := range verbs {
			assertNoLeak(t, name+" "+verb, fmt.Sprintf(verb, v))
		}
		assertNoLeak(t, name+" Sprint", fmt.Sprint(v))
		assertNoLeak(t, name+" Sprintln", fmt.Sprintln(v))
		if st, ok := v.(fmt.Stringer); ok {
			assertNoLeak(t, name+" String", st.String())
		}
		if gs, ok := v.(fmt.GoStringer); ok {
			assertNoLeak(t, name+" GoString", gs.GoString())
		}

		var text, js bytes.Buffer
		slog.New(slog.NewTextHandler(&text, nil)).Info("msg", "v", v, slog.Any("any", v))
		slog.New(slog.NewJSONHandler(&js, nil)).Info("msg", "v", v, slog.Any("any", v))
		assertNoLeak(t, name+" slog text", text.String())
		assertNoLeak(t, name+" slog json", js.String())

		if b, err := json.Marshal(v); err == nil {
			assertNoLeak(t, name+" json.Marshal", string(b))
		}
		if b, err := json.MarshalIndent(map[string]any{"x": v}, "", " "); err == nil {
			assertNoLeak(t, name+" json nested", string(b))
		}
	}
}

func TestSecretFormatShowsMetadata(t *testing.T) {
	s := leakSecret()
	for _, out := range []string{s.String(), fmt.Sprintf("%+v", s), fmt.Sprintf("%#v", s)} {
		if !strings.Contains(out, "db/app") || !strings.Contains(out, "v7") || !strings.Contains(out, "REDACTED") {
			t.Errorf("formatted secret %q lacks name, version or REDACTED", out)
		}
	}
	b, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	var got map[string]any
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatal(err)
	}
	if got["name"] != "db/app" || got["versionId"] != "v7" || got["value"] != "REDACTED" {
		t.Errorf("json = %s", b)
	}
	var nilSecret *secretsource.Secret
	if b, err := json.Marshal(nilSecret); err != nil || string(b) != "null" {
		t.Errorf("json.Marshal(nil) = %s, %v", b, err)
	}
}

func TestSecretIsImmutable(t *testing.T) {
	value := []byte("abc")
	stages := []string{secretsource.StageCurrent}
	s := secretsource.NewSecret(secretsource.Fields{Name: "n", Value: value, VersionStages: stages})
	value[0] = 'X'
	stages[0] = "mutated"
	if s.Text() != "abc" || !s.HasStage(secretsource.StageCurrent) {
		t.Fatal("New did not copy its input")
	}
	b := s.Bytes()
	b[0] = 'Y'
	st := s.VersionStages()
	st[0] = "mutated"
	f := s.Fields()
	f.Value[1] = 'Z'
	if s.Text() != "abc" || !s.HasStage(secretsource.StageCurrent) {
		t.Fatal("accessors hand out the secret's own slices")
	}
	var zero secretsource.Secret
	if zero.Name() != "" || zero.Text() != "" || (*secretsource.Secret)(nil).VersionID() != "" {
		t.Fatal("zero and nil secrets must read as empty")
	}
}

func TestVersionRefMatches(t *testing.T) {
	cur := secretsource.NewSecret(secretsource.Fields{Name: "db", VersionID: "v2", VersionStages: []string{secretsource.StageCurrent}})
	prev := secretsource.NewSecret(secretsource.Fields{Name: "db", VersionID: "v1", VersionStages: []string{secretsource.StagePrevious}})
	for _, tt := range []struct {
		ref       secretsource.VersionRef
		cur, prev bool
	}{
		{secretsource.VersionRef{}, true, false}, // the zero ref is ACSCurrent
		{secretsource.VersionRef{Stage: secretsource.StageCurrent}, true, false},
		{secretsource.VersionRef{Stage: secretsource.StagePrevious}, false, true},
		{secretsource.VersionRef{VersionID: "v1"}, false, true}, // an id alone: any stage
		{secretsource.VersionRef{VersionID: "v1", Stage: secretsource.StageCurrent}, false, false},
		{secretsource.VersionRef{VersionID: "v2", Stage: secretsource.StageCurrent}, true, false},
	} {
		if got := tt.ref.Matches(cur); got != tt.cur {
			t.Errorf("%+v.Matches(current) = %v", tt.ref, got)
		}
		if got := tt.ref.Matches(prev); got != tt.prev {
			t.Errorf("%+v.Matches(previous) = %v", tt.ref, got)
		}
	}
}
