package secretsource

import (
	"context"
	"errors"
	"fmt"
	"strings"
)

// Failover returns a Source that asks each of sources in order and returns the
// first secret it gets. It moves on to the next source only when a source fails
// with a retryable error (throttled, unavailable, internal, network, timeout)
// or a TLS verification failure (KindTLS: another endpoint's certificate may
// be good):
// a permanent answer such as not found or access denied is returned at once,
// since another region or instance would give the same answer. A cancelled or
// expired caller context stops the walk.
//
// When every source fails, the error is an *Error of the last failure's Kind
// whose message names each member tried (its region or endpoint) and whose
// Err joins every attempt's error, so errors.Is and errors.As see each of
// them. Failover is the only failover loop of this module: kms.Source and
// dkms.Source each ask one region or endpoint, and config.Load composes one
// per region and endpoint with Failover.
//
// The result also implements VersionSource when every member does.
// With a single source, Failover returns that source unchanged.
func Failover(sources ...Source) Source {
	var list []Source
	for _, s := range sources {
		if s != nil {
			list = append(list, s)
		}
	}
	switch len(list) {
	case 0:
		return SourceFunc(func(ctx context.Context, name string) (*Secret, error) {
			return nil, &Error{Kind: KindConfig, Secret: name, Source: "failover", Message: "no secret source configured"}
		})
	case 1:
		return list[0]
	}
	f := &failover{sources: list}
	for _, s := range list {
		if _, ok := s.(VersionSource); !ok {
			return f
		}
	}
	return &versionFailover{f}
}

type failover struct {
	sources []Source
}

func (f *failover) GetSecret(ctx context.Context, name string) (*Secret, error) {
	return f.try(ctx, name, func(s Source) (*Secret, error) { return s.GetSecret(ctx, name) })
}

func (f *failover) try(ctx context.Context, name string, get func(Source) (*Secret, error)) (*Secret, error) {
	var errs []error
	for _, s := range f.sources {
		sec, err := get(s)
		if err == nil {
			return sec, nil
		}
		errs = append(errs, err)
		if !IsRetryable(err) && KindOf(err) != KindTLS || ctx.Err() != nil {
			break
		}
	}
	if len(errs) == 1 {
		return nil, errs[0]
	}
	last := errs[len(errs)-1]
	e := &Error{Kind: KindOf(last), Secret: name, Source: "failover",
		Message: fmt.Sprintf("%d of %d sources tried (%s), all failed", len(errs), len(f.sources), tried(errs)),
		Err:     &attemptsError{errs: errs, secret: name}}
	var le *Error
	if errors.As(last, &le) {
		e.Code, e.RequestID, e.Region, e.Endpoint = le.Code, le.RequestID, le.Region, le.Endpoint
	}
	return nil, e
}

// attemptsError joins the errors of the members tried. Its text names the
// secret once (the enclosing *Error does): each member's *Error is shown
// without "secretsource" and the secret's name.
type attemptsError struct {
	errs   []error
	secret string
}

func (e *attemptsError) Error() string {
	parts := make([]string, len(e.errs))
	for i, err := range e.errs {
		parts[i] = bare(err, e.secret)
	}
	return strings.Join(parts, "; ")
}

func (e *attemptsError) Unwrap() []error { return e.errs }

// bare renders err for a message that already says "secretsource" and names
// the secret: an *Error of that secret loses both.
func bare(err error, secret string) string {
	// Only err itself: an *Error deeper in the chain keeps the secret's name,
	// or the text of the errors wrapping it would be lost.
	if e, ok := err.(*Error); ok && e.Secret == secret { //nolint:errorlint // the outermost error only, see above
		c := *e
		c.Secret = ""
		return strings.TrimPrefix(c.Error(), "secretsource: ")
	}
	return err.Error()
}

// tried names the member behind each error: its region and endpoint (of its
// *Error), else its position.
func tried(errs []error) string {
	names := make([]string, len(errs))
	for i, err := range errs {
		var e *Error
		if errors.As(err, &e) && e.where() != "" {
			names[i] = e.where()
		} else {
			names[i] = fmt.Sprintf("source %d", i+1)
		}
	}
	return strings.Join(names, ", ")
}

// String names the wrapper without listing credentials or endpoints.
func (f *failover) String() string { return fmt.Sprintf("failover(%d sources)", len(f.sources)) }

type versionFailover struct {
	*failover
}

func (f *versionFailover) GetSecretVersion(ctx context.Context, name string, ref VersionRef) (*Secret, error) {
	return f.try(ctx, name, func(s Source) (*Secret, error) {
		return s.(VersionSource).GetSecretVersion(ctx, name, ref)
	})
}
