package kms_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"testing"

	"github.com/kmsdb/kmsdb/secretsource/kms"
)

// TestCredentialOptionsRedacted prints CredentialOptions with every fmt verb
// and through slog, and greps for each secret it holds.
func TestCredentialOptionsRedacted(t *testing.T) {
	o := kms.CredentialOptions{
		Type: kms.CredentialSTS, AccessKeyID: "LTAI-visible-id", AccessKeySecret: "ak-secret-value-1",
		SecurityToken: "sts-token-value-2", ClientKeyPassword: "client-key-pw-3", ClientKeyFile: "/keys/ck.json",
		URL: "https://user:uri-pw-4@creds.example/creds?token=uri-token-5", Proxy: "http://u:proxy-pw-6@proxy:3128",
	}
	secrets := []string{"ak-secret-value-1", "sts-token-value-2", "client-key-pw-3", "uri-pw-4", "uri-token-5", "proxy-pw-6"}
	var buf bytes.Buffer
	log := slog.New(slog.NewTextHandler(&buf, nil))
	log.Info("opts", "v", o, "p", &o)
	slog.New(slog.NewJSONHandler(&buf, nil)).Info("opts", "v", o)
	js, err := json.Marshal(struct{ C kms.CredentialOptions }{o})
	if err != nil {
		t.Fatal(err)
	}
	outputs := []string{buf.String(), o.String(), o.GoString(), string(js)}
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%d"} {
		outputs = append(outputs, fmt.Sprintf(verb, o), fmt.Sprintf(verb, &o),
			fmt.Sprintf(verb, []kms.CredentialOptions{o}), fmt.Sprintf(verb, struct{ C kms.CredentialOptions }{o}))
	}
	for _, out := range outputs {
		for _, s := range secrets {
			if strings.Contains(out, s) {
				t.Errorf("a secret shows: %s", out)
			}
		}
	}
	// What is not secret still shows, so the redacted form is useful.
	for _, want := range []string{"LTAI-visible-id", "/keys/ck.json", "creds.example", "proxy:3128", `type="sts"`} {
		if !strings.Contains(o.String(), want) {
			t.Errorf("String() = %s, want it to show %q", o.String(), want)
		}
	}
}
