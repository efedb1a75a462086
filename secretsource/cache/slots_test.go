package cache

import (
	"fmt"
	"hash/maphash"
	"sync"
	"sync/atomic"
	"testing"
)

// TestSlotTable inserts, finds, removes and finds again, through growth and
// shrinking, and checks the table stays small once its names are gone.
func TestSlotTable(t *testing.T) {
	const n = 10000
	tab := newSlotTable(maphash.MakeSeed(), 0)
	slots := make([]*slot, n)
	for i := range slots {
		slots[i] = &slot{name: fmt.Sprintf("s-%d", i)}
		if tab.get(slots[i].name) != nil {
			t.Fatalf("%s found before insert", slots[i].name)
		}
		tab = tab.insert(slots[i])
	}
	if tab.live != n || len(tab.cells) > 8*n {
		t.Fatalf("live %d, %d cells for %d slots", tab.live, len(tab.cells), n)
	}
	for _, s := range slots {
		if tab.get(s.name) != s {
			t.Fatalf("%s not found", s.name)
		}
	}
	for _, s := range slots[:n/2] {
		tab = tab.remove(s)
		tab = tab.remove(s) // twice is harmless
	}
	for i, s := range slots {
		if got := tab.get(s.name); (got == s) != (i >= n/2) {
			t.Fatalf("%s after removing the first half: %v", s.name, got)
		}
	}
	for _, s := range slots[n/2:] {
		tab = tab.remove(s)
	}
	if tab.live != 0 || len(tab.cells) != minTableSize {
		t.Errorf("empty table: live %d, %d cells", tab.live, len(tab.cells))
	}
	// Insert and remove churn: deleted marks are reclaimed, the table stays small.
	for i := range 100000 {
		s := &slot{name: fmt.Sprintf("churn-%d", i)}
		tab = tab.insert(s)
		tab = tab.remove(s)
	}
	if len(tab.cells) > 64 {
		t.Errorf("churn of one name at a time grew the table to %d cells", len(tab.cells))
	}
	if tab.get("") != nil {
		t.Error(`get("") found a deleted mark`)
	}
}

// TestSlotTableRace: readers probe while a writer (under a mutex, as
// Cache.mu) inserts and removes; every name inserted before a reader started
// is found by it.
func TestSlotTableRace(t *testing.T) {
	var cur atomic.Pointer[slotTable]
	var mu sync.Mutex
	cur.Store(newSlotTable(maphash.MakeSeed(), 0))
	keep := &slot{name: "kept"}
	mu.Lock()
	cur.Store(cur.Load().insert(keep))
	mu.Unlock()
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			for i := range 2000 {
				s := &slot{name: fmt.Sprintf("w%d-%d", w, i)}
				mu.Lock()
				cur.Store(cur.Load().insert(s))
				mu.Unlock()
				if cur.Load().get(s.name) != s {
					t.Errorf("%s not found after insert", s.name)
					return
				}
				if i%2 == 0 {
					mu.Lock()
					cur.Store(cur.Load().remove(s))
					mu.Unlock()
				}
			}
		})
	}
	for range 96 {
		wg.Go(func() {
			for range 2000 {
				if cur.Load().get("kept") != keep {
					t.Error("kept slot not found")
					return
				}
			}
		})
	}
	wg.Wait()
	if got := cur.Load().live; got != 1+4*1000 {
		t.Errorf("live = %d, want %d", got, 1+4*1000)
	}
}
