package dkms_test

import (
	"context"
	"fmt"
	"log"

	"github.com/kmsdb/kmsdb/secretsource/dkms"
	"github.com/kmsdb/kmsdb/secretsource/kmstest"
)

// A Source on a dedicated KMS instance, authenticated by a client key. The
// emulator stands in for the instance and issues the client key.
func ExampleNew() {
	srv, err := kmstest.NewServer(kmstest.WithSecret(kmstest.SecretSpec{Name: "db/app", Type: "Rds",
		Data: `{"AccountName":"app","AccountPassword":"example-password"}`}))
	if err != nil {
		log.Fatal(err)
	}
	defer srv.Close()
	key, err := srv.NewClientKey() // clientKey_KAAP.….json + its password
	if err != nil {
		log.Fatal(err)
	}

	src, err := dkms.New(dkms.Config{Endpoint: dkms.Endpoint{
		RegionID:      "cn-hangzhou",
		Endpoint:      srv.DKMSAddr(), // kst-….cryptoservice.kms.aliyuncs.com in production
		ClientKeyFile: key.File,
		Password:      key.Password, // resolved by the caller from an env var or a file
		CAFile:        srv.CAFile(), // the instance CA
	}})
	if err != nil {
		log.Fatal(err)
	}
	defer src.Close()

	s, err := src.GetSecret(context.Background(), "db/app")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(s.Name(), s.Type())
	// Output: db/app Rds
}
