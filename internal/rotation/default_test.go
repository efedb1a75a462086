package rotation

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/kmsdb/kmsdb/connector"
	"github.com/kmsdb/kmsdb/secretsource"
)

// TestDefaultProvider: a Login given no source uses connector.DefaultCache,
// and fails with SecretUnavailable naming the default cache when nothing is
// configured.
func TestDefaultProvider(t *testing.T) {
	t.Chdir(t.TempDir()) // no secretsmanager.properties
	t.Setenv("KMSDB_PROPERTIES_FILE", "")
	t.Setenv("cache_client_region_id", "")
	t.Setenv("cache_client_dkms_config_info", "")
	connector.SetDefaultCache(nil)
	defer connector.SetDefaultCache(nil)

	l, err := NewLogin(Config{SecretName: "db", Classify: classifyFake})
	if err != nil {
		t.Fatal(err)
	}
	_, err = Run(context.Background(), l, (&fakeDB{}).attempt)
	var e *connector.Error
	if !errors.As(err, &e) || e.Class != connector.SecretUnavailable || !strings.Contains(err.Error(), "default cache") {
		t.Fatalf("with nothing configured: %v", err)
	}
	if !errors.Is(err, secretsource.ErrConfig) {
		t.Errorf("want the configuration error of config.Load in the chain: %v", err)
	}

	src := newRotating("v1", "pw-one-1111")
	_, c, _ := newTestLogin(t, src, 0)
	connector.SetDefaultCache(c)
	if p, err := connector.DefaultCache(context.Background()); err != nil || p != secretsource.Cache(c) {
		t.Fatalf("connector.DefaultCache = %v, %v", p, err)
	}
	// A Login without a source follows the default.
	if v, err := Run(context.Background(), l, (&fakeDB{password: "pw-one-1111"}).attempt); err != nil || v != "v1" {
		t.Fatalf("Run with the default cache = %q, %v", v, err)
	}
}
