package secretsource_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/kmsdb/kmsdb/secretsource"
)

// Failover is exercised against the emulator through two KMS sources in
// secretsource/kms (TestFailoverFunction); these tests pin its rules.

type stubSource struct {
	name  string
	err   error
	calls int
}

func (s *stubSource) GetSecret(_ context.Context, name string) (*secretsource.Secret, error) {
	s.calls++
	if s.err != nil {
		return nil, s.err
	}
	return secretsource.NewSecret(secretsource.Fields{Name: name, VersionID: s.name}), nil
}

type stubVersionSource struct{ stubSource }

func (s *stubVersionSource) GetSecretVersion(ctx context.Context, name string, ref secretsource.VersionRef) (*secretsource.Secret, error) {
	if _, err := s.GetSecret(ctx, name); err != nil {
		return nil, err
	}
	return secretsource.NewSecret(secretsource.Fields{Name: name, VersionID: s.name + "/" + ref.Stage}), nil
}

func kindErr(k secretsource.Kind, code string) error {
	return &secretsource.Error{Kind: k, Source: "stub", Code: code, RequestID: "req-" + code}
}

func TestFailoverRules(t *testing.T) {
	cases := []struct {
		name      string
		errs      []error
		wantFrom  string // VersionID of the answering source, "" for an error
		wantKind  secretsource.Kind
		wantCalls []int
	}{
		{"first answers", []error{nil, nil}, "s0", 0, []int{1, 0}},
		{"throttled moves on", []error{kindErr(secretsource.KindThrottled, "Rejected.Throttling"), nil}, "s1", 0, []int{1, 1}},
		{"network moves on", []error{kindErr(secretsource.KindNetwork, ""), nil}, "s1", 0, []int{1, 1}},
		{"timeout moves on", []error{context.DeadlineExceeded, nil}, "s1", 0, []int{1, 1}},
		{"not found stops", []error{kindErr(secretsource.KindNotFound, "Forbidden.ResourceNotFound"), nil}, "", secretsource.KindNotFound, []int{1, 0}},
		{"access denied stops", []error{kindErr(secretsource.KindAccessDenied, "Forbidden.NoPermission"), nil}, "", secretsource.KindAccessDenied, []int{1, 0}},
		{"bad credentials stop", []error{kindErr(secretsource.KindInvalidCredentials, "SignatureDoesNotMatch"), nil}, "", secretsource.KindInvalidCredentials, []int{1, 0}},
		{"cancelled stops", []error{context.Canceled, nil}, "", secretsource.KindUnknown, []int{1, 0}},
		{"all fail", []error{kindErr(secretsource.KindUnavailable, "ServiceUnavailableTemporary"), kindErr(secretsource.KindThrottled, "Rejected.Throttling"), kindErr(secretsource.KindInternal, "InternalFailure")},
			"", secretsource.KindInternal, []int{1, 1, 1}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			stubs := make([]*stubSource, len(c.errs))
			srcs := make([]secretsource.Source, len(c.errs))
			for i, err := range c.errs {
				stubs[i] = &stubSource{name: fmt.Sprintf("s%d", i), err: err}
				srcs[i] = stubs[i]
			}
			s, err := secretsource.Failover(srcs...).GetSecret(context.Background(), "db")
			if c.wantFrom != "" {
				if err != nil || s.VersionID() != c.wantFrom {
					t.Fatalf("got %v, %v; want the answer of %s", s, err, c.wantFrom)
				}
			} else if err == nil || secretsource.KindOf(err) != c.wantKind {
				t.Fatalf("got %v (kind %v), want kind %v", err, secretsource.KindOf(err), c.wantKind)
			}
			for i, want := range c.wantCalls {
				if stubs[i].calls != want {
					t.Errorf("source %d called %d times, want %d", i, stubs[i].calls, want)
				}
			}
		})
	}
}

func TestFailoverAllFailKeepsEveryError(t *testing.T) {
	a := &stubSource{err: kindErr(secretsource.KindUnavailable, "ServiceUnavailableTemporary")}
	b := &stubSource{err: kindErr(secretsource.KindThrottled, "Rejected.Throttling")}
	_, err := secretsource.Failover(a, b).GetSecret(context.Background(), "db")
	var e *secretsource.Error
	if !errors.As(err, &e) || e.Kind != secretsource.KindThrottled || e.Code != "Rejected.Throttling" ||
		e.RequestID != "req-Rejected.Throttling" || e.Secret != "db" {
		t.Fatalf("got %#v", err)
	}
	if !errors.Is(err, secretsource.ErrUnavailable) || !errors.Is(err, secretsource.ErrThrottled) || !secretsource.IsRetryable(err) {
		t.Errorf("both failures should be visible and the whole retryable: %v", err)
	}
	if !strings.Contains(err.Error(), "2 of 2 sources") {
		t.Errorf("message: %v", err)
	}
}

// TestFailoverNamesEachMember: when every member fails, the message says
// which ones were tried, by region and endpoint (of their *Error),
// by position otherwise.
func TestFailoverNamesEachMember(t *testing.T) {
	a := &stubSource{err: &secretsource.Error{Kind: secretsource.KindUnavailable, Source: "dkms", Region: "cn-a", Endpoint: "kst-a.example"}}
	b := &stubSource{err: &secretsource.Error{Kind: secretsource.KindThrottled, Source: "kms", Region: "cn-b"}}
	c := &stubSource{err: context.DeadlineExceeded}
	_, err := secretsource.Failover(a, b, c).GetSecret(context.Background(), "db")
	if want := "3 of 3 sources tried (cn-a (kst-a.example), cn-b, source 3), all failed"; err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("error %v\ndoes not contain %q", err, want)
	}
}

func TestFailoverShapes(t *testing.T) {
	plain := &stubSource{name: "p"}
	if got := secretsource.Failover(plain); got != secretsource.Source(plain) {
		t.Error("a single source should be returned unchanged")
	}
	if got := secretsource.Failover(nil, plain, nil); got != secretsource.Source(plain) {
		t.Error("nil sources should be ignored")
	}
	_, err := secretsource.Failover().GetSecret(context.Background(), "db")
	if !errors.Is(err, secretsource.ErrConfig) {
		t.Errorf("no source: %v", err)
	}

	v1, v2 := &stubVersionSource{stubSource{name: "a", err: kindErr(secretsource.KindNetwork, "")}}, &stubVersionSource{stubSource{name: "b"}}
	f := secretsource.Failover(v1, v2)
	vs, ok := f.(secretsource.VersionSource)
	if !ok {
		t.Fatal("Failover of VersionSources is not a VersionSource")
	}
	s, err := vs.GetSecretVersion(context.Background(), "db", secretsource.VersionRef{Stage: secretsource.StagePrevious})
	if err != nil || s.VersionID() != "b/"+secretsource.StagePrevious {
		t.Errorf("GetSecretVersion: %v %v", s, err)
	}
	if _, ok := secretsource.Failover(v1, plain).(secretsource.VersionSource); ok {
		t.Error("a Failover with a plain member must not claim VersionSource")
	}
	if !strings.Contains(fmt.Sprint(f), "failover(2 sources)") {
		t.Errorf("String: %v", f)
	}
}

func ExampleFailover() {
	primary := secretsource.SourceFunc(func(ctx context.Context, name string) (*secretsource.Secret, error) {
		return nil, &secretsource.Error{Kind: secretsource.KindThrottled, Secret: name, Code: "Rejected.Throttling"}
	})
	secondary := secretsource.SourceFunc(func(ctx context.Context, name string) (*secretsource.Secret, error) {
		return secretsource.NewSecret(secretsource.Fields{Name: name, VersionID: "v1", Value: []byte("s3cr3t")}), nil
	})
	src := secretsource.Failover(primary, secondary)
	s, err := src.GetSecret(context.Background(), "db/app")
	fmt.Println(s, err)
	// Output: secret(name="db/app" version="v1" type="" value=REDACTED) <nil>
}

// TestFailoverMovesOnAfterTLSFailure: a certificate that does not verify is
// not retryable, but another region's endpoint may have a good one.
func TestFailoverMovesOnAfterTLSFailure(t *testing.T) {
	bad := secretsource.SourceFunc(func(ctx context.Context, name string) (*secretsource.Secret, error) {
		return nil, &secretsource.Error{Kind: secretsource.KindTLS, Secret: name, Source: "kms", Region: "cn-a"}
	})
	good := secretsource.SourceFunc(func(ctx context.Context, name string) (*secretsource.Secret, error) {
		return secretsource.NewSecret(secretsource.Fields{Name: name, VersionID: "v1", Value: []byte("x")}), nil
	})
	if _, err := secretsource.Failover(bad, good).GetSecret(context.Background(), "s"); err != nil {
		t.Fatalf("the second region was not tried: %v", err)
	}
	_, err := secretsource.Failover(bad, bad).GetSecret(context.Background(), "s")
	if !errors.Is(err, secretsource.ErrTLS) || !errors.Is(err, secretsource.ErrNetwork) || secretsource.IsRetryable(err) {
		t.Fatalf("got %v", err)
	}
}
