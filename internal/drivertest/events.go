package drivertest

import (
	"context"
	"sync"
	"testing"

	"github.com/kmsdb/kmsdb/connector"
)

// CaptureLoginEvents installs a default Observer that records every
// LoginEvent, for the test's duration; events returns those of secret.
func CaptureLoginEvents(t *testing.T) (events func(secret string) []connector.LoginEvent) {
	t.Helper()
	var mu sync.Mutex
	var got []connector.LoginEvent
	prev := connector.DefaultObserver()
	o := prev
	o.Login = func(_ context.Context, ev connector.LoginEvent) {
		mu.Lock()
		got = append(got, ev)
		mu.Unlock()
	}
	connector.SetDefaultObserver(o)
	t.Cleanup(func() { connector.SetDefaultObserver(prev) })
	return func(secret string) []connector.LoginEvent {
		mu.Lock()
		defer mu.Unlock()
		var out []connector.LoginEvent
		for _, ev := range got {
			if ev.Secret == secret {
				out = append(out, ev)
			}
		}
		return out
	}
}
