package cache

import (
	"context"
	"fmt"
	"hash/maphash"
	"maps"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kmsdb/kmsdb/secretsource"
)

// BenchmarkCacheHit measures a warm GetSecret: the figure the README quotes.
func BenchmarkCacheHit(b *testing.B) {
	c := newTestCache(b, newFakeSource(nil))
	ctx := context.Background()
	for i := range 20 { // a realistic handful of secrets in the map
		mustGet(b, c, fmt.Sprintf("secret-%d", i))
	}
	mustGet(b, c, "db-secret")
	b.Run("serial", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := c.GetSecret(ctx, "db-secret"); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("parallel", func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if _, err := c.GetSecret(ctx, "db-secret"); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
}

// BenchmarkLookup compares ways of finding a secret's slot by name, with 20
// and with 16,000 names: the slot table (what the cache uses), the
// copy-on-write map behind an atomic pointer it replaced (fast reads, but
// adding a name copies them all), sync.Map (a HashTrieMap since Go 1.24) and
// a map under a RWMutex. "add" is the cost of adding every name to an empty
// index, per name.
//
//	go test -run '^$' -bench Lookup -benchmem ./secretsource/cache/
func BenchmarkLookup(b *testing.B) {
	const name = "db-secret"
	for _, n := range []int{20, 16000} {
		names := make([]string, n)
		for i := range names {
			names[i] = fmt.Sprintf("tenant-%d/db-secret", i)
		}
		names[n/2] = name
		m := map[string]*slot{}
		var sm sync.Map
		tab := newSlotTable(maphash.MakeSeed(), 0)
		for _, nm := range names {
			s := &slot{name: nm}
			m[nm] = s
			sm.Store(nm, s)
			tab = tab.insert(s)
		}
		var cow atomic.Pointer[map[string]*slot]
		cow.Store(&m)
		var tp atomic.Pointer[slotTable]
		tp.Store(tab)
		var rw sync.RWMutex
		designs := []struct {
			name string
			get  func() *slot
		}{
			{"table", func() *slot { return tp.Load().get(name) }},
			{"cow-map", func() *slot { return (*cow.Load())[name] }},
			{"sync.Map", func() *slot { v, _ := sm.Load(name); return v.(*slot) }},
			{"rwmutex-map", func() *slot { rw.RLock(); defer rw.RUnlock(); return m[name] }},
		}
		for _, d := range designs {
			b.Run(fmt.Sprintf("n=%d/%s/serial", n, d.name), func(b *testing.B) {
				b.ReportAllocs()
				for b.Loop() {
					if d.get() == nil {
						b.Fatal("miss")
					}
				}
			})
			b.Run(fmt.Sprintf("n=%d/%s/parallel", n, d.name), func(b *testing.B) {
				b.ReportAllocs()
				b.RunParallel(func(pb *testing.PB) {
					for pb.Next() {
						if d.get() == nil {
							b.Error("miss")
							return
						}
					}
				})
			})
		}
		if n >= 1000 {
			benchAdd(b, names)
		}
	}
}

// BenchmarkColdDistinct reads N distinct secrets once each from a cache in
// front of a source that answers at once (so only the cache is measured): a
// secret per tenant. It reports the total, and the cost per secret in the
// first and in the last tenth of the names, whose ratio shows whether adding
// a name gets dearer as the cache grows (it must stay near 1).
//
//	go test -run '^$' -bench ColdDistinct -benchmem ./secretsource/cache/
func BenchmarkColdDistinct(b *testing.B) {
	for _, n := range []int{1600, 16000} {
		b.Run(fmt.Sprintf("n=%d", n), func(b *testing.B) {
			names := make([]string, n)
			for i := range names {
				names[i] = fmt.Sprintf("tenant-%d/db-secret", i)
			}
			src := secretsource.SourceFunc(func(_ context.Context, name string) (*secretsource.Secret, error) {
				return benchSecret(name), nil
			})
			ctx := context.Background()
			var first, last time.Duration
			b.ReportAllocs()
			for b.Loop() {
				c, err := New(src)
				if err != nil {
					b.Fatal(err)
				}
				tenth := n / 10
				start := time.Now()
				for i, name := range names {
					if _, err := c.GetSecret(ctx, name); err != nil {
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
				_ = c.Close()
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

// benchSecret is what a KMS client would build from a GetSecretValue answer
// of an Rds secret.
func benchSecret(name string) *secretsource.Secret {
	return secretsource.NewSecret(secretsource.Fields{
		Name: name, VersionID: "v1", VersionStages: []string{secretsource.StageCurrent},
		SecretType: secretsource.TypeRds, DataType: secretsource.DataText,
		Value: []byte(`{"AccountName":"app","AccountPassword":"bench-password-not-printed"}`),
	})
}

// benchAdd measures adding every name, one at a time, to each design (per
// name, as the cache adds a slot for each new secret).
func benchAdd(b *testing.B, names []string) {
	n := len(names)
	slots := make([]*slot, n)
	for i, nm := range names {
		slots[i] = &slot{name: nm}
	}
	perName := func(b *testing.B) { b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/name") }
	b.Run(fmt.Sprintf("n=%d/table/add", n), func(b *testing.B) {
		for b.Loop() {
			t := newSlotTable(maphash.MakeSeed(), 0)
			for _, s := range slots {
				t = t.insert(s)
			}
		}
		perName(b)
	})
	b.Run(fmt.Sprintf("n=%d/cow-map/add", n), func(b *testing.B) {
		for b.Loop() {
			m := map[string]*slot{}
			for _, s := range slots {
				nm := make(map[string]*slot, len(m)+1)
				maps.Copy(nm, m)
				nm[s.name] = s
				m = nm
			}
		}
		perName(b)
	})
	b.Run(fmt.Sprintf("n=%d/sync.Map/add", n), func(b *testing.B) {
		for b.Loop() {
			var sm sync.Map
			for _, s := range slots {
				sm.Store(s.name, s)
			}
		}
		perName(b)
	})
}
