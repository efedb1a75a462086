package main

import (
	"crypto/x509"
	"errors"
)

// rootCAs parses the emulator's CA certificate (KMSDB_EXAMPLE_CA_FILE).
func rootCAs(pem []byte, file string) (*x509.CertPool, error) {
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, errors.New("KMSDB_EXAMPLE_CA_FILE: no PEM certificate in " + file)
	}
	return pool, nil
}
