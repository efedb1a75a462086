package config

import (
	"context"
	"errors"
	"io"
	"log/slog"

	"github.com/kmsdb/kmsdb/secretsource"
	"github.com/kmsdb/kmsdb/secretsource/kms"
	"github.com/kmsdb/kmsdb/secretsource/local"
)

// Load builds the secret source the configuration describes: options in
// code, then environment variables, then the properties file (see the
// package documentation). Dedicated KMS instances come first, then KMS
// regions, wrapped in secretsource.Failover when there are several. It makes
// no network call; a wrong credential shows on the first GetSecret.
//
// The result implements io.Closer (close it when done) and
// secretsource.VersionSource.
func Load(ctx context.Context, opts ...Option) (secretsource.Source, error) {
	s, err := LoadSettings(ctx, opts...)
	if err != nil {
		return nil, err
	}
	return s.Source()
}

// Source builds the source s describes (see Load).
func (s *Settings) Source() (secretsource.Source, error) {
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
		return local.New(s.localOptions...)
	}
	var sources []secretsource.Source
	var closers []io.Closer
	fail := func(err error) (secretsource.Source, error) {
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
	f := secretsource.Failover(sources...)
	if _, ok := f.(secretsource.VersionSource); ok {
		return &closingVersionSource{closingSource{f, closers}}, nil
	}
	return &closingSource{f, closers}, nil
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

// closingSource is the source Load returns: the failover over every
// configured source, and Close for them all.
type closingSource struct {
	secretsource.Source
	closers []io.Closer
}

// Close releases every source's connections. It is idempotent.
func (c *closingSource) Close() error {
	var errs []error
	for _, cl := range c.closers {
		errs = append(errs, cl.Close())
	}
	return errors.Join(errs...)
}

func (c *closingSource) String() string { return "config.Load source" }

type closingVersionSource struct{ closingSource }

// GetSecretVersion fetches the version ref selects (ACSPrevious, a version id).
func (c *closingVersionSource) GetSecretVersion(ctx context.Context, name string, ref secretsource.VersionRef) (*secretsource.Secret, error) {
	return c.Source.(secretsource.VersionSource).GetSecretVersion(ctx, name, ref)
}

// warnOnly passes records at Warn and above to h: the logger of a Load given
// no logger, so that warnings reach slog.Default() and debug lines do not.
type warnOnly struct{ h slog.Handler }

func (w warnOnly) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= slog.LevelWarn && w.h.Enabled(ctx, l)
}

func (w warnOnly) Handle(ctx context.Context, r slog.Record) error { return w.h.Handle(ctx, r) }

func (w warnOnly) WithAttrs(attrs []slog.Attr) slog.Handler { return warnOnly{w.h.WithAttrs(attrs)} }

func (w warnOnly) WithGroup(name string) slog.Handler { return warnOnly{w.h.WithGroup(name)} }
