package kmsdbotel_test

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"

	"github.com/kmsdb/kmsdb/connector"
	"github.com/kmsdb/kmsdb/kmsdbotel"
	"github.com/kmsdb/kmsdb/secretsource/cache"
	"github.com/kmsdb/kmsdb/secretsource/kmstest"
)

const fetchSecret = "orders-db"

// fetchOnceFailOnce reads the secret cold, then forces a refresh that KMS
// refuses, so that the value is served stale.
func fetchOnceFailOnce(t *testing.T, o connector.Observer) *kmstest.Server {
	t.Helper()
	srv, src := emulator(t, kmstest.SecretSpec{Name: fetchSecret, Data: `{"AccountName":"orders","AccountPassword":"Fetch-pass-0001"}`})
	c, err := cache.New(src, cache.WithHooks(o.Cache), cache.WithRefreshLimit(time.Nanosecond, 100))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx := context.Background()
	if _, err := c.GetSecret(ctx, fetchSecret); err != nil {
		t.Fatal(err)
	}
	srv.InjectFault(kmstest.Fault{Action: "GetSecretValue", Secret: fetchSecret, Code: "Forbidden.NoPermission", Times: 1})
	if _, err := c.Refresh(ctx, fetchSecret); err == nil {
		t.Fatal("Refresh succeeded through an injected fault")
	}
	return srv
}

// Each fetch from KMS is a call, a refresh and a span; a failed one names
// the gateway, the error code and the request id, and leaves a stale value.
func TestKMSFetchMetricsAndSpans(t *testing.T) {
	tm := newTelemetry(t)
	srv := fetchOnceFailOnce(t, tm.observer())
	rm := tm.collect(t)

	name := attribute.String("kmsdb.secret.name", fetchSecret)
	success, failure := attribute.String("kmsdb.result", "success"), attribute.String("kmsdb.result", "failure")
	if got, want := sum(t, rm, "kmsdb.kms.calls", name), int64(srv.Calls("GetSecretValue", fetchSecret)); got != want || want != 2 {
		t.Errorf("kmsdb.kms.calls = %d, the emulator saw %d GetSecretValue (want 2)", got, want)
	}
	if got := sum(t, rm, "kmsdb.kms.calls", success); got != 1 {
		t.Errorf("successful kmsdb.kms.calls = %d, want 1", got)
	}
	if got := sum(t, rm, "kmsdb.kms.calls", failure, attribute.String("kmsdb.kms.gateway", "kms"),
		attribute.String("error.type", "Forbidden.NoPermission")); got != 1 {
		t.Errorf("failed kmsdb.kms.calls by gateway and code = %d, want 1", got)
	}
	if got := histCount(t, rm, "kmsdb.kms.duration"); got != 2 {
		t.Errorf("kmsdb.kms.duration has %d recordings, want 2", got)
	}
	if got := sum(t, rm, "kmsdb.cache.refreshes", attribute.String("kmsdb.cache.reason", "cold"), success); got != 1 {
		t.Errorf("cold successful refreshes = %d, want 1", got)
	}
	if got := sum(t, rm, "kmsdb.cache.refreshes", attribute.String("kmsdb.cache.reason", "forced"), failure); got != 1 {
		t.Errorf("forced failed refreshes = %d, want 1", got)
	}
	if got := sum(t, rm, "kmsdb.cache.stale_served", name); got != 1 {
		t.Errorf("kmsdb.cache.stale_served = %d, want 1", got)
	}
	if m := find(t, rm, "kmsdb.kms.duration"); m.Unit != "s" {
		t.Errorf("kmsdb.kms.duration unit %q, want s", m.Unit)
	}

	spans := tm.spans.Ended()
	if len(spans) != 2 {
		t.Fatalf("%d spans, want 2", len(spans))
	}
	for _, s := range spans {
		if s.Name() != "kmsdb.secret.fetch" || s.InstrumentationScope().Name != kmsdbotel.ScopeName {
			t.Errorf("span %q of scope %q", s.Name(), s.InstrumentationScope().Name)
		}
		if !s.StartTime().Before(s.EndTime()) {
			t.Errorf("span %q starts at %v, not before its end %v", s.Name(), s.StartTime(), s.EndTime())
		}
	}
	failed := spans[1]
	set := attribute.NewSet(failed.Attributes()...)
	if failed.Status().Code != codes.Error {
		t.Errorf("failed fetch span status %v", failed.Status())
	}
	for _, k := range []attribute.Key{"kmsdb.kms.request_id", "cloud.region", "kmsdb.kms.gateway", "error.type"} {
		if v, ok := set.Value(k); !ok || v.String() == "" {
			t.Errorf("failed fetch span lacks %s: %v", k, failed.Attributes())
		}
	}
}

// The secret name can be hashed or left out.
func TestSecretNameModes(t *testing.T) {
	for _, tc := range []struct {
		mode kmsdbotel.SecretNameMode
		want bool // an attribute kmsdb.secret.name
	}{{kmsdbotel.SecretNameHashed, true}, {kmsdbotel.SecretNameOff, false}} {
		tm := newTelemetry(t)
		fetchOnceFailOnce(t, tm.observer(kmsdbotel.WithSecretName(tc.mode)))
		out := tm.exported(t)
		if strings.Contains(out, fetchSecret) || strings.Contains(out, "orders") {
			t.Errorf("mode %d: the secret's name shows:\n%s", tc.mode, out)
		}
		if got := strings.Contains(out, "kmsdb.secret.name="); got != tc.want {
			t.Errorf("mode %d: attribute kmsdb.secret.name present %v, want %v:\n%s", tc.mode, got, tc.want, out)
		}
	}
}

// WithNext passes every event on, and its Logger through.
func TestWithNextChains(t *testing.T) {
	var refreshed, failed, stale, logins atomic.Int64
	next := connector.Observer{
		Cache: cache.Hooks{
			Refreshed:     func(cache.RefreshedEvent) { refreshed.Add(1) },
			RefreshFailed: func(cache.RefreshFailedEvent) { failed.Add(1) },
			ServingStale:  func(cache.StaleEvent) { stale.Add(1) },
		},
		Login: func(connector.LoginEvent) { logins.Add(1) },
	}
	tm := newTelemetry(t)
	o := tm.observer(kmsdbotel.WithNext(next))
	fetchOnceFailOnce(t, o)
	o.Login(connector.LoginEvent{Secret: "x", Attempts: 1})
	if refreshed.Load() != 1 || failed.Load() != 1 || stale.Load() != 1 || logins.Load() != 1 {
		t.Errorf("chained hooks saw refreshed=%d failed=%d stale=%d logins=%d, want 1 each",
			refreshed.Load(), failed.Load(), stale.Load(), logins.Load())
	}
	if o.Cache.Evicted == nil {
		t.Error("no Evicted hook")
	}
}

// A connection refused past the grace period counts as failed after grace,
// by class; one whose caller gave up does not.
func TestLoginFailures(t *testing.T) {
	tm := newTelemetry(t)
	o := tm.observer()
	rejected := &connector.Error{Secret: "db", Class: connector.AuthFailure, Attempts: 2, Err: connector.ErrCredentialsRejected}
	gaveUp := &connector.Error{Secret: "db", Class: connector.AuthFailure, Attempts: 1,
		Err: errors.Join(connector.ErrCredentialsRejected, context.DeadlineExceeded)}
	locked := &connector.Error{Secret: "db", Class: connector.Permanent, Attempts: 1, Err: connector.ErrLoginRefused}
	o.Login(connector.LoginEvent{Secret: "db", Attempts: 2, Waited: time.Second, Class: connector.AuthFailure, Err: rejected})
	o.Login(connector.LoginEvent{Secret: "db", Attempts: 1, Waited: time.Second, Class: connector.AuthFailure, Err: gaveUp})
	o.Login(connector.LoginEvent{Secret: "db", Attempts: 1, Class: connector.Permanent, Err: locked})
	o.Login(connector.LoginEvent{Secret: "db", Attempts: 0, Class: connector.AuthFailure, Err: rejected}) // refused at once past the grace period
	rm := tm.collect(t)
	fail := attribute.String("kmsdb.result", "failure")
	auth := attribute.String("kmsdb.login.class", "auth_failure")
	for _, c := range []struct {
		what      string
		got, want int64
	}{
		{"failed_after_grace", sum(t, rm, "kmsdb.logins.failed_after_grace"), 2},
		{"logins{failure,auth_failure}", sum(t, rm, "kmsdb.logins", fail, auth), 3},
		{"logins{failure,permanent}", sum(t, rm, "kmsdb.logins", fail, attribute.String("kmsdb.login.class", "permanent")), 1},
		{"auth_failures", sum(t, rm, "kmsdb.auth_failures"), 3},
		{"login.attempts", sum(t, rm, "kmsdb.login.attempts"), 4},
		{"rotation.wait", int64(histCount(t, rm, "kmsdb.rotation.wait", fail, auth)), 3},
	} {
		if c.got != c.want {
			t.Errorf("%s = %d, want %d", c.what, c.got, c.want)
		}
	}
}
