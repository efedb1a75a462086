package dkms_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"testing"

	"github.com/kmsdb/kmsdb/secretsource/dkms"
)

// TestEndpointRedacted prints an Endpoint, and a Config holding it, with
// every fmt verb and through slog, and greps for the client key password.
func TestEndpointRedacted(t *testing.T) {
	const pw = "client-key-password-7"
	e := dkms.Endpoint{RegionID: "cn-hangzhou", Endpoint: "kst-visible.cryptoservice.kms.aliyuncs.com",
		ClientKeyFile: "/keys/clientKey.json", Password: pw, CAFile: "/keys/ca.pem"}
	cfg := dkms.Config{Endpoint: e}
	var buf bytes.Buffer
	slog.New(slog.NewTextHandler(&buf, nil)).Info("dkms", "endpoint", e, "config", cfg, "ptr", &e)
	slog.New(slog.NewJSONHandler(&buf, nil)).Info("dkms", "endpoint", e, "config", cfg)
	js, err := json.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	outputs := []string{buf.String(), e.String(), e.GoString(), string(js)}
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x"} {
		outputs = append(outputs, fmt.Sprintf(verb, e), fmt.Sprintf(verb, &e), fmt.Sprintf(verb, cfg), fmt.Sprintf(verb, &cfg))
	}
	for _, out := range outputs {
		if strings.Contains(out, pw) {
			t.Errorf("the password shows: %s", out)
		}
	}
	for _, want := range []string{"kst-visible", "/keys/clientKey.json", "cn-hangzhou", "/keys/ca.pem"} {
		if !strings.Contains(e.String(), want) {
			t.Errorf("String() = %s, want it to show %q", e.String(), want)
		}
	}
}
