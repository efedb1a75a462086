package integration

// kmsdb's cache beside Alibaba's cache client (aliyun-secretsmanager-client-go
// v1.1.5, SecretManagerCacheClient) with thousands of secrets, each with its
// KMS client stubbed in process so only the caches are measured: reading
// 16,000 distinct secrets once each (a secret per tenant), and the heap each
// keeps per cached secret. One run gives the ratios:
//
//	go test -run '^$' -bench 'ColdDistinct|HeapPerSecret' -benchmem .
//
// AWS's caching client (github.com/aws/aws-secretsmanager-caching-go), the
// other anchor of the issue, is not on the module proxy this project may use
// (`go list -m -versions` answers 403), so it is not measured here: the
// comparison is with Alibaba's client alone.
//
// The stubs answer what KMS answers to GetSecretValue for an Rds secret:
// Alibaba's client gets a *kms.GetSecretValueResponse (its
// service.SecretManagerClient interface, as its own tests stub it), kmsdb's
// cache a *secretsource.Secret built from the same fields (what
// secretsource/kms builds from that response).

import (
	"context"
	"fmt"
	"io"
	"log"
	"runtime"
	"testing"
	"time"

	"github.com/aliyun/alibaba-cloud-sdk-go/services/kms"
	smsdk "github.com/aliyun/aliyun-secretsmanager-client-go/sdk"
	smlogger "github.com/aliyun/aliyun-secretsmanager-client-go/sdk/logger"

	"github.com/kmsdb/kmsdb/secretsource"
	"github.com/kmsdb/kmsdb/secretsource/cache"
)

const stubValue = `{"AccountName":"app","AccountPassword":"bench-password-not-printed"}`

// stubSMClient is Alibaba's service.SecretManagerClient answering from memory.
type stubSMClient struct{}

func (stubSMClient) Init() error  { return nil }
func (stubSMClient) Close() error { return nil }
func (stubSMClient) GetSecretValue(req *kms.GetSecretValueRequest) (*kms.GetSecretValueResponse, error) {
	resp := kms.CreateGetSecretValueResponse()
	resp.SecretName, resp.VersionId, resp.SecretData = req.SecretName, "v1", stubValue
	resp.SecretDataType, resp.SecretType, resp.CreateTime = "text", "Rds", "2026-11-29T00:00:00Z"
	resp.AutomaticRotation, resp.VersionStages.VersionStage = "Disabled", []string{"ACSCurrent"}
	return resp, nil
}

// stubSource is the same answer as kmsdb's sources hand it to the cache.
var stubSource = secretsource.SourceFunc(func(_ context.Context, name string) (*secretsource.Secret, error) {
	return secretsource.NewSecret(secretsource.Fields{Name: name, VersionID: "v1", VersionStages: []string{"ACSCurrent"},
		SecretType: "Rds", DataType: "text", Value: []byte(stubValue),
		CreateTime: time.Date(2026, 11, 29, 0, 0, 0, 0, time.UTC)}), nil
})

// secretReader is one cache under test: read reads a secret, closeFn stops it.
type secretReader struct {
	read    func(name string) error
	closeFn func()
}

func newKmsdbReader(b *testing.B) secretReader {
	c, err := cache.New(stubSource)
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	return secretReader{
		read:    func(name string) error { _, err := c.GetSecret(ctx, name); return err },
		closeFn: func() { _ = c.Close() },
	}
}

func newAlibabaReader(b *testing.B) secretReader {
	c, err := smsdk.NewSecretCacheClientBuilder(stubSMClient{}).
		WithLogger(smlogger.NewDefaultLogger(log.New(io.Discard, "", 0))).Build()
	if err != nil {
		b.Fatal(err)
	}
	return secretReader{
		read: func(name string) error {
			info, err := c.GetSecretInfo(name)
			if err == nil && info.SecretValue != stubValue {
				err = fmt.Errorf("secret %s: another value", name)
			}
			return err
		},
		closeFn: func() { _ = c.Close() },
	}
}

var anchors = []struct {
	name string
	make func(*testing.B) secretReader
}{{"kmsdb", newKmsdbReader}, {"alibaba", newAlibabaReader}}

func tenantNames(n int) []string {
	names := make([]string, n)
	for i := range names {
		names[i] = fmt.Sprintf("tenant-%d/db-secret", i)
	}
	return names
}

// BenchmarkColdDistinct reads 16,000 distinct secrets once each from a new
// cache; it reports the total and the cost per secret in the first and the
// last tenth of the names (their ratio shows whether the cache gets slower as
// it grows).
func BenchmarkColdDistinct(b *testing.B) {
	const n = 16000
	names := tenantNames(n)
	for _, a := range anchors {
		b.Run(a.name, func(b *testing.B) {
			var first, last time.Duration
			b.ReportAllocs()
			for b.Loop() {
				r := a.make(b)
				tenth := n / 10
				start := time.Now()
				for i, name := range names {
					if err := r.read(name); err != nil {
						b.Fatal(err)
					}
					switch i + 1 {
					case tenth:
						first += time.Since(start)
					case n - tenth:
						start = time.Now()
					case n:
						last += time.Since(start)
					}
				}
				b.StopTimer()
				r.closeFn()
				b.StartTimer()
			}
			per := func(d time.Duration) float64 { return float64(d.Nanoseconds()) / float64(b.N*(n/10)) / 1e3 }
			b.ReportMetric(float64(b.Elapsed().Milliseconds())/float64(b.N), "ms/total")
			b.ReportMetric(per(first), "µs/secret-first-tenth")
			b.ReportMetric(per(last), "µs/secret-last-tenth")
			b.ReportMetric(per(last)/per(first), "last/first")
		})
	}
}

// BenchmarkHeapPerSecret caches 10,000 distinct secrets and reports the heap
// kept per secret (runtime.MemStats after a GC, the secrets included).
func BenchmarkHeapPerSecret(b *testing.B) {
	const n = 10000
	names := tenantNames(n)
	for _, a := range anchors {
		b.Run(a.name, func(b *testing.B) {
			var sum float64
			for b.Loop() {
				var before, after runtime.MemStats
				runtime.GC()
				runtime.ReadMemStats(&before)
				r := a.make(b)
				for _, name := range names {
					if err := r.read(name); err != nil {
						b.Fatal(err)
					}
				}
				runtime.GC()
				runtime.ReadMemStats(&after)
				sum += float64(int64(after.HeapAlloc)-int64(before.HeapAlloc)) / n
				r.closeFn()
			}
			b.ReportMetric(sum/float64(b.N), "B/secret")
		})
	}
}
