package main

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/kmsdb/kmsdb/secretsource/kmstest"
)

// TestGetTimeout: a KMS that does not answer makes `get --timeout` give up with an error that names the flag, and
// the wait is announced on stderr once it lasts longer than waitNoticeAfter.
func TestGetTimeout(t *testing.T) {
	srv := getEnv(t)
	old := waitNoticeAfter
	t.Cleanup(func() { waitNoticeAfter = old })
	waitNoticeAfter = time.Millisecond
	srv.InjectFault(kmstest.Fault{Action: "GetSecretValue", Latency: time.Hour}) // ends when the emulator closes

	var out, errb bytes.Buffer
	code := runMain(context.Background(), []string{"get", "--timeout", "1s", "db/app"}, &out, &errb)
	if code != 1 {
		t.Errorf("exit %d, want 1", code)
	}
	got := errb.String()
	if !strings.Contains(got, `kmsdb get: waiting for KMS to answer for secret "db/app" (--timeout 1s) ...`) {
		t.Errorf("no wait notice:\n%s", got)
	}
	if !strings.Contains(got, "no answer within --timeout 1s") {
		t.Errorf("the error does not name --timeout:\n%s", got)
	}
	if strings.Count(got, "waiting for") != 1 {
		t.Errorf("the notice is not one line:\n%s", got)
	}

	// Without the fault, a fast answer prints no notice.
	srv.ClearFaults()
	waitNoticeAfter = time.Hour
	errb.Reset()
	if err := runGet(context.Background(), []string{"--timeout", "30s", "db/app"}, &out, &errb); err != nil {
		t.Fatal(err)
	}
	if errb.Len() != 0 {
		t.Errorf("stderr of a fast get: %q", errb.String())
	}
	if err := runGet(context.Background(), []string{"--timeout", "-1s", "db/app"}, &out, &errb); !errors.Is(err, errUsage) {
		t.Errorf("negative --timeout: %v", err)
	}
}
