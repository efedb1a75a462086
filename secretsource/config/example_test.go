package config_test

import (
	"context"
	"fmt"

	"github.com/kmsdb/kmsdb/secretsource"
	"github.com/kmsdb/kmsdb/secretsource/config"
	"github.com/kmsdb/kmsdb/secretsource/kms"
	"github.com/kmsdb/kmsdb/secretsource/kmstest"
	"github.com/kmsdb/kmsdb/secretsource/local"
)

// Load with options in code, the seed's "method 3", here against the
// emulator. In production the same program runs with config.Load(ctx) and
// the credentials_* / cache_client_region_id environment variables or
// secretsmanager.properties.
func ExampleLoad() {
	srv, err := kmstest.NewServer(kmstest.WithAccessKey("LTAI5tExample", "example-secret=="),
		kmstest.WithSecret(kmstest.SecretSpec{Name: "db/app", Type: "Rds", Data: `{"AccountName":"app","AccountPassword":"s3cret"}`}))
	if err != nil {
		fmt.Println(err)
		return
	}
	defer srv.Close()

	ctx := context.Background()
	src, err := config.Load(ctx,
		config.WithoutPropertiesFile(), config.WithLookupEnv(nil), // keep the example hermetic
		config.WithRegions(kms.Region{ID: "cn-hangzhou", Endpoint: srv.KMSTLSAddr()}),
		config.WithAccessKey("LTAI5tExample", "example-secret=="),
		config.WithRootCAs(srv.CertPool()))
	if err != nil {
		fmt.Println(err)
		return
	}
	defer src.Close()

	s, err := src.GetSecret(ctx, "db/app")
	if err != nil {
		fmt.Println(err)
		return
	}
	a, _ := secretsource.DecodeDBAccount(s)
	fmt.Println(a.Username, s.Type())
	// Output: app Rds
}

// A broken configuration names the key, where it came from and what is expected.
func ExampleLoad_error() {
	env := map[string]string{"credentials_type": "ak", "credentials_access_key_id": "LTAI5tExample",
		"cache_client_region_id": `[{"regionId":"cn-hangzhou"}]`}
	_, err := config.Load(context.Background(), config.WithoutPropertiesFile(),
		config.WithLookupEnv(func(k string) (string, bool) { v, ok := env[k]; return v, ok }))
	fmt.Println(err)
	// Output: secretsource: config: credentials_access_secret: required for credentials_type "ak" (set it in the environment, in secretsmanager.properties, or in code)
}

// Development without KMS: secrets from a map (or a file, or KMSDB_SECRET_<NAME>).
func ExampleWithLocal() {
	src, err := config.Load(context.Background(), config.WithLocal(local.FromMap(map[string]string{
		"db/app": `{"username":"dev","password":"dev","host":"localhost","port":5432}`,
	})))
	if err != nil {
		fmt.Println(err)
		return
	}
	s, _ := src.GetSecret(context.Background(), "db/app")
	a, _ := secretsource.DecodeDBAccount(s)
	fmt.Println(a)
	// Output: DBAccount(user="dev" host="localhost" port=5432 db="" secret="db/app" version="local" password=REDACTED)
}

// Code beats the environment, which beats the file, key by key.
func ExampleLoadSettings() {
	env := map[string]string{"cache_client_region_id": "cn-shanghai", "credentials_type": "ecs_ram_role"}
	s, err := config.LoadSettings(context.Background(), config.WithoutPropertiesFile(),
		config.WithLookupEnv(func(k string) (string, bool) { v, ok := env[k]; return v, ok }),
		config.WithAccessKey("LTAI5tExample", "from-code"))
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(s.Credential.Type, s.CredentialOrigin, s.Regions[0].ID, s.RegionsOrigin)
	// Output: access_key option cn-shanghai environment variable
}
