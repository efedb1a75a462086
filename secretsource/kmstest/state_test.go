package kmstest

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/alibabacloud-go/tea/tea"
	sdkerr "github.com/aliyun/alibaba-cloud-sdk-go/sdk/errors"
	"github.com/aliyun/alibaba-cloud-sdk-go/services/kms"
)

// coreRotate rotates a secret through the core SDK's RotateSecret action.
func coreRotate(t *testing.T, c *kms.Client, name string) string {
	t.Helper()
	req := kms.CreateRotateSecretRequest()
	req.SecretName = name
	resp, err := c.RotateSecret(req)
	if err != nil {
		var se *sdkerr.ServerError
		if errors.As(err, &se) {
			t.Fatalf("RotateSecret %s: %s", name, se.ErrorCode())
		}
		t.Fatalf("RotateSecret %s: %v", name, err)
	}
	return resp.VersionId
}

func TestStateDirSurvivesRestart(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state") // created by NewServer
	seed := []Option{
		WithAccessKey(testAK, testSK),
		WithSecret(SecretSpec{Name: rdsName, Type: "Rds", Data: rdsValue,
			ExtendedConfig: map[string]any{"SecretSubType": "SingleUser"}, AutomaticRotation: true,
			RotationInterval: 24 * time.Hour}),
		WithSecret(SecretSpec{Name: dkmsText, Data: "text value v1"}),
	}
	srv1, err := NewServer(append(seed, WithStateDir(dir))...)
	if err != nil {
		t.Fatal(err)
	}
	closed := false
	t.Cleanup(func() {
		if !closed {
			srv1.Close()
		}
	})
	if srv1.StateDir() != dir || filepath.Dir(srv1.CAFile()) != dir || filepath.Dir(srv1.OIDCTokenFile()) != dir {
		t.Fatalf("files not in the state dir: %s %s", srv1.CAFile(), srv1.OIDCTokenFile())
	}
	ck, err := srv1.NewClientKey()
	if err != nil {
		t.Fatal(err)
	}
	if filepath.Dir(ck.File) != dir {
		t.Fatalf("client key %s not in the state dir", ck.File)
	}
	newID := coreRotate(t, coreClient(t, srv1, true, testAK, testSK, "", ""), rdsName)
	rotated, _ := srv1.Secret(rdsName)
	if rotated.CurrentVersionID != newID {
		t.Fatalf("current %s, rotated to %s", rotated.CurrentVersionID, newID)
	}
	srv1.AddAccessKey("LTAIrevokedKey", "revoked-secret")
	srv1.RevokeAccessKey("LTAIrevokedKey")
	tmp := srv1.issueTemp(0)
	if err := srv1.PutSecretValue(dkmsText, "text value v2", "v-put", stagePending); err != nil {
		t.Fatal(err)
	}
	caPEM := srv1.CACertPEM()
	oidc, _ := os.ReadFile(srv1.OIDCTokenFile())
	srv1.Close()
	closed = true

	for _, f := range []string{stateFileName, "ca.pem", "oidc-token", filepath.Base(ck.File), filepath.Base(ck.PasswordFile)} {
		fi, err := os.Stat(filepath.Join(dir, f))
		if err != nil {
			t.Fatalf("after Close: %v", err)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("%s has mode %v, want 0600", f, fi.Mode().Perm())
		}
	}

	// Restart with the same seed plus a new secret: the state wins for what it holds.
	srv2 := Start(t, append(seed, WithStateDir(dir),
		WithSecret(SecretSpec{Name: genericName, Data: "added on restart"}))...)
	if !bytes.Equal(srv2.CACertPEM(), caPEM) {
		t.Error("the CA changed across the restart")
	}
	if b, _ := os.ReadFile(srv2.CAFile()); !bytes.Equal(b, caPEM) {
		t.Error("the CA file changed across the restart")
	}
	if b, _ := os.ReadFile(srv2.OIDCTokenFile()); !bytes.Equal(b, oidc) {
		t.Error("the OIDC token changed across the restart")
	}
	keys := srv2.ClientKeys()
	if len(keys) != 1 || keys[0].KeyID != ck.KeyID || keys[0].File != ck.File || keys[0].PasswordFile != ck.PasswordFile || keys[0].Password != "" {
		t.Fatalf("client keys after restart: %v", keys)
	}

	st, ok := srv2.Secret(rdsName)
	if !ok || st.CurrentVersionID != newID || st.CurrentValue != rotated.CurrentValue ||
		st.PreviousValue != rdsValue || st.Rotations != 1 || !st.LastRotationDate.Equal(rotated.LastRotationDate) ||
		!st.NextRotationDate.Equal(rotated.NextRotationDate) {
		t.Fatalf("rotated secret after restart: %v (want current %s)", st, newID)
	}
	if st, _ := srv2.Secret(dkmsText); st.PendingVersionID != "v-put" || st.CurrentValue != "text value v1" {
		t.Fatalf("put version after restart: %v", st)
	}
	if st, ok := srv2.Secret(genericName); !ok || st.CurrentValue != "added on restart" {
		t.Fatal("a seed secret new to the state was not added")
	}

	// Through the real SDKs: the rotated value over the shared gateway (the CA the client saved still verifies
	// the new leaf), the client key over the dedicated gateway.
	if v, code := coreFetch(t, coreClient(t, srv2, true, testAK, testSK, "", ""), rdsName); code != "" || v != rotated.CurrentValue {
		t.Fatalf("core SDK after restart: code %q, value matches: %v", code, v == rotated.CurrentValue)
	}
	c := dkmsClient(t, srv2.DKMSAddr(), ck, string(caPEM))
	r, err := dkmsGet(c, rdsName, "ACSPrevious", "", false)
	if err != nil || tea.StringValue(r.SecretData) != rdsValue {
		t.Fatalf("dedicated gateway with the kept client key: %v", err)
	}
	if _, code := coreFetch(t, coreClient(t, srv2, false, "LTAIrevokedKey", "revoked-secret", "", ""), rdsName); code != "InvalidAccessKeyId.NotFound" {
		t.Errorf("revoked key after restart: code %q", code)
	}
	if _, code := coreFetch(t, coreClient(t, srv2, false, tmp.AccessKeyID, tmp.AccessKeySecret, tmp.SecurityToken, ""), rdsName); code != "" {
		t.Errorf("unexpired STS key after restart: code %q", code)
	}
}

func TestStateDirRAMRevocationKept(t *testing.T) {
	dir := t.TempDir()
	ram := SecretSpec{Name: "acs/ram/user/app", Type: "RAMCredentials",
		Data: `{"AccessKeyId":"LTAIramOld","AccessKeySecret":"old-secret"}`}
	srv1, err := NewServer(WithStateDir(dir), WithSecret(ram), WithRAMKeyRevokeDelay(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := srv1.RotateSecret(ram.Name); err != nil {
		srv1.Close()
		t.Fatal(err)
	}
	st, _ := srv1.Secret(ram.Name)
	srv1.Close()
	p, _ := parseRAMPair(st.CurrentValue)

	srv2 := Start(t, WithStateDir(dir), WithSecret(ram))
	if _, code := coreFetch(t, coreClient(t, srv2, false, p.AccessKeyId, p.AccessKeySecret, "", ""), ram.Name); code != "" {
		t.Fatalf("rotated RAM key after restart: %q", code)
	}
	if _, code := coreFetch(t, coreClient(t, srv2, false, "LTAIramOld", "old-secret", "", ""), ram.Name); code != "" {
		t.Fatalf("old RAM key inside its revoke delay after restart: %q", code)
	}
	srv2.Advance(time.Hour)
	if _, code := coreFetch(t, coreClient(t, srv2, false, "LTAIramOld", "old-secret", "", ""), ram.Name); code != "InvalidAccessKeyId.NotFound" {
		t.Fatalf("old RAM key after its revoke delay: %q", code)
	}
}

func TestStateDirErrors(t *testing.T) {
	cases := []struct{ name, content, want string }{
		{"not JSON", "{", "not valid JSON"},
		{"other format", `{"format":7}`, "format 7"},
		{"bad CA", `{"format":1,"caCert":"x","caKey":"y"}`, "caCert and caKey must be PEM"},
		{"bad secret", `{"format":1,"secrets":[{"name":"s"}]}`, "secrets[0]: name and at least one version"},
		{"bad key", `{"format":1,"accessKeys":[{"id":"k"}]}`, "accessKeys[0]: id and secret"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, stateFileName)
			if err := os.WriteFile(path, []byte(tc.content), 0o600); err != nil {
				t.Fatal(err)
			}
			srv, err := NewServer(WithStateDir(dir))
			if err == nil {
				srv.Close()
				t.Fatal("NewServer accepted a bad state file")
			}
			if !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %q does not name the file and %q", err, tc.want)
			}
			if b, _ := os.ReadFile(path); string(b) != tc.content {
				t.Error("a failed start rewrote the state file")
			}
		})
	}
	if _, err := NewServer(WithStateDir(" ")); err == nil || !strings.Contains(err.Error(), "WithStateDir") {
		t.Fatalf("empty dir: %v", err)
	}
}

func TestTempDirRemovedOnClose(t *testing.T) {
	srv, err := NewServer()
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Dir(srv.CAFile())
	if srv.StateDir() != "" {
		t.Fatal("StateDir without WithStateDir")
	}
	if _, err := os.Stat(filepath.Join(dir, stateFileName)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("state file written without WithStateDir: %v", err)
	}
	srv.Close()
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("temp dir left after Close: %v", err)
	}
}

// TestStateDirConcurrentChanges: concurrent rotations and issued keys are all in the state the next start reads.
func TestStateDirConcurrentChanges(t *testing.T) {
	dir := t.TempDir()
	srv, err := NewServer(WithStateDir(dir), WithSecret(SecretSpec{Name: "a", Data: "v"}),
		WithSecret(SecretSpec{Name: "b", Data: "v"}))
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	ids := make(chan string, 40)
	for i := range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			name := []string{"a", "b"}[i%2]
			for range 2 {
				if _, err := srv.RotateSecret(name); err != nil {
					t.Error(err)
				}
				ids <- srv.issueTemp(0).AccessKeyID
			}
		}()
	}
	wg.Wait()
	close(ids)
	want := map[string]SecretState{}
	for _, n := range []string{"a", "b"} {
		want[n], _ = srv.Secret(n)
	}
	srv.Close()

	srv2 := Start(t, WithStateDir(dir))
	for n, w := range want {
		got, _ := srv2.Secret(n)
		if got.Rotations != 20 || got.CurrentVersionID != w.CurrentVersionID || got.CurrentValue != w.CurrentValue {
			t.Errorf("%s after restart: %v, want %v", n, got, w)
		}
	}
	for id := range ids {
		if _, aerr := srv2.lookupKey(id); aerr != nil {
			t.Errorf("issued key %s lost: %v", id, aerr)
		}
	}
}
