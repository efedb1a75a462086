package ramsecret

import (
	"runtime"
	"strings"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func containsSecret(s, secret string) bool { return secret != "" && strings.Contains(s, secret) }

func runtimeGosched() { runtime.Gosched() }
