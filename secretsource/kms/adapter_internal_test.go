package kms

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"
)

// TestAdapterDoesNotQueueBehindRefresh: a Credential from NewCredential
// (kmsdb's own provider) is called without providerAdapter's lock, so while
// its refresh hangs another request still gets the held session at once.
func TestAdapterDoesNotQueueBehindRefresh(t *testing.T) {
	entered, release := make(chan struct{}, 8), make(chan struct{})
	var n atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		exp := time.Now().Add(90 * time.Second) // due for refresh (180 s before), still usable
		if k := n.Add(1); k > 1 {
			entered <- struct{}{}
			<-release
			exp = time.Now().Add(time.Hour)
		}
		fmt.Fprintf(w, `{"Code":"Success","AccessKeyId":"STS.k%d","AccessKeySecret":"s","SecurityToken":"t","Expiration":%q}`,
			n.Load(), exp.UTC().Format("2006-01-02T15:04:05Z"))
	}))
	defer srv.Close()
	cred, err := NewCredential(CredentialOptions{Type: CredentialCredentialsURI, URL: srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	a := newProviderAdapter(cred)
	first, err := a.GetCredentials()
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan string)
	go func() {
		cc, err := a.GetCredentials()
		if err != nil {
			done <- err.Error()
			return
		}
		done <- cc.AccessKeyId
	}()
	<-entered
	// Returns while the refresh hangs, or the test hangs (release is closed after).
	cc, err := a.GetCredentials()
	if err != nil || cc.AccessKeyId != first.AccessKeyId {
		t.Fatalf("during the refresh: %v, %v", cc, err)
	}
	close(release)
	if id := <-done; id == first.AccessKeyId {
		t.Fatalf("refresh returned %q", id)
	}
}
