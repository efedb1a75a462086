package ramsecret

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"

	sdkerrors "github.com/aliyun/alibaba-cloud-sdk-go/sdk/errors"

	"github.com/kmsdb/kmsdb/secretsource"
)

func TestDoRecoversOnce(t *testing.T) {
	c := &memCache{current: ramSecret("v1", "AKID1", "s1")}
	c.rotate(ramSecret("v2", "AKID2", "s2"))
	p, _ := New(c, "acs/ram/user/unit")
	var used []string
	got, err := Do(context.Background(), p, func(ctx context.Context, k secretsource.AccessKey) (string, error) {
		used = append(used, k.ID)
		if k.ID != "AKID2" {
			return "", rejectedErr()
		}
		return "ok", nil
	})
	if err != nil || got != "ok" {
		t.Fatalf("Do = %q, %v", got, err)
	}
	if fmt.Sprint(used) != "[AKID1 AKID2]" {
		t.Errorf("keys used: %v", used)
	}
	if st := p.Stats(); st != (Stats{Rejected: 1, Refreshes: 1, Retries: 1}) {
		t.Errorf("stats %+v", st)
	}
}

func TestDoNoNewerVersion(t *testing.T) {
	c := &memCache{current: ramSecret("v1", "AKID1", "s1")}
	c.rotate(c.current)
	p, _ := New(c, "acs/ram/user/unit")
	calls := 0
	_, err := Do(context.Background(), p, func(ctx context.Context, k secretsource.AccessKey) (int, error) {
		calls++
		return 0, rejectedErr()
	})
	var rk *RejectedKeyError
	if !errors.As(err, &rk) || rk.Retried || rk.VersionID != "v1" || rk.Code != "InvalidAccessKeyId.NotFound" {
		t.Fatalf("err = %v", err)
	}
	var se *sdkerrors.ServerError
	if !errors.As(err, &se) {
		t.Error("the SDK's error must stay reachable with errors.As")
	}
	if calls != 1 {
		t.Errorf("called %d times, want 1 (nothing newer to retry with)", calls)
	}
}

func TestDoRetryRejectedToo(t *testing.T) {
	c := &memCache{current: ramSecret("v1", "AKID1", "s1")}
	c.rotate(ramSecret("v2", "AKID2", "s2"))
	p, _ := New(c, "acs/ram/user/unit")
	calls := 0
	_, err := DoClient(context.Background(), p, func(ctx context.Context) (int, error) {
		calls++
		return 0, rejectedErr()
	})
	var rk *RejectedKeyError
	if !errors.As(err, &rk) || !rk.Retried || rk.VersionID != "v2" {
		t.Fatalf("err = %v", err)
	}
	if calls != 2 {
		t.Errorf("called %d times, want 2", calls)
	}
}

func TestDoOtherErrorsUntouched(t *testing.T) {
	c := &memCache{current: ramSecret("v1", "AKID1", "s1")}
	p, _ := New(c, "acs/ram/user/unit")
	want := errors.New("boom")
	calls := 0
	_, err := Do(context.Background(), p, func(ctx context.Context, k secretsource.AccessKey) (int, error) { calls++; return 0, want })
	if !errors.Is(err, want) || calls != 1 || c.refreshes.Load() != 0 {
		t.Errorf("err %v calls %d refreshes %d", err, calls, c.refreshes.Load())
	}
	if _, err := Do[int](context.Background(), p, nil); err == nil {
		t.Error("nil call accepted")
	}
}

// N concurrent failures on one key: one refresh.
func TestConcurrentRejectionsOneRefresh(t *testing.T) {
	c := &memCache{current: ramSecret("v1", "AKID1", "s1"), gate: make(chan struct{})}
	c.rotate(ramSecret("v2", "AKID2", "s2"))
	p, _ := New(c, "acs/ram/user/unit")
	const n = 200
	var failed, ok atomic.Int64
	var wg, rejectedAll sync.WaitGroup
	rejectedAll.Add(n)
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			first := true
			_, err := Do(context.Background(), p, func(ctx context.Context, k secretsource.AccessKey) (int, error) {
				if k.ID == "AKID1" {
					if first {
						first = false
						rejectedAll.Done()
					}
					return 0, rejectedErr()
				}
				return 1, nil
			})
			if err != nil {
				failed.Add(1)
			} else {
				ok.Add(1)
			}
		}()
	}
	rejectedAll.Wait() // every goroutine has seen AKID1 rejected
	close(c.gate)
	wg.Wait()
	if failed.Load() != 0 || ok.Load() != n {
		t.Errorf("failed %d ok %d", failed.Load(), ok.Load())
	}
	if r := c.refreshes.Load(); r != 1 {
		t.Errorf("%d refreshes for %d concurrent rejections, want 1", r, n)
	}
	if st := p.Stats(); st.Rejected != n || st.Retries != n || st.Refreshes != 1 {
		t.Errorf("stats %+v", st)
	}
}

// A caller whose context ends stops waiting; the shared recovery goes on for the others.
func TestRecoveryCallerContext(t *testing.T) {
	c := &memCache{current: ramSecret("v1", "AKID1", "s1"), gate: make(chan struct{})}
	c.rotate(ramSecret("v2", "AKID2", "s2"))
	p, _ := New(c, "acs/ram/user/unit")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() {
		_, err := Do(ctx, p, func(ctx context.Context, k secretsource.AccessKey) (int, error) { return 0, rejectedErr() })
		done <- err
	}()
	for c.refreshes.Load() == 0 {
		runtimeGosched()
	}
	cancel()
	err := <-done
	var rk *RejectedKeyError
	if !errors.As(err, &rk) || !errors.Is(err, context.Canceled) {
		t.Errorf("err = %v", err)
	}
	close(c.gate)
	// The shared refresh completed on its own context.
	k, err := p.AccessKey(context.Background())
	for err == nil && k.VersionID != "v2" {
		runtimeGosched()
		k, err = p.AccessKey(context.Background())
	}
	if err != nil {
		t.Fatal(err)
	}
}

// After a recovery found nothing newer, failures on that version within the
// hold get the answer at once: no refresh queue behind the rate limit.
func TestNoNewerVersionHold(t *testing.T) {
	c := &memCache{current: ramSecret("v1", "AKID1", "s1")}
	c.rotate(c.current)
	p, _ := New(c, "acs/ram/user/unit")
	for i := 0; i < 5; i++ {
		_, err := Do(context.Background(), p, func(ctx context.Context, k secretsource.AccessKey) (int, error) { return 0, rejectedErr() })
		var rk *RejectedKeyError
		if !errors.As(err, &rk) {
			t.Fatalf("err = %v", err)
		}
	}
	if n := c.refreshes.Load(); n != 1 {
		t.Errorf("%d refreshes for 5 sequential rejections of a version with nothing newer, want 1", n)
	}
}
