package ramsecret_test

import (
	"context"
	"errors"
	"fmt"
	"log"

	openapi "github.com/alibabacloud-go/darabonba-openapi/v2/client"
	kms3 "github.com/alibabacloud-go/kms-20160120/v3/client"
	"github.com/alibabacloud-go/tea/tea"
	"github.com/aliyun/alibaba-cloud-sdk-go/sdk"
	sdkcred "github.com/aliyun/alibaba-cloud-sdk-go/sdk/auth/credentials"
	sdkerrors "github.com/aliyun/alibaba-cloud-sdk-go/sdk/errors"
	kmssdk "github.com/aliyun/alibaba-cloud-sdk-go/services/kms"
	credgo "github.com/aliyun/credentials-go/credentials"
	"golang.org/x/crypto/ssh"

	"github.com/kmsdb/kmsdb/ramsecret"
	"github.com/kmsdb/kmsdb/secretsource"
	"github.com/kmsdb/kmsdb/secretsource/cache"
	"github.com/kmsdb/kmsdb/secretsource/kms"
	"github.com/kmsdb/kmsdb/secretsource/kmstest"
)

// exampleCache starts the emulator with a RAM secret and an ECS secret and
// returns a cache reading them through the real KMS source. In production
// the source comes from config.Load (environment / secretsmanager.properties).
func exampleCache() (*kmstest.Server, *cache.Cache, func()) {
	srv, err := kmstest.NewServer(
		kmstest.WithAccessKey(sourceAK, sourceSK),
		kmstest.WithSecret(ramSpec(0)),
		kmstest.WithSecret(kmstest.SecretSpec{Name: "acs/ecs/web-1", Type: "ECS",
			Data:           `{"UserName":"root","Password":"example-ecs-password"}`,
			ExtendedConfig: map[string]any{"SecretSubType": "Password"}}),
	)
	if err != nil {
		log.Fatal(err)
	}
	cred, err := credgo.NewCredential(&credgo.Config{Type: tea.String("access_key"),
		AccessKeyId: tea.String(sourceAK), AccessKeySecret: tea.String(sourceSK)})
	if err != nil {
		log.Fatal(err)
	}
	src, err := kms.New(kms.Config{Region: kms.Region{ID: region, Endpoint: srv.KMSAddr()}, Scheme: "http", Credential: cred})
	if err != nil {
		log.Fatal(err)
	}
	c, err := cache.New(src)
	if err != nil {
		log.Fatal(err)
	}
	return srv, c, func() {
		_ = c.Close()
		_ = src.Close()
		srv.Close()
	}
}

// A core (alibaba-cloud-sdk-go) client signs every request with the key the
// RAM secret holds now: NewClientWithOptions accepts the provider as its
// credential.
func ExampleNew_coreSDK() {
	srv, c, stop := exampleCache()
	defer stop()

	p, err := ramsecret.New(c, "acs/ram/user/app")
	if err != nil {
		log.Fatal(err)
	}
	client, err := kmssdk.NewClientWithOptions("cn-hangzhou", sdk.NewConfig(), p)
	if err != nil {
		log.Fatal(err)
	}
	defer client.Shutdown()
	client.Domain = srv.KMSAddr() // the emulator; omit for the real service

	req := kmssdk.CreateDescribeSecretRequest()
	req.SecretName = "acs/ram/user/app"
	// DoClient retries once with a fresh key if the service rejects a rotated one.
	resp, err := ramsecret.DoClient(context.Background(), p, func(ctx context.Context) (*kmssdk.DescribeSecretResponse, error) {
		return client.DescribeSecret(req)
	})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(resp.SecretName, resp.SecretType)
	// Output: acs/ram/user/app RAMCredentials
}

// A Tea SDK client (here kms-20160120) takes the provider as its
// credentials-go Credential.
func ExampleProvider_GetCredential() {
	srv, c, stop := exampleCache()
	defer stop()

	p, err := ramsecret.New(c, "acs/ram/user/app")
	if err != nil {
		log.Fatal(err)
	}
	client, err := kms3.NewClient(&openapi.Config{
		Credential: p,
		RegionId:   tea.String("cn-hangzhou"),
		Endpoint:   tea.String(srv.KMSAddr()), Protocol: tea.String("http"), // the emulator
	})
	if err != nil {
		log.Fatal(err)
	}
	resp, err := ramsecret.DoClient(context.Background(), p, func(ctx context.Context) (*kms3.DescribeSecretResponse, error) {
		return client.DescribeSecret(&kms3.DescribeSecretRequest{SecretName: tea.String("acs/ram/user/app")})
	})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(tea.StringValue(resp.Body.SecretName))
	// Output: acs/ram/user/app
}

// For clients that take a key pair rather than a provider (OSS, SLS, custom
// signing), Do hands the current key to the call and retries once with a
// fresh one when the service rejects it. The key prints without its secret.
func ExampleDo() {
	srv, c, stop := exampleCache()
	defer stop()
	p, err := ramsecret.New(c, "acs/ram/user/app")
	if err != nil {
		log.Fatal(err)
	}
	if _, err := p.AccessKey(context.Background()); err != nil { // warm the cache
		log.Fatal(err)
	}
	// Rotate the secret and revoke the old key at once: the cache does not know yet.
	if _, err := srv.RotateSecret("acs/ram/user/app"); err != nil {
		log.Fatal(err)
	}

	used := 0
	name, err := ramsecret.Do(context.Background(), p, func(ctx context.Context, k secretsource.AccessKey) (string, error) {
		used++
		client, err := kmssdk.NewClientWithOptions("cn-hangzhou", sdk.NewConfig(),
			sdkcred.NewStaticAKCredentialsProvider(k.ID, k.Secret))
		if err != nil {
			return "", err
		}
		defer client.Shutdown()
		client.Domain = srv.KMSAddr()
		req := kmssdk.CreateDescribeSecretRequest()
		req.SecretName = "acs/ram/user/app"
		resp, err := client.DescribeSecret(req)
		if err != nil {
			return "", err
		}
		return resp.SecretName, nil
	})
	if err != nil {
		log.Fatal(err)
	}
	st := p.Stats()
	fmt.Printf("%s after %d calls; rejected %d, refreshed %d, retried %d\n", name, used, st.Rejected, st.Refreshes, st.Retries)
	// Output: acs/ram/user/app after 2 calls; rejected 1, refreshed 1, retried 1
}

// IsRejectedKey reads the code of the SDKs' error types, never a message.
func ExampleIsRejectedKey() {
	err := sdkerrors.NewServerError(404,
		`{"RequestId":"r-1","HostId":"kms.cn-hangzhou.aliyuncs.com","Code":"InvalidAccessKeyId.NotFound","Message":"Specified access key is not found."}`, "")
	wrapped := fmt.Errorf("listing instances: %w", err)
	fmt.Println(ramsecret.IsRejectedKey(wrapped), ramsecret.IsRejectedKey(errors.New("InvalidAccessKeyId.NotFound")))
	// Output: true false
}

// An ECS secret gives an SSH client configuration with the current login.
func ExampleECS_ClientConfig() {
	_, c, stop := exampleCache()
	defer stop()

	e, err := ramsecret.NewECS(c, "acs/ecs/web-1")
	if err != nil {
		log.Fatal(err)
	}
	// Check the host key for real: ssh.FixedHostKey or knownhosts.New.
	hostKey := ssh.InsecureIgnoreHostKey()
	cfg, err := e.ClientConfig(context.Background(), hostKey)
	if err != nil {
		log.Fatal(err)
	}
	cred, _ := e.Credential(context.Background())
	fmt.Println(cfg.User, len(cfg.Auth), cred.IsKeyPair())
	// Then ssh.Dial("tcp", "10.0.0.1:22", cfg); or e.Dial(ctx, "tcp", addr, hostKey),
	// which retries once with a refreshed secret when the login is refused after a rotation.

	// Output: root 1 false
}
