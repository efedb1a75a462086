package kmstest_test

import (
	"fmt"

	"github.com/aliyun/alibaba-cloud-sdk-go/services/kms"

	"github.com/kmsdb/kmsdb/secretsource/kmstest"
)

// The core SDK fetches a secret from the emulator, then sees the rotated value.
func Example() {
	srv, err := kmstest.NewServer(
		kmstest.WithAccessKey("LTAItest", "test-secret"),
		kmstest.WithSecret(kmstest.SecretSpec{Name: "app-config", Data: "hello"}),
	)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer srv.Close()

	client, err := kms.NewClientWithAccessKey("cn-hangzhou", "LTAItest", "test-secret")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer client.Shutdown()
	client.Domain = srv.KMSAddr() // plain HTTP; srv.KMSTLSAddr() with srv.TLSClientConfig() for HTTPS

	req := kms.CreateGetSecretValueRequest()
	req.SecretName = "app-config"
	resp, err := client.GetSecretValue(req)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(resp.SecretData, resp.VersionStages.VersionStage)

	if _, err := srv.RotateSecret("app-config"); err != nil {
		fmt.Println(err)
		return
	}
	req = kms.CreateGetSecretValueRequest()
	req.SecretName = "app-config"
	req.VersionStage = "ACSPrevious"
	if resp, err = client.GetSecretValue(req); err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(resp.SecretData, resp.VersionStages.VersionStage)
	fmt.Println(srv.Calls("GetSecretValue", "app-config"))
	// Output:
	// hello [ACSCurrent]
	// hello [ACSPrevious]
	// 2
}

// Fail the next two reads of a secret with throttling, as the service does under load.
func ExampleServer_InjectFault() {
	srv, err := kmstest.NewServer(kmstest.WithAccessKey("LTAItest", "test-secret"),
		kmstest.WithSecret(kmstest.SecretSpec{Name: "db-secret", Type: "Rds",
			Data: `{"AccountName":"app","AccountPassword":"pw"}`}))
	if err != nil {
		fmt.Println(err)
		return
	}
	defer srv.Close()
	srv.InjectFault(kmstest.Fault{Action: "GetSecretValue", Secret: "db-secret", Code: "Rejected.Throttling", Times: 2})

	client, _ := kms.NewClientWithAccessKey("cn-hangzhou", "LTAItest", "test-secret")
	defer client.Shutdown()
	client.Domain = srv.KMSAddr()
	for range 3 {
		req := kms.CreateGetSecretValueRequest()
		req.SecretName = "db-secret"
		if _, err := client.GetSecretValue(req); err != nil {
			fmt.Println("error")
			continue
		}
		fmt.Println("ok")
	}
	// Output:
	// error
	// error
	// ok
}
