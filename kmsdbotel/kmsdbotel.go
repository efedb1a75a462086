// Package kmsdbotel exports kmsdb's events as OpenTelemetry metrics and
// traces. It depends only on the OpenTelemetry API: the application picks
// the SDK and the exporter (see examples/prometheus, a module of its own).
//
// One call wires it into the whole process (every connector, pgkms.Pool and
// the default cache):
//
//	connector.SetDefaultObserver(kmsdbotel.NewObserver())
//
// A cache of the application's own takes the same hooks:
//
//	o := kmsdbotel.NewObserver()
//	c, err := cache.New(src, cache.WithHooks(o.Cache))
//
// # Metrics
//
// All instruments come from the meter named ScopeName:
//
//	kmsdb.kms.calls            {call}       fetches that reached the secret source, by result and gateway
//	kmsdb.kms.duration         s            how long those fetches took (histogram)
//	kmsdb.cache.refreshes      {refresh}    cache fetches by reason and result (a rate-limit timeout counts, with no KMS call)
//	kmsdb.cache.stale_served   {event}      times a failed refresh left callers on an older value
//	kmsdb.cache.stale_age      s            age of the value served stale (gauge; 0 again after a successful refresh)
//	kmsdb.cache.evictions      {eviction}   values dropped past the maximum staleness
//	kmsdb.login.attempts       {attempt}    logins tried (connector.Stats.Logins)
//	kmsdb.logins               {login}      connection attempt sequences, by result and class
//	kmsdb.auth_failures        {failure}    attempts the database rejected (connector.Stats.AuthFailures)
//	kmsdb.previous_used        {login}      connections opened with a version other than the current one
//	kmsdb.rotation.wait        s            time a connection spent in a rotation: sequences that met a rejection (histogram)
//	kmsdb.logins.failed_after_grace {login} connections refused because the credentials stayed rejected past the grace period
//
// No attribute ever holds a secret value, a password or an AccessKey. The
// secret name is the attribute kmsdb.secret.name; WithSecretName turns it off
// or replaces it by a hash, since names can be sensitive.
//
// # Traces
//
// The cache reports a fetch when it ends, with its duration: each fetch that
// reached the source becomes a span "kmsdb.secret.fetch" whose start is set
// back by that duration, with the reason, the version, the gateway
// (kmsdb.kms.gateway), region (cloud.region), endpoint host and port
// (server.address, server.port) and request id
// (kmsdb.kms.request_id) of the call (secretsource.Origin on a success, the
// *secretsource.Error on a failure) and on a failure the error code. A fetch a caller started (a cold
// GetSecret, Refresh, GetSecretVersion) is a child of the span in that
// caller's context; the cache's own refreshes are root spans.
//
// Each connection attempt sequence that met a rejection (a rotation) becomes
// a span "kmsdb.rotation" covering its wait, with the attempts, the version
// that logged in and whether an older one stood in: a child of the span in
// the context the connection was asked for with (the application's query
// span, or the connect span of a database/sql wrapper such as otelsql). The
// driver's own connect spans are the driver's: pgx's ConnConfig.Tracer
// (e.g. otelpgx) passes through pgkms.WithConfig and pgkms.ConfigurePool
// unchanged, so each login attempt of a pgx connection stays traced, beside
// the kmsdb.rotation span. Span attributes, of both spans, are set only after
// the span started and only when it is recording (sampled): a sampler sees
// the name, the kind and the parent, never the attributes, and an unsampled
// span costs no attribute. See docs/observability.md.
package kmsdbotel

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"

	"github.com/kmsdb/kmsdb/connector"
	"github.com/kmsdb/kmsdb/secretsource"
	"github.com/kmsdb/kmsdb/secretsource/cache"
)

// ScopeName is the instrumentation scope of the meter and the tracer: the
// package's import path.
const ScopeName = "github.com/kmsdb/kmsdb/kmsdbotel"

// SecretNameMode says how the secret's name shows in attributes.
type SecretNameMode int

const (
	// SecretNamePlain: kmsdb.secret.name holds the name (default).
	SecretNamePlain SecretNameMode = iota
	// SecretNameHashed: kmsdb.secret.name holds the first 16 hex digits of
	// the name's SHA-256, stable across processes.
	SecretNameHashed
	// SecretNameOff: no attribute names the secret.
	SecretNameOff
)

// Option configures NewObserver.
type Option interface{ apply(*config) }

type optionFunc func(*config)

func (f optionFunc) apply(c *config) { f(c) }

type config struct {
	mp    metric.MeterProvider
	tp    trace.TracerProvider
	names SecretNameMode
	next  connector.Observer
}

// WithMeterProvider sets the MeterProvider; default otel.GetMeterProvider().
func WithMeterProvider(mp metric.MeterProvider) Option {
	return optionFunc(func(c *config) { c.mp = mp })
}

// WithTracerProvider sets the TracerProvider; default otel.GetTracerProvider().
func WithTracerProvider(tp trace.TracerProvider) Option {
	return optionFunc(func(c *config) { c.tp = tp })
}

// WithSecretName says how the secret's name shows in attributes.
func WithSecretName(m SecretNameMode) Option {
	return optionFunc(func(c *config) { c.names = m })
}

// WithNext chains next: every event is passed on to it after being
// recorded, and its Logger becomes the Observer's. For example
// kmsdbotel.NewObserver(kmsdbotel.WithNext(connector.DefaultObserver())).
func WithNext(next connector.Observer) Option {
	return optionFunc(func(c *config) { c.next = next })
}

// Attribute keys.
const (
	keySecret    = attribute.Key("kmsdb.secret.name")
	keyVersion   = attribute.Key("kmsdb.secret.version")
	keyReason    = attribute.Key("kmsdb.cache.reason")
	keyResult    = attribute.Key("kmsdb.result") // success or failure
	keyGateway   = attribute.Key("kmsdb.kms.gateway")
	keyRegion    = attribute.Key("cloud.region")
	keyAddress   = attribute.Key("server.address")
	keyPort      = attribute.Key("server.port")
	keyRequestID = attribute.Key("kmsdb.kms.request_id")
	keyErrorType = attribute.Key("error.type")
	keyClass     = attribute.Key("kmsdb.login.class")
	keyAttempts  = attribute.Key("kmsdb.login.attempts")
	keyPrevious  = attribute.Key("kmsdb.login.previous_used")
	// keyStage and keyVersionRef: the version GetSecretVersion asked for.
	keyStage      = attribute.Key("kmsdb.secret.stage")
	keyVersionRef = attribute.Key("kmsdb.secret.version_ref")
)

var (
	resultSuccess = keyResult.String("success")
	resultFailure = keyResult.String("failure")
)

type observer struct {
	names  SecretNameMode
	next   connector.Observer
	tracer trace.Tracer

	kmsCalls, refreshes, staleServed, evictions               metric.Int64Counter
	attempts, logins, authFailures, previousUsed, failedGrace metric.Int64Counter
	kmsDuration, rotationWait                                 metric.Float64Histogram
	staleAge                                                  metric.Float64Gauge

	sets  sync.Map // secret name -> *loginSets
	nsets atomic.Int64
}

// NewObserver returns a connector.Observer that records kmsdb's events as
// metrics and spans (see the package documentation for the list). Install
// it with connector.SetDefaultObserver, or give its Cache hooks to a cache
// with cache.WithHooks.
func NewObserver(opts ...Option) connector.Observer {
	cfg := config{}
	for _, o := range opts {
		if o != nil {
			o.apply(&cfg)
		}
	}
	if cfg.mp == nil {
		cfg.mp = otel.GetMeterProvider()
	}
	if cfg.tp == nil {
		cfg.tp = otel.GetTracerProvider()
	}
	m := cfg.mp.Meter(ScopeName)
	o := &observer{names: cfg.names, next: cfg.next, tracer: cfg.tp.Tracer(ScopeName)}
	var errs []error
	counter := func(name, unit, desc string) metric.Int64Counter {
		c, err := m.Int64Counter(name, metric.WithUnit(unit), metric.WithDescription(desc))
		errs = append(errs, err)
		return c
	}
	hist := func(name, desc string, bounds ...float64) metric.Float64Histogram {
		h, err := m.Float64Histogram(name, metric.WithUnit("s"), metric.WithDescription(desc),
			metric.WithExplicitBucketBoundaries(bounds...))
		errs = append(errs, err)
		return h
	}
	o.kmsCalls = counter("kmsdb.kms.calls", "{call}", "Fetches of a secret that reached the secret source (KMS).")
	o.refreshes = counter("kmsdb.cache.refreshes", "{refresh}", "Fetches of the secret cache, by reason and result.")
	o.staleServed = counter("kmsdb.cache.stale_served", "{event}", "Failed refreshes after which callers keep an older value.")
	o.evictions = counter("kmsdb.cache.evictions", "{eviction}", "Values dropped after exceeding the maximum staleness.")
	o.attempts = counter("kmsdb.login.attempts", "{attempt}", "Database logins tried by the rotation loop.")
	o.logins = counter("kmsdb.logins", "{login}", "Connection attempt sequences, by result and failure class.")
	o.authFailures = counter("kmsdb.auth_failures", "{failure}", "Logins the database rejected as an authentication failure.")
	o.previousUsed = counter("kmsdb.previous_used", "{login}", "Connections opened with a version other than the current one.")
	o.failedGrace = counter("kmsdb.logins.failed_after_grace", "{login}", "Connections refused because the credentials stayed rejected past the grace period.")
	o.kmsDuration = hist("kmsdb.kms.duration", "Duration of the fetches that reached the secret source.",
		0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
	o.rotationWait = hist("kmsdb.rotation.wait", "Time a connection spent in a rotation (sequences that met a rejection).",
		0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
	g, err := m.Float64Gauge("kmsdb.cache.stale_age", metric.WithUnit("s"),
		metric.WithDescription("Age of the value served stale; 0 after a successful refresh."))
	o.staleAge = g
	errs = append(errs, err)
	if err := errors.Join(errs...); err != nil {
		otel.Handle(err) // the API returns usable no-op instruments along with an error
	}
	return connector.Observer{
		Logger: cfg.next.Logger,
		Cache: cache.Hooks{
			Refreshed: o.refreshed, RefreshFailed: o.refreshFailed,
			ServingStale: o.servingStale, Evicted: o.evicted,
		},
		Login: o.login,
	}
}

// secret returns the attribute naming the secret, per the mode.
func (o *observer) secret(name string) (attribute.KeyValue, bool) {
	switch o.names {
	case SecretNamePlain:
		return keySecret.String(name), true
	case SecretNameHashed:
		sum := sha256.Sum256([]byte(name))
		return keySecret.String(hex.EncodeToString(sum[:8])), true
	}
	return attribute.KeyValue{}, false
}

// attrs is a small attribute list on the stack.
type attrs struct {
	buf [16]attribute.KeyValue
	n   int
}

func (a *attrs) add(kv ...attribute.KeyValue) {
	for _, x := range kv {
		if a.n < len(a.buf) {
			a.buf[a.n] = x
			a.n++
		}
	}
}

func (a *attrs) list() []attribute.KeyValue { return a.buf[:a.n] }

// origin adds the gateway, region, endpoint and request id of a fetch.
func (a *attrs) origin(g secretsource.Origin) {
	if g.Source != "" {
		a.add(keyGateway.String(g.Source))
	}
	if g.Region != "" {
		a.add(keyRegion.String(g.Region))
	}
	if g.Endpoint != "" {
		host, port := g.Endpoint, 0
		if h, p, err := net.SplitHostPort(g.Endpoint); err == nil {
			if n, err := strconv.Atoi(p); err == nil && n > 0 && n < 65536 {
				host, port = h, n
			}
		}
		a.add(keyAddress.String(host))
		if port != 0 {
			a.add(keyPort.Int(port))
		}
	}
	if g.RequestID != "" {
		a.add(keyRequestID.String(g.RequestID))
	}
}

// versionRef adds the stage and version id GetSecretVersion asked for.
func (a *attrs) versionRef(ref secretsource.VersionRef) {
	if ref.Stage != "" {
		a.add(keyStage.String(ref.Stage))
	}
	if ref.VersionID != "" {
		a.add(keyVersionRef.String(ref.VersionID))
	}
}

// startFetchSpan starts the span of a fetch of the cache that ended now and
// took took: a child of the span in ctx (the caller whose GetSecret started
// it), a root span for the cache's own refreshes. The caller sets its
// attributes only if it is recording (the sampler sees none of them), and
// ends it with endFetchSpan.
func (o *observer) startFetchSpan(ctx context.Context, now time.Time, took time.Duration) trace.Span {
	_, span := o.tracer.Start(ctx, "kmsdb.secret.fetch", trace.WithSpanKind(trace.SpanKindClient),
		trace.WithTimestamp(now.Add(-took)))
	return span
}

// endFetchSpan sets kvs, and the error status when err is not empty, on a
// recording span, and ends it at now.
func endFetchSpan(span trace.Span, now time.Time, kvs []attribute.KeyValue, err string) {
	span.SetAttributes(kvs...)
	if err != "" {
		span.SetStatus(codes.Error, err)
	}
	span.End(trace.WithTimestamp(now))
}

func (o *observer) refreshed(ctx context.Context, e cache.RefreshedEvent) {
	now := time.Now()
	ls := o.loginSets(e.Name)
	a := &attrs{}
	a.add(ls.kvs...)
	a.add(resultSuccess)
	a.origin(e.Origin) // gateway, region, request id
	n := len(ls.kvs) + 1
	if e.Origin.Source != "" {
		n++ // the gateway: the metrics' attributes end there
	}
	set := metric.WithAttributes(a.list()[:n]...)
	o.kmsCalls.Add(ctx, 1, set)
	o.kmsDuration.Record(ctx, e.Took.Seconds(), set)
	o.refreshes.Add(ctx, 1, metric.WithAttributes(append(a.list()[:len(ls.kvs)+1:len(ls.kvs)+1], keyReason.String(string(e.Reason)))...))
	if e.Reason != cache.ReasonVersion { // the value served is fresh again
		o.staleAge.Record(ctx, 0, ls.gauge...)
	}
	if span := o.startFetchSpan(ctx, now, e.Took); span.IsRecording() {
		a.add(keyReason.String(string(e.Reason)), keyVersion.String(e.Version))
		a.versionRef(e.VersionRef)
		endFetchSpan(span, now, a.list(), "")
	} else {
		span.End()
	}
	if h := o.next.Cache.Refreshed; h != nil {
		h(ctx, e)
	}
}

// noCall reports whether a failure happened before the source was asked
// (the wait for the cache's refresh rate limit).
func noCall(e cache.RefreshFailedEvent) bool {
	var se *secretsource.Error
	return e.Took == 0 && errors.As(e.Err, &se) && se.Source == "cache" && se.Kind == secretsource.KindTimeout
}

// errorType names an error without its text: the service's code, else the
// kind of the *secretsource.Error in snake case, else "context" or "other".
func errorType(err error) string {
	var se *secretsource.Error
	switch {
	case errors.As(err, &se) && se.Code != "":
		return se.Code
	case se != nil:
		return strings.ReplaceAll(se.Kind.String(), " ", "_") // e.g. not_found
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return "context"
	}
	return "other"
}

func (o *observer) refreshFailed(ctx context.Context, e cache.RefreshFailedEvent) {
	now := time.Now()
	ls := o.loginSets(e.Name)
	a := &attrs{}
	a.add(ls.kvs...)
	etype := keyErrorType.String(errorType(e.Err))
	a.add(resultFailure)
	o.refreshes.Add(ctx, 1, metric.WithAttributes(append(a.list()[:a.n:a.n], keyReason.String(string(e.Reason)))...))
	if !noCall(e) {
		var se *secretsource.Error
		errors.As(e.Err, &se)
		if se != nil && se.Source != "" {
			a.add(keyGateway.String(se.Source))
		}
		a.add(etype)
		set := metric.WithAttributes(a.list()...)
		o.kmsCalls.Add(ctx, 1, set)
		o.kmsDuration.Record(ctx, e.Took.Seconds(), set)
		if span := o.startFetchSpan(ctx, now, e.Took); span.IsRecording() {
			a.add(keyReason.String(string(e.Reason)))
			if se != nil {
				a.origin(secretsource.Origin{Region: se.Region, Endpoint: se.Endpoint, RequestID: se.RequestID})
			}
			a.versionRef(e.VersionRef)
			endFetchSpan(span, now, a.list(), etype.Value.AsString())
		} else {
			span.End()
		}
	}
	if h := o.next.Cache.RefreshFailed; h != nil {
		h(ctx, e)
	}
}

func (o *observer) servingStale(ctx context.Context, e cache.StaleEvent) {
	ls := o.loginSets(e.Name)
	o.staleServed.Add(ctx, 1, ls.base...)
	o.staleAge.Record(ctx, e.Age.Seconds(), ls.gauge...)
	if h := o.next.Cache.ServingStale; h != nil {
		h(ctx, e)
	}
}

func (o *observer) evicted(ctx context.Context, e cache.EvictedEvent) {
	o.evictions.Add(ctx, 1, o.loginSets(e.Name).base...)
	if h := o.next.Cache.Evicted; h != nil {
		h(ctx, e)
	}
}

// authFailures is how many of the event's attempts the database rejected
// as an authentication failure: every attempt but the last, which also
// counts when the sequence failed as AuthFailure (a sequence retries only
// after a rejection; one that failed reading or decoding the secret ended
// after rejections only).
func authFailures(e connector.LoginEvent) int {
	switch {
	case e.Attempts == 0:
		return 0
	case e.Err != nil && (e.Class == connector.AuthFailure || e.Class == connector.SecretUnavailable):
		return e.Attempts
	}
	return e.Attempts - 1
}

// className names a failure class as an attribute value.
func className(c connector.Class) string {
	switch c {
	case connector.AuthFailure:
		return "auth_failure"
	case connector.Permanent:
		return "permanent"
	case connector.SecretUnavailable:
		return "secret_unavailable"
	}
	return "other"
}

// afterGrace reports whether the sequence failed because the credentials
// stayed rejected past the grace period (not because the caller gave up).
func afterGrace(e connector.LoginEvent) bool {
	return errors.Is(e.Err, connector.ErrCredentialsRejected) &&
		!errors.Is(e.Err, context.Canceled) && !errors.Is(e.Err, context.DeadlineExceeded)
}

// nClass is the number of failure classes (connector.Class values).
const nClass = 4

// loginSets are the precomputed attributes of one secret: a login records
// its metrics and its span without building an attribute set or an option
// slice (each is a one-element slice, passed on with ...).
type loginSets struct {
	kvs     []attribute.KeyValue              // the secret's attribute (none when names are off)
	base    []metric.AddOption                // the secret
	success []metric.AddOption                // the secret, result success
	failure [nClass][]metric.AddOption        // the secret, result failure, by class
	hist    [nClass + 1][]metric.RecordOption // success (index nClass), then failure by class, for histograms
	gauge   []metric.RecordOption             // the secret, for the stale age gauge
	spanKVs [nClass + 1][]attribute.KeyValue  // the kmsdb.rotation span's: success (index nClass), failure by class
}

// maxSecretSets bounds the precomputed sets (one per secret name): past it,
// sets are built per event.
const maxSecretSets = 1024

func (o *observer) loginSets(name string) *loginSets {
	if v, ok := o.sets.Load(name); ok {
		return v.(*loginSets)
	}
	ls := &loginSets{}
	if kv, ok := o.secret(name); ok {
		ls.kvs = []attribute.KeyValue{kv}
	}
	with := func(extra ...attribute.KeyValue) []attribute.KeyValue {
		return append(append([]attribute.KeyValue{}, ls.kvs...), extra...)
	}
	base := metric.WithAttributeSet(attribute.NewSet(ls.kvs...))
	ls.base, ls.gauge = []metric.AddOption{base}, []metric.RecordOption{base}
	ls.spanKVs[nClass] = with(resultSuccess)
	success := metric.WithAttributeSet(attribute.NewSet(ls.spanKVs[nClass]...))
	ls.success, ls.hist[nClass] = []metric.AddOption{success}, []metric.RecordOption{success}
	for c := range ls.failure {
		ls.spanKVs[c] = with(resultFailure, keyClass.String(className(connector.Class(c))))
		set := metric.WithAttributeSet(attribute.NewSet(ls.spanKVs[c]...))
		ls.failure[c], ls.hist[c] = []metric.AddOption{set}, []metric.RecordOption{set}
	}
	if o.nsets.Load() < maxSecretSets {
		if v, loaded := o.sets.LoadOrStore(name, ls); loaded {
			return v.(*loginSets)
		}
		o.nsets.Add(1)
	}
	return ls
}

func (o *observer) login(ctx context.Context, e connector.LoginEvent) {
	ls := o.loginSets(e.Secret)
	if e.Attempts > 0 {
		o.attempts.Add(ctx, int64(e.Attempts), ls.base...)
	}
	fails := authFailures(e)
	if fails > 0 {
		o.authFailures.Add(ctx, int64(fails), ls.base...)
	}
	if e.PreviousUsed {
		o.previousUsed.Add(ctx, 1, ls.base...)
	}
	set, c := ls.success, nClass
	if e.Err != nil {
		c = int(e.Class)
		if c < 0 || c >= nClass {
			c = int(connector.Other)
		}
		set = ls.failure[c]
		if afterGrace(e) {
			o.failedGrace.Add(ctx, 1, ls.base...)
		}
	}
	o.logins.Add(ctx, 1, set...)
	if fails > 0 || (e.Err != nil && e.Class == connector.AuthFailure) {
		o.rotationWait.Record(ctx, e.Waited.Seconds(), ls.hist[c]...)
		o.rotationSpan(ctx, e, ls.spanKVs[c])
	}
	if h := o.next.Login; h != nil {
		h(ctx, e)
	}
}

// spanAttrs holds the attribute buffers of rotationSpan.
var spanAttrs = sync.Pool{New: func() any { b := make([]attribute.KeyValue, 0, 8); return &b }}

// rotationSpan records a sequence that met a rejection as a span
// "kmsdb.rotation" that ends now and covers its wait: a child of the span
// in ctx (the caller's connect or query span). The attributes are set once
// the span is known to record (a sampler does not see them): a span not
// sampled costs its start and nothing more.
func (o *observer) rotationSpan(ctx context.Context, e connector.LoginEvent, kvs []attribute.KeyValue) {
	now := time.Now()
	_, span := o.tracer.Start(ctx, "kmsdb.rotation", trace.WithTimestamp(now.Add(-e.Waited)))
	if !span.IsRecording() {
		span.End()
		return
	}
	// One call, from a pooled buffer: the span copies what it is given.
	bp := spanAttrs.Get().(*[]attribute.KeyValue)
	buf := append(append((*bp)[:0], kvs...),
		keyVersion.String(e.Version), keyAttempts.Int(e.Attempts), keyPrevious.Bool(e.PreviousUsed))
	span.SetAttributes(buf...)
	clear(buf) // no string of this event stays reachable from the pool
	*bp = buf[:0]
	spanAttrs.Put(bp)
	if e.Err != nil {
		span.SetStatus(codes.Error, className(e.Class))
	}
	span.End(trace.WithTimestamp(now))
}
