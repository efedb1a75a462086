package cache

import (
	"context"
	"sync"
	"time"

	"github.com/kmsdb/kmsdb/secretsource"
)

// Record is one persisted secret: the current version and when it was fetched
// from the source.
type Record struct {
	Secret    *secretsource.Secret
	FetchedAt time.Time
}

// Store keeps the current version of secrets beyond the cache's memory, so a
// new Cache can start warm. The cache saves every successfully fetched
// ACSCurrent value, deletes values that exceed the maximum staleness, and
// loads everything once in New. On New a persisted value is not served at
// once: the cache first asks the source, and serves the persisted value only
// if that fails (stale if error), within the maximum staleness counted from
// FetchedAt. Methods are called from background work, concurrently for
// different names.
type Store interface {
	Load(ctx context.Context) ([]Record, error)
	Save(ctx context.Context, r Record) error
	Delete(ctx context.Context, name string) error
}

// MemoryStore keeps records in memory, which lets a cache that is closed and
// built again in the same process (or several caches sharing one store) start
// warm. A cache has no store unless given one (WithStore): a store private to
// one cache would only double the memory of every secret. Secrets are immutable, so it holds pointers,
// not copies. It is safe for concurrent use.
type MemoryStore struct {
	mu sync.Mutex
	m  map[string]Record
}

// NewMemoryStore returns an empty MemoryStore.
func NewMemoryStore() *MemoryStore { return &MemoryStore{m: make(map[string]Record)} }

// Load returns every record.
func (s *MemoryStore) Load(context.Context) ([]Record, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Record, 0, len(s.m))
	for _, r := range s.m {
		out = append(out, r)
	}
	return out, nil
}

// Save replaces the record of r.Secret.Name().
func (s *MemoryStore) Save(_ context.Context, r Record) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.m[r.Secret.Name()] = r
	return nil
}

// Delete removes the record of name.
func (s *MemoryStore) Delete(_ context.Context, name string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.m, name)
	return nil
}
