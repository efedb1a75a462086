package cache

// Tests against the KMS emulator (package kmstest) through the real
// alibaba-cloud-sdk-go client (package kms): the counts are the emulator's own.

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kmsdb/kmsdb/secretsource"
	"github.com/kmsdb/kmsdb/secretsource/cache/internal/clock"
	"github.com/kmsdb/kmsdb/secretsource/kms"
	"github.com/kmsdb/kmsdb/secretsource/kmstest"
)

const (
	emuAK     = "LTAI5tCacheTestKeyId"
	emuSecret = "AkSecret-cache-test-never-printed"
	emuName   = "db/cache-test"
	emuValue  = `{"AccountName":"app","AccountPassword":"Pa55-cache-test"}`
	getAction = "GetSecretValue"
)

// emulator starts the emulator with one Rds secret and returns it with a
// Source on the real SDK over HTTPS (the emulator's CA, verified).
func emulator(t *testing.T) (*kmstest.Server, *kms.Source) {
	t.Helper()
	srv := kmstest.Start(t,
		kmstest.WithAccessKey(emuAK, emuSecret),
		kmstest.WithSecret(kmstest.SecretSpec{Name: emuName, Type: "Rds", Data: emuValue,
			ExtendedConfig: map[string]any{"SecretSubType": "SingleUser"}}),
	)
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

func currentVersion(t *testing.T, srv *kmstest.Server) string {
	t.Helper()
	st, ok := srv.Secret(emuName)
	if !ok {
		t.Fatal("secret missing from the emulator")
	}
	return st.CurrentVersionID
}

// TestEmulatorHerd: 1,000 goroutines on a cold cache, exactly one
// GetSecretValue reaches the emulator.
func TestEmulatorHerd(t *testing.T) {
	srv, src := emulator(t)
	c := newTestCache(t, src)
	srv.InjectFault(kmstest.Fault{Action: getAction, Latency: 200 * time.Millisecond, Times: 1}) // let the herd pile up
	var wg sync.WaitGroup
	var failed atomic.Int32
	start := make(chan struct{})
	for range 1000 {
		wg.Go(func() {
			<-start
			s, err := c.GetSecret(context.Background(), emuName)
			if err != nil || s.Text() != emuValue {
				failed.Add(1)
			}
		})
	}
	close(start)
	wg.Wait()
	if n := failed.Load(); n != 0 {
		t.Fatalf("%d of 1000 callers failed", n)
	}
	if n := srv.Calls(getAction, emuName); n != 1 {
		t.Errorf("emulator counted %d GetSecretValue, want 1", n)
	}
}

// TestEmulatorOutage: a warm cache, every KMS call failing for a simulated
// hour. Callers see no error; KMS calls stay within the bound the backoff
// draws allow; the first good answer ends it.
func TestEmulatorOutage(t *testing.T) {
	srv, src := emulator(t)
	fc := clock.NewFake(time.Now())
	bo := &recBackoff{}
	c := newTestCache(t, src, withClock(fc), withRand(seqRand(7)), WithBackoff(bo))
	v1 := mustGet(t, c, emuName).VersionID()
	srv.ResetCalls()
	srv.InjectFault(kmstest.Fault{Action: getAction, Code: "ServiceUnavailableTemporary"})
	start := fc.Now()
	errs := 0
	for fc.Now().Sub(start) < time.Hour {
		fc.Advance(time.Second)
		if s, err := c.GetSecret(context.Background(), emuName); err != nil || s.VersionID() != v1 {
			errs++
		}
	}
	if errs != 0 {
		t.Fatalf("%d errors to callers during the outage", errs)
	}
	calls := srv.Calls(getAction, emuName)
	bo.mu.Lock()
	delays := append([]time.Duration(nil), bo.delays...)
	bo.mu.Unlock()
	// The first failure is the scheduled refresh (at 80-100% of the 5 min TTL);
	// after it, one call per backoff delay that fits in what is left of the hour.
	bound := 1
	sum := time.Duration(0)
	for _, d := range delays {
		if sum += d; sum > time.Hour {
			break
		}
		bound++
	}
	t.Logf("1 h outage: %d KMS calls; bound from the backoff draws %d; expected with the defaults ~31; hard floor (rate limit) %d",
		calls, bound, DefaultRefreshBurst+int(time.Hour/DefaultRefreshEvery))
	if calls > bound {
		t.Errorf("KMS calls during the outage = %d, the backoff allows %d", calls, bound)
	}
	if calls < 5 || calls > 60 {
		t.Errorf("KMS calls = %d, outside the expected 5..60 for an hour of full-jitter backoff", calls)
	}
	info, _ := c.Info(emuName)
	if !info.Stale || !errors.Is(info.LastError, secretsource.ErrUnavailable) || info.Age < 55*time.Minute {
		t.Errorf("info during the outage: %+v", info)
	}

	// Recovery on the first good answer, picking up a rotation made meanwhile.
	srv.ClearFaults()
	v2, err := srv.RotateSecret(emuName)
	if err != nil {
		t.Fatal(err)
	}
	before := srv.Calls(getAction, emuName)
	d, _ := fc.NextDue()
	fc.Advance(d)
	if got := mustGet(t, c, emuName).VersionID(); got != v2 || srv.Calls(getAction, emuName) != before+1 {
		t.Fatalf("after the outage: version %s (want %s), %d calls (want %d)", got, v2, srv.Calls(getAction, emuName), before+1)
	}
	if info, _ := c.Info(emuName); info.Stale || info.Failures != 0 {
		t.Errorf("still stale after recovery: %+v", info)
	}
}

// TestEmulatorInvalidateStorm: 500 Invalidate calls on the same rejected
// version cause one KMS call.
func TestEmulatorInvalidateStorm(t *testing.T) {
	srv, src := emulator(t)
	c := newTestCache(t, src)
	v1 := mustGet(t, c, emuName).VersionID()
	v2, err := srv.RotateSecret(emuName)
	if err != nil {
		t.Fatal(err)
	}
	srv.ResetCalls()
	srv.InjectFault(kmstest.Fault{Action: getAction, Latency: 100 * time.Millisecond, Times: 1})
	var wg sync.WaitGroup
	start := make(chan struct{})
	for range 500 {
		wg.Go(func() {
			<-start
			c.Invalidate(emuName, v1)
			if s, err := c.GetSecret(context.Background(), emuName); err != nil || s.VersionID() != v2 {
				t.Errorf("after Invalidate: %v, %v", s, err)
			}
		})
	}
	close(start)
	wg.Wait()
	if n := srv.Calls(getAction, emuName); n != 1 {
		t.Errorf("emulator counted %d GetSecretValue for 500 Invalidate, want 1", n)
	}
	if c.Invalidate(emuName, v1) {
		t.Error("Invalidate of the replaced version acted")
	}
}

// TestEmulatorRefreshLoop: a caller calling Refresh in a loop (a broken
// database) for 30 simulated seconds makes no more KMS calls than the rate
// limit allows: burst + 30 s / 1 s.
func TestEmulatorRefreshLoop(t *testing.T) {
	srv, src := emulator(t)
	fc := clock.NewFake(time.Now())
	c, err := New(src, withClock(fc), withRand(constRand(0.5)))
	if err != nil {
		t.Fatal(err)
	}
	mustGet(t, c, emuName)
	srv.ResetCalls()
	var loops atomic.Int32
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			if _, err := c.Refresh(context.Background(), emuName); err != nil {
				return // ErrClosed
			}
			loops.Add(1)
		}
	}()
	const seconds = 30
	for range seconds {
		// the refresh timer, plus the loop waiting for a token
		eventually(t, "the Refresh loop to wait for the rate limit", func() bool { return fc.Pending() == 2 })
		fc.Advance(DefaultRefreshEvery)
	}
	eventually(t, "the last fetch", func() bool { return fc.Pending() == 2 })
	_ = c.Close()
	<-done
	calls := srv.Calls(getAction, emuName)
	limit := DefaultRefreshBurst + seconds
	t.Logf("Refresh loop for %d simulated s: %d loops, %d KMS calls (limit %d)", seconds, loops.Load(), calls, limit)
	if calls > limit {
		t.Errorf("KMS calls = %d, the rate limit allows %d", calls, limit)
	}
	if calls < seconds-1 {
		t.Errorf("KMS calls = %d: the loop did not run", calls)
	}
}

// TestEmulatorThrottling: KMS answers Rejected.Throttling to the first
// refreshes; the cache retries with jittered delays, never sooner than the
// backoff drew, keeps serving, and recovers.
func TestEmulatorThrottling(t *testing.T) {
	srv, src := emulator(t)
	fc := clock.NewFake(time.Now())
	bo := &recBackoff{}
	var failures []RefreshFailedEvent
	c := newTestCache(t, src, withClock(fc), withRand(seqRand(99)), WithBackoff(bo),
		WithHooks(Hooks{RefreshFailed: func(_ context.Context, e RefreshFailedEvent) { failures = append(failures, e) }}))
	v1 := mustGet(t, c, emuName).VersionID()
	srv.ResetCalls()
	const throttled = 8
	srv.InjectFault(kmstest.Fault{Action: getAction, Code: "Rejected.Throttling", Times: throttled})
	var times []time.Time
	for srv.Calls(getAction, emuName) <= throttled {
		d, ok := fc.NextDue()
		if !ok {
			t.Fatal("nothing scheduled")
		}
		before := srv.Calls(getAction, emuName)
		fc.Advance(d)
		if srv.Calls(getAction, emuName) > before {
			times = append(times, fc.Now())
		}
		if s, err := c.GetSecret(context.Background(), emuName); err != nil || s.VersionID() != v1 {
			t.Fatalf("GetSecret while throttled: %v, %v", s, err)
		}
	}
	if len(failures) != throttled {
		t.Fatalf("%d failures reported, want %d", len(failures), throttled)
	}
	for i, f := range failures {
		if !errors.Is(f.Err, secretsource.ErrThrottled) || !f.Retryable || f.Attempt != i+1 {
			t.Errorf("failure %d: %+v", i, f)
		}
	}
	bo.mu.Lock()
	delays, ceils := bo.delays, bo.ceils
	bo.mu.Unlock()
	distinct := map[time.Duration]bool{}
	for i := 1; i < len(times); i++ {
		gap := times[i].Sub(times[i-1])
		t.Logf("retry %d: %v after the previous call (backoff drew %v in [0, %v))", i, gap, delays[i-1], ceils[i-1])
		if gap < delays[i-1] {
			t.Errorf("retry %d only %v after the previous call: backoff %v", i, gap, delays[i-1])
		}
		// The rate limit (a burst, then 1 a second): no burst+1 calls within a second.
		if b := DefaultRefreshBurst; i >= b && times[i].Sub(times[i-b]) < DefaultRefreshEvery {
			t.Errorf("calls %d..%d within %v: the rate limit allows %d a second", i-b, i, times[i].Sub(times[i-b]), b)
		}
		distinct[delays[i-1]] = true
	}
	if len(distinct) < throttled-1 {
		t.Errorf("delays are not jittered: %v", delays)
	}
	if info, _ := c.Info(emuName); info.Stale || info.Failures != 0 {
		t.Errorf("not recovered after the throttling: %+v", info)
	}
}

// TestEmulatorColdThrottling: on a cold cache KMS answers Rejected.Throttling
// to the first 3 requests. The caller still gets the value, the emulator
// counts 4 GetSecretValue, and the retries were spaced by the full-jitter
// backoff and the rate limit (on the cache's fake clock).
func TestEmulatorColdThrottling(t *testing.T) {
	srv, kmsSrc := emulator(t)
	fc := clock.NewFake(time.Now())
	var mu sync.Mutex
	var times []time.Time
	src := secretsource.SourceFunc(func(ctx context.Context, name string) (*secretsource.Secret, error) {
		mu.Lock()
		times = append(times, fc.Now())
		mu.Unlock()
		return kmsSrc.GetSecret(ctx, name) // the real SDK against the emulator
	})
	bo := &recBackoff{}
	var failures []RefreshFailedEvent
	c := newTestCache(t, src, withClock(fc), withRand(seqRand(5)), WithBackoff(bo),
		WithHooks(Hooks{RefreshFailed: func(_ context.Context, e RefreshFailedEvent) { mu.Lock(); failures = append(failures, e); mu.Unlock() }}))
	const throttled = 3
	srv.InjectFault(kmstest.Fault{Action: getAction, Code: "Rejected.Throttling", Times: throttled})

	r, moved := driveUntil(t, fc, c, emuName, goGet(context.Background(), c, emuName), time.Minute)
	if r.err != nil || r.s.Text() != emuValue || r.s.VersionID() != currentVersion(t, srv) {
		t.Fatalf("cold GetSecret through the throttling: %v, %v", r.s, r.err)
	}
	if n := srv.Calls(getAction, emuName); n != throttled+1 {
		t.Fatalf("emulator counted %d GetSecretValue, want %d", n, throttled+1)
	}
	mu.Lock()
	defer mu.Unlock()
	bo.mu.Lock()
	delays, ceils := append([]time.Duration(nil), bo.delays...), append([]time.Duration(nil), bo.ceils...)
	bo.mu.Unlock()
	if len(times) != throttled+1 || len(delays) != throttled || len(failures) != throttled {
		t.Fatalf("%d fetches, %d backoff draws, %d failure events; want %d, %d, %d",
			len(times), len(delays), len(failures), throttled+1, throttled, throttled)
	}
	for i, f := range failures {
		if !errors.Is(f.Err, secretsource.ErrThrottled) || !f.Retryable || f.Attempt != i+1 || f.RetryIn != delays[i] {
			t.Errorf("failure %d: %+v", i+1, f)
		}
		if delays[i] < 0 || delays[i] >= ceils[i] {
			t.Errorf("delay %d = %v outside the full-jitter range [0, %v)", i+1, delays[i], ceils[i])
		}
	}
	checkGaps(t, times, delays, DefaultRefreshEvery)
	t.Logf("cold start through %d throttled answers: value after %v of simulated time, %d KMS calls", throttled, moved, throttled+1)
}

// TestEmulatorVersionIDOfManagedSecret: KMS ignores a version id given alone for an Rds secret and answers
// with ACSCurrent. The cache must not hand that answer out as the version asked for (nor keep it under that
// version id for good); with the stage the version id is checked and served.
func TestEmulatorVersionIDOfManagedSecret(t *testing.T) {
	srv, src := emulator(t)
	c := newTestCache(t, src)
	first := currentVersion(t, srv)
	if _, err := srv.RotateSecret(emuName); err != nil {
		t.Fatal(err)
	}
	second := currentVersion(t, srv)
	ctx := context.Background()
	for range 2 { // the second ask must not be served from what the first one cached
		s, err := c.GetSecretVersion(ctx, emuName, secretsource.VersionRef{VersionID: first})
		if err == nil {
			t.Fatalf("version id %s alone: got version %s, want an error", first, s.VersionID())
		}
		if !errors.Is(err, secretsource.ErrNotFound) {
			t.Fatalf("version id %s alone: %v, want ErrNotFound", first, err)
		}
		for _, w := range []string{emuName, first, second, "Stage"} {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("error %q does not name %q", err, w)
			}
		}
		if strings.Contains(err.Error(), "Pa55") {
			t.Fatalf("error holds the password: %v", err)
		}
	}
	s, err := c.GetSecretVersion(ctx, emuName, secretsource.VersionRef{Stage: secretsource.StagePrevious, VersionID: first})
	if err != nil || s.VersionID() != first || s.Text() != emuValue {
		t.Fatalf("ACSPrevious with version id %s: %v %v", first, s, err)
	}
	// The current version's id alone is what KMS answers anyway.
	if s, err := c.GetSecretVersion(ctx, emuName, secretsource.VersionRef{VersionID: second}); err != nil || s.VersionID() != second {
		t.Fatalf("current version id alone: %v %v", s, err)
	}
}
