package connector

import (
	"context"
	"log/slog"
	"slices"
	"sync/atomic"
	"time"

	"github.com/kmsdb/kmsdb/secretsource/cache"
)

// Observer is how an application watches kmsdb: a logger, the hooks of the
// default cache and one event per connection. Install it once, at start,
// with SetDefaultObserver; an adapter for a metrics or tracing system is a
// function that returns an Observer. Every field is optional.
//
// A cache of the application's own gets the same hooks with
// cache.WithHooks(o.Cache) (and the logger with cache.WithLogger(o.Logger)).
type Observer struct {
	// Logger receives, never with a password or a secret value: the lines
	// of every connector and pgkms.Pool built without the drivers'
	// WithLogger (retries at Debug, fallbacks and failures at Warn), the
	// lines of the default cache, and the configuration warnings and the
	// sources' lines of the default cache when it is built after the call.
	// Nil: those lines are discarded, and configuration warnings go to
	// slog.Default().
	Logger *slog.Logger
	// Cache receives the events of the default cache (DefaultCache):
	// refreshes, failures, stale values served, evictions.
	Cache cache.Hooks
	// Login is called once at the end of each connection attempt sequence
	// of every connector and pgkms.Pool, on the connecting goroutine: keep it
	// fast, and do not block. A pgkms.Pool reports only the connections whose
	// first login the database refused (the others never reach the rotation
	// loop; a failed Acquire that is not a refused login is not reported).
	//
	// ctx is the context the connection was asked for with (the one
	// database/sql passes to Connect, or pgkms.Pool.Acquire's): its values,
	// such as the caller's trace span, place the event; it may be done by
	// then (the caller gave up), so do not start work with it. A connection
	// database/sql opens on its own goroutine (for a request queued behind
	// SetMaxOpenConns) gets database/sql's context, not the caller's.
	Login func(ctx context.Context, e LoginEvent)
}

// LoginEvent describes one connection attempt sequence: the logins one
// connection made (several while a rotation is under way) and how it ended.
// It never holds a password: Err is the *Error the caller got, scrubbed.
type LoginEvent struct {
	Secret   string        // the secret's name
	Version  string        // the version that logged in, or whose credentials were used last; empty if none was read
	User     string        // the database user of that version
	Attempts int           // logins tried; 0 when the sequence failed before any (secret unavailable, rejected past the grace period)
	Waited   time.Duration // from the first attempt to the end
	// PreviousUsed: the connection logged in with a version other than the
	// current one (the one the cache replaced, ACSPrevious, or a stand-in
	// another connection found), during a rotation.
	PreviousUsed bool
	Class        Class // what the failure means; Other when Err is nil
	Err          error // nil when the connection was opened; else an *Error
}

var defaultObserver atomic.Pointer[Observer]

// SetDefaultObserver installs o for the whole process (see Observer for
// what it reaches). It may be called at any time; connections and caches
// pick it up at their next event. The zero Observer removes it.
func SetDefaultObserver(o Observer) { defaultObserver.Store(&o) }

// DefaultObserver returns the Observer SetDefaultObserver installed (the
// zero Observer if none), so that an adapter can chain to it.
func DefaultObserver() Observer {
	if o := defaultObserver.Load(); o != nil {
		return *o
	}
	return Observer{}
}

// observedHooks are the default cache's hooks: each event goes to the hook
// of the Observer installed when it happens.
func observedHooks() cache.Hooks {
	return cache.Hooks{
		Refreshed: func(ctx context.Context, e cache.RefreshedEvent) {
			if h := DefaultObserver().Cache.Refreshed; h != nil {
				h(ctx, e)
			}
		},
		RefreshFailed: func(ctx context.Context, e cache.RefreshFailedEvent) {
			if h := DefaultObserver().Cache.RefreshFailed; h != nil {
				h(ctx, e)
			}
		},
		ServingStale: func(ctx context.Context, e cache.StaleEvent) {
			if h := DefaultObserver().Cache.ServingStale; h != nil {
				h(ctx, e)
			}
		},
		Evicted: func(ctx context.Context, e cache.EvictedEvent) {
			if h := DefaultObserver().Cache.Evicted; h != nil {
				h(ctx, e)
			}
		},
	}
}

// observedHandler is the default cache's log handler: each record goes to
// the Logger of the Observer installed when it is written (none: dropped).
type observedHandler struct {
	ops []func(slog.Handler) slog.Handler // WithAttrs / WithGroup, in order
}

func (h observedHandler) target() slog.Handler {
	l := DefaultObserver().Logger
	if l == nil {
		return nil
	}
	t := l.Handler()
	for _, op := range h.ops {
		t = op(t)
	}
	return t
}

func (h observedHandler) Enabled(ctx context.Context, level slog.Level) bool {
	l := DefaultObserver().Logger
	return l != nil && l.Handler().Enabled(ctx, level)
}

func (h observedHandler) Handle(ctx context.Context, r slog.Record) error {
	if t := h.target(); t != nil {
		return t.Handle(ctx, r)
	}
	return nil
}

func (h observedHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return observedHandler{ops: append(slices.Clip(h.ops), func(t slog.Handler) slog.Handler { return t.WithAttrs(attrs) })}
}

func (h observedHandler) WithGroup(name string) slog.Handler {
	if name == "" {
		return h
	}
	return observedHandler{ops: append(slices.Clip(h.ops), func(t slog.Handler) slog.Handler { return t.WithGroup(name) })}
}
