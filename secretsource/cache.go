package secretsource

import "context"

// Cache is a Source that keeps secrets and can be told that a version was
// refused: what the database connectors and the ramsecret providers need.
// *cache.Cache implements it.
//
// A Cache that also has a method Replaced(name string) *Secret (as
// *cache.Cache does) lets the connectors fall back to the version the
// current one replaced at no KMS call; one that implements VersionSource lets
// them fetch ACSPrevious when it holds no such version.
type Cache interface {
	Source
	// Invalidate tells the cache that rejectedVersion of the secret was
	// refused; it acts only if that version is the cached one. The
	// connectors' rotation loop does not call it (its callers would wait for
	// the refresh it starts); other users of a shared cache may.
	Invalidate(name, rejectedVersion string) bool
	// Refresh fetches the secret now (rate-limited, joining a fetch in
	// progress).
	Refresh(ctx context.Context, name string) (*Secret, error)
}
