package pgkms

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
)

// leakForms lists how a password could show in an error: raw, percent- and
// query-encoded, Go-quoted, backslash-escaped for a quoted keyword value.
func leakForms(pw string) []string {
	q := strconv.Quote(pw)
	return []string{pw, url.QueryEscape(pw), url.PathEscape(pw), q[1 : len(q)-1],
		strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(pw)}
}

// assertNoLeak fails when any form of pw shows in any formatting of err or
// of an error in its chain.
func assertNoLeak(t *testing.T, err error, pw string) {
	t.Helper()
	var texts []string
	for _, f := range []string{"%v", "%+v", "%#v", "%q"} {
		texts = append(texts, fmt.Sprintf(f, err))
	}
	for e := err; e != nil; e = errors.Unwrap(e) {
		texts = append(texts, e.Error())
	}
	for _, text := range texts {
		for _, form := range leakForms(pw) {
			if strings.Contains(text, form) {
				t.Errorf("the error shows the password (as %q): %s", form, text)
				return
			}
		}
	}
}

// TestParseErrorsNeverShowThePassword: a connection string that pgx cannot
// parse gives an error that names the problem but shows no spelling of the
// password in it, whatever the spacing, quoting and escaping, and in URL
// form whatever the encoding.
func TestParseErrorsNeverShowThePassword(t *testing.T) {
	const pw = "Pw-s3cr3t-77"
	for _, tc := range []struct {
		name, dsn, password string
	}{
		{"spaces around =, quoted", "host=h password = '" + pw + "' port=notaport", pw},
		{"space after =", "host=h password= " + pw + " port=notaport", pw},
		{"space before =", "host=h password =" + pw + " port=notaport", pw},
		{"no spaces", "host=h password=" + pw + " port=notaport", pw},
		{"quoted with an escaped quote", `host=h password='` + pw + `\'x' port=notaport`, pw + `'x`},
		{"quoted with an escaped backslash", `host=h password='` + pw + `\\x' sslmode=bogus`, pw + `\x`},
		{"unquoted with escapes", `host=h password=` + pw + `\ x sslmode=bogus`, pw + ` x`},
		{"unterminated quote", "host=h password='" + pw + " port=5432", pw},
		{"password then a word without =", "host=h password=" + pw + " oops", pw},
		{"stray word after the password", "password=" + pw + " more words=x sslmode=bogus", pw},
		{"sslpassword", "host=h sslpassword=" + pw + " sslmode=bogus", pw},
		{"tabs and newlines", "host=h\tpassword\t=\n'" + pw + "'\nport=notaport", pw},
		{"URL userinfo", "postgres://u:" + pw + "@h:notaport/db", pw},
		{"URL userinfo, percent-encoded", "postgres://u:" + url.PathEscape(pw+"@/?") + "@h:notaport/db", pw + "@/?"},
		{"URL userinfo with a raw @", "postgres://u:" + pw + "@x@h:notaport/db", pw + "@x"},
		{"URL userinfo, bad sslmode", "postgresql://u:" + pw + "@h/db?sslmode=bogus", pw},
		{"URL query password", "postgres://u@h/db?password=" + pw + "&port=notaport", pw},
		{"URL query password, encoded key", "postgres://u@h/db?pass%77ord=" + url.QueryEscape(pw+" &") + "&sslmode=bogus", pw + " &"},
		{"URL bad percent-encoding after the password", "postgres://u:" + pw + "@h/d%zzb", pw},
		{"pool setting", "host=h password=" + pw + " pool_max_conns=lots", pw},
		{"pool setting, URL", "postgres://u:" + pw + "@h/db?pool_max_conns=lots", pw},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			db, err := Open("db", WithDSN(tc.dsn)) // pool_* settings are pgxpool's only
			if err == nil {
				db.Close()
				if !strings.Contains(tc.name, "pool") {
					t.Fatalf("Open accepted %s", tc.name)
				}
			} else {
				assertNoLeak(t, err, tc.password)
				if !strings.HasPrefix(err.Error(), "pgkms: WithDSN: ") {
					t.Errorf("error does not name the option: %v", err)
				}
			}
			p, err := NewPool(ctx, "db", WithDSN(tc.dsn))
			if err == nil {
				p.Close()
				t.Fatalf("NewPool accepted %s", tc.name)
			}
			assertNoLeak(t, err, tc.password)
			t.Log(err)
		})
	}
}

// TestParseErrorsStillSayWhat: scrubbing keeps what pgx said was wrong.
func TestParseErrorsStillSayWhat(t *testing.T) {
	_, err := Open("db", WithDSN("host=h password=Pw-s3cr3t-77 port=notaport"))
	if err == nil || !strings.Contains(err.Error(), "invalid port") {
		t.Fatalf("err = %v, want it to say the port is invalid", err)
	}
}

// FuzzScrubParseError puts a fuzzed password into connection strings of
// every spelling, next to a fuzzed rest; whenever pgx rejects the string,
// the scrubbed error must show no form of the password.
func FuzzScrubParseError(f *testing.F) {
	f.Add("Pw-s3cr3t-77", "port=notaport")
	f.Add(`a'b\c d`, "sslmode=bogus")
	f.Add("p@ss:/?#%&=+", "h:x/db")
	f.Add("密码 end", "oops")
	f.Fuzz(func(t *testing.T, pw, rest string) {
		if len(pw) < 4 || strings.TrimSpace(pw) != pw || strings.ContainsAny(pw, "\x00") || strings.Contains(redactedText, pw) {
			t.Skip()
		}
		esc := strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(pw)
		for _, dsn := range []string{
			"password='" + esc + "' " + rest,
			"password = '" + esc + "' " + rest,
			"password= '" + esc + "'" + rest,
			"password =" + strings.ReplaceAll(esc, " ", `\ `) + " " + rest,
			"postgres://u:" + url.PathEscape(pw) + "@" + rest,
			"postgres://u@h/db?password=" + url.QueryEscape(pw) + "&" + rest,
		} {
			_, err := pgx.ParseConfig(dsn)
			if err == nil {
				continue
			}
			msg := scrubParseError(err, dsn).Error()
			for _, form := range leakForms(pw) {
				if len(form) >= 4 && strings.Contains(msg, form) {
					t.Fatalf("%q: the error shows the password as %q: %s", dsn, form, msg)
				}
			}
		}
	})
}
