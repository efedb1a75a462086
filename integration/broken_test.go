package integration

// A broken rotation under load: the database password changes and the secret
// never follows. 32 goroutines keep querying (connections re-made all the
// time). Past the grace period a query must fail at once with
// connector.ErrCredentialsRejected, the process must let at most one login
// per probe interval (one second) reach the database and ask KMS at most once
// a second; once the secret is fixed, queries must succeed again.
//
// Asserted: the error, the number of rejected logins and KMS calls over the
// window, and that queries heal. Printed (KMSDB_FIGURES): the failing query's
// p50/p99/max, and how long after the fix the first and then every goroutine
// succeeded.

import (
	"context"
	"errors"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kmsdb/kmsdb/connector"
	"github.com/kmsdb/kmsdb/secretsource/kmstest"
)

const (
	brokenGrace  = 2 * time.Second // the connectors' grace period in this test
	brokenWindow = 5 * time.Second // measured after the grace period
)

func TestBrokenRotationUnderLoad(t *testing.T) {
	for _, k := range allKinds {
		t.Run(string(k), func(t *testing.T) { runBrokenRotation(t, k) })
	}
}

type brokenSample struct {
	at  time.Time
	d   time.Duration
	err error
}

func runBrokenRotation(t *testing.T, k targetKind) {
	db := dbServer(t, k) // proves a wrong password is rejected first
	const secretName = "broken-db"
	pw := "broken-1-" + testdbUnique("pw")
	user := db.CreateUser(t, "broken", pw)
	stack := newKMSStack(t, nil, kmstest.SecretSpec{Name: secretName, Type: "Rds", Data: rdsValue(user, pw)})
	conns, lifetime := loadPool(k)
	tg := openTarget(t, k, db, stack.cache, secretName, targetOptions{workers: conns, lifetime: lifetime, grace: brokenGrace})

	var stop atomic.Bool
	var wg sync.WaitGroup
	samples := make([][]brokenSample, loadWorkers)
	for w := range loadWorkers {
		wg.Go(func() {
			for !stop.Load() {
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				start := time.Now()
				err := tg.query(ctx)
				cancel()
				samples[w] = append(samples[w], brokenSample{at: start, d: time.Since(start), err: err})
				if err != nil {
					time.Sleep(time.Millisecond) // an application would back off a little
				}
			}
		})
	}
	defer func() {
		stop.Store(true)
		wg.Wait()
	}()
	time.Sleep(loadWarmup)

	// Break it: the database gets a password the secret does not have.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	newPW := "broken-2-" + testdbUnique("pw")
	if err := db.SetPassword(ctx, user, newPW); err != nil {
		t.Fatal(err)
	}
	broke := time.Now()
	time.Sleep(brokenGrace + lifetime + time.Second) // the grace period ends, old connections expire
	st0, calls0, winStart := tg.stats(), stack.srv.Calls("GetSecretValue", secretName), time.Now()
	time.Sleep(brokenWindow)
	st1, calls1, winEnd := tg.stats(), stack.srv.Calls("GetSecretValue", secretName), time.Now()

	// Fix it: the secret gets the database's password.
	if err := stack.srv.AddVersion(secretName, rdsValue(user, newPW), "v-fixed"); err != nil {
		t.Fatal(err)
	}
	fixed := time.Now()
	healCtx, healCancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer healCancel()
	for {
		if err := tg.query(healCtx); err == nil {
			break
		} else if healCtx.Err() != nil {
			t.Fatalf("not healed 60 s after the secret was fixed: %v", err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(2*lifetime + time.Second)
	stop.Store(true)
	wg.Wait()

	// The window past the grace period.
	var failed []time.Duration
	var first error
	var ok int
	for _, ws := range samples {
		for _, s := range ws {
			if s.at.Before(winStart) || !s.at.Add(s.d).Before(winEnd) {
				continue
			}
			if s.err == nil {
				ok++
				continue
			}
			failed = append(failed, s.d)
			if first == nil {
				first = s.err
			}
		}
	}
	if len(failed) == 0 {
		t.Fatalf("no query failed past the grace period (%d succeeded): the test proves nothing", ok)
	}
	if !errors.Is(first, connector.ErrCredentialsRejected) {
		t.Errorf("a query past the grace period failed with %v, want connector.ErrCredentialsRejected", first)
	}
	var ce *connector.Error
	if !errors.As(first, &ce) || ce.Secret != secretName || ce.User != user || ce.Version == "" {
		t.Errorf("the error does not name the secret, version and user: %v", first)
	}
	win := winEnd.Sub(winStart)
	rejected := st1.AuthFailures - st0.AuthFailures
	if limit := int64(win/time.Second) + 2; rejected > limit {
		t.Errorf("%d logins rejected in %v past the grace period, want at most one per second (%d)", rejected, win.Round(time.Millisecond), limit)
	}
	calls := calls1 - calls0
	if limit := int(win/time.Second) + 2; calls > limit {
		t.Errorf("%d KMS calls in %v past the grace period, want at most one per second (%d)", calls, win.Round(time.Millisecond), limit)
	}

	// Healing: the first success after the fix, and when every goroutine had one.
	firstOK, allOK := time.Duration(-1), time.Duration(0)
	for _, ws := range samples {
		var mine time.Duration = -1
		for _, s := range ws {
			if end := s.at.Add(s.d); s.err == nil && end.After(fixed) {
				mine = end.Sub(fixed)
				break
			}
		}
		if mine < 0 {
			t.Errorf("a goroutine never succeeded after the secret was fixed")
			continue
		}
		if firstOK < 0 || mine < firstOK {
			firstOK = mine
		}
		allOK = max(allOK, mine)
	}
	slices.Sort(failed)
	pct := func(q float64) time.Duration { return failed[min(len(failed)-1, int(q*float64(len(failed))))] }
	figures(t, "kind=%s grace=%v workers=%d conns=%d lifetime=%v | past grace (%.1fs, from %.1fs after the break): "+
		"failed=%d ok=%d failing-query p50=%s p99=%s max=%s rejected_logins=%d (%.1f/s) kms_calls=%d (%.1f/s) | "+
		"healed: first query %s, every goroutine %s after the secret was fixed",
		k, brokenGrace, loadWorkers, conns, lifetime, win.Seconds(), winStart.Sub(broke).Seconds(),
		len(failed), ok, ms(pct(0.5)), ms(pct(0.99)), ms(failed[len(failed)-1]),
		rejected, float64(rejected)/win.Seconds(), calls, float64(calls)/win.Seconds(), ms(firstOK), ms(allOK))
}
