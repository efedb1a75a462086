package config

import (
	"log/slog"

	"github.com/kmsdb/kmsdb/secretsource/dkms"
)

// newDKMS builds the source of the i-th configured dedicated KMS instance.
func newDKMS(s *Settings, i int, logger *slog.Logger) (*dkms.Source, error) {
	e := s.DKMS[i]
	ep := dkms.Endpoint{RegionID: e.RegionID, Endpoint: e.Endpoint, ClientKeyFile: e.ClientKeyFile,
		Password: e.Password, CAFile: e.CAFile, IgnoreSSLCerts: e.IgnoreSSLCerts}
	timeout := s.Timeout
	if timeout == 0 {
		timeout = s.DKMSTimeout
	}
	src, err := dkms.New(dkms.Config{Endpoint: ep, Timeout: timeout, FetchExtendedConfig: s.FetchExtendedConfig, Logger: logger})
	if err != nil {
		return nil, withOrigin(err, KeyDKMSConfig, s.DKMSOrigin)
	}
	return src, nil
}
