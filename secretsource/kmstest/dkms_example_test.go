package kmstest_test

import (
	"fmt"

	"github.com/alibabacloud-go/tea/tea"
	dopenapi "github.com/aliyun/alibabacloud-dkms-gcs-go-sdk/openapi"
	dutil "github.com/aliyun/alibabacloud-dkms-gcs-go-sdk/openapi-util"
	dsdk "github.com/aliyun/alibabacloud-dkms-gcs-go-sdk/sdk"

	"github.com/kmsdb/kmsdb/secretsource/kmstest"
)

// The dedicated gateway (KMS instance API) with the official SDK: a client key from the emulator, its CA, and
// RuntimeOptions without the SDK's own retries.
func ExampleServer_NewClientKey() {
	srv, err := kmstest.NewServer(kmstest.WithSecret(kmstest.SecretSpec{Name: "app-token", Data: "t0ken"}))
	if err != nil {
		fmt.Println(err)
		return
	}
	defer srv.Close()
	ck, err := srv.NewClientKey()
	if err != nil {
		fmt.Println(err)
		return
	}
	client, err := dsdk.NewClient(&dopenapi.Config{
		Protocol:      tea.String("https"),
		Endpoint:      tea.String(srv.DKMSAddr()),
		ClientKeyFile: tea.String(ck.File),
		Password:      tea.String(ck.Password),
		CaFilePath:    tea.String(srv.CAFile()),
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	resp, err := client.GetSecretValueWithOptions(&dsdk.GetSecretValueRequest{SecretName: tea.String("app-token")},
		&dutil.RuntimeOptions{Autoretry: tea.Bool(false)})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(tea.StringValue(resp.SecretName), tea.StringValue(resp.SecretData), tea.StringValue(resp.VersionStages[0]))
	// Output: app-token t0ken ACSCurrent
}
