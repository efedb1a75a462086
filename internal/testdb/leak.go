package testdb

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/url"
	"os"
	"reflect"
	"strings"
	"testing"

	"github.com/go-sql-driver/mysql"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/kmsdb/kmsdb/connector"
)

// asTargets are pointers to every exported error type of pgconn, pgx, the
// MySQL driver, net, net/url and os, and to the interfaces error reporters
// ask for: ErrorLeaks asks errors.As for each.
func asTargets() []any {
	return []any{
		new(*pgconn.ConnectError), new(*pgconn.PgError), new(*pgconn.ParseConfigError),
		new(*pgconn.NotPreferredError), new(*pgconn.PrepareError), new(*pgx.ScanArgError),
		new(*mysql.MySQLError),
		new(*net.OpError), new(*net.DNSError), new(*net.AddrError), new(*net.ParseError),
		new(*net.DNSConfigError), new(net.InvalidAddrError), new(net.UnknownNetworkError), new(net.Error),
		new(*url.Error), new(url.EscapeError), new(url.InvalidHostError),
		new(*os.SyscallError), new(*fs.PathError), new(*os.LinkError),
		new(interface{ SafeToRetry() bool }), new(interface{ Timeout() bool }),
		new(interface{ SQLState() string }), new(interface{ Unwrap() error }), new(interface{ Unwrap() []error }),
	}
}

// ErrorLeaks returns where secret (or its URL-escaped forms) shows in
// anything a caller can reach from err, as an attacker's error reporter
// would look: the text of err and of every error in its tree (Unwrap() error
// and Unwrap() []error), fmt's %v, %+v and %#v of each, the values
// errors.As finds for every exported error type of pgconn, pgx, the MySQL
// driver, net, net/url and os, and every string and byte slice reachable by
// reflection from any of them, exported fields or not (closures excepted:
// reflection cannot see into them). Empty when nothing shows it.
func ErrorLeaks(err error, secret string) []string {
	forms := []string{secret, url.QueryEscape(secret), url.PathEscape(secret)}
	var leaks []string
	check := func(where, s string) {
		for _, f := range forms {
			if f != "" && strings.Contains(s, f) {
				leaks = append(leaks, fmt.Sprintf("%s: %q", where, s))
				return
			}
		}
	}
	w := &leakWalker{check: check, seen: map[seenKey]bool{}}
	var tree func(e error, path string, depth int)
	tree = func(e error, path string, depth int) {
		if e == nil || depth > 100 {
			return
		}
		check(path+".Error()", e.Error())
		for _, f := range []string{"%v", "%+v", "%#v"} {
			check(path+" "+f, fmt.Sprintf(f, e))
		}
		switch u := e.(type) { //nolint:errorlint // walking the tree link by link on purpose
		case interface{ Unwrap() error }:
			tree(u.Unwrap(), fmt.Sprintf("%s.Unwrap()(%T)", path, e), depth+1)
		case interface{ Unwrap() []error }:
			for i, c := range u.Unwrap() {
				tree(c, fmt.Sprintf("%s.Unwrap()[%d](%T)", path, i, e), depth+1)
			}
		}
	}
	tree(err, "err", 0)
	for e := err; e != nil; e = errors.Unwrap(e) {
		check(fmt.Sprintf("errors.Unwrap chain (%T)", e), e.Error())
	}
	w.walk(reflect.ValueOf(&err).Elem(), "err", 0)
	for _, target := range asTargets() {
		if errors.As(err, target) {
			v := reflect.ValueOf(target).Elem()
			name := fmt.Sprintf("errors.As(%s)", v.Type())
			w.seen = map[seenKey]bool{} // a fresh walk: As may hand out a copy
			w.walk(v, name, 0)
			if e, ok := v.Interface().(error); ok && e != nil {
				check(name+".Error()", e.Error())
				check(name+" %+v", fmt.Sprintf("%+v", e))
			}
		}
	}
	return leaks
}

type seenKey struct {
	p uintptr
	t reflect.Type
}

type leakWalker struct {
	check func(where, s string)
	seen  map[seenKey]bool
}

// walk visits every value reachable from v, exported fields or not.
func (w *leakWalker) walk(v reflect.Value, path string, depth int) {
	if !v.IsValid() || depth > 64 {
		return
	}
	switch v.Kind() {
	case reflect.String:
		w.check(path, v.String())
	case reflect.Pointer:
		if v.IsNil() {
			return
		}
		k := seenKey{v.Pointer(), v.Type()}
		if w.seen[k] {
			return
		}
		w.seen[k] = true
		w.walk(v.Elem(), "(*"+path+")", depth+1)
	case reflect.Interface:
		if !v.IsNil() {
			w.walk(v.Elem(), path+fmt.Sprintf("(%s)", v.Elem().Type()), depth+1)
		}
	case reflect.Struct:
		for i := range v.NumField() {
			w.walk(v.Field(i), path+"."+v.Type().Field(i).Name, depth+1)
		}
	case reflect.Slice:
		if v.IsNil() {
			return
		}
		if v.Type().Elem().Kind() == reflect.Uint8 {
			w.check(path, string(v.Bytes()))
			return
		}
		k := seenKey{v.Pointer(), v.Type()}
		if w.seen[k] {
			return
		}
		w.seen[k] = true
		fallthrough
	case reflect.Array:
		if v.Kind() == reflect.Array && v.Type().Elem().Kind() == reflect.Uint8 {
			b := make([]byte, v.Len())
			for i := range b {
				b[i] = byte(v.Index(i).Uint()) //nolint:gosec // the element is a uint8
			}
			w.check(path, string(b))
			return
		}
		for i := range v.Len() {
			w.walk(v.Index(i), fmt.Sprintf("%s[%d]", path, i), depth+1)
		}
	case reflect.Map:
		if v.IsNil() {
			return
		}
		for it := v.MapRange(); it.Next(); {
			w.walk(it.Key(), path+"[key]", depth+1)
			w.walk(it.Value(), path+"[value]", depth+1)
		}
	}
}

// CheckLoginErrors is the attacker's check of failed logins: errs (the
// errors a connector returned, and the Err of its LoginEvents) must number at
// least want; each must be an AuthFailure *connector.Error from which none of
// passwords can be reached (ErrorLeaks), while the database's own refusal
// stays reachable: refused(err) holds, refusal names it in failures (for
// example "*mysql.MySQLError 1045").
func CheckLoginErrors(t testing.TB, errs []error, want int, passwords []string, refusal string, refused func(error) bool) {
	t.Helper()
	if len(errs) < want {
		t.Errorf("%d errors and events, want at least %d: no LoginEvent?", len(errs), want)
	}
	for i, err := range errs {
		if err == nil {
			t.Errorf("error %d is nil", i)
			continue
		}
		for _, pw := range passwords {
			for _, leak := range ErrorLeaks(err, pw) {
				t.Errorf("error %d leaks a password at %s", i, leak)
			}
		}
		var ce *connector.Error
		if !errors.As(err, &ce) || ce.Class != connector.AuthFailure {
			t.Errorf("error %d: not an AuthFailure *connector.Error: %v", i, err)
		}
		if !refused(err) {
			t.Errorf("error %d: %s not reachable: %v", i, refusal, err)
		}
	}
	if len(errs) > 0 {
		t.Log(errs[0])
	}
}
