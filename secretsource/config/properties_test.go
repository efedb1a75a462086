package config

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"unicode/utf16"
)

// props flattens parsed pairs to a map, last value winning, as Load uses them.
func props(t *testing.T, in string) map[string]string {
	t.Helper()
	ps, err := parseProperties([]byte(in))
	if err != nil {
		t.Fatalf("parse %q: %v", in, err)
	}
	m := map[string]string{}
	for _, p := range ps {
		m[p.key] = p.value
	}
	return m
}

// TestParseProperties: the java.util.Properties format, case by case (each
// want is what Properties.load returns for the input).
func TestParseProperties(t *testing.T) {
	tests := []struct {
		name, in string
		want     map[string]string
	}{
		{"Alibaba's file", "# comment\n   # indented\n! bang\n\ncredentials_type=ak\ncredentials_access_secret=c2VjcmV0==\n" +
			`cache_client_region_id=[{"regionId":"cn-hangzhou"}]` + "\n",
			map[string]string{"credentials_type": "ak", "credentials_access_secret": "c2VjcmV0==", "cache_client_region_id": `[{"regionId":"cn-hangzhou"}]`}},
		{"separators", "a=1\nb:2\nc 3\nd = 4\ne\t:\t5\nf  =  = 6\ng\n", map[string]string{"a": "1", "b": "2", "c": "3", "d": "4", "e": "5", "f": "= 6", "g": ""}},
		{"trailing blanks kept", "k=v  \n", map[string]string{"k": "v  "}},
		{"first separator only", "k=a=b:c\n", map[string]string{"k": "a=b:c"}},
		{"escaped separators in key", `a\=b\:c\ d=v` + "\n", map[string]string{"a=b:c d": "v"}},
		{"continuation", "k=abc\\\n    def\\\n\tghi\n", map[string]string{"k": "abcdefghi"}},
		{"continuation CRLF", "k=abc\\\r\n  def\r\nx=y\r\n", map[string]string{"k": "abcdef", "x": "y"}},
		{"continuation CR", "k=abc\\\r  def\rx=y", map[string]string{"k": "abcdef", "x": "y"}},
		{"even backslashes end the line", "k=a\\\\\nx=y\n", map[string]string{"k": `a\`, "x": "y"}},
		{"three backslashes continue", "k=a\\\\\\\n  b\n", map[string]string{"k": `a\b`}},
		{"continuation keeps # and !", "k=a\\\n  # not a comment\\\n  !\n", map[string]string{"k": "a# not a comment!"}},
		{"comment never continues", "# c \\\nk=v\n", map[string]string{"k": "v"}},
		{"empty continuation ends the value", "k=a\\\n   \nx=y\n", map[string]string{"k": "a", "x": "y"}},
		{"backslash at the end of the file", "k=a\\", map[string]string{"k": "a"}},
		{"continuation into the key", "ke\\\n  y=v\n", map[string]string{"key": "v"}},
		{"escapes", `k=\t\n\r\f\\\"\x\ lead` + "\n", map[string]string{"k": "\t\n\r\f\\\"x lead"}},
		{"escaped leading blank", `k=\  v` + "\n", map[string]string{"k": "  v"}},
		{"unicode escapes", `k=caf\u00e9 \u4e2d \ud83d\ude00` + "\n", map[string]string{"k": "café 中 😀"}},
		{"UTF-8 as written", "k=café\n", map[string]string{"k": "café"}},
		{"ISO-8859-1 when not UTF-8", "k=caf\xe9\n", map[string]string{"k": "café"}},
		{"byte order mark", "\ufeffk=v\n", map[string]string{"k": "v"}},
		{"empty key", "=v\n", map[string]string{"": "v"}},
		{"last wins", "k=1\nk=2\n", map[string]string{"k": "2"}},
		{"only blanks and comments", " \t\f\n#x\n!y\n\r\n", map[string]string{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := props(t, tt.in)
			if len(got) != len(tt.want) {
				t.Errorf("got %q, want %q", got, tt.want)
			}
			for k, v := range tt.want {
				if g, ok := got[k]; !ok || g != v {
					t.Errorf("%q = %q, want %q (all: %q)", k, g, v, got)
				}
			}
		})
	}
}

func TestParsePropertiesLines(t *testing.T) {
	ps, err := parseProperties([]byte("# c\na=1\\\n  2\\\n  3\n\nb:2\r\nc\n"))
	if err != nil {
		t.Fatal(err)
	}
	want := []property{{key: "a", value: "123", line: 2, hasSep: true}, {key: "b", value: "2", line: 6, hasSep: true}, {key: "c", line: 7}}
	if len(ps) != len(want) {
		t.Fatalf("got %+v", ps)
	}
	for i := range want {
		if ps[i] != want[i] {
			t.Errorf("pair %d: got %+v, want %+v", i, ps[i], want[i])
		}
	}
}

func TestParsePropertiesErrors(t *testing.T) {
	for _, in := range []string{`k=hunter2\u12`, `k=hunter2\u00zz`, "ok=1\n\n" + `hunter2\u=x`, `k=\u`} {
		_, err := parseProperties([]byte(in))
		if err == nil || !strings.HasPrefix(err.Error(), "line ") || !strings.Contains(err.Error(), `malformed \uXXXX`) ||
			strings.Contains(err.Error(), "hunter2") {
			t.Errorf("%q: error %v: want a line number and no text", in, err)
		}
	}
}

// TestPropertiesSecretAcrossLines: an AccessKey secret written over several
// lines with continuation backslashes is read whole; written without them,
// the tails are reported by line number only, never by their text.
func TestPropertiesSecretAcrossLines(t *testing.T) {
	const head, mid, tail = "Xk9sQ2hhbmdl", "TWVTZWNyZXQ", "K3dpdGgrdGFpbA=="
	region := `cache_client_region_id=[{"regionId":"cn-hangzhou"}]`
	load := func(t *testing.T, content string) *Settings {
		t.Helper()
		s, err := LoadSettings(context.Background(), WithLookupEnv(nil),
			WithPropertiesFile(writeFile(t, t.TempDir(), "p.properties", content)))
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	t.Run("continued", func(t *testing.T) {
		s := load(t, "credentials_type=ak\ncredentials_access_key_id=LTAIcont\ncredentials_access_secret="+head+"\\\n    "+mid+"\\\n\t"+tail+"\n"+region+"\n")
		if s.Credential.AccessKeySecret != head+mid+tail {
			t.Errorf("secret read as %d bytes, want the three lines joined (%d bytes)", len(s.Credential.AccessKeySecret), len(head+mid+tail))
		}
		if len(s.Warnings) != 0 {
			t.Errorf("warnings %q", s.Warnings)
		}
	})
	t.Run("backslashes forgotten", func(t *testing.T) {
		s := load(t, "credentials_type=ak\ncredentials_access_key_id=LTAIcont\ncredentials_access_secret="+head+"\n    "+mid+"\n\t"+tail+"\n"+region+"\n")
		if len(s.Warnings) != 2 || !strings.Contains(s.Warnings[0], "line 4: unknown key ignored") ||
			!strings.Contains(s.Warnings[1], "line 5: unknown key ignored") || !strings.Contains(s.Warnings[0], "end that line with a backslash") {
			t.Errorf("warnings %q", s.Warnings)
		}
		for _, w := range s.Warnings {
			for _, part := range []string{head, mid, tail, tail[:8]} {
				if strings.Contains(w, part) {
					t.Errorf("warning quotes the secret: %s", w)
				}
			}
		}
	})
}

func TestPropertiesWarnings(t *testing.T) {
	file := writeFile(t, t.TempDir(), "p.properties", strings.Join([]string{
		"credentials_type=ak",
		"credentials_access_key_id=LTAIwarn",
		"credentials_access_secret=s3cr3t",
		"refresh_secret_tll=60000",  // line 4: a typo
		"Credentials_Role_ARN=acs:", // line 5: wrong case
		"some_java_client_key=hunter2",
		`client_key_private_key_path=C:\keys\new.json`, // line 7: single backslashes
		`cache_client_region_id=[{"regionId":"cn-hangzhou"}]`,
		"credentials_type=ak", // line 9: again
	}, "\n"))
	s, err := LoadSettings(context.Background(), WithLookupEnv(nil), WithPropertiesFile(file))
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"line 1: credentials_type is given again on line 9, which wins",
		"line 4: unknown key ignored (did you mean refresh_secret_ttl?)",
		"line 5: unknown key ignored (did you mean credentials_role_arn?)",
		"line 6: unknown key ignored (not a key kmsdb reads",
		`line 7: client_key_private_key_path: a backslash escape changed the value`,
	}
	if len(s.Warnings) != len(want) {
		t.Fatalf("warnings %q", s.Warnings)
	}
	for i, w := range want {
		if !strings.Contains(s.Warnings[i], w) {
			t.Errorf("warning %d %q lacks %q", i, s.Warnings[i], w)
		}
		for _, leak := range []string{"tll", "hunter2", "some_java", "new.json", "60000", "acs:"} {
			if strings.Contains(s.Warnings[i], leak) {
				t.Errorf("warning %d quotes %q: %s", i, leak, s.Warnings[i])
			}
		}
	}
}

func TestEditDistance(t *testing.T) {
	for _, tt := range []struct {
		a, b string
		want int
	}{{"", "", 0}, {"abc", "abc", 0}, {"abc", "abd", 1}, {"refresh_secret_tll", "refresh_secret_ttl", 1}, {"ab", "ba", 2}, {"abc", "", 3}, {"kitten", "sitting", 3}} {
		if got := editDistance(tt.a, tt.b, 10); got != tt.want {
			t.Errorf("editDistance(%q, %q) = %d, want %d", tt.a, tt.b, got, tt.want)
		}
	}
	if got := editDistance("kitten", "sitting", 2); got != 2 {
		t.Errorf("limited: %d", got)
	}
}

// TestPropertiesMatchJava reads the same files with java.util.Properties
// (the JDK's java, when installed) and with parseProperties: the table of
// TestParseProperties' continuation cases and a few thousand random ones over
// the characters that matter to the format (the byte 0xe9 makes a file
// invalid UTF-8, which both then read as ISO-8859-1). Inputs that are valid
// UTF-8 with non-ASCII text are left out: Java reads them as ISO-8859-1.
func TestPropertiesMatchJava(t *testing.T) {
	java, err := exec.LookPath("java")
	if err != nil {
		t.Skip("no java in PATH")
	}
	inputs := []string{
		"k=abc\\\n    def\\\n\tghi\n", "k=a\\\\\nx=y\n", "k=a\\\\\\\n  b\n", "k=a\\\n  # c\\\n  !\n", "# c \\\nk=v\n",
		"k=a\\\n   \nx=y\n", "k=a\\", "ke\\\n  y=v\n", `k=\t\n\r\f\\\"\x\ lead`, `k=\  v`, `k=\u00e9 \ud83d\ude00`,
		"a=1\nb:2\nc 3\nd = 4\ne\t:\t5\nf  =  = 6\ng\n", `a\=b\:c\ d=v`, "k=abc\\\r\n  def\r\nx=y\r\n", "k=abc\\\r  def\rx=y",
		"=v\n", " \t\f\n#x\n!y\n\r\n", `k=\u12`, `k=\u00zz`, "k=\\\r\r\n", "\\\n\\\n=\\\n", "k\\\r\n\\\r\n",
	}
	rng := rand.New(rand.NewPCG(9, 12))
	alphabet := []string{"a", "b", "k", "=", ":", " ", "\t", "\f", "\\", "\\", "\\", "\n", "\r", "\r\n", "#", "!", "u", "0", "e", "D", "8", "\\u00e9", "\\ud83d", "\\ude00", "\xe9"}
	for range 3000 {
		var b strings.Builder
		for range rng.IntN(32) {
			b.WriteString(alphabet[rng.IntN(len(alphabet))])
		}
		inputs = append(inputs, b.String())
	}
	dir := t.TempDir()
	args := []string{filepath.Join("testdata", "PropsDump.java")}
	for i, in := range inputs {
		args = append(args, writeFile(t, dir, fmt.Sprintf("%d.properties", i), in))
	}
	out, err := exec.Command(java, args...).Output()
	if err != nil {
		t.Fatalf("java: %v", err)
	}
	lines := strings.Split(strings.TrimSuffix(string(out), "\n"), "\n")
	if len(lines) != len(inputs) {
		t.Fatalf("java printed %d lines for %d files", len(lines), len(inputs))
	}
	mismatches := 0
	for i, in := range inputs {
		want, ok := fromJava(lines[i])
		if !ok {
			continue
		}
		got := "ERR"
		if ps, err := parseProperties([]byte(in)); err == nil {
			m := map[string]string{}
			for _, p := range ps {
				m[p.key] = p.value
			}
			got = canonical(m)
		}
		if got != want {
			t.Errorf("%q:\n java  %s\n kmsdb %s", in, want, got)
			if mismatches++; mismatches > 10 {
				t.FailNow()
			}
		}
	}
}

// canonical renders pairs as PropsDump does, from Go strings.
func canonical(m map[string]string) string {
	hex := func(s string) string {
		var b strings.Builder
		for _, u := range utf16.Encode([]rune(s)) {
			fmt.Fprintf(&b, "%04x", u)
		}
		return b.String()
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	line := "OK"
	for _, k := range keys {
		line += " " + hex(k) + "=" + hex(m[k])
	}
	return line
}

// fromJava reads a PropsDump line back into Go strings: a lone
// surrogate, which Java keeps (\ud83d alone), becomes U+FFFD as here.
// ok is false when two of Java's keys become one so.
func fromJava(line string) (_ string, ok bool) {
	if line == "ERR" {
		return line, true
	}
	unhex := func(h string) string {
		units := make([]uint16, len(h)/4)
		for i := range units {
			v, _ := strconv.ParseUint(h[4*i:4*i+4], 16, 16)
			units[i] = uint16(v)
		}
		return string(utf16.Decode(units))
	}
	m := map[string]string{}
	for _, kv := range strings.Fields(strings.TrimPrefix(line, "OK")) {
		k, v, _ := strings.Cut(kv, "=")
		if _, dup := m[unhex(k)]; dup {
			return "", false
		}
		m[unhex(k)] = unhex(v)
	}
	return canonical(m), true
}
