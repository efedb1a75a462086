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
		return newSource([]secretsource.Source{l}, nil), nil
	}
	var sources []secretsource.Source
	var closers []io.Closer
	fail := func(err error) (*Source, error) {
		for _, c := range closers {
			_ = c.Close()
		}
		return nil, err
	}
	if len(s.DKMS) > 0 {
		src, err := newDKMS(s, logger)
		if err != nil {
			return fail(err)
		}
		sources = append(sources, src)
		if c, ok := src.(io.Closer); ok {
			closers = append(closers, c)
		}
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
		src, err := kms.New(kms.Config{
			Regions:             s.Regions,
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
		sources = append(sources, src)
		closers = append(closers, src)
	}
	return newSource(sources, closers), nil
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

func newSource(members []secretsource.Source, closers []io.Closer) *Source {
	names := make([]string, len(members))
	for i, m := range members {
		names[i] = fmt.Sprint(m)
	}
	return &Source{src: secretsource.Failover(members...), members: names, closers: closers}
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

// warnOnly passes records at Warn and above to h: the logger of a Load given
// no logger, so that warnings reach slog.Default() and debug lines do not.
type warnOnly struct{ h slog.Handler }

func (w warnOnly) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= slog.LevelWarn && w.h.Enabled(ctx, l)
}

func (w warnOnly) Handle(ctx context.Context, r slog.Record) error { return w.h.Handle(ctx, r) }

func (w warnOnly) WithAttrs(attrs []slog.Attr) slog.Handler { return warnOnly{w.h.WithAttrs(attrs)} }

func (w warnOnly) WithGroup(name string) slog.Handler { return warnOnly{w.h.WithGroup(name)} }
