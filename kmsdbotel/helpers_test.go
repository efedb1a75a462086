package kmsdbotel_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.uber.org/goleak"

	"github.com/kmsdb/kmsdb/connector"
	"github.com/kmsdb/kmsdb/kmsdbotel"
	"github.com/kmsdb/kmsdb/secretsource/kms"
	"github.com/kmsdb/kmsdb/secretsource/kmstest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const (
	emuAK     = "LTAIotel"
	emuSecret = "otel-test-ak-secret"
)

// telemetry is an SDK meter provider on a ManualReader and a tracer
// provider on a span recorder.
type telemetry struct {
	reader *sdkmetric.ManualReader
	spans  *tracetest.SpanRecorder
	mp     *sdkmetric.MeterProvider
	tp     *sdktrace.TracerProvider
}

func newTelemetry(t testing.TB) *telemetry { return newTelemetryWith(t, sdktrace.AlwaysSample()) }

// newTelemetryWith is newTelemetry with the sampler s.
func newTelemetryWith(t testing.TB, s sdktrace.Sampler) *telemetry {
	tm := &telemetry{reader: sdkmetric.NewManualReader(), spans: tracetest.NewSpanRecorder()}
	tm.mp = sdkmetric.NewMeterProvider(sdkmetric.WithReader(tm.reader))
	tm.tp = sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(tm.spans), sdktrace.WithSampler(s))
	t.Cleanup(func() {
		_ = tm.mp.Shutdown(context.Background())
		_ = tm.tp.Shutdown(context.Background())
	})
	return tm
}

func (tm *telemetry) observer(opts ...kmsdbotel.Option) connector.Observer {
	return kmsdbotel.NewObserver(append([]kmsdbotel.Option{
		kmsdbotel.WithMeterProvider(tm.mp), kmsdbotel.WithTracerProvider(tm.tp)}, opts...)...)
}

func (tm *telemetry) collect(t testing.TB) metricdata.ResourceMetrics {
	t.Helper()
	var rm metricdata.ResourceMetrics
	if err := tm.reader.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	return rm
}

// find returns the metric called name, failing the test if it is missing.
func find(t testing.TB, rm metricdata.ResourceMetrics, name string) metricdata.Metrics {
	t.Helper()
	m, ok := lookup(t, rm, name)
	if !ok {
		t.Fatalf("no metric %q", name)
	}
	return m
}

// lookup returns the metric called name; an instrument never recorded is not exported.
func lookup(t testing.TB, rm metricdata.ResourceMetrics, name string) (metricdata.Metrics, bool) {
	t.Helper()
	for _, sm := range rm.ScopeMetrics {
		if sm.Scope.Name != kmsdbotel.ScopeName {
			t.Errorf("metric scope %q, want %q", sm.Scope.Name, kmsdbotel.ScopeName)
		}
		for _, m := range sm.Metrics {
			if m.Name == name {
				return m, true
			}
		}
	}
	return metricdata.Metrics{}, false
}

// has reports whether set holds every one of want.
func has(set attribute.Set, want []attribute.KeyValue) bool {
	for _, kv := range want {
		if v, ok := set.Value(kv.Key); !ok || v != kv.Value {
			return false
		}
	}
	return true
}

// sum adds the points of an Int64 counter whose attributes hold every one
// of want (0 for a counter never incremented).
func sum(t testing.TB, rm metricdata.ResourceMetrics, name string, want ...attribute.KeyValue) int64 {
	t.Helper()
	m, ok := lookup(t, rm, name)
	if !ok {
		return 0
	}
	s, ok := m.Data.(metricdata.Sum[int64])
	if !ok {
		t.Fatalf("%s is a %T, want an int64 sum", name, m.Data)
	}
	var n int64
	for _, p := range s.DataPoints {
		if has(p.Attributes, want) {
			n += p.Value
		}
	}
	return n
}

// histCount counts the recordings of a float64 histogram whose attributes hold every one of want.
func histCount(t testing.TB, rm metricdata.ResourceMetrics, name string, want ...attribute.KeyValue) uint64 {
	t.Helper()
	m, ok := lookup(t, rm, name)
	if !ok {
		return 0
	}
	h, ok := m.Data.(metricdata.Histogram[float64])
	if !ok {
		t.Fatalf("%s is a %T, want a float64 histogram", name, m.Data)
	}
	var n uint64
	for _, p := range h.DataPoints {
		if has(p.Attributes, want) {
			n += p.Count
		}
	}
	return n
}

// exported is every name, attribute and status text the telemetry holds, one per line.
func (tm *telemetry) exported(t testing.TB) string {
	t.Helper()
	var b strings.Builder
	line := func(kind string, set attribute.Set) {
		for _, kv := range set.ToSlice() {
			fmt.Fprintf(&b, "%s %s=%s\n", kind, kv.Key, kv.Value.String())
		}
	}
	for _, sm := range tm.collect(t).ScopeMetrics {
		for _, m := range sm.Metrics {
			fmt.Fprintf(&b, "metric %s %s %s\n", m.Name, m.Unit, m.Description)
			switch d := m.Data.(type) {
			case metricdata.Sum[int64]:
				for _, p := range d.DataPoints {
					line(m.Name, p.Attributes)
				}
			case metricdata.Histogram[float64]:
				for _, p := range d.DataPoints {
					line(m.Name, p.Attributes)
				}
			case metricdata.Gauge[float64]:
				for _, p := range d.DataPoints {
					line(m.Name, p.Attributes)
				}
			default:
				t.Errorf("metric %s: unexpected data %T", m.Name, m.Data)
			}
		}
	}
	for _, s := range tm.spans.Ended() {
		fmt.Fprintf(&b, "span %s %s %s\n", s.Name(), s.Status().Code, s.Status().Description)
		line("span "+s.Name(), attribute.NewSet(s.Attributes()...))
		for _, e := range s.Events() {
			fmt.Fprintf(&b, "event %s\n", e.Name)
			line("event", attribute.NewSet(e.Attributes...))
		}
	}
	return b.String()
}

// emulator starts the KMS emulator with one secret and returns a source on
// the real SDK over HTTPS.
func emulator(t testing.TB, spec kmstest.SecretSpec) (*kmstest.Server, *kms.Source) {
	t.Helper()
	srv := kmstest.Start(t, kmstest.WithAccessKey(emuAK, emuSecret), kmstest.WithSecret(spec))
	cred, err := kms.NewCredential(kms.CredentialOptions{Type: kms.CredentialAccessKey, AccessKeyID: emuAK, AccessKeySecret: emuSecret})
	if err != nil {
		t.Fatal(err)
	}
	src, err := kms.New(kms.Config{
		Region:     kms.Region{ID: "cn-hangzhou", Endpoint: srv.KMSTLSAddr()},
		Credential: cred,
		RootCAs:    srv.CertPool(),
		Timeout:    10 * time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = src.Close() })
	return srv, src
}
