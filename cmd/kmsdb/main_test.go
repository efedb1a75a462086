package main

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"go.uber.org/goleak"
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
