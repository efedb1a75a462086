package wire

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/kmsdb/kmsdb/secretsource"
)

func TestParseTime(t *testing.T) {
	want := time.Date(2020, 2, 21, 15, 39, 26, 0, time.UTC)
	for _, s := range []string{"2020-02-21T15:39:26Z", "2020-02-21T23:39:26+08:00", "2020-02-21T23:39:26+0800",
		"2020-02-21 15:39:26", "2020-02-21T15:39:26"} {
		got, err := ParseTime(s)
		if err != nil || !got.Equal(want) {
			t.Errorf("ParseTime(%q) = %v, %v; want %v", s, got, err, want)
		}
	}
	if got, err := ParseTime("2020-02-21T15:39:26.123Z"); err != nil || got.Nanosecond() != 123e6 {
		t.Errorf("fraction: %v %v", got, err)
	}
	if got, err := ParseTime(""); err != nil || !got.IsZero() {
		t.Errorf("empty: %v %v", got, err)
	}
	if _, err := ParseTime("yesterday"); err == nil {
		t.Error("want an error for garbage")
	}
}

func TestParseRotationInterval(t *testing.T) {
	cases := []struct {
		in   string
		want time.Duration
		ok   bool
	}{
		{"604800s", 7 * 24 * time.Hour, true},
		{"604800", 7 * 24 * time.Hour, true},
		{"168h", 7 * 24 * time.Hour, true},
		{"1.5s", 1500 * time.Millisecond, true},
		{"", 0, true},
		{"-1s", 0, false},
		{"99999999999999999999s", 0, false},
		{"9300000000s", 0, false},
		{"weekly", 0, false},
		{"NaNs", 0, false},
	}
	for _, c := range cases {
		got, err := ParseRotationInterval(c.in)
		if (err == nil) != c.ok || got != c.want {
			t.Errorf("ParseRotationInterval(%q) = %v, %v; want %v ok=%v", c.in, got, err, c.want, c.ok)
		}
	}
}

func TestResponseSecret(t *testing.T) {
	r := Response{SecretName: "db", SecretType: "Rds", SecretDataType: "text", SecretData: `{"AccountName":"u"}`,
		VersionID: "v2", VersionStages: []string{"ACSCurrent"}, CreateTime: "2020-02-21T15:39:26Z",
		AutomaticRotation: "Enabled", RotationInterval: "604800s", NextRotationDate: "2020-02-28T15:39:26Z",
		LastRotationDate: "bogus", ExtendedConfig: `{"SecretSubType":"SingleUser"}`}
	s, warnings, err := r.Secret("db", secretsource.VersionRef{})
	if err != nil {
		t.Fatal(err)
	}
	if s.Name() != "db" || s.VersionID() != "v2" || !s.HasStage(secretsource.StageCurrent) || s.Type() != "Rds" ||
		s.Text() != `{"AccountName":"u"}` || !s.AutomaticRotation() || s.RotationInterval() != 7*24*time.Hour ||
		s.NextRotationDate().IsZero() || !s.LastRotationDate().IsZero() || s.ExtendedConfig() == "" {
		t.Errorf("unexpected secret fields: %+v", s.Fields().VersionStages)
	}
	if len(warnings) != 1 || !strings.Contains(warnings[0], "LastRotationDate") {
		t.Errorf("warnings = %q", warnings)
	}

	cur := []string{secretsource.StageCurrent}
	b, _, err := Response{SecretName: "bin", VersionID: "v1", VersionStages: cur, SecretDataType: "binary",
		SecretData: "AAEC/w=="}.Secret("bin", secretsource.VersionRef{})
	if err != nil || !bytes.Equal(b.Bytes(), []byte{0, 1, 2, 255}) || b.Name() != "bin" || b.DataType() != "binary" {
		t.Errorf("binary: %v %v", b, err)
	}
	_, _, err = Response{SecretName: "bin", VersionID: "v1", VersionStages: cur, SecretDataType: "binary",
		SecretData: "%%%not base64 hunter2"}.Secret("bin", secretsource.VersionRef{})
	if secretsource.KindOf(err) != secretsource.KindInvalidAnswer || strings.Contains(err.Error(), "hunter2") {
		t.Errorf("bad binary: %v", err)
	}
}

func FuzzParseRotationInterval(f *testing.F) {
	for _, s := range []string{"604800s", "0s", "", "1.5s", "168h", "-5s", "9223372036s", "1e9s"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		d, err := ParseRotationInterval(s)
		if err == nil && d < 0 {
			t.Fatalf("ParseRotationInterval(%q) = %v: negative without error", s, d)
		}
		if err != nil && d != 0 {
			t.Fatalf("ParseRotationInterval(%q) = %v with error %v", s, d, err)
		}
	})
}

func FuzzParseTime(f *testing.F) {
	for _, s := range []string{"2020-02-21T15:39:26Z", "2020-02-21T23:39:26+0800", "", "2020-02-21 15:39:26", "x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		tm, err := ParseTime(s)
		if err != nil && !tm.IsZero() {
			t.Fatalf("ParseTime(%q) returned %v with error", s, tm)
		}
		if err == nil && !tm.IsZero() && tm.Location() != time.UTC {
			t.Fatalf("ParseTime(%q) not in UTC", s)
		}
	})
}

func FuzzResponseSecret(f *testing.F) {
	f.Add("text", "hello", "604800s", "2020-02-21T15:39:26Z")
	f.Add("binary", "AAEC", "", "")
	f.Fuzz(func(t *testing.T, dataType, data, interval, created string) {
		s, _, err := Response{SecretName: "n", VersionID: "v1", VersionStages: []string{secretsource.StageCurrent},
			SecretDataType: dataType, SecretData: data, RotationInterval: interval, CreateTime: created}.Secret("n", secretsource.VersionRef{})
		if err != nil {
			msg := err.Error()
			if strings.Contains(msg, data) && !strings.Contains(`secretsource: secret "n": invalid answer: version "v1" has no secret data: binary secret data is not valid base64`, data) {
				t.Fatalf("error shows the data: %v", err)
			}
			return
		}
		if s.Name() != "n" {
			t.Fatal("name lost")
		}
	})
}

// TestResponseRedacted: the raw GetSecretValue answer never prints its data.
func TestResponseRedacted(t *testing.T) {
	const data = `{"AccountName":"app","AccountPassword":"response-pw-21"}`
	r := Response{SecretName: "db", VersionID: "v1", SecretData: data, SecretType: "Rds"}
	var buf bytes.Buffer
	slog.New(slog.NewTextHandler(&buf, nil)).Info("r", "v", r, "p", &r)
	slog.New(slog.NewJSONHandler(&buf, nil)).Info("r", "v", r)
	js, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	outputs := []string{buf.String(), string(js)}
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x"} {
		outputs = append(outputs, fmt.Sprintf(verb, r), fmt.Sprintf(verb, &r))
	}
	for _, out := range outputs {
		if strings.Contains(out, "response-pw-21") {
			t.Errorf("the secret data shows: %s", out)
		}
	}
	if !strings.Contains(r.String(), `"db"`) || !strings.Contains(r.String(), `"v1"`) {
		t.Errorf("String() = %s, want the name and version", r.String())
	}
}

// TestCheckAnswerAgreesWithMatches: for an answer with the name asked for,
// CheckAnswer accepts a version exactly when VersionRef.Matches does (an
// answer with another version id than asked is refused as KindNotFound, and
// Matches refuses it too): the stage rule lives in one place.
func TestCheckAnswerAgreesWithMatches(t *testing.T) {
	stageSets := [][]string{nil, {secretsource.StageCurrent}, {secretsource.StagePrevious}, {"ACSPending", "MyStage"},
		{secretsource.StageCurrent, "MyStage"}}
	refs := []secretsource.VersionRef{{}, {Stage: secretsource.StageCurrent}, {Stage: secretsource.StagePrevious},
		{Stage: "MyStage"}, {VersionID: "v1"}, {VersionID: "v2"}, {VersionID: "v1", Stage: secretsource.StageCurrent},
		{VersionID: "v1", Stage: "MyStage"}}
	for _, stages := range stageSets {
		s := secretsource.NewSecret(secretsource.Fields{Name: "db", VersionID: "v1", VersionStages: stages})
		for _, ref := range refs {
			err := CheckAnswer(s, "db", ref)
			if (err == nil) != ref.Matches(s) {
				t.Errorf("stages %q, ref %+v: CheckAnswer = %v, Matches = %v", stages, ref, err, ref.Matches(s))
			}
		}
	}
}
