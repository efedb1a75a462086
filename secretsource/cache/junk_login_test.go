package cache_test

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kmsdb/kmsdb/drivers/mysqlkms"
	"github.com/kmsdb/kmsdb/internal/credtest"
	"github.com/kmsdb/kmsdb/internal/testdb"
	"github.com/kmsdb/kmsdb/secretsource"
	"github.com/kmsdb/kmsdb/secretsource/cache"
	"github.com/kmsdb/kmsdb/secretsource/kms"
)

// TestJunkAnswersKeepTheLoginWorking: the real KMS source in front of a
// gateway that answers the secret once, then junk (HTTP 200 with an empty
// body, {}, an error document, another secret's answer, an answer without
// ACSCurrent). The cache keeps serving the good version, and a real MariaDB
// login with it still works. Before, {} became a version "" with an empty
// value, replaced the good one, and every login failed until the next TTL.
func TestJunkAnswersKeepTheLoginWorking(t *testing.T) {
	credtest.Hermetic(t)
	db := testdb.MariaDB(t)
	db.RequirePasswordEnforced(t)
	var b [12]byte
	_, _ = rand.Read(b[:])
	password := "junk-" + hex.EncodeToString(b[:])
	user := db.CreateUser(t, "junk", password)
	value, err := json.Marshal(db.Account(user, password))
	if err != nil {
		t.Fatal(err)
	}
	const name = "db/junk"
	gateway := func(secret, version string, stages ...string) string {
		b, _ := json.Marshal(map[string]any{"RequestId": "R", "SecretName": secret, "VersionId": version,
			"SecretType": "Rds", "SecretData": string(value), "VersionStages": map[string]any{"VersionStage": stages}})
		return string(b)
	}
	var body atomic.Pointer[string]
	set := func(s string) { body.Store(&s) }
	set(gateway(name, "v1", secretsource.StageCurrent))
	fake := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		_, _ = io.WriteString(w, *body.Load())
	}))
	defer fake.Close()

	cred, err := kms.NewCredential(kms.CredentialOptions{Type: kms.CredentialAccessKey, AccessKeyID: "LTAIjunk", AccessKeySecret: "junk-ak"})
	if err != nil {
		t.Fatal(err)
	}
	src, err := kms.New(kms.Config{Region: kms.Region{ID: "cn-hangzhou", Endpoint: strings.TrimPrefix(fake.URL, "http://")},
		Scheme: "http", Credential: cred, Timeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	c, err := cache.New(src, cache.WithRefreshLimit(time.Millisecond, 100))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx := context.Background()
	good, err := c.GetSecret(ctx, name)
	if err != nil || good.VersionID() != "v1" {
		t.Fatalf("first fetch: %v, %v", good, err)
	}

	conn := sql.OpenDB(mysqlkms.NewConnector(name, mysqlkms.WithSource(c)))
	conn.SetMaxIdleConns(0) // every query logs in anew
	defer conn.Close()
	for _, junk := range []string{"", "{}", `{"Code":"Throttling"}`, gateway("db/other", "v9", secretsource.StageCurrent),
		gateway(name, "", secretsource.StageCurrent), gateway(name, "v2", secretsource.StagePrevious)} {
		set(junk)
		if _, err := c.Refresh(ctx, name); !errors.Is(err, secretsource.ErrInvalidAnswer) {
			t.Fatalf("Refresh with answer %.40q: %v, want an invalid answer", junk, err)
		}
		if s, err := c.GetSecret(ctx, name); err != nil || s != good {
			t.Fatalf("after answer %.40q GetSecret = %v, %v; want the good version", junk, s, err)
		}
		var who string
		qctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		err := conn.QueryRowContext(qctx, "SELECT SUBSTRING_INDEX(CURRENT_USER(), '@', 1)").Scan(&who)
		cancel()
		if err != nil || who != user {
			t.Fatalf("login after answer %.40q: %q, %v", junk, who, err)
		}
	}
}
