package main

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"go.uber.org/goleak"
	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"

	"github.com/kmsdb/kmsdb/secretsource/kmstest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// The example logs in to a real x/crypto/ssh server that accepts the
// password the emulator's ECS secret holds now, configured by environment only.
func TestRunAgainstEmulator(t *testing.T) {
	const name = "acs/ecs/web-1"
	srv := kmstest.Start(t, kmstest.WithAccessKey("LTAItest", "test-secret"),
		kmstest.WithSecret(kmstest.SecretSpec{Name: name, Type: "ECS",
			Data:           `{"UserName":"root","Password":"ecs-example-password"}`,
			ExtendedConfig: map[string]any{"SecretSubType": "Password"}}))
	addr, hostKey := sshServer(t, func() string {
		st, _ := srv.Secret(name)
		return passwordOf(st.CurrentValue)
	})
	knownHostsFile := filepath.Join(t.TempDir(), "known_hosts")
	if err := os.WriteFile(knownHostsFile, []byte(knownhosts.Line([]string{addr}, hostKey)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{
		"cache_client_region_id":    fmt.Sprintf(`[{"regionId":"cn-hangzhou","endpoint":%q}]`, srv.KMSAddr()),
		"credentials_type":          "ak",
		"credentials_access_key_id": "LTAItest",
		"credentials_access_secret": "test-secret",
		"KMSDB_EXAMPLE_HTTP":        "true",
	}
	lookup := func(k string) (string, bool) { v, ok := env[k]; return v, ok }
	for i := 0; i < 2; i++ { // before and after a rotation
		var out bytes.Buffer
		if err := run(context.Background(), []string{"-addr", addr, "-known-hosts", knownHostsFile}, lookup, &out); err != nil {
			t.Fatalf("run: %v\n%s", err, out.String())
		}
		st, _ := srv.Secret(name)
		if !strings.Contains(out.String(), "logged in to "+addr+" as root") || strings.Contains(out.String(), "ecs-example-password") ||
			strings.Contains(out.String(), passwordOf(st.CurrentValue)) {
			t.Errorf("output:\n%s", out.String())
		}
		t.Log("\n" + out.String())
		if _, err := srv.RotateSecret(name); err != nil {
			t.Fatal(err)
		}
	}
}

func passwordOf(value string) string {
	var v struct{ Password string }
	_ = json.Unmarshal([]byte(value), &v)
	return v.Password
}

func sshServer(t *testing.T, password func() string) (string, ssh.PublicKey) {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	signer, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	cfg := &ssh.ServerConfig{PasswordCallback: func(c ssh.ConnMetadata, pw []byte) (*ssh.Permissions, error) {
		if c.User() == "root" && string(pw) == password() {
			return nil, nil
		}
		return nil, fmt.Errorf("refused")
	}}
	cfg.AddHostKey(signer)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer conn.Close()
				sc, chans, reqs, err := ssh.NewServerConn(conn, cfg)
				if err != nil {
					return
				}
				go ssh.DiscardRequests(reqs)
				for nc := range chans {
					_ = nc.Reject(ssh.Prohibited, "no sessions")
				}
				_ = sc.Close()
			}()
		}
	}()
	t.Cleanup(func() {
		_ = ln.Close()
		wg.Wait()
	})
	return ln.Addr().String(), signer.PublicKey()
}
