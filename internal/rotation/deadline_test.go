package rotation

import (
	"context"
	"errors"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/kmsdb/kmsdb/connector"
	"github.com/kmsdb/kmsdb/secretsource"
)

// TestRunDeadlineInGraceReportsRejection: a wrong password whose context
// ends inside the grace period, while a later attempt dials (it dies on the
// deadline: "i/o timeout"), reports the rejection, with the wait as context.
func TestRunDeadlineInGraceReportsRejection(t *testing.T) {
	src := newRotating("v1", "pw-wrong-1111")
	db := &fakeDB{password: "pw-right-2222"}
	l, _, _ := newTestLogin(t, src, time.Hour)
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	var n int
	_, err := Run(ctx, l, func(ctx context.Context, acct secretsource.DBAccount) (string, error) {
		if n++; n == 1 {
			return db.attempt(ctx, acct)
		}
		<-ctx.Done() // the dial outlives the caller's deadline
		return "", &net.OpError{Op: "dial", Net: "tcp", Err: os.ErrDeadlineExceeded}
	})
	if n < 2 {
		t.Fatalf("only %d attempts: the test does not reach a dial at the deadline (%v)", n, err)
	}
	var e *connector.Error
	if !errors.As(err, &e) || e.Class != connector.AuthFailure || !errors.Is(err, connector.ErrCredentialsRejected) || !errors.Is(err, errAuth) {
		t.Fatalf("want the rejection, got %v", err)
	}
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "stopped waiting for the rotation: context deadline exceeded") {
		t.Errorf("the wait is not the context of the error: %v", err)
	}
	if strings.Contains(err.Error(), "pw-wrong-1111") {
		t.Errorf("password in error: %v", err)
	}
	t.Log(err)
}

// TestSecretErrorNamesTheSecretOnce: a connector error around the source's
// error for the same secret names it once.
func TestSecretErrorNamesTheSecretOnce(t *testing.T) {
	src := newRotating("v1", "x")
	src.failWith = &secretsource.Error{Kind: secretsource.KindNotFound, Secret: "db", Source: "kms", Message: "no such secret"}
	l, _, _ := newTestLogin(t, src, 0)
	_, err := Run(context.Background(), l, (&fakeDB{}).attempt)
	if !errors.Is(err, secretsource.ErrNotFound) {
		t.Fatalf("err = %v", err)
	}
	if n := strings.Count(err.Error(), `"db"`); n != 1 {
		t.Errorf("the secret is named %d times: %v", n, err)
	}
	if !strings.Contains(err.Error(), "secretsource: kms: not found: no such secret") {
		t.Errorf("the source's error lost its layers: %v", err)
	}
}
