package cache

import (
	"context"
	"log/slog"
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
//
// A cache has no store unless given one (WithStore): a store private to one
// cache would only double the memory of every secret. FileStore keeps values
// encrypted on disk across restarts.
type Store interface {
	Load(ctx context.Context) ([]Record, error)
	Save(ctx context.Context, r Record) error
	Delete(ctx context.Context, name string) error
}

// loadStore adds to t a slot for each record of the store that is still
// within the maximum staleness, holding it as persisted (served only if the
// source fails). Without a store it returns t.
func (c *Cache) loadStore(t *slotTable) *slotTable {
	if c.cfg.store == nil {
		return t
	}
	loadCtx, cancel := context.WithTimeout(c.ctx, c.cfg.fetchTimeout)
	recs, err := c.cfg.store.Load(loadCtx)
	cancel()
	if err != nil {
		c.log.LogAttrs(c.ctx, slog.LevelWarn, "cache: store load failed; starting without (some) persisted secrets", slog.Any("error", err))
	}
	now := c.cfg.clock.Now()
	for _, r := range recs {
		if r.Secret == nil || r.Secret.Name() == "" || now.Sub(r.FetchedAt) >= c.cfg.maxStale {
			continue
		}
		s := c.newSlot(r.Secret.Name())
		s.cur.Store(&entry{secret: r.Secret, fetchedAt: r.FetchedAt, state: statePersisted})
		s.savedAt = r.FetchedAt
		if t.get(s.name) == nil {
			t = t.insert(s)
		}
	}
	return t
}

// persist saves the latest value of s to the store, in the background.
func (c *Cache) persist(s *slot) {
	if c.cfg.store == nil || !c.enter() {
		return
	}
	go func() {
		defer c.wg.Done()
		s.saveMu.Lock()
		defer s.saveMu.Unlock()
		e := s.cur.Load()
		if e == nil || e.secret == nil || !e.fetchedAt.After(s.savedAt) {
			return
		}
		if err := c.cfg.store.Save(c.ctx, Record{Secret: e.secret, FetchedAt: e.fetchedAt}); err != nil {
			c.log.LogAttrs(c.ctx, slog.LevelWarn, "cache: store save failed", slog.String("secret", s.name), slog.Any("error", err))
			return
		}
		s.savedAt = e.fetchedAt
	}()
}

// unpersist deletes the record of s from the store, in the background.
func (c *Cache) unpersist(s *slot) {
	if c.cfg.store == nil || !c.enter() {
		return
	}
	go func() {
		defer c.wg.Done()
		s.saveMu.Lock()
		defer s.saveMu.Unlock()
		if err := c.cfg.store.Delete(c.ctx, s.name); err != nil {
			c.log.LogAttrs(c.ctx, slog.LevelWarn, "cache: store delete failed", slog.String("secret", s.name), slog.Any("error", err))
		}
	}()
}
