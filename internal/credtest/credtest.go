// Package credtest keeps tests of the Alibaba credential chain hermetic: away
// from the machine's own credentials and able to reach the emulator's STS.
package credtest

import (
	"net/http"
	"os"
	"path/filepath"
	"testing"

	"github.com/kmsdb/kmsdb/secretsource/kmstest"
)

// credentialVars are the environment variables through which credentials-go
// and the core SDK find credentials, endpoints or proxies on their own.
var credentialVars = []string{"ALIBABA_CLOUD_ACCESS_KEY_ID", "ALIBABA_CLOUD_ACCESS_KEY_SECRET", "ALIBABA_CLOUD_SECURITY_TOKEN",
	"ALIBABA_CLOUD_ROLE_ARN", "ALIBABA_CLOUD_OIDC_PROVIDER_ARN", "ALIBABA_CLOUD_OIDC_TOKEN_FILE", "ALIBABA_CLOUD_OIDC_TOKEN",
	"ALIBABA_CLOUD_CREDENTIALS_URI", "ALIBABA_CLOUD_ECS_METADATA", "ALIBABA_CLOUD_STS_REGION", "ALIBABA_CLOUD_PROFILE",
	"HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy", "DEBUG"}

// Hermetic keeps credentials-go away from the machine's own configuration
// (PROTOCOLS.md section 4) for the rest of the test: a fresh HOME, no
// credentials file, CLI profile or ECS metadata, and none of the credential
// variables, nor the extra ones given, set.
func Hermetic(t *testing.T, extra ...string) {
	t.Helper()
	home := t.TempDir()
	t.Setenv("HOME", home)
	t.Setenv("ALIBABA_CLOUD_ECS_METADATA_DISABLED", "true")
	t.Setenv("ALIBABA_CLOUD_CLI_PROFILE_DISABLED", "true")
	t.Setenv("ALIBABA_CLOUD_CREDENTIALS_FILE", filepath.Join(home, "none"))
	for _, k := range append(append([]string(nil), credentialVars...), extra...) {
		t.Setenv(k, "") // restored after the test
		os.Unsetenv(k)
	}
}

// TrustForSTS makes credentials-go's own HTTP requests (it clones
// http.DefaultTransport on every STS call, and STS is always HTTPS) trust the
// emulator's CA for the duration of the test. Tests using it are not parallel.
func TrustForSTS(t *testing.T, srv *kmstest.Server) {
	t.Helper()
	tr := http.DefaultTransport.(*http.Transport)
	old := tr.TLSClientConfig
	tr.TLSClientConfig = srv.TLSClientConfig()
	t.Cleanup(func() { tr.TLSClientConfig = old; tr.CloseIdleConnections() })
}
