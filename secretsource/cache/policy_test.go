package cache

import (
	"testing"
	"time"

	"github.com/kmsdb/kmsdb/secretsource"
)

func TestExponentialBackoff(t *testing.T) {
	b := ExponentialBackoff{}
	want := []time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second, 16 * time.Second,
		32 * time.Second, 64 * time.Second, 128 * time.Second, 256 * time.Second, 5 * time.Minute, 5 * time.Minute}
	for i, w := range want {
		if got := b.Ceiling(i + 1); got != w {
			t.Errorf("Ceiling(%d) = %v, want %v", i+1, got, w)
		}
	}
	if b.Ceiling(1000) != 5*time.Minute || b.Ceiling(0) != time.Second {
		t.Error("ceiling out of range")
	}
	// Full jitter: the whole range [0, ceiling) is reachable.
	if d := b.Delay(4, constRand(0)); d != 0 {
		t.Errorf("draw 0: %v", d)
	}
	if d := b.Delay(4, constRand(0.5)); d != 4*time.Second {
		t.Errorf("draw 0.5: %v", d)
	}
	if d := b.Delay(4, constRand(0.999999)); d >= 8*time.Second || d < 7*time.Second {
		t.Errorf("draw ~1: %v", d)
	}
	custom := ExponentialBackoff{Base: 100 * time.Millisecond, Max: time.Second}
	if custom.Ceiling(5) != time.Second || custom.Ceiling(2) != 200*time.Millisecond {
		t.Error("custom base/max ignored")
	}
}

func TestFuncAdapters(t *testing.T) {
	var p RefreshPolicy = policyFunc(func(*secretsource.Secret, time.Time, func() float64) time.Duration { return time.Minute })
	if p.NextRefresh(nil, t0, constRand(0)) != time.Minute {
		t.Error("policyFunc")
	}
	var b Backoff = backoffFunc(func(n int, _ func() float64) time.Duration { return time.Duration(n) })
	if b.Delay(3, constRand(0)) != 3 {
		t.Error("backoffFunc")
	}
}
