package integration

// The warm read through kmsdb's cache beside the same read through Alibaba's
// own Go client (aliyun-secretsmanager-client-go v1.1.5, GetSecretInfo), both
// warmed from the KMS emulator over HTTPS. One run gives the ratio:
//
//	go test -run '^$' -bench 'CacheHit|ClientHit' -benchmem .
//
// (KMSDB_TEST_CONTAINERS=0 skips looking for databases, which benchmarks do not need.)
//
// How Alibaba's client is configured here (read in its source, sdk/service/secret_manager_client.go and
// sdk/secrets_manager_cache_client.go): NewDefaultSecretManagerClientBuilder().WithAccessKey(...)
// .AddRegionInfo(NewRegionInfoWithEndpoint(region, "127.0.0.1:PORT")) gives a core-SDK kms.Client whose Domain
// is that endpoint; every request it builds has Scheme "https" and buildKmsClient calls SetHTTPSInsecure(true),
// so it talks to the emulator's TLS listener without checking the certificate (it has no setting to check it).
// Its logger is global and writes to stdout unless replaced, so the builder gets one that discards.

import (
	"context"
	"io"
	"log"
	"testing"

	smsdk "github.com/aliyun/aliyun-secretsmanager-client-go/sdk"
	smlogger "github.com/aliyun/aliyun-secretsmanager-client-go/sdk/logger"
	smmodels "github.com/aliyun/aliyun-secretsmanager-client-go/sdk/models"
	smservice "github.com/aliyun/aliyun-secretsmanager-client-go/sdk/service"

	"github.com/kmsdb/kmsdb/secretsource/kmstest"
)

const benchSecretName = "bench/db-secret"

var benchSecretSpec = kmstest.SecretSpec{Name: benchSecretName, Type: "Rds",
	Data: `{"AccountName":"app","AccountPassword":"bench-password-not-printed"}`}

// BenchmarkKmsdbCacheHit is a warm GetSecret of kmsdb's cache (emulator ->
// secretsource/kms on alibaba-cloud-sdk-go -> cache).
func BenchmarkKmsdbCacheHit(b *testing.B) {
	st := newKMSStack(b, nil, benchSecretSpec)
	ctx := context.Background()
	if _, err := st.cache.GetSecret(ctx, benchSecretName); err != nil {
		b.Fatal(err)
	}
	before := st.srv.Calls("GetSecretValue", benchSecretName)
	b.Run("serial", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := st.cache.GetSecret(ctx, benchSecretName); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("parallel", func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if _, err := st.cache.GetSecret(ctx, benchSecretName); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
	if n := st.srv.Calls("GetSecretValue", benchSecretName); n != before {
		b.Errorf("warm reads reached KMS %d times", n-before)
	}
}

// BenchmarkAlibabaClientHit is the same warm read through Alibaba's client.
func BenchmarkAlibabaClientHit(b *testing.B) {
	srv := kmstest.Start(b, kmstest.WithAccessKey(testAccessKeyID, testAccessKeySecret), kmstest.WithSecret(benchSecretSpec))
	region := smmodels.NewRegionInfoWithEndpoint(testRegion, srv.KMSTLSAddr())
	smClient := smservice.NewDefaultSecretManagerClientBuilder().
		WithAccessKey(testAccessKeyID, testAccessKeySecret).
		AddRegionInfo(region).
		Build()
	client, err := smsdk.NewSecretCacheClientBuilder(smClient).
		WithLogger(smlogger.NewDefaultLogger(log.New(io.Discard, "", 0))).
		Build()
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = client.Close() })
	info, err := client.GetSecretInfo(benchSecretName)
	if err != nil {
		b.Fatal(err)
	}
	if info.SecretValue != benchSecretSpec.Data {
		b.Fatal("Alibaba's client returned another value")
	}
	before := srv.Calls("GetSecretValue", benchSecretName)
	b.Run("serial", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := client.GetSecretInfo(benchSecretName); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("parallel", func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if _, err := client.GetSecretInfo(benchSecretName); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
	if n := srv.Calls("GetSecretValue", benchSecretName); n != before {
		b.Errorf("warm reads reached KMS %d times", n-before)
	}
}
