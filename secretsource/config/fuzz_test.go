package config

import (
	"fmt"
	"strings"
	"testing"
	"unicode/utf16"
)

// FuzzParseProperties: any input parses or fails with a line number and a
// fixed text (never the input's bytes); every pair carries a line number of
// the input.
func FuzzParseProperties(f *testing.F) {
	f.Add("credentials_type=ak\ncredentials_access_secret=abc==\n# c\n")
	f.Add("\ufeffa:b\r\n! x\n  # y\nk = v = w\n")
	f.Add("no separator\n")
	f.Add("k=abc\\\n   def\\\r\n\tghi\\\\\nx y\\")
	f.Add(`k=\u00e9\ud83d\ude00\t\=\:\ \u12`)
	f.Add("k=caf\xe9\r\r\\\r#x")
	f.Fuzz(func(t *testing.T, in string) {
		ps, err := parseProperties([]byte(in))
		if err != nil {
			var n int
			var rest string
			if _, scanErr := fmt.Sscanf(err.Error(), "line %d: %s", &n, &rest); scanErr != nil || n < 1 ||
				!strings.HasSuffix(err.Error(), errBadUnicodeEscape.Error()) {
				t.Fatalf("error not of the form \"line N: %v\": %v", errBadUnicodeEscape, err)
			}
			return
		}
		lines := 1 + strings.Count(in, "\n") + strings.Count(in, "\r") - strings.Count(in, "\r\n")
		last := 0
		for _, p := range ps {
			if p.line < 1 || p.line > lines || p.line <= last {
				t.Fatalf("pair %+v: line out of order or range (%d lines, previous %d)", p, lines, last)
			}
			last = p.line
		}
	})
}

// storeProperty writes key and value as java.util.Properties.store does
// (saveConvert, with non-ASCII as \uXXXX), breaking the line before the
// tokens cut selects with a continuation backslash and indent.
func storeProperty(key, value string, cut uint64, indent string) string {
	var toks []string
	esc := func(s string, isKey bool) {
		for i, r := range s {
			switch {
			case r == ' ' && (isKey || i == 0):
				toks = append(toks, `\ `)
			case r == '\t':
				toks = append(toks, `\t`)
			case r == '\n':
				toks = append(toks, `\n`)
			case r == '\r':
				toks = append(toks, `\r`)
			case r == '\f':
				toks = append(toks, `\f`)
			case strings.ContainsRune(`\=:#!`, r):
				toks = append(toks, `\`+string(r))
			case r < 0x20 || r > 0x7e:
				for _, u := range utf16.Encode([]rune{r}) {
					toks = append(toks, fmt.Sprintf(`\u%04X`, u))
				}
			default:
				toks = append(toks, string(r))
			}
		}
	}
	esc(key, true)
	toks = append(toks, "=")
	esc(value, false)
	var b strings.Builder
	for i, tok := range toks {
		// A continuation drops the next line's leading blanks: never cut
		// before a blank of the value.
		if cut&(1<<(uint(i)%64)) != 0 && tok != " " {
			b.WriteString("\\\n" + indent)
		}
		b.WriteString(tok)
	}
	return b.String()
}

// FuzzPropertiesRoundTrip: what Properties.store writes, with continuation
// lines anywhere between tokens, reads back exactly.
func FuzzPropertiesRoundTrip(f *testing.F) {
	f.Add("credentials_access_secret", "Xk9s+Q2h/YW5nZQ==", uint64(0b1010000000000000000000000000), "    ")
	f.Add("a key:=#!", " lead and trail  \t\n\r\f\\", uint64(0xffff), "\t")
	f.Add("k", "café 中 😀", uint64(0b110), "")
	f.Add("", "", uint64(1), " \f")
	f.Fuzz(func(t *testing.T, key, value string, cut uint64, indent string) {
		indent = strings.Map(func(r rune) rune {
			if r == ' ' || r == '\t' || r == '\f' {
				return r
			}
			return -1
		}, indent)
		key, value = string([]rune(key)), string([]rune(value)) // invalid UTF-8 as U+FFFD, as ranging does
		in := "# stored\n" + storeProperty(key, value, cut, indent) + "\n"
		ps, err := parseProperties([]byte(in))
		if err != nil {
			t.Fatalf("%q: %v", in, err)
		}
		line := 2 // the line of the first character of the pair
		if strings.HasPrefix(in, "# stored\n\\\n") {
			line = 3
		}
		if len(ps) != 1 || ps[0].key != key || ps[0].value != value || ps[0].line != line {
			t.Fatalf("%q read as %+v, want %q=%q on line %d", in, ps, key, value, line)
		}
	})
}

func FuzzParseRegions(f *testing.F) {
	f.Add(`[{"regionId":"cn-hangzhou","endpoint":"kms.cn-hangzhou.aliyuncs.com","vpc":false}]`)
	f.Add(`[{"RegionId":"a","VPC":"true"},{"regionId":"b"}]`)
	f.Add(`cn-hangzhou, cn-shanghai`)
	f.Add(`[{"regionId":"a","vpc":"maybe"}]`)
	f.Fuzz(func(t *testing.T, in string) {
		regions, err := parseRegions(in)
		if err != nil {
			if strings.Contains(in, "hunter2") && strings.Contains(err.Error(), "hunter2") {
				t.Fatalf("error quotes the input: %v", err)
			}
			return
		}
		if len(regions) == 0 {
			t.Fatal("no error and no region")
		}
		for _, r := range regions {
			if !validRegionID(r.ID) || strings.Contains(r.Endpoint, "://") {
				t.Fatalf("accepted a bad region %+v", r)
			}
		}
	})
}

func FuzzParseDKMS(f *testing.F) {
	f.Add(`[{"regionId":"cn-hangzhou","endpoint":"kst-1.cryptoservice.kms.aliyuncs.com","clientKeyFile":"/k.json","passwordFromEnvVariable":"PW","ignoreSslCerts":false,"caFilePath":"/ca.pem"}]`)
	f.Add(`[{"regionId":"a","endpoint":"e","clientKeyFile":"k","passwordFromEnvVariable":"X","passwordFromFilePath":"Y"}]`)
	f.Add(`[{"regionId":"a","endpoint":"e","clientKeyFile":"k","password":"hunter2"}]`)
	f.Fuzz(func(t *testing.T, in string) {
		entries, err := parseDKMS(in)
		if err != nil {
			if strings.Contains(err.Error(), "hunter2") {
				t.Fatalf("error quotes a value: %v", err)
			}
			return
		}
		for _, e := range entries {
			if e.regionID == "" || e.endpoint == "" || e.clientKey == "" {
				t.Fatalf("accepted an entry without regionId/endpoint/clientKeyFile: %+v", e)
			}
			if (e.passwordEnv != "" && e.passwordFile != "") || (e.caFile != "" && e.caCert != "") {
				t.Fatalf("accepted ambiguous entry %+v", e)
			}
		}
	})
}
