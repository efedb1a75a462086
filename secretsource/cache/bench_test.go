package cache

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
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

// BenchmarkLookup compares ways of finding a secret's slot by name, to justify
// the copy-on-write map behind an atomic pointer.
func BenchmarkLookup(b *testing.B) {
	const name = "db-secret"
	m := map[string]*slot{}
	var sm sync.Map
	for i := range 20 {
		n := fmt.Sprintf("secret-%d", i)
		m[n] = &slot{name: n}
		sm.Store(n, m[n])
	}
	m[name] = &slot{name: name}
	sm.Store(name, m[name])
	var cow atomic.Pointer[map[string]*slot]
	cow.Store(&m)
	var rw sync.RWMutex
	bench := func(b *testing.B, f func() *slot) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if f() == nil {
					b.Error("miss")
					return
				}
			}
		})
	}
	b.Run("cow-map", func(b *testing.B) { bench(b, func() *slot { return (*cow.Load())[name] }) })
	b.Run("sync.Map", func(b *testing.B) {
		bench(b, func() *slot { v, _ := sm.Load(name); return v.(*slot) })
	})
	b.Run("rwmutex-map", func(b *testing.B) {
		bench(b, func() *slot { rw.RLock(); defer rw.RUnlock(); return m[name] })
	})
}
