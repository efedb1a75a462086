package secretsource_test

import (
	"errors"
	"testing"

	"github.com/kmsdb/kmsdb/secretsource"
)

// TestErrorTextOnePrefixPerLayer: a configuration error does not say
// "config: configuration".
func TestErrorTextOnePrefixPerLayer(t *testing.T) {
	e := &secretsource.Error{Kind: secretsource.KindConfig, Source: "config", Err: errors.New("credentials_type: unknown type")}
	if got, want := e.Error(), "secretsource: config: credentials_type: unknown type"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
	e = &secretsource.Error{Kind: secretsource.KindConfig, Source: "kms", Message: "endpoint must be a host"}
	if got, want := e.Error(), "secretsource: kms: configuration: endpoint must be a host"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}
