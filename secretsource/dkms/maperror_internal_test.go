package dkms

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
	"syscall"
	"testing"

	"github.com/kmsdb/kmsdb/secretsource"
)

// TestMapErrorScrubsTheCause: a transport error whose text holds a
// credential (a proxy URL with its password, a signed query) keeps no trace of
// it in the error, through any verb or down the Unwrap chain, while
// errors.Is/As still reach the network cause. The cause used to be kept raw.
func TestMapErrorScrubsTheCause(t *testing.T) {
	const pw, token = "pr0xy-pa55", "tok-s3cret"
	op := &net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}
	for _, tt := range []struct {
		name string
		err  error
		kind secretsource.Kind
	}{
		{"proxy URL in the cause", &url.Error{Op: "Post", URL: "https://kst-1.example:8443/",
			Err: fmt.Errorf("proxyconnect tcp: dial http://user:%s@127.0.0.1:3128/?token=%s: %w", pw, token, op)}, secretsource.KindNetwork},
		{"credentials in the URL", &url.Error{Op: "Post", URL: "https://user:" + pw + "@kst-1.example:8443/?token=" + token,
			Err: fmt.Errorf("Post https://user:%s@kst-1.example/?x=%s: %w", pw, token, context.DeadlineExceeded)}, secretsource.KindTimeout},
	} {
		t.Run(tt.name, func(t *testing.T) {
			e := mapError(tt.err, "db/app", &endpoint{region: "cn-hangzhou", host: "kst-1.example:8443"})
			if e.Kind != tt.kind {
				t.Errorf("kind %v, want %v", e.Kind, tt.kind)
			}
			texts := []string{fmt.Sprintf("%v", e), fmt.Sprintf("%+v", e), fmt.Sprintf("%#v", e)}
			for u := error(e); u != nil; u = errors.Unwrap(u) {
				texts = append(texts, u.Error(), fmt.Sprintf("%+v", u))
			}
			for _, s := range texts {
				if strings.Contains(s, pw) || strings.Contains(s, token) {
					t.Errorf("the credential leaks: %s", s)
				}
			}
			if e.Err == nil {
				t.Fatal("the cause is dropped: errors.Is/As cannot classify it")
			}
			if tt.kind == secretsource.KindNetwork && !errors.Is(e, syscall.ECONNREFUSED) {
				t.Errorf("errors.Is(err, ECONNREFUSED) is false: %v", e)
			}
			if tt.kind == secretsource.KindTimeout && !errors.Is(e, context.DeadlineExceeded) {
				t.Errorf("errors.Is(err, DeadlineExceeded) is false: %v", e)
			}
		})
	}
}
