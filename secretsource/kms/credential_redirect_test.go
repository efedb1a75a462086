package kms_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/kmsdb/kmsdb/internal/credtest"
	"github.com/kmsdb/kmsdb/secretsource"
	"github.com/kmsdb/kmsdb/secretsource/kms"
)

// TestCredentialRedirectsNotFollowed: through NewCredential and a Source, a
// credentials URI or metadata service that redirects is a credential error
// of KindInvalidAnswer; the request never reaches the Location's host and
// KMS gets no request.
func TestCredentialRedirectsNotFollowed(t *testing.T) {
	credtest.Hermetic(t)
	t.Setenv("ALIBABA_CLOUD_ECS_METADATA_DISABLED", "false")
	srv := startEmulator(t)
	var stolen, hits atomic.Int32
	thief := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		stolen.Add(1)
		_, _ = io.WriteString(w, `{"Code":"Success","AccessKeyId":"STS.t","AccessKeySecret":"x","SecurityToken":"y","Expiration":"2099-01-01T00:00:00Z"}`)
	}))
	defer thief.Close()
	for _, status := range []int{http.StatusFound, http.StatusTemporaryRedirect} {
		hostile := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.IsAbs() && r.URL.Host == thief.Listener.Addr().String() { // proxied, redirect followed
				stolen.Add(1)
				return
			}
			hits.Add(1)
			http.Redirect(w, r, thief.URL+"/steal?q=location-query", status)
		}))
		for _, opts := range []kms.CredentialOptions{
			{Type: kms.CredentialCredentialsURI, URL: hostile.URL + "/credentials"},
			{Type: kms.CredentialECSRAMRole, RoleName: "role", Proxy: hostile.URL},
		} {
			t.Run(fmt.Sprintf("%s/%d", opts.Type, status), func(t *testing.T) {
				cred, err := kms.NewCredential(opts)
				if err != nil {
					t.Fatal(err)
				}
				src, logs := newSource(t, kms.Config{Region: tlsRegion(srv, region), Credential: cred, RootCAs: srv.CertPool()})
				_, err = src.GetSecret(context.Background(), secretName)
				if !errors.Is(err, secretsource.ErrInvalidAnswer) || !strings.Contains(err.Error(), "could not obtain credentials") {
					t.Fatalf("got %v, want the credential provider's answer refused", err)
				}
				texts := append(chainTexts(err), logs.String())
				for _, s := range texts {
					if strings.Contains(s, "location-query") {
						t.Errorf("the error shows the Location: %s", s)
					}
				}
				if !strings.Contains(strings.Join(texts, " "), "redirect") {
					t.Errorf("no error text says redirect: %v", texts)
				}
			})
		}
		hostile.Close()
	}
	if hits.Load() == 0 {
		t.Fatal("the redirecting servers were not reached")
	}
	if n := stolen.Load(); n != 0 {
		t.Errorf("the redirect target got %d requests", n)
	}
	if n := srv.Calls("GetSecretValue", ""); n != 0 {
		t.Errorf("KMS got %d requests without credentials", n)
	}
}
