package ramsecret_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/kmsdb/kmsdb/internal/syncbuf"
	"github.com/kmsdb/kmsdb/ramsecret"
	"github.com/kmsdb/kmsdb/secretsource"
	"github.com/kmsdb/kmsdb/secretsource/cache"
	"github.com/kmsdb/kmsdb/secretsource/kms"
	"github.com/kmsdb/kmsdb/secretsource/kmstest"
)

// sshServer is a real x/crypto/ssh server that accepts exactly the login the
// emulator's ECS secret holds now, as an ECS instance does after KMS rotated
// its password or key.
type sshServer struct {
	addr    string
	hostKey ssh.PublicKey
	ln      net.Listener
	wg      sync.WaitGroup
	mu      sync.Mutex
	logins  int
}

func startSSHServer(t *testing.T, srv *kmstest.Server, secret string) *sshServer {
	t.Helper()
	_, hostPriv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	hostSigner, err := ssh.NewSignerFromKey(hostPriv)
	if err != nil {
		t.Fatal(err)
	}
	current := func() (user, password string, pub ssh.PublicKey) {
		st, _ := srv.Secret(secret)
		var v struct{ UserName, Password, PublicKey string }
		_ = json.Unmarshal([]byte(st.CurrentValue), &v)
		if v.PublicKey != "" {
			pub, _, _, _, _ = ssh.ParseAuthorizedKey([]byte(v.PublicKey))
		}
		return v.UserName, v.Password, pub
	}
	errRefused := errors.New("refused")
	cfg := &ssh.ServerConfig{
		PasswordCallback: func(c ssh.ConnMetadata, pw []byte) (*ssh.Permissions, error) {
			user, want, _ := current()
			if c.User() == user && want != "" && string(pw) == want {
				return nil, nil
			}
			return nil, errRefused
		},
		PublicKeyCallback: func(c ssh.ConnMetadata, key ssh.PublicKey) (*ssh.Permissions, error) {
			user, _, want := current()
			if c.User() == user && want != nil && bytes.Equal(key.Marshal(), want.Marshal()) {
				return nil, nil
			}
			return nil, errRefused
		},
	}
	cfg.AddHostKey(hostSigner)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &sshServer{addr: ln.Addr().String(), hostKey: hostSigner.PublicKey(), ln: ln}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			s.wg.Add(1)
			go func() {
				defer s.wg.Done()
				defer conn.Close()
				sc, chans, reqs, err := ssh.NewServerConn(conn, cfg)
				if err != nil {
					return
				}
				s.mu.Lock()
				s.logins++
				s.mu.Unlock()
				go ssh.DiscardRequests(reqs)
				for nc := range chans {
					_ = nc.Reject(ssh.Prohibited, "no sessions here")
				}
				_ = sc.Close()
			}()
		}
	}()
	t.Cleanup(func() {
		_ = ln.Close()
		s.wg.Wait()
	})
	return s
}

func ed25519Login(t *testing.T, user string) string {
	t.Helper()
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	sshPub, err := ssh.NewPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	v, _ := json.Marshal(map[string]string{"UserName": user,
		"PublicKey":  strings.TrimSpace(string(ssh.MarshalAuthorizedKey(sshPub))),
		"PrivateKey": string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}))})
	return string(v)
}

type ecsEnv struct {
	srv  *kmstest.Server
	ecs  *ramsecret.ECS
	logs *syncbuf.Buffer
}

func newECSEnv(t *testing.T, spec kmstest.SecretSpec) *ecsEnv {
	t.Helper()
	logs := &syncbuf.Buffer{}
	logger := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	srv := kmstest.Start(t, kmstest.WithAccessKey(sourceAK, sourceSK), kmstest.WithSecret(spec), kmstest.WithLogger(logger))
	src, err := kms.New(kms.Config{Region: kms.Region{ID: region, Endpoint: srv.KMSAddr()}, Scheme: "http",
		Credential: staticCredential(t, sourceAK, sourceSK), Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	c, err := cache.New(src, cache.WithTTL(time.Hour), cache.WithLogger(logger))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = c.Close()
		_ = src.Close()
	})
	e, err := ramsecret.NewECS(c, spec.Name, ramsecret.WithLogger(logger))
	if err != nil {
		t.Fatal(err)
	}
	return &ecsEnv{srv: srv, ecs: e, logs: logs}
}

// An ECS secret rotates underneath: Dial finds its login refused, refreshes
// once and logs in with the new password or key.
func TestECSDialRecoversAfterRotation(t *testing.T) {
	cases := []struct {
		name, subType, data string
	}{
		{"password", "Password", `{"UserName":"root","Password":"first-ecs-password-0001"}`},
		{"ssh key", "SSHKey", ed25519Login(t, "ecs-user")},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			name := "acs/ecs/" + tc.subType
			env := newECSEnv(t, kmstest.SecretSpec{Name: name, Type: "ECS", Data: tc.data,
				ExtendedConfig: map[string]any{"SecretSubType": tc.subType, "RegionId": region, "InstanceId": "i-test"}})
			sshd := startSSHServer(t, env.srv, name)
			ctx := context.Background()
			hostKey := ssh.FixedHostKey(sshd.hostKey)

			client, err := env.ecs.Dial(ctx, "tcp", sshd.addr, hostKey)
			if err != nil {
				t.Fatalf("first login: %v", err)
			}
			_ = client.Close()

			if _, err := env.srv.RotateSecret(name); err != nil {
				t.Fatal(err)
			}
			env.srv.ResetCalls()
			// The cached (old) login is refused now; Dial recovers.
			client, err = env.ecs.Dial(ctx, "tcp", sshd.addr, hostKey)
			if err != nil {
				t.Fatalf("login after rotation: %v", err)
			}
			_ = client.Close()
			if st := env.ecs.Stats(); st != (ramsecret.Stats{Refreshes: 1, Retries: 1}) {
				t.Errorf("stats %+v", st)
			}
			if n := env.srv.Calls("GetSecretValue", name); n != 1 {
				t.Errorf("%d GetSecretValue calls, want 1", n)
			}
			cred, err := env.ecs.Credential(ctx)
			if err != nil {
				t.Fatal(err)
			}
			st, _ := env.srv.Secret(name)
			if cred.VersionID != st.CurrentVersionID {
				t.Errorf("serving version %q, current %q", cred.VersionID, st.CurrentVersionID)
			}

			// ClientConfig gives the same login to a caller that dials itself.
			cfg, err := env.ecs.ClientConfig(ctx, hostKey)
			if err != nil {
				t.Fatal(err)
			}
			client, err = ssh.Dial("tcp", sshd.addr, cfg)
			if err != nil {
				t.Fatalf("ssh.Dial with ClientConfig: %v", err)
			}
			_ = client.Close()

			checkECSOutput(t, env, cred, []string{fmt.Sprintf("%v %+v %#v", cred, cred, env.ecs)})
		})
	}
}

// A refused login with nothing newer in KMS: one refresh, no second dial, a
// plain error without the password or key.
func TestECSDialRefusedNoNewerVersion(t *testing.T) {
	name := "acs/ecs/refused"
	env := newECSEnv(t, kmstest.SecretSpec{Name: name, Type: "ECS",
		Data:           `{"UserName":"root","Password":"refused-ecs-password-77"}`,
		ExtendedConfig: map[string]any{"SecretSubType": "Password"}})
	other := newECSEnv(t, kmstest.SecretSpec{Name: name, Type: "ECS",
		Data:           `{"UserName":"root","Password":"the-instance-has-another"}`,
		ExtendedConfig: map[string]any{"SecretSubType": "Password"}})
	sshd := startSSHServer(t, other.srv, name) // accepts only the other password
	_, err := env.ecs.Dial(context.Background(), "tcp", sshd.addr, ssh.FixedHostKey(sshd.hostKey))
	if err == nil {
		t.Fatal("login with the wrong password succeeded")
	}
	if st := env.ecs.Stats(); st.Refreshes != 1 || st.Retries != 0 {
		t.Errorf("stats %+v", st)
	}
	sshd.mu.Lock()
	if sshd.logins != 0 {
		t.Errorf("%d logins", sshd.logins)
	}
	sshd.mu.Unlock()
	cred, _ := env.ecs.Credential(context.Background())
	checkECSOutput(t, env, cred, []string{err.Error(), fmt.Sprintf("%+v", err)})
}

func TestECSHelpers(t *testing.T) {
	key := ed25519Login(t, "u")
	var v struct{ UserName, PublicKey, PrivateKey string }
	_ = json.Unmarshal([]byte(key), &v)
	keyCred := secretsource.ECSCredential{UserName: "u", PrivateKey: v.PrivateKey, PublicKey: v.PublicKey, SecretName: "s", VersionID: "v1"}
	signer, err := ramsecret.SSHSigner(keyCred)
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.TrimSpace(string(ssh.MarshalAuthorizedKey(signer.PublicKey()))); got != v.PublicKey {
		t.Errorf("signer's public key %q, secret's %q", got, v.PublicKey)
	}
	if _, err := ramsecret.SSHAuthMethod(keyCred); err != nil {
		t.Error(err)
	}
	if _, err := ramsecret.SSHAuthMethod(secretsource.ECSCredential{UserName: "u", Password: "p"}); err != nil {
		t.Error(err)
	}
	bad := secretsource.ECSCredential{UserName: "u", PrivateKey: "-----BEGIN PRIVATE KEY-----\nnot-a-key-SECRETBYTES\n-----END PRIVATE KEY-----\n", SecretName: "s", VersionID: "v1"}
	_, err = ramsecret.SSHSigner(bad)
	if err == nil || strings.Contains(err.Error(), "SECRETBYTES") || !strings.Contains(err.Error(), `"s"`) {
		t.Errorf("bad key: %v", err)
	}
	if _, err := ramsecret.SSHAuthMethod(secretsource.ECSCredential{UserName: "u", SecretName: "s"}); err == nil {
		t.Error("empty login accepted")
	}
	if _, err := ramsecret.SSHSigner(secretsource.ECSCredential{Password: "p"}); err == nil {
		t.Error("password login gave a signer")
	}
	if _, err := ramsecret.NewECS(nil, "x"); err == nil {
		t.Error("nil cache accepted")
	}
	if _, err := (&ramsecret.ECS{}).ClientConfig(context.Background(), nil); err == nil {
		t.Error("nil host key callback accepted")
	}
}

// checkECSOutput fails if a password or private key of the secret shows in
// the texts or the logs.
func checkECSOutput(t *testing.T, env *ecsEnv, cred secretsource.ECSCredential, texts []string) {
	t.Helper()
	texts = append(texts, env.logs.String())
	var secrets []string
	if cred.Password != "" {
		secrets = append(secrets, cred.Password)
	}
	if cred.PrivateKey != "" {
		// Any line of the key body.
		for _, line := range strings.Split(cred.PrivateKey, "\n") {
			if len(line) > 20 && !strings.HasPrefix(line, "-----") {
				secrets = append(secrets, line)
			}
		}
	}
	for _, text := range texts {
		for _, s := range secrets {
			if strings.Contains(text, s) {
				t.Errorf("a password or key appears in output: %.200q", text)
			}
		}
	}
}
