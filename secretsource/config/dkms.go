package config

import (
	"log/slog"

	"github.com/kmsdb/kmsdb/secretsource/dkms"
)

// newDKMS builds the source of the i-th configured dedicated KMS instance.
func newDKMS(s *Settings, i int, logger *slog.Logger) (*dkms.Source, error) {
	timeout := s.Timeout
	if timeout == 0 {
		timeout = s.DKMSTimeout
	}
	src, err := dkms.New(dkms.Config{Endpoint: s.DKMS[i], Timeout: timeout, FetchExtendedConfig: s.FetchExtendedConfig, Logger: logger})
	if err != nil {
		return nil, withOrigin(err, KeyDKMSConfig, s.DKMSOrigin)
	}
	return src, nil
}
