package config

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"

	"github.com/kmsdb/kmsdb/secretsource"
	"github.com/kmsdb/kmsdb/secretsource/kms"
	"github.com/kmsdb/kmsdb/secretsource/local"
)

// Load builds the secret source the configuration describes: options in
// code, then environment variables, then the properties file (see the
// package documentation). Dedicated KMS instances come first, then KMS
// regions, composed with secretsource.Failover when there are several. It
// makes no network call; a wrong credential shows on the first GetSecret.
//
// Close the result when done, or give it to cache.New, which then owns it:
//
//	src, err := config.Load(ctx)
//	if err != nil { ... }
//	c, err := cache.New(src) // closing c closes src
func Load(ctx context.Context, opts ...Option) (*Source, error) {
	s, err := LoadSettings(ctx, opts...)
	if err != nil {
		return nil, err
	}
	return s.Source()
}

// Source builds the source s describes (see Load).
func (s *Settings) Source() (*Source, error) {
	logger := s.Logger
	if logger == nil {
		logger = slog.New(warnOnly{slog.Default().Handler()})
	}
	for _, w := range s.Warnings {
		if !s.loggedBySource[w] {
			logger.LogAttrs(context.Background(), slog.LevelWarn, "kmsdb config: "+w)
		}
	}
	if s.Local {
		l, err := local.New(s.localOptions...)
		if err != nil {
			return nil, err
		}
		return newSource([]member{l}, nil), nil
	}
	// One source per dedicated KMS endpoint, then one per KMS region, in the
	// order configured: secretsource.Failover asks the next only after a
	// retryable failure.
	var members []member
	var closers []io.Closer
	fail := func(err error) (*Source, error) {
		for _, c := range closers {
			_ = c.Close()
		}
		return nil, err
	}
	for i := range s.DKMS {
		src, err := newDKMS(s, i, logger)
		if err != nil {
			return fail(err)
		}
		members, closers = append(members, src), append(closers, src)
	}
	if len(s.Regions) > 0 {
		cred := s.credential
		if cred == nil {
			c, err := kms.NewCredential(s.Credential)
			if err != nil {
				return fail(withOrigin(err, KeyCredentialsType, s.CredentialOrigin))
			}
			cred = c
		}
		for _, r := range s.Regions {
			src, err := kms.New(kms.Config{
				Region:              r,
				Credential:          cred,
				Scheme:              s.Scheme,
				RootCAs:             s.RootCAs,
				Timeout:             s.Timeout,
				FetchExtendedConfig: s.FetchExtendedConfig,
				Logger:              logger,
			})
			if err != nil {
				return fail(err)
			}
			members, closers = append(members, src), append(closers, src)
		}
	}
	for i := 0; i+1 < len(members); i++ {
		members[i] = failoverLog{members[i], logger}
	}
	return newSource(members, closers), nil
}

// withOrigin adds the credential's origin to a construction error, keeping
// the error chain (Kind, FieldErrors) intact.
func withOrigin(err error, key, origin string) error {
	if origin == "" {
		return err
	}
	return &secretsource.Error{Kind: secretsource.KindOf(err), Source: "config",
		Message: key + " from " + origin, Err: err}
}

// Source is the secret source Load builds: the local source, or the
// dedicated KMS instances then the KMS regions composed with
// secretsource.Failover. It implements secretsource.Source and
// secretsource.VersionSource, is safe for concurrent use, and holds the
// connections of its members until Close.
type Source struct {
	src     secretsource.Source
	members []string // what each member is, for String
	closers []io.Closer
}

// member is what each source composed into a Source is: a kms.Source, a
// dkms.Source or a local.Source.
type member interface {
	secretsource.Source
	secretsource.VersionSource
}

func newSource(members []member, closers []io.Closer) *Source {
	names := make([]string, len(members))
	srcs := make([]secretsource.Source, len(members))
	for i, m := range members {
		names[i], srcs[i] = fmt.Sprint(m), m
	}
	return &Source{src: secretsource.Failover(srcs...), members: names, closers: closers}
}

// GetSecret fetches the ACSCurrent version of name from the first member
// that answers (the next one is asked only after a retryable failure).
func (s *Source) GetSecret(ctx context.Context, name string) (*secretsource.Secret, error) {
	return s.src.GetSecret(ctx, name)
}

// GetSecretVersion fetches the version ref selects (ACSPrevious, a version
// id), like GetSecret.
func (s *Source) GetSecretVersion(ctx context.Context, name string, ref secretsource.VersionRef) (*secretsource.Secret, error) {
	vs, ok := s.src.(secretsource.VersionSource)
	if !ok { // only the empty failover, which fails every call anyway
		return s.src.GetSecret(ctx, name)
	}
	return vs.GetSecretVersion(ctx, name, ref)
}

// Close releases every member's connections (a KMS or dedicated KMS member
// fails every call afterwards with a KindConfig error). It is idempotent.
func (s *Source) Close() error {
	var errs []error
	for _, c := range s.closers {
		errs = append(errs, c.Close())
	}
	return errors.Join(errs...)
}

// String lists the members in the order they are asked, without credentials.
func (s *Source) String() string {
	return "config.Source(" + strings.Join(s.members, ", ") + ")"
}

var _ secretsource.VersionSource = (*Source)(nil)

// failoverLog wraps every member of a Source but the last: a retryable
// failure, after which secretsource.Failover asks the next member, is logged
// at Debug with the member, the kind and the code.
type failoverLog struct {
	member member
	logger *slog.Logger
}

func (f failoverLog) GetSecret(ctx context.Context, name string) (*secretsource.Secret, error) {
	sec, err := f.member.GetSecret(ctx, name)
	f.log(ctx, name, err)
	return sec, err
}

func (f failoverLog) GetSecretVersion(ctx context.Context, name string, ref secretsource.VersionRef) (*secretsource.Secret, error) {
	sec, err := f.member.GetSecretVersion(ctx, name, ref)
	f.log(ctx, name, err)
	return sec, err
}

func (f failoverLog) log(ctx context.Context, name string, err error) {
	if err == nil || !secretsource.IsRetryable(err) || ctx.Err() != nil {
		return
	}
	var e *secretsource.Error
	code := ""
	if errors.As(err, &e) {
		code = e.Code
	}
	f.logger.LogAttrs(ctx, slog.LevelDebug, "kmsdb config: source failed, trying the next one",
		slog.String("secret", name), slog.String("source", fmt.Sprint(f.member)),
		slog.String("kind", secretsource.KindOf(err).String()), slog.String("code", code))
}

func (f failoverLog) String() string { return fmt.Sprint(f.member) }

// warnOnly passes records at Warn and above to h: the logger of a Load given
// no logger, so that warnings reach slog.Default() and debug lines do not.
type warnOnly struct{ h slog.Handler }

func (w warnOnly) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= slog.LevelWarn && w.h.Enabled(ctx, l)
}

func (w warnOnly) Handle(ctx context.Context, r slog.Record) error { return w.h.Handle(ctx, r) }

func (w warnOnly) WithAttrs(attrs []slog.Attr) slog.Handler { return warnOnly{w.h.WithAttrs(attrs)} }

func (w warnOnly) WithGroup(name string) slog.Handler { return warnOnly{w.h.WithGroup(name)} }
