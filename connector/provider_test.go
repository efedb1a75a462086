package connector

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/kmsdb/kmsdb/secretsource"
)

func TestDefaultProvider(t *testing.T) {
	t.Chdir(t.TempDir()) // no secretsmanager.properties
	t.Setenv("KMSDB_PROPERTIES_FILE", "")
	t.Setenv("cache_client_region_id", "")
	t.Setenv("cache_client_dkms_config_info", "")
	SetDefaultProvider(nil)
	defer SetDefaultProvider(nil)

	l, err := NewLogin(Config{SecretName: "db", Classify: classifyFake})
	if err != nil {
		t.Fatal(err)
	}
	_, err = Run(context.Background(), l, (&fakeDB{}).attempt)
	var e *Error
	if !errors.As(err, &e) || e.Class != SecretUnavailable || !strings.Contains(err.Error(), "default provider") {
		t.Fatalf("with nothing configured: %v", err)
	}
	if !errors.Is(err, secretsource.ErrConfig) {
		t.Errorf("want the configuration error of config.Load in the chain: %v", err)
	}

	src := newRotating("v1", "pw-one-1111")
	_, c, _ := newTestLogin(t, src, 0)
	SetDefaultProvider(c)
	if p, err := DefaultProvider(context.Background()); err != nil || p != Provider(c) {
		t.Fatalf("DefaultProvider = %v, %v", p, err)
	}
	// A Login without a provider follows the default.
	if v, err := Run(context.Background(), l, (&fakeDB{password: "pw-one-1111"}).attempt); err != nil || v != "v1" {
		t.Fatalf("Run with the default provider = %q, %v", v, err)
	}
}
