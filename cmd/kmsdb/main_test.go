package main

import (
	"bytes"
	"context"
	"runtime"
	"runtime/debug"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/kmsdb/kmsdb/internal/syncbuf"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func TestDispatcher(t *testing.T) {
	var out, errb bytes.Buffer
	if code := runMain(context.Background(), nil, &out, &errb); code != 2 {
		t.Fatalf("no args: exit %d", code)
	}
	for name := range commands {
		if !strings.Contains(errb.String(), "  "+name+" ") {
			t.Errorf("usage does not list %q:\n%s", name, errb.String())
		}
	}
	errb.Reset()
	if code := runMain(context.Background(), []string{"nope"}, &out, &errb); code != 2 ||
		!strings.Contains(errb.String(), `unknown command "nope"`) {
		t.Fatalf("unknown command: exit %d, %s", code, errb.String())
	}
	out.Reset()
	if code := runMain(context.Background(), []string{"help"}, &out, &errb); code != 0 ||
		!strings.Contains(out.String(), "emulator") {
		t.Fatalf("help: exit %d, %s", code, out.String())
	}
	errb.Reset()
	if code := runMain(context.Background(), []string{"emulator", "-h"}, &out, &errb); code != 0 ||
		!strings.Contains(errb.String(), "--seed") {
		t.Fatalf("emulator -h: exit %d, %s", code, errb.String())
	}
}

// TestUsageErrors: a wrong command line prints its reason once, after the usage, and exits 2; nothing else.
func TestUsageErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"get", "--nope", "x"}, "kmsdb get: flag provided but not defined: -nope"},
		{[]string{"get"}, "kmsdb get: missing SECRET"},
		{[]string{"get", "a", "b"}, "kmsdb get: one SECRET expected, got 2 arguments"},
		{[]string{"get", "--timeout", "0s", "x"}, "kmsdb get: --timeout must be positive"},
		{[]string{"ping", "--engine", "oracle", "x"}, `kmsdb ping: --engine "oracle": want mysql`},
		{[]string{"ping", "--timeout", "soon", "x"}, `kmsdb ping: invalid value "soon" for flag -timeout`},
		{[]string{"emulator", "--nope"}, "kmsdb emulator: flag provided but not defined: -nope"},
		{[]string{"emulator"}, "kmsdb emulator: --seed is required"},
		{[]string{"emulator-ctl", "--admin", "http://127.0.0.1:1/", "fault", "--bogus"}, "kmsdb emulator-ctl: flag provided but not defined: -bogus"},
		{[]string{"emulator-ctl", "--admin", "http://127.0.0.1:1/", "frobnicate"}, `kmsdb emulator-ctl: unknown command "frobnicate"`},
		{[]string{"version", "extra"}, `kmsdb version: unexpected argument "extra"`},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			var out, errb bytes.Buffer
			code := runMain(context.Background(), tc.args, &out, &errb)
			if code != 2 {
				t.Errorf("exit %d, want 2", code)
			}
			got := errb.String()
			lines := strings.Split(strings.TrimSpace(got), "\n")
			if last := lines[len(lines)-1]; !strings.HasPrefix(last, tc.want) {
				t.Errorf("stderr's last line is not the reason %q:\n%s", tc.want, got)
			}
			reason := strings.TrimPrefix(tc.want, "kmsdb "+tc.args[0]+": ")
			if n := strings.Count(got, reason); n != 1 {
				t.Errorf("the reason is printed %d times:\n%s", n, got)
			}
			if out.Len() != 0 {
				t.Errorf("stdout: %q", out.String())
			}
		})
	}
}

func TestVersion(t *testing.T) {
	old := readBuildInfo
	t.Cleanup(func() { readBuildInfo = old })
	readBuildInfo = func() (*debug.BuildInfo, bool) {
		return &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Path: "github.com/kmsdb/kmsdb", Version: "v0.3.1"},
			Settings: []debug.BuildSetting{{Key: "vcs.revision", Value: "0123456789abcdef0123"},
				{Key: "vcs.time", Value: "2026-11-29T10:00:00Z"}, {Key: "vcs.modified", Value: "true"}}}, true
	}
	for _, args := range [][]string{{"version"}, {"--version"}, {"-version"}} {
		var out, errb bytes.Buffer
		if code := runMain(context.Background(), args, &out, &errb); code != 0 {
			t.Fatalf("%v: exit %d: %s", args, code, errb.String())
		}
		want := "kmsdb v0.3.1 (rev 0123456789ab, 2026-11-29T10:00:00Z, modified) go1.26.8 " + runtime.GOOS + "/" + runtime.GOARCH + "\n"
		if out.String() != want {
			t.Errorf("%v: %q, want %q", args, out.String(), want)
		}
	}
	readBuildInfo = func() (*debug.BuildInfo, bool) { return nil, false }
	if got := versionText(); !strings.HasPrefix(got, "kmsdb (unknown) "+runtime.Version()) {
		t.Errorf("without build info: %q", got)
	}
}

// TestNoticeWait: a wait longer than waitNoticeAfter prints one line saying what is awaited; a shorter one and a
// stopped one print nothing.
func TestNoticeWait(t *testing.T) {
	old := waitNoticeAfter
	t.Cleanup(func() { waitNoticeAfter = old })

	var quiet syncbuf.Buffer
	waitNoticeAfter = time.Hour
	noticeWait(&quiet, "get", "KMS")()
	if quiet.String() != "" {
		t.Errorf("a short wait printed %q", quiet.String())
	}

	var b syncbuf.Buffer
	waitNoticeAfter = time.Nanosecond
	stop := noticeWait(&b, "get", "KMS to answer for secret %q", "db/app")
	for b.String() == "" {
		time.Sleep(time.Millisecond)
	}
	stop()
	stop()
	if got := b.String(); got != "kmsdb get: waiting for KMS to answer for secret \"db/app\" ...\n" {
		t.Errorf("notice %q", got)
	}
}
