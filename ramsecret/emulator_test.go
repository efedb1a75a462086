package ramsecret_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	sdkerrors "github.com/aliyun/alibaba-cloud-sdk-go/sdk/errors"

	"github.com/kmsdb/kmsdb/ramsecret"
	"github.com/kmsdb/kmsdb/secretsource"
	"github.com/kmsdb/kmsdb/secretsource/cache"
	"github.com/kmsdb/kmsdb/secretsource/kmstest"
)

// The first "must show": 5 rotations while 16 goroutines call the
// emulator through the real SDKs, signed with the provider's key; the old key
// is revoked shortly after each rotation; no call fails.
// long: one load scenario (callers, rotations, revocations, checks) read in order.
func TestRotationUnderLoad(t *testing.T) {
	const (
		rotations = 5
		// Emulator RotationInterval: NextRotationDate = last rotation + 2 s. A call
		// retried once fails only if it spans a whole rotation period plus the
		// revoke delay, so the period is kept well above a call's latency on a
		// loaded 2-core machine under -race.
		interval    = 2 * time.Second
		revokeDelay = 300 * time.Millisecond // the old key dies this long after each rotation
		workers     = 16
	)
	var pickMu sync.Mutex
	picked := map[string]time.Time{} // version -> when the cache first served it
	reasons := map[cache.Reason]int{}
	hooks := cache.Hooks{Refreshed: func(_ context.Context, ev cache.RefreshedEvent) {
		pickMu.Lock()
		defer pickMu.Unlock()
		reasons[ev.Reason]++
		if ev.Changed {
			picked[ev.Version] = time.Now()
		}
	}}
	e := newEnv(t, ramSpec(interval), []kmstest.Option{kmstest.WithRAMKeyRevokeDelay(revokeDelay)},
		cache.WithHooks(hooks),
		// The cache looks 250-350 ms after the announced rotation date, around the
		// revocation (300 ms): some rotations are picked up on schedule, the
		// others only through the rejected-key recovery.
		cache.WithRefreshPolicy(cache.RotationAwareTTL{TTL: time.Hour, RotationDelay: 250 * time.Millisecond,
			RotationJitter: 100 * time.Millisecond, RotationWatch: time.Minute}),
		cache.WithRefreshLimit(10*time.Millisecond, 4))
	ctx := context.Background()
	if _, err := e.p.AccessKey(ctx); err != nil { // warm the cache
		t.Fatal(err)
	}
	var calls, failed atomic.Int64
	var errMu sync.Mutex
	var errs []string
	var stop atomic.Bool
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		// Neither SDK client is safe for concurrent use (both write shared fields
		// per request); the provider behind them is. One client per goroutine.
		core := coreClient(t, e.srv, e.p)
		teac := teaClient(t, e.srv, e.p)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !stop.Load() {
				var err error
				switch w % 3 {
				case 0:
					_, err = ramsecret.DoClient(ctx, e.p, func(ctx context.Context) (string, error) { return coreDescribe(core) })
				case 1:
					_, err = ramsecret.DoClient(ctx, e.p, func(ctx context.Context) (string, error) { return teaDescribe(teac) })
				default:
					_, err = ramsecret.Do(ctx, e.p, func(ctx context.Context, k secretsource.AccessKey) (string, error) {
						return staticDescribe(e.srv, k)
					})
				}
				calls.Add(1)
				if err != nil {
					failed.Add(1)
					errMu.Lock()
					if len(errs) < 5 {
						errs = append(errs, fmt.Sprintf("worker %d at %s: %v", w, time.Now().Format("15:04:05.000"), err))
					}
					errMu.Unlock()
				}
			}
		}()
	}

	versions := map[string]bool{}
	rotated := map[string]time.Time{}
	var rotatedAt []string
	for i := 0; i < rotations; i++ {
		st, _ := e.srv.Secret(ramName)
		time.Sleep(time.Until(st.NextRotationDate)) // rotate on the schedule the secret announces
		v, err := e.srv.RotateSecret(ramName)
		if err != nil {
			t.Fatal(err)
		}
		versions[v] = true
		rotated[v] = time.Now()
		rotatedAt = append(rotatedAt, time.Now().Format("15:04:05.000"))
	}
	time.Sleep(2 * revokeDelay) // keep calling after the last old key is gone
	stop.Store(true)
	wg.Wait()

	k, err := e.p.AccessKey(ctx)
	if err != nil {
		t.Fatal(err)
	}
	st, _ := e.srv.Secret(ramName)
	if k.VersionID != st.CurrentVersionID || !versions[k.VersionID] {
		t.Errorf("provider serves version %q, KMS current is %q", k.VersionID, st.CurrentVersionID)
	}
	errMu.Lock()
	defer errMu.Unlock()
	if n := failed.Load(); n != 0 {
		t.Errorf("%d of %d calls failed; rotations at %v; first errors:\n%s", n, calls.Load(), rotatedAt, strings.Join(errs, "\n"))
	}
	stats := e.p.Stats()
	fetches := e.srv.Calls("GetSecretValue", ramName)
	pickMu.Lock()
	var lags []string
	for v, at := range rotated {
		if p, ok := picked[v]; ok {
			lags = append(lags, p.Sub(at).Round(time.Millisecond).String())
		} else {
			lags = append(lags, "never")
		}
	}
	t.Logf("cache pickup after each rotation (revocation at %v): %v; fetches by reason %v", revokeDelay, lags, reasons)
	pickMu.Unlock()
	t.Logf("rotations %d, calls %d, failed %d, GetSecretValue fetches %d, rejected %d, forced refreshes %d, retried calls %d",
		rotations, calls.Load(), failed.Load(), fetches, stats.Rejected, stats.Refreshes, stats.Retries)
	checkNoSecrets(t, e, append(errs, e.logs.String()))
}

// The second "must show": a key revoked before the schedule says (an
// early rotation, old key revoked at once); 200 concurrent calls fail on it;
// one refresh, and every retry succeeds — with both SDKs.
// long: the same scenario for both SDKs, in order.
func TestEarlyRevocationOneRefresh(t *testing.T) {
	for _, sdkName := range []string{"core", "tea"} {
		t.Run(sdkName, func(t *testing.T) {
			// No schedule and a long TTL: the cache would not look on its own.
			e := newEnv(t, ramSpec(0), nil, cache.WithTTL(time.Hour))
			ctx := context.Background()
			old, err := e.p.AccessKey(ctx)
			if err != nil {
				t.Fatal(err)
			}
			// newCall returns a call for one goroutine (core clients are not shareable).
			newCall := func() func() (string, error) {
				if sdkName == "core" {
					c := coreClient(t, e.srv, e.p)
					return func() (string, error) { return coreDescribe(c) }
				}
				c := teaClient(t, e.srv, e.p)
				return func() (string, error) { return teaDescribe(c) }
			}
			call := newCall()
			if _, err := call(); err != nil {
				t.Fatal(err)
			}
			// Early rotation: KMS holds a new key, the old one is dead at once (revoke delay 0),
			// and revoked explicitly as well.
			newVersion, err := e.srv.RotateSecret(ramName)
			if err != nil {
				t.Fatal(err)
			}
			e.srv.RevokeAccessKey(old.ID)
			e.srv.ResetCalls()

			// First, one call on its own: it fails, triggers one refresh, and the retry succeeds.
			if _, err := ramsecret.DoClient(ctx, e.p, func(ctx context.Context) (string, error) { return call() }); err != nil {
				t.Fatalf("call after early revocation: %v", err)
			}
			if n := e.srv.Calls("GetSecretValue", ramName); n != 1 {
				t.Errorf("one failed call caused %d GetSecretValue calls, want 1", n)
			}
			if st := e.p.Stats(); st.Rejected != 1 || st.Retries != 1 || st.Refreshes != 1 {
				t.Errorf("stats %+v", st)
			}

			// Then 200 concurrent failures on one key: rotate again, and hold every
			// call until all 200 have their (soon dead) key.
			old, _ = e.p.AccessKey(ctx)
			if _, err := e.srv.RotateSecret(ramName); err != nil {
				t.Fatal(err)
			}
			e.srv.ResetCalls()
			before := e.p.Stats()
			const n = 200
			var ready, wg sync.WaitGroup
			ready.Add(n)
			start := make(chan struct{})
			var failed atomic.Int64
			var firstErr atomic.Value
			for i := 0; i < n; i++ {
				call := newCall()
				wg.Add(1)
				go func() {
					defer wg.Done()
					first := true
					_, err := ramsecret.DoClient(ctx, e.p, func(ctx context.Context) (string, error) {
						if first {
							first = false
							ready.Done()
							<-start
						}
						return call()
					})
					if err != nil {
						failed.Add(1)
						firstErr.CompareAndSwap(nil, err)
					}
				}()
			}
			ready.Wait()
			close(start)
			wg.Wait()
			after := e.p.Stats()
			fetches := e.srv.Calls("GetSecretValue", ramName)
			t.Logf("%s SDK: %d concurrent calls on a revoked key: failed %d, GetSecretValue fetches %d, rejected %d, forced refreshes %d, retried %d",
				sdkName, n, failed.Load(), fetches, after.Rejected-before.Rejected, after.Refreshes-before.Refreshes, after.Retries-before.Retries)
			if failed.Load() != 0 {
				t.Errorf("%d calls failed; first: %v", failed.Load(), firstErr.Load())
			}
			if fetches != 1 {
				t.Errorf("%d concurrent failures caused %d GetSecretValue calls, want 1", n, fetches)
			}
			if got := after.Refreshes - before.Refreshes; got != 1 {
				t.Errorf("%d forced refreshes, want 1", got)
			}
			if k, _ := e.p.AccessKey(ctx); k.VersionID == old.VersionID || k.VersionID == newVersion {
				t.Errorf("provider still on an old version %q", k.VersionID)
			}
			checkNoSecrets(t, e, []string{e.logs.String(), fmt.Sprint(firstErr.Load())})
		})
	}
}

// A key revoked with no newer version in KMS: one refresh, no retry, a
// RejectedKeyError that keeps the SDK's error reachable and no secret.
func TestRevokedWithoutRotation(t *testing.T) {
	e := newEnv(t, ramSpec(0), nil, cache.WithTTL(time.Hour))
	ctx := context.Background()
	k, err := e.p.AccessKey(ctx)
	if err != nil {
		t.Fatal(err)
	}
	c := coreClient(t, e.srv, e.p)
	e.srv.RevokeAccessKey(k.ID)
	calls := 0
	_, err = ramsecret.DoClient(ctx, e.p, func(ctx context.Context) (string, error) { calls++; return coreDescribe(c) })
	var rk *ramsecret.RejectedKeyError
	var se *sdkerrors.ServerError
	if !errors.As(err, &rk) || !errors.As(err, &se) || rk.Code != "InvalidAccessKeyId.NotFound" || rk.Retried {
		t.Fatalf("err = %v", err)
	}
	if calls != 1 {
		t.Errorf("called %d times, want 1", calls)
	}
	if !ramsecret.IsRejectedKey(err) {
		t.Error("IsRejectedKey(RejectedKeyError) = false")
	}
	checkNoSecrets(t, e, []string{err.Error(), fmt.Sprintf("%+v %#v", err, err), e.logs.String()})
}

// Everything that can be printed: values, errors (SDK errors included), logs.
func TestNoAccessKeySecretInOutput(t *testing.T) {
	e := newEnv(t, ramSpec(0), nil, cache.WithTTL(time.Hour))
	ctx := context.Background()
	k, err := e.p.AccessKey(ctx)
	if err != nil {
		t.Fatal(err)
	}
	core := coreClient(t, e.srv, e.p)
	teac := teaClient(t, e.srv, e.p)
	var out []string
	add := func(vs ...any) {
		for _, v := range vs {
			out = append(out, fmt.Sprintf("%v|%+v|%#v|%s", v, v, v, v))
		}
	}
	add(k, e.p)
	out = append(out, fmt.Sprintf("%v %s", e.cache, e.cache)) // *cache.Cache has no GoString: %#v would dump its internals
	// Rotated and revoked: errors from both SDKs, through Do and DoClient.
	if _, err := e.srv.RotateSecret(ramName); err != nil {
		t.Fatal(err)
	}
	e.srv.RevokeAccessKey(k.ID)
	_, errCore := coreDescribe(core)
	_, errTea := teaDescribe(teac)
	add(errCore, errTea)
	if _, err := ramsecret.DoClient(ctx, e.p, func(ctx context.Context) (string, error) { return teaDescribe(teac) }); err != nil {
		t.Fatalf("DoClient after rotation: %v", err)
	}
	k2, _ := e.p.AccessKey(ctx)
	e.srv.RevokeAccessKey(k2.ID)
	_, err = ramsecret.Do(ctx, e.p, func(ctx context.Context, k secretsource.AccessKey) (string, error) { return staticDescribe(e.srv, k) })
	add(err, k2)
	// A provider over a missing secret, and a corrupt one.
	missing, _ := ramsecret.New(e.cache, "acs/ram/user/missing")
	_, err = missing.GetCredential()
	add(err)
	if err := e.srv.AddSecret(kmstest.SecretSpec{Name: "acs/ram/user/corrupt", Type: "RAMCredentials",
		Data: `{"AccessKeyId":"LTAI5tCorrupt","AccessKeySecret":` + firstSK}); err == nil {
		corrupt, _ := ramsecret.New(e.cache, "acs/ram/user/corrupt")
		_, err := corrupt.AccessKey(ctx)
		if err == nil {
			t.Error("corrupt secret decoded")
		}
		add(err)
	}
	out = append(out, e.logs.String())
	checkNoSecrets(t, e, out)
	if !strings.Contains(e.logs.String(), "AccessKey rejected") && !strings.Contains(e.logs.String(), "credential rejected") {
		t.Error("the refresh after a rejected key was not logged")
	}
}
