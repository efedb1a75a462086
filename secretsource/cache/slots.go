package cache

import (
	"hash/maphash"
	"sync/atomic"
)

// slotTable is the cache's index from secret name to slot: an open-addressing
// hash table (linear probing) whose cells are atomic pointers.
//
// Readers (the hot path) do one atomic load of the table and probe its cells,
// without locking or allocating. Writers hold Cache.mu: they insert or delete
// in place, which costs O(1), and build a new table, published with one atomic
// store, only when the table is half full (counting deleted cells) or a
// sixteenth used; so adding N names costs O(N) in all, where the copy-on-write
// map it replaces copied every name for each new one (O(N²)). A reader still
// holding a replaced table sees the names of that moment: a miss takes the
// slow path, which looks again under Cache.mu, and a dropped slot is closed,
// which the slow path also checks.
//
// BenchmarkLookup compares it with the copy-on-write map and sync.Map.
type slotTable struct {
	seed  maphash.Seed
	cells []atomic.Pointer[slot]
	mask  uint64
	used  int // cells not nil: live slots and deleted marks; guarded by Cache.mu
	live  int // live slots; guarded by Cache.mu
}

// deletedSlot marks a cell whose slot was dropped: probes go past it.
var deletedSlot = &slot{}

const minTableSize = 16

func newSlotTable(seed maphash.Seed, size int) *slotTable {
	n := minTableSize
	for n < size {
		n *= 2
	}
	return &slotTable{seed: seed, cells: make([]atomic.Pointer[slot], n), mask: uint64(n - 1)} //nolint:gosec // n >= minTableSize > 0
}

// get returns the slot of name, nil if there is none.
func (t *slotTable) get(name string) *slot {
	i := maphash.String(t.seed, name) & t.mask
	for {
		s := t.cells[i].Load()
		if s == nil {
			return nil
		}
		if s.name == name && s != deletedSlot {
			return s
		}
		i = (i + 1) & t.mask
	}
}

// insert adds s, whose name is not in t, and returns the table to publish:
// t itself, or a new one when t was full. Cache.mu is held.
func (t *slotTable) insert(s *slot) *slotTable {
	if (t.used+1)*2 > len(t.cells) {
		t = t.rebuilt(t.live + 1)
	}
	i := maphash.String(t.seed, s.name) & t.mask
	for {
		c := t.cells[i].Load()
		if c == nil || c == deletedSlot {
			if c == nil {
				t.used++
			}
			t.live++
			t.cells[i].Store(s)
			return t
		}
		i = (i + 1) & t.mask
	}
}

// remove deletes s if it is in t and returns the table to publish: t itself,
// or a smaller one once few cells are used. Cache.mu is held.
func (t *slotTable) remove(s *slot) *slotTable {
	i := maphash.String(t.seed, s.name) & t.mask
	for {
		c := t.cells[i].Load()
		if c == nil {
			return t
		}
		if c == s {
			t.cells[i].Store(deletedSlot)
			t.live--
			if len(t.cells) > minTableSize && t.live*16 < len(t.cells) {
				return t.rebuilt(t.live)
			}
			return t
		}
		i = (i + 1) & t.mask
	}
}

// rebuilt returns a new table holding the live slots of t, sized so that n
// slots fill between an eighth and a quarter of it.
func (t *slotTable) rebuilt(n int) *slotTable {
	nt := newSlotTable(t.seed, 4*n)
	for i := range t.cells {
		if s := t.cells[i].Load(); s != nil && s != deletedSlot {
			nt.insert(s)
		}
	}
	return nt
}

// each calls f for every live slot.
func (t *slotTable) each(f func(*slot)) {
	for i := range t.cells {
		if s := t.cells[i].Load(); s != nil && s != deletedSlot {
			f(s)
		}
	}
}
