package config

import (
	"log/slog"

	"github.com/kmsdb/kmsdb/secretsource"
	"github.com/kmsdb/kmsdb/secretsource/dkms"
)

// newDKMS builds the dedicated KMS source over every configured instance.
func newDKMS(s *Settings, logger *slog.Logger) (secretsource.Source, error) {
	eps := make([]dkms.Endpoint, len(s.DKMS))
	for i, e := range s.DKMS {
		eps[i] = dkms.Endpoint{RegionID: e.RegionID, Endpoint: e.Endpoint, ClientKeyFile: e.ClientKeyFile,
			Password: e.Password, CAFile: e.CAFile, IgnoreSSLCerts: e.IgnoreSSLCerts}
	}
	timeout := s.Timeout
	if timeout == 0 {
		timeout = s.DKMSTimeout
	}
	src, err := dkms.New(dkms.Config{Endpoints: eps, Timeout: timeout, FetchExtendedConfig: s.FetchExtendedConfig, Logger: logger})
	if err != nil {
		return nil, withOrigin(err, KeyDKMSConfig, s.DKMSOrigin)
	}
	return src, nil
}
