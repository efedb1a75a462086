package cache

import (
	"context"
	"fmt"
	"time"

	"github.com/kmsdb/kmsdb/secretsource"
)

// versionEntry is a cached version other than ACSCurrent.
type versionEntry struct {
	secret    *secretsource.Secret
	fetchedAt time.Time
	validFor  time.Duration // zero: forever (a version id never changes)
}

// GetSecretVersion returns one version of the secret, by stage (for example
// secretsource.StagePrevious during a rotation window), by version id, or
// both. KMS serves only ACSCurrent and ACSPrevious of managed secrets (Rds,
// PolarDB, Redis, RAMCredentials, ECS) and ignores a version id given alone
// for them: an answer whose version id is not the one asked for is returned
// as a KindNotFound error, never as that version. The zero VersionRef and the ACSCurrent stage are GetSecret. Other
// versions come from the source's secretsource.VersionSource capability
// (ErrVersionsUnsupported without it), share the secret's rate limit and
// single flight, and are cached: a version id for good, a stage until the
// current version changes, Invalidate names it, or the refresh policy's
// interval passes.
func (c *Cache) GetSecretVersion(ctx context.Context, name string, ref secretsource.VersionRef) (*secretsource.Secret, error) {
	if ref.VersionID == "" && (ref.Stage == "" || ref.Stage == secretsource.StageCurrent) {
		return c.GetSecret(ctx, name)
	}
	s, err := c.slotFor(name)
	if err != nil {
		return nil, err
	}
	defer c.dropIfIdle(s) // a version of a name with nothing cached that could not be fetched
	if e := s.cur.Load(); e != nil && e.serve && ref.Matches(e.secret) {
		return e.secret, nil
	}
	now := c.cfg.clock.Now()
	s.mu.Lock()
	old := s.versions[ref]
	s.mu.Unlock()
	if old != nil && (old.validFor == 0 || now.Sub(old.fetchedAt) < old.validFor) {
		return old.secret, nil
	}
	if c.vsrc == nil {
		return nil, fmt.Errorf("cache: secret %q version %+v: %w", name, ref, ErrVersionsUnsupported)
	}
	key := "\x00version\x00" + name + "\x00" + ref.Stage + "\x00" + ref.VersionID
	ch := c.sf.DoChan(key, c.versionFlight(ctx, s, ref))
	select {
	case r := <-ch:
		if r.Err == nil {
			return r.Val.(*secretsource.Secret), nil
		}
		if old != nil && secretsource.IsRetryable(r.Err) { // stale if error
			s.mu.Lock()
			still := s.versions[ref] == old
			s.mu.Unlock()
			if still {
				return old.secret, nil
			}
		}
		return nil, r.Err
	case <-ctx.Done():
		return nil, waitError(s, ctx, nil)
	}
}

// versionFlight returns the function of a shared fetch of version ref of s:
// it takes a token of the secret's rate limit, asks the VersionSource, checks
// the answer is the version asked for, and caches it.
func (c *Cache) versionFlight(parent context.Context, s *slot, ref secretsource.VersionRef) func() (any, error) {
	name := s.name
	return func() (any, error) {
		if !c.enter() {
			return nil, ErrClosed
		}
		defer c.wg.Done()
		fctx, cancel := c.fetchContext(parent)
		defer cancel()
		if err := c.waitToken(fctx, s); err != nil {
			if c.isClosed() {
				return nil, ErrClosed
			}
			return nil, &secretsource.Error{Kind: secretsource.KindTimeout, Secret: name, Source: "cache",
				Message: "fetch timed out waiting for the secret's refresh rate limit", Err: err}
		}
		start := c.cfg.clock.Now()
		left := c.enterSource(name)
		sec, err := c.vsrc.GetSecretVersion(fctx, name, ref)
		left()
		took := c.cfg.clock.Now().Sub(start)
		if err == nil {
			err = checkVersion(sec, name, ref)
		}
		if err != nil {
			if h := c.cfg.hooks.RefreshFailed; h != nil {
				h(fctx, RefreshFailedEvent{Name: name, Err: err, Retryable: secretsource.IsRetryable(err), Attempt: 1,
					Reason: ReasonVersion, VersionRef: ref, Took: took})
			}
			return nil, err
		}
		c.storeVersion(s, ref, sec)
		if h := c.cfg.hooks.Refreshed; h != nil {
			h(fctx, RefreshedEvent{Name: name, Version: sec.VersionID(), Took: took, Reason: ReasonVersion,
				VersionRef: ref, Origin: sec.Origin()})
		}
		return sec, nil
	}
}

// checkVersion refuses junk (checkFetched) and an answer whose version id is
// not the one asked for.
func checkVersion(sec *secretsource.Secret, name string, ref secretsource.VersionRef) error {
	if err := checkFetched(sec, name); err != nil {
		return err
	}
	if ref.VersionID != "" && sec.VersionID() != ref.VersionID {
		// KMS ignores a version id given without a stage for managed secrets and answers with ACSCurrent.
		return &secretsource.Error{Kind: secretsource.KindNotFound, Secret: name, Source: "cache",
			Message: fmt.Sprintf("asked for version %q, the source answered version %q: KMS ignores a version id "+
				"without a stage for Rds, PolarDB, Redis, RAMCredentials and ECS secrets; set the Stage "+
				"(ACSCurrent or ACSPrevious) with the VersionID", ref.VersionID, sec.VersionID())}
	}
	return nil
}

// storeVersion caches sec as version ref of s: a version id for good, a stage
// for the refresh policy's interval.
func (c *Cache) storeVersion(s *slot, ref secretsource.VersionRef, sec *secretsource.Secret) {
	now := c.cfg.clock.Now()
	ve := &versionEntry{secret: sec, fetchedAt: now}
	if ref.Stage != "" {
		ve.validFor = max(c.cfg.policy.NextRefresh(sec, now, c.cfg.rnd), time.Nanosecond)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.closed {
		if s.versions == nil {
			s.versions = make(map[secretsource.VersionRef]*versionEntry)
		}
		s.versions[ref] = ve
	}
}
