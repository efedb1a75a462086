package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aliyun/alibaba-cloud-sdk-go/sdk"
	sdkcred "github.com/aliyun/alibaba-cloud-sdk-go/sdk/auth/credentials"
	"github.com/aliyun/alibaba-cloud-sdk-go/services/kms"

	"github.com/kmsdb/kmsdb/internal/syncbuf"
)

// startEmulator runs `kmsdb emulator` in process and returns the JSON line and the stderr log.
func startEmulator(t *testing.T, args ...string) (emulatorInfo, *syncbuf.Buffer) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	stderr := &syncbuf.Buffer{}
	done := make(chan error, 1)
	go func() {
		done <- runEmulator(ctx, args, pw, stderr)
		pw.Close()
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("emulator returned %v", err)
		}
	})
	sc := bufio.NewScanner(pr)
	if !sc.Scan() {
		cancel()
		t.Fatalf("no JSON line; stderr:\n%s", stderr.String())
	}
	go func() { _, _ = io.Copy(io.Discard, pr) }() // nothing else is expected on stdout
	var info emulatorInfo
	dec := json.NewDecoder(strings.NewReader(sc.Text()))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&info); err != nil {
		t.Fatalf("JSON line %q: %v", sc.Text(), err)
	}
	return info, stderr
}

func TestEmulatorCommand(t *testing.T) {
	stateDir := t.TempDir()
	info, stderr := startEmulator(t, "--addr", "127.0.0.1:0", "--seed", filepath.Join("..", "..", "examples", "seed.json"),
		"--tls", "--state-dir", stateDir)
	for name, v := range map[string]string{"kms": info.KMS, "dkms": info.DKMS, "sts": info.STS} {
		if !strings.HasPrefix(v, "https://127.0.0.1:") {
			t.Errorf("%s = %q", name, v)
		}
	}
	if !strings.HasPrefix(info.Metadata, "http://127.0.0.1:") || info.CredentialsURI != info.Metadata+"/credentials" {
		t.Errorf("metadata %q credentialsUri %q", info.Metadata, info.CredentialsURI)
	}
	if !strings.HasPrefix(info.Admin, info.Metadata+"/_kmstest/") || !strings.HasPrefix(info.Proxy, "http://127.0.0.1:") ||
		!strings.HasPrefix(info.ClientKeyID, "KAAP.") || !strings.Contains(info.ClientKeyFile, info.ClientKeyID) {
		t.Errorf("admin %q proxy %q clientKeyId %q", info.Admin, info.Proxy, info.ClientKeyID)
	}
	for _, f := range []string{info.CAFile, info.ClientKeyFile, info.ClientKeyPasswordFile} {
		if filepath.Dir(f) != stateDir {
			t.Errorf("%s not in --state-dir", f)
		}
		if fi, err := os.Stat(f); err != nil {
			t.Error(err)
		} else if fi.Mode().Perm() != 0o600 {
			t.Errorf("%s: mode %v", f, fi.Mode().Perm())
		}
	}

	// The core SDK fetches the seed's secret over HTTPS trusting only caFile.
	pem, err := os.ReadFile(info.CAFile)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	cfg := sdk.NewConfig()
	cfg.Scheme = "HTTPS"
	cfg.HttpTransport = &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}
	c, err := kms.NewClientWithOptions("cn-hangzhou", cfg, sdkcred.NewStaticAKCredentialsProvider("LTAItest", "test-secret"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Shutdown(); cfg.HttpTransport.CloseIdleConnections() })
	c.Domain = strings.TrimPrefix(info.KMS, "https://")
	req := kms.CreateGetSecretValueRequest()
	req.SecretName = "db-secret"
	resp, err := c.GetSecretValue(req)
	if err != nil {
		t.Fatal(err)
	}
	if resp.SecretData != `{"AccountName":"app","AccountPassword":"p@ss=w0rd"}` {
		t.Fatal("unexpected value")
	}
	// The request is logged, the value is not.
	log := stderr.String()
	if !strings.Contains(log, "action=GetSecretValue") || strings.Contains(log, "p@ss") || strings.Contains(log, "test-secret") {
		t.Fatalf("log:\n%s", log)
	}
}

func TestEmulatorPlainHTTP(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		done <- runEmulator(ctx, []string{"--seed", filepath.Join("..", "..", "examples", "seed.json")}, pw, io.Discard)
		pw.Close()
	}()
	var info emulatorInfo
	if err := json.NewDecoder(pr).Decode(&info); err != nil {
		cancel()
		t.Fatal(err)
	}
	go func() { _, _ = io.Copy(io.Discard, pr) }()
	if !strings.HasPrefix(info.KMS, "http://127.0.0.1:") {
		t.Errorf("kms %q", info.KMS)
	}
	for _, f := range []string{info.CAFile, info.ClientKeyFile, info.ClientKeyPasswordFile} {
		if _, err := os.Stat(f); err != nil {
			t.Error(err)
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	// Without --state-dir the files live in a temporary directory removed on exit.
	for _, f := range []string{info.CAFile, info.ClientKeyFile} {
		if _, err := os.Stat(filepath.Dir(f)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s: directory left after exit (%v)", f, err)
		}
	}
}

func TestEmulatorFlags(t *testing.T) {
	seed := filepath.Join("..", "..", "examples", "seed.json")
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--seed", seed, "--token-ttl", "0s"}, "--token-ttl 0s: must be positive"},
		{[]string{"--seed", seed, "--ram-revoke-delay", "-1s"}, "--ram-revoke-delay -1s: must not be negative"},
		{[]string{"--seed", seed, "--token-ttl", "soon"}, "invalid value"},
		{[]string{"--state-dir", "/dev/null/x"}, "--state-dir /dev/null/x"},
	} {
		var stderr bytes.Buffer
		err := runEmulator(context.Background(), c.args, io.Discard, &stderr)
		if err == nil || !strings.Contains(err.Error()+stderr.String(), c.want) {
			t.Errorf("%v: %v, want %q", c.args, err, c.want)
		}
	}

	// --token-ttl sets the lifetime of issued credentials.
	info, _ := startEmulator(t, "--seed", seed, "--token-ttl", "10m", "--ram-revoke-delay", "1h")
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr}).Get(info.CredentialsURI)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var cred struct{ Expiration string }
	if err := json.NewDecoder(resp.Body).Decode(&cred); err != nil {
		t.Fatal(err)
	}
	exp, err := time.Parse("2006-01-02T15:04:05Z", cred.Expiration)
	if err != nil {
		t.Fatal(err)
	}
	if d := time.Until(exp); d > 10*time.Minute || d < 5*time.Minute {
		t.Fatalf("credentials expire in %v, want about 10m", d)
	}
}

func TestEmulatorBadSeed(t *testing.T) {
	dir := t.TempDir()
	cases := []struct{ name, seed, want string }{
		{"missing password", `{"secrets":[{"name":"ok","data":"x"},{"name":"db","type":"Rds","data":"{\"AccountName\":\"app\"}"}]}`,
			`secrets[1] (db): field data: Rds data needs a non-empty string "AccountPassword"`},
		{"unknown field", `{"secrets":[{"name":"db","typ":"Rds"}]}`, `secrets[0]: unknown field "typ"`},
		{"bad type", `{"secrets":[{"name":"db","type":"Mongo","data":"x"}]}`, `secrets[0] (db): field type: "Mongo" is not`},
		{"data not a string", `{"secrets":[{"name":"db","data":{"a":1}}]}`, `secrets[0]: field data: must be a JSON string`},
		{"empty key secret", `{"accessKeys":[{"id":"LTAIx"}]}`, `accessKeys[0] (LTAIx): field secret: must not be empty`},
		{"bad interval", `{"secrets":[{"name":"db","data":"x","rotationInterval":"weekly"}]}`, `secrets[0] (db): field rotationInterval`},
		{"subtype", `{"secrets":[{"name":"db","type":"Rds","data":"{\"AccountName\":\"a\",\"AccountPassword\":\"b\"}","extendedConfig":{"SecretSubType":"Three"}}]}`,
			`secrets[0] (db): field extendedConfig.SecretSubType`},
		{"not JSON", `{"secrets":[`, `not valid JSON`},
		{"bad escape in a value", `{"secrets":[{"name":"db","data":"pw\Z7"}]}`, `not valid JSON at byte`},
		{"bad character in a value", `{"accessKeys":[{"id":"LTAIx","secret":"sk"Q9}]}`, `not valid JSON at byte`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			path := filepath.Join(dir, strings.ReplaceAll(c.name, " ", "_")+".json")
			if err := os.WriteFile(path, []byte(c.seed), 0o600); err != nil {
				t.Fatal(err)
			}
			err := runEmulator(context.Background(), []string{"--seed", path}, io.Discard, io.Discard)
			if err == nil || !strings.Contains(err.Error(), "seed file "+path+": ") || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("err = %v, want %q", err, c.want)
			}
			// The characters right after the value's start ("Z7", "Q9") are never quoted back.
			if strings.Contains(err.Error(), "Z") || strings.Contains(err.Error(), "Q") {
				t.Fatalf("the error quotes the seed's content: %v", err)
			}
		})
	}
	err := runEmulator(context.Background(), []string{"--seed", filepath.Join(dir, "absent.json")}, io.Discard, io.Discard)
	if !errors.Is(err, os.ErrNotExist) || !strings.Contains(err.Error(), "absent.json") {
		t.Fatalf("missing file: %v", err)
	}
	if err := runEmulator(context.Background(), nil, io.Discard, io.Discard); !errors.Is(err, errUsage) {
		t.Fatalf("no --seed and no --state-dir: %v", err)
	}
}
