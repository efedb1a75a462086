package main

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"testing"

	"go.uber.org/goleak"

	"github.com/kmsdb/kmsdb/secretsource/kmstest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// The example runs against the emulator, configured by environment only.
func TestRunAgainstEmulator(t *testing.T) {
	const ramSecret = "ramsecret-example-key-secret"
	srv := kmstest.Start(t, kmstest.WithAccessKey("LTAItest", "test-secret"),
		kmstest.WithSecret(kmstest.SecretSpec{Name: "acs/ram/user/app", Type: "RAMCredentials",
			Data: `{"AccessKeyId":"LTAIramApp000000001","AccessKeySecret":"` + ramSecret + `"}`}))
	env := map[string]string{
		"cache_client_region_id":    fmt.Sprintf(`[{"regionId":"cn-hangzhou","endpoint":%q}]`, srv.KMSAddr()),
		"credentials_type":          "ak",
		"credentials_access_key_id": "LTAItest",
		"credentials_access_secret": "test-secret",
		"KMSDB_EXAMPLE_HTTP":        "true",
	}
	lookup := func(k string) (string, bool) { v, ok := env[k]; return v, ok }
	var out bytes.Buffer
	err := run(context.Background(), []string{"-endpoint", srv.KMSAddr(), "-calls", "2", "-interval", "0s"}, lookup, &out)
	if err != nil {
		t.Fatalf("run: %v\n%s", err, out.String())
	}
	if got := strings.Count(out.String(), "ListSecrets ok"); got != 2 {
		t.Errorf("output:\n%s", out.String())
	}
	if strings.Contains(out.String(), ramSecret) {
		t.Error("the AccessKey secret was printed")
	}
	t.Log("\n" + out.String())
}
