package kms_test

import (
	"context"
	"testing"

	"github.com/kmsdb/kmsdb/secretsource/kms"
)

// BenchmarkGetSecret is one GetSecretValue round trip to the emulator over
// HTTPS with a kept-alive connection: the cost of a cache miss, SDK included.
func BenchmarkGetSecret(b *testing.B) {
	srv := startEmulator(b)
	cred, err := kms.NewCredential(kms.CredentialOptions{Type: kms.CredentialAccessKey, AccessKeyID: testAK, AccessKeySecret: testSecret})
	if err != nil {
		b.Fatal(err)
	}
	src, err := kms.New(kms.Config{Region: tlsRegion(srv, region), Credential: cred, RootCAs: srv.CertPool()})
	if err != nil {
		b.Fatal(err)
	}
	defer src.Close()
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := src.GetSecret(ctx, secretName); err != nil {
			b.Fatal(err)
		}
	}
}
