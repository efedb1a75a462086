package integration

// The load generator of the real-database tests: N goroutines querying without
// pause, latency recorded per phase, and the figures lines the tests print.

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// phase of a load run; samples are recorded per phase.
type phase int32

const (
	phaseWarmup   phase = iota // not recorded
	phaseSteady                // no rotation
	phaseRotating              // rotations (or outage) in progress
	numPhases
)

func (p phase) String() string {
	return [...]string{"warmup", "steady", "rotating"}[p]
}

// loadRun is a running load.
type loadRun struct {
	phase   atomic.Int32
	round   atomic.Int32 // the rotation in progress (setRound), for worstByRound
	stop    atomic.Bool
	wg      sync.WaitGroup
	workers []*worker

	errMu  sync.Mutex
	errors []string // first few distinct failures
}

type worker struct {
	lat   [numPhases][]time.Duration
	errs  [numPhases]int
	worst []time.Duration // per round, rotating phase only
}

// startLoad runs query in n goroutines, without pause, until Stop. Each query
// gets its own timeout so a stuck query is a failure, not a hang.
func startLoad(n int, query func(ctx context.Context) error) *loadRun {
	l := &loadRun{}
	for range n {
		w := &worker{}
		for p := range w.lat {
			w.lat[p] = make([]time.Duration, 0, 1<<14)
		}
		l.workers = append(l.workers, w)
		l.wg.Go(func() {
			for !l.stop.Load() {
				p := phase(l.phase.Load())
				ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
				start := time.Now()
				err := query(ctx)
				d := time.Since(start)
				cancel()
				if err != nil {
					w.errs[p]++
					l.noteError(p, err)
					continue
				}
				if p != phaseWarmup {
					w.lat[p] = append(w.lat[p], d)
				}
				if p == phaseRotating {
					// The round the query ended in: one that started just
					// before a rotation and waited for it counts for it.
					round := int(l.round.Load())
					for len(w.worst) <= round {
						w.worst = append(w.worst, 0)
					}
					w.worst[round] = max(w.worst[round], d)
				}
			}
		})
	}
	return l
}

func (l *loadRun) noteError(p phase, err error) {
	l.errMu.Lock()
	defer l.errMu.Unlock()
	if len(l.errors) < 10 {
		l.errors = append(l.errors, p.String()+": "+err.Error())
	}
}

func (l *loadRun) setPhase(p phase) { l.phase.Store(int32(p)) }

// setRound sets the rotation that queries starting from now count for in
// the worst query per rotation (loadResult.worstByRound).
func (l *loadRun) setRound(i int) { l.round.Store(int32(i)) }

// finish stops the load and returns the results per phase.
func (l *loadRun) finish() loadResult {
	l.stop.Store(true)
	l.wg.Wait()
	var r loadResult
	for _, w := range l.workers {
		for p := range numPhases {
			r.lat[p] = append(r.lat[p], w.lat[p]...)
			r.errs[p] += w.errs[p]
		}
		for i, d := range w.worst {
			for len(r.worst) <= i {
				r.worst = append(r.worst, 0)
			}
			r.worst[i] = max(r.worst[i], d)
		}
	}
	for p := range numPhases {
		slices.Sort(r.lat[p])
	}
	r.errors = l.errors
	return r
}

type loadResult struct {
	lat    [numPhases][]time.Duration // sorted
	errs   [numPhases]int
	errors []string
	worst  []time.Duration // worst query of the rotating phase per round (setRound)
}

// worstByRound lists the worst query per round, for the figures.
func (r loadResult) worstByRound() string {
	parts := make([]string, len(r.worst))
	for i, d := range r.worst {
		parts[i] = ms(d)
	}
	return "[" + strings.Join(parts, " ") + "]"
}

func (r loadResult) failed() int {
	n := 0
	for _, e := range r.errs {
		n += e
	}
	return n
}

func (r loadResult) queries(p phase) int { return len(r.lat[p]) + r.errs[p] }

// pct is the q-quantile (0..1) of phase p's latencies.
func (r loadResult) pct(p phase, q float64) time.Duration {
	s := r.lat[p]
	if len(s) == 0 {
		return 0
	}
	i := int(math.Ceil(q*float64(len(s)))) - 1
	return s[max(0, min(i, len(s)-1))]
}

// requireNoFailures fails t when any query failed, listing the first errors.
func (r loadResult) requireNoFailures(t testing.TB) {
	t.Helper()
	if n := r.failed(); n > 0 {
		t.Errorf("%d queries failed (warmup %d, steady %d, rotating %d); first errors:\n  %s",
			n, r.errs[phaseWarmup], r.errs[phaseSteady], r.errs[phaseRotating], strings.Join(r.errors, "\n  "))
	}
}

// figures logs one line the lead can quote, prefixed KMSDB_FIGURES, and appends
// it to the file named by KMSDB_FIGURES_FILE when set.
func figures(t testing.TB, format string, args ...any) {
	t.Helper()
	line := "KMSDB_FIGURES " + t.Name() + ": " + fmt.Sprintf(format, args...)
	t.Log(line)
	if f := os.Getenv("KMSDB_FIGURES_FILE"); f != "" {
		if fh, err := os.OpenFile(f, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644); err == nil {
			_, _ = fmt.Fprintln(fh, line)
			_ = fh.Close()
		}
	}
}

// ms formats d in milliseconds with two decimals.
func ms(d time.Duration) string { return strconv.FormatFloat(float64(d)/1e6, 'f', 2, 64) + "ms" }

// envInt reads a positive integer environment variable, or def.
func envInt(t testing.TB, name string, def int) int {
	t.Helper()
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n <= 0 {
		t.Fatalf("%s=%q: want a positive integer", name, v)
	}
	return n
}

// selectOne runs SELECT 1 on db and checks the answer.
func selectOne(ctx context.Context, db *sql.DB) error {
	var n int
	if err := db.QueryRowContext(ctx, "SELECT 1").Scan(&n); err != nil {
		return err
	}
	if n != 1 {
		return errors.New("SELECT 1 returned " + strconv.Itoa(n))
	}
	return nil
}
