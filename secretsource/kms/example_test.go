package kms_test

import (
	"context"
	"fmt"
	"log"
	"strings"

	"github.com/kmsdb/kmsdb/secretsource"
	"github.com/kmsdb/kmsdb/secretsource/kms"
	"github.com/kmsdb/kmsdb/secretsource/kmstest"
)

// Two regions over HTTPS with an AccessKey, one Source each, composed with
// secretsource.Failover. The emulator
// stands in for KMS; in production drop Endpoint and RootCAs.
func ExampleNew() {
	srv, err := kmstest.NewServer(
		kmstest.WithAccessKey("LTAI-example", "example-secret"),
		kmstest.WithSecret(kmstest.SecretSpec{Name: "db/app", Type: "Rds",
			Data: `{"AccountName":"app","AccountPassword":"example-password"}`}))
	if err != nil {
		log.Fatal(err)
	}
	defer srv.Close()

	cred, err := kms.NewCredential(kms.CredentialOptions{Type: kms.CredentialAccessKey,
		AccessKeyID: "LTAI-example", AccessKeySecret: "example-secret"})
	if err != nil {
		log.Fatal(err)
	}
	hangzhou, err := kms.New(kms.Config{
		Region:     kms.Region{ID: "cn-hangzhou", Endpoint: srv.KMSTLSAddr()},
		Credential: cred,
		RootCAs:    srv.CertPool(),
	})
	if err != nil {
		log.Fatal(err)
	}
	defer hangzhou.Close()
	shanghai, err := kms.New(kms.Config{Region: kms.Region{ID: "cn-shanghai", VPC: true}, Credential: cred})
	if err != nil {
		log.Fatal(err)
	}
	defer shanghai.Close()
	// cn-shanghai is asked only if cn-hangzhou fails in a retryable way
	// (config.Load composes its regions the same way).
	src := secretsource.Failover(hangzhou, shanghai)

	s, err := src.GetSecret(context.Background(), "db/app")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(s.Name(), s.Type(), s.HasStage(secretsource.StageCurrent))
	fmt.Println(strings.Contains(fmt.Sprintf("%v %+v %#v", s, s, s), "example-password")) // formatting never shows the value

	_, err = src.GetSecret(context.Background(), "db/missing")
	fmt.Println(secretsource.KindOf(err), secretsource.IsRetryable(err))
	// Output:
	// db/app Rds true
	// false
	// not found false
}
