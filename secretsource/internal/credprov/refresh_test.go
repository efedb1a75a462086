package credprov

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aliyun/credentials-go/credentials/providers"

	"github.com/kmsdb/kmsdb/internal/credtest"
)

// slowRefresh is a credentials URI whose first answer is due for refresh at
// once but usable for minutes, and whose later answers wait for release
// (a blackholed endpoint). entered receives when a later request arrives.
func slowRefresh(t *testing.T) (srv *httptest.Server, entered chan struct{}, release chan struct{}) {
	t.Helper()
	entered, release = make(chan struct{}, 8), make(chan struct{})
	var n atomic.Int32
	srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		exp := time.Now().Add(refreshBefore / 2) // due for refresh, usable
		if k := n.Add(1); k > 1 {
			entered <- struct{}{}
			<-release
			exp = time.Now().Add(time.Hour)
		}
		fmt.Fprintf(w, `{"Code":"Success","AccessKeyId":"STS.k%d","AccessKeySecret":"s","SecurityToken":"t","Expiration":%q}`,
			n.Load(), exp.UTC().Format("2006-01-02T15:04:05Z"))
	}))
	t.Cleanup(srv.Close)
	return srv, entered, release
}

// TestRefreshDoesNotQueueCallers: while a provider's refresh hangs, another
// GetCredentials (every KMS request) gets the held session at once, for the
// provider alone and through the default chain.
func TestRefreshDoesNotQueueCallers(t *testing.T) {
	credtest.Hermetic(t)
	t.Setenv("ALIBABA_CLOUD_ECS_METADATA_DISABLED", "true")
	t.Setenv("ALIBABA_CLOUD_CLI_PROFILE_DISABLED", "true")
	for _, tc := range []struct {
		name string
		make func(url string) providers.CredentialsProvider
	}{
		{"uri", func(url string) providers.CredentialsProvider {
			p, err := NewURI(url, HTTPOptions{})
			if err != nil {
				t.Fatal(err)
			}
			return p
		}},
		{"chain", func(url string) providers.CredentialsProvider {
			t.Setenv("ALIBABA_CLOUD_CREDENTIALS_URI", url)
			return NewChain(HTTPOptions{})
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv, entered, release := slowRefresh(t)
			p := tc.make(srv.URL)
			first, err := p.GetCredentials()
			if err != nil {
				t.Fatal(err)
			}
			refreshed := make(chan *providers.Credentials)
			go func() {
				cc, _ := p.GetCredentials()
				refreshed <- cc
			}()
			<-entered
			// Must return while the refresh hangs: if it waited, the test
			// would hang (release is closed after it).
			cc, err := p.GetCredentials()
			if err != nil || cc.AccessKeyId != first.AccessKeyId {
				t.Fatalf("during the refresh: %v, %v; want the held session", cc, err)
			}
			close(release)
			if cc := <-refreshed; cc == nil || cc.AccessKeyId == first.AccessKeyId {
				t.Fatalf("refresh: %+v", cc)
			}
		})
	}
}
