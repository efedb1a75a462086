package kmsdbotel_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/kmsdb/kmsdb/connector"
	"github.com/kmsdb/kmsdb/kmsdbotel"
	"github.com/kmsdb/kmsdb/secretsource"
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
	for _, k := range []attribute.Key{"kmsdb.kms.request_id", "cloud.region", "server.address", "kmsdb.kms.gateway", "error.type"} {
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
			Refreshed:     func(context.Context, cache.RefreshedEvent) { refreshed.Add(1) },
			RefreshFailed: func(context.Context, cache.RefreshFailedEvent) { failed.Add(1) },
			ServingStale:  func(context.Context, cache.StaleEvent) { stale.Add(1) },
		},
		Login: func(context.Context, connector.LoginEvent) { logins.Add(1) },
	}
	tm := newTelemetry(t)
	o := tm.observer(kmsdbotel.WithNext(next))
	fetchOnceFailOnce(t, o)
	o.Login(context.Background(), connector.LoginEvent{Secret: "x", Attempts: 1})
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
	o.Login(context.Background(), connector.LoginEvent{Secret: "db", Attempts: 2, Waited: time.Second, Class: connector.AuthFailure, Err: rejected})
	o.Login(context.Background(), connector.LoginEvent{Secret: "db", Attempts: 1, Waited: time.Second, Class: connector.AuthFailure, Err: gaveUp})
	o.Login(context.Background(), connector.LoginEvent{Secret: "db", Attempts: 1, Class: connector.Permanent, Err: locked})
	o.Login(context.Background(), connector.LoginEvent{Secret: "db", Attempts: 0, Class: connector.AuthFailure, Err: rejected}) // refused at once past the grace period
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

// A fetch a caller starts (a cold GetSecret, GetSecretVersion) is a child
// of the caller's span; the cache's own refreshes are root spans. Every
// successful fetch names its gateway, region and request id, a version
// fetch its stage, and nothing exported holds a password or the AccessKey
// secret.
func TestFetchSpansNestUnderCaller(t *testing.T) {
	const name, oldPass = "nest-db", "Nest-pass-0001"
	tm := newTelemetry(t)
	srv, src := emulator(t, kmstest.SecretSpec{Name: name, Type: "Rds",
		Data: `{"AccountName":"nest","AccountPassword":"` + oldPass + `"}`})
	c, err := cache.New(src, cache.WithHooks(tm.observer().Cache), cache.WithRefreshLimit(time.Nanosecond, 100))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, caller := tm.tp.Tracer("app").Start(context.Background(), "caller")
	if _, err := c.GetSecret(ctx, name); err != nil {
		t.Fatal(err)
	}
	if _, err := srv.RotateSecret(name); err != nil {
		t.Fatal(err)
	}
	cur, err := c.Refresh(context.Background(), name) // no span in ctx: a root span
	if err != nil {
		t.Fatal(err)
	}
	prev, err := c.GetSecretVersion(ctx, name, secretsource.VersionRef{Stage: secretsource.StagePrevious})
	if err != nil {
		t.Fatal(err)
	}
	caller.End()
	acct, err := secretsource.DecodeDBAccount(cur)
	if err != nil || acct.Password == oldPass {
		t.Fatalf("the rotation gave no new password: %v", err)
	}

	byReason := map[string]sdktrace.ReadOnlySpan{}
	for _, s := range tm.spans.Ended() {
		if s.Name() != "kmsdb.secret.fetch" {
			continue
		}
		set := attribute.NewSet(s.Attributes()...)
		reason, _ := set.Value("kmsdb.cache.reason")
		byReason[reason.AsString()] = s
		for k, want := range map[attribute.Key]string{"kmsdb.kms.gateway": "kms", "cloud.region": "cn-hangzhou",
			"server.address": "127.0.0.1", "kmsdb.result": "success", "kmsdb.secret.name": name} {
			if v, _ := set.Value(k); v.AsString() != want {
				t.Errorf("%s fetch span: %s = %q, want %q", reason.AsString(), k, v.AsString(), want)
			}
		}
		if v, _ := set.Value("kmsdb.kms.request_id"); v.AsString() == "" {
			t.Errorf("%s fetch span has no request id: %v", reason.AsString(), s.Attributes())
		}
	}
	if len(byReason) != 3 {
		t.Fatalf("fetch spans by reason: %v, want cold, forced and version", byReason)
	}
	for _, reason := range []string{"cold", "version"} {
		s := byReason[reason]
		if s.Parent().SpanID() != caller.SpanContext().SpanID() || s.SpanContext().TraceID() != caller.SpanContext().TraceID() {
			t.Errorf("%s fetch span's parent is %v, want the caller's span %v", reason, s.Parent().SpanID(), caller.SpanContext().SpanID())
		}
	}
	if p := byReason["forced"].Parent(); p.IsValid() {
		t.Errorf("the fetch of Refresh(context.Background()) has a parent %v, want a root span", p.SpanID())
	}
	v := attribute.NewSet(byReason["version"].Attributes()...)
	if stage, _ := v.Value("kmsdb.secret.stage"); stage.AsString() != secretsource.StagePrevious {
		t.Errorf("version fetch span: stage %q, want %s", stage.AsString(), secretsource.StagePrevious)
	}
	if ver, _ := v.Value("kmsdb.secret.version"); ver.AsString() != prev.VersionID() {
		t.Errorf("version fetch span: version %q, want %q", ver.AsString(), prev.VersionID())
	}

	rm := tm.collect(t)
	success := attribute.String("kmsdb.result", "success")
	if got := sum(t, rm, "kmsdb.cache.refreshes", attribute.String("kmsdb.cache.reason", "version"), success); got != 1 {
		t.Errorf("version refreshes = %d, want 1", got)
	}
	if got, want := sum(t, rm, "kmsdb.kms.calls", success, attribute.String("kmsdb.kms.gateway", "kms")),
		int64(srv.Calls("GetSecretValue", name)); got != want || want != 3 {
		t.Errorf("successful kmsdb.kms.calls by gateway = %d, the emulator saw %d (want 3)", got, want)
	}
	out := tm.exported(t)
	for _, secret := range []string{oldPass, acct.Password, emuSecret} {
		if strings.Contains(out, secret) {
			t.Errorf("a password or the AccessKey secret shows in the exported telemetry")
		}
	}
}

// A rotation span is a child of the span in the Login hook's context (the
// caller's connect or query span); without one it is a root span. A span
// that is not sampled gets no attributes, and the metrics are recorded all
// the same.
func TestRotationSpanParent(t *testing.T) {
	tm := newTelemetry(t)
	o := tm.observer()
	ctx, caller := tm.tp.Tracer("app").Start(context.Background(), "connect")
	rotation := connector.LoginEvent{Secret: "db", Version: "v2", User: "app", Attempts: 2, Waited: 50 * time.Millisecond}
	o.Login(ctx, rotation)
	o.Login(context.Background(), rotation)
	caller.End()
	var got []sdktrace.ReadOnlySpan
	for _, s := range tm.spans.Ended() {
		if s.Name() == "kmsdb.rotation" {
			got = append(got, s)
		}
	}
	if len(got) != 2 {
		t.Fatalf("%d rotation spans, want 2", len(got))
	}
	if p := got[0].Parent(); p.SpanID() != caller.SpanContext().SpanID() || got[0].SpanContext().TraceID() != caller.SpanContext().TraceID() {
		t.Errorf("rotation span's parent %v, want the caller's span %v", p.SpanID(), caller.SpanContext().SpanID())
	}
	if p := got[1].Parent(); p.IsValid() {
		t.Errorf("rotation span without a caller span has parent %v", p.SpanID())
	}
	set := attribute.NewSet(got[0].Attributes()...)
	for k, want := range map[attribute.Key]string{"kmsdb.secret.name": "db", "kmsdb.secret.version": "v2",
		"kmsdb.login.attempts": "2", "kmsdb.result": "success"} {
		if v, _ := set.Value(k); v.String() != want {
			t.Errorf("rotation span: %s = %q, want %q", k, v.String(), want)
		}
	}
	if d := got[0].EndTime().Sub(got[0].StartTime()); d != rotation.Waited {
		t.Errorf("rotation span lasts %v, want the wait %v", d, rotation.Waited)
	}

	unsampled := newTelemetryWith(t, sdktrace.NeverSample())
	uo := unsampled.observer()
	uo.Login(ctx, rotation)
	if n := len(unsampled.spans.Ended()); n != 0 {
		t.Errorf("%d spans recorded with the NeverSample sampler", n)
	}
	if got := sum(t, unsampled.collect(t), "kmsdb.auth_failures"); got != 1 {
		t.Errorf("kmsdb.auth_failures = %d without sampling, want 1", got)
	}
}

// seenSampler samples every span and keeps the attributes each sampling
// decision was given.
type seenSampler struct {
	mu   sync.Mutex
	seen map[string][]attribute.KeyValue
}

func (s *seenSampler) ShouldSample(p sdktrace.SamplingParameters) sdktrace.SamplingResult {
	s.mu.Lock()
	s.seen[p.Name] = append(s.seen[p.Name], p.Attributes...)
	s.mu.Unlock()
	return sdktrace.AlwaysSample().ShouldSample(p)
}

func (s *seenSampler) Description() string { return "seenSampler" }

// Span attributes are set on a recording span after it started: the sampler
// sees none of them, the recorded span has them all.
func TestSamplerSeesNoSpanAttributes(t *testing.T) {
	s := &seenSampler{seen: map[string][]attribute.KeyValue{}}
	tm := newTelemetryWith(t, s)
	o := tm.observer()
	fetchOnceFailOnce(t, o)
	o.Login(context.Background(), connector.LoginEvent{Secret: "db", Version: "v2", User: "app", Attempts: 2, Waited: time.Millisecond})
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, name := range []string{"kmsdb.secret.fetch", "kmsdb.rotation"} {
		if kvs, ok := s.seen[name]; !ok {
			t.Errorf("the sampler was not asked about %s", name)
		} else if len(kvs) != 0 {
			t.Errorf("the sampler saw attributes of %s: %v", name, kvs)
		}
	}
	for _, sp := range tm.spans.Ended() {
		if len(sp.Attributes()) == 0 {
			t.Errorf("recorded span %s has no attributes", sp.Name())
		}
	}
}
