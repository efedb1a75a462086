package rotation

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"

	"github.com/kmsdb/kmsdb/connector"
	"github.com/kmsdb/kmsdb/secretsource"
)

// failRejected is the error of a connection that gives up on a rejected
// version: its own last refusal, or the Login's when it was refused none.
// failRejected and fail never return nil: the concrete type lets a caller
// amend the error without a type assertion.
func (r *run) failRejected(ctx context.Context, rej *rejection) *connector.Error {
	l := r.l
	if r.lastErr != nil {
		return r.fail(ctx, connector.AuthFailure, r.lastAcct, r.lastErr)
	}
	err := rej.err
	if ctx.Err() != nil {
		err = fmt.Errorf("%w; stopped waiting for the rotation: %w", err, context.Cause(ctx))
	}
	e := &connector.Error{Secret: l.name, Version: rej.version, User: rej.user, Class: connector.AuthFailure,
		Waited: l.now().Sub(r.start), Err: err}
	l.logger().LogAttrs(context.Background(), slog.LevelDebug, "kmsdb connector: the secret is rejected; failing without a login",
		slog.String("secret", l.name), slog.String("version", rej.version))
	return e
}

func (r *run) fail(ctx context.Context, class connector.Class, acct secretsource.DBAccount, err error) *connector.Error {
	l := r.l
	err = Scrub(err, l.scrubList(acct, r.lastAcct)...)
	if class == connector.AuthFailure && ctx.Err() != nil {
		err = fmt.Errorf("%w; stopped waiting for the rotation: %w", err, context.Cause(ctx))
	}
	e := &connector.Error{
		Secret: l.name, Version: acct.VersionID, User: acct.Username, Class: class,
		Attempts: r.attempts, Waited: l.now().Sub(r.start), Err: err,
	}
	if class == connector.AuthFailure {
		l.logger().LogAttrs(context.Background(), slog.LevelWarn, "kmsdb connector: database rejected the credentials",
			slog.String("secret", l.name), slog.String("version", acct.VersionID), slog.Int("attempts", r.attempts),
			slog.Duration("waited", e.Waited))
	}
	return e
}

func (l *Login) scrubList(accts ...secretsource.DBAccount) []string {
	list := slices.Clone(l.redact)
	for _, a := range accts {
		if a.Password != "" {
			list = append(list, a.Password)
		}
	}
	return list
}

// secretError wraps a failure to get or decode the secret.
func (l *Login) secretError(err error, s *secretsource.Secret) error {
	e := &connector.Error{Secret: l.name, Class: connector.SecretUnavailable, Err: Scrub(err, l.redact...)}
	if s != nil {
		e.Version = s.VersionID()
	}
	return e
}

// Scrub is Scrub with the Login's redacted strings and acct's password.
func (l *Login) Scrub(err error, acct secretsource.DBAccount) error {
	return Scrub(err, l.scrubList(acct)...)
}

// done ends a connection attempt sequence: it counts a failure and reports
// the connector.LoginEvent to the Login's hook, else the default Observer's.
func (r *run) done(ctx context.Context, err error) {
	l := r.l
	if err != nil {
		l.stats.failed.Add(1)
	}
	h := l.onLogin
	if h == nil {
		if h = connector.DefaultObserver().Login; h == nil {
			return
		}
	}
	h(ctx, r.event(err))
}

// event describes the sequence that ended with err. A failure is described
// by its *connector.Error (already scrubbed); no field holds a password.
func (r *run) event(err error) connector.LoginEvent {
	l := r.l
	if err == nil {
		return connector.LoginEvent{
			Secret: l.name, Version: r.acct.VersionID, User: r.acct.Username, Attempts: r.attempts,
			Waited: l.now().Sub(r.start), PreviousUsed: r.acct.VersionID != r.cur.VersionID(),
		}
	}
	ev := connector.LoginEvent{Secret: l.name, Class: connector.Other, Err: err}
	var ce *connector.Error
	if errors.As(err, &ce) {
		ev.Version, ev.User, ev.Class, ev.Attempts, ev.Waited = ce.Version, ce.User, ce.Class, ce.Attempts, ce.Waited
	}
	return ev
}
