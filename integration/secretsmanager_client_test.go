package integration

import (
	"bufio"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	smsdk "github.com/aliyun/aliyun-secretsmanager-client-go/sdk"

	"github.com/kmsdb/kmsdb/secretsource/kmstest"
)

// Alibaba's own secret client for Go (aliyun-secretsmanager-client-go v1.1.5), configured only through its
// documented environment variables, fetches secrets from a `kmsdb emulator` process over HTTPS.
//
// TLS, as that client does it (read in its source, sdk/service/secret_manager_client.go):
//   - Shared gateway (cache_client_region_id): buildKmsClient calls kmsClient.SetHTTPSInsecure(true), so the client
//     never verifies the gateway's certificate, whatever the CA; there is no setting to turn verification on. The
//     request goes over HTTPS (request.Scheme = "https") to the emulator's TLS listener, which is the only thing
//     that can be proven here.
//   - Dedicated gateway (cache_client_dkms_config_info): the certificate is verified against "caCert" when
//     "ignoreSslCerts" is false. From the environment the JSON key must be "caCert" holding the PEM itself:
//     initDkmsInstancesFromEnv does not read "caFilePath" (only the secretsmanager.properties path turns a
//     caFilePath into PEM), so a file path in the environment leaves the client with the system roots.
//
// The client runs in a child process (this test binary re-executed): it logs to stdout, starts goroutines that
// Close does not stop, and reads its configuration from the process environment.

const smChildEnv = "KMSDB_SMCLIENT_CHILD_RESULT"

type smChildResult struct {
	Error                 string `json:"error,omitempty"`
	SecretName, VersionID string
	SecretType            string
	ValueMatches          bool
}

func TestSecretsManagerClientAgainstEmulatorProcess(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the kmsdb command")
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "kmsdb")
	build := exec.Command("go", "build", "-o", bin, "github.com/kmsdb/kmsdb/cmd/kmsdb")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build kmsdb: %v\n%s", err, out)
	}
	stateDir := filepath.Join(dir, "state")
	emu := exec.Command(bin, "emulator", "--addr", "127.0.0.1:0", "--tls", "--seed",
		filepath.Join("..", "examples", "seed.json"), "--state-dir", stateDir)
	stdout, err := emu.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var emuLog strings.Builder // read only after the process exited (Wait has copied everything)
	emu.Stderr = &emuLog
	if err := emu.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- emu.Wait() }()
	stopped := false
	stop := func() {
		if stopped {
			return
		}
		stopped = true
		_ = emu.Process.Signal(syscall.SIGTERM)
		select {
		case err := <-exited:
			if err != nil {
				t.Errorf("kmsdb emulator did not exit cleanly on SIGTERM: %v", err)
			}
		case <-time.After(30 * time.Second):
			_ = emu.Process.Kill()
			t.Error("kmsdb emulator did not exit on SIGTERM")
		}
	}
	t.Cleanup(stop)

	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		t.Fatalf("reading the emulator's JSON line: %v", err)
	}
	var info struct {
		KMS, DKMS, CAFile, ClientKeyFile, ClientKeyPasswordFile, Proxy string
	}
	if err := json.Unmarshal([]byte(line), &info); err != nil {
		t.Fatalf("JSON line %q: %v", line, err)
	}
	if !strings.HasPrefix(info.KMS, "https://") {
		t.Fatalf("kms %q is not HTTPS", info.KMS)
	}
	caPEM, err := os.ReadFile(info.CAFile)
	if err != nil {
		t.Fatal(err)
	}

	run := func(t *testing.T, secret string, env map[string]string) smChildResult {
		t.Helper()
		result := filepath.Join(t.TempDir(), "result.json")
		child := exec.Command(os.Args[0], "-test.run=^TestSecretsManagerClientChild$", "-test.v")
		child.Dir = t.TempDir() // no secretsmanager.properties here
		home := t.TempDir()
		child.Env = append(os.Environ(),
			smChildEnv+"="+result,
			"KMSDB_SMCLIENT_SECRET="+secret,
			"KMSDB_TEST_CONTAINERS=0", // the child needs no database
			"HOME="+home,
			"ALIBABA_CLOUD_ECS_METADATA_DISABLED=true",
			"ALIBABA_CLOUD_CLI_PROFILE_DISABLED=true",
			"ALIBABA_CLOUD_CREDENTIALS_FILE="+filepath.Join(home, "none"),
		)
		for k, v := range env {
			child.Env = append(child.Env, k+"="+v)
		}
		out, err := child.CombinedOutput()
		b, rerr := os.ReadFile(result)
		if rerr != nil {
			t.Fatalf("child wrote no result (%v): %v\n%s", rerr, err, out)
		}
		var r smChildResult
		if err := json.Unmarshal(b, &r); err != nil {
			t.Fatal(err)
		}
		if strings.Contains(string(out), "p@ss=w0rd") {
			t.Log("note: Alibaba's client printed the secret value to its stdout log")
		}
		return r
	}

	t.Run("shared gateway, credentials_type=ak", func(t *testing.T) {
		r := run(t, "db-secret", map[string]string{
			"credentials_type":          "ak",
			"credentials_access_key_id": "LTAItest",
			"credentials_access_secret": "test-secret",
			"cache_client_region_id": `[{"regionId":"cn-hangzhou","endpoint":"` +
				strings.TrimPrefix(info.KMS, "https://") + `","vpc":false}]`,
		})
		if r.Error != "" || !r.ValueMatches || r.SecretType != "Rds" || r.VersionID == "" {
			t.Fatalf("result %+v", r)
		}
	})

	t.Run("shared gateway rejects a wrong secret", func(t *testing.T) {
		r := run(t, "db-secret", map[string]string{
			"credentials_type":          "ak",
			"credentials_access_key_id": "LTAItest",
			"credentials_access_secret": "wrong-secret",
			"cache_client_region_id": `[{"regionId":"cn-hangzhou","endpoint":"` +
				strings.TrimPrefix(info.KMS, "https://") + `","vpc":false}]`,
		})
		if r.Error == "" || !strings.Contains(r.Error, "SignatureDoesNotMatch") {
			t.Fatalf("result %+v", r)
		}
	})

	// credentials_type=client_key on the shared gateway: the secret client loads the client key into the core
	// SDK's RsaKeyPairCredential, which trades it for a session AccessKey at the hard-coded
	// https://sts.ap-northeast-1.aliyuncs.com over an &http.Client{} (http.DefaultTransport: HTTPS_PROXY, system
	// roots), then signs GetSecretValue with that session key. The emulator's proxy tunnels the STS host to its STS
	// listener (the certificate names it) and SSL_CERT_FILE makes its CA the system roots. NO_PROXY is left unset
	// on purpose: the core SDK applies HTTPS_PROXY to the KMS request to 127.0.0.1 as well, and the proxy tunnels it
	// to the emulator's own listener.
	t.Run("shared gateway, credentials_type=client_key through the proxy", func(t *testing.T) {
		if info.Proxy == "" {
			t.Fatal("the emulator's JSON line has no proxy")
		}
		r := run(t, "db-secret", map[string]string{
			"credentials_type":                   "client_key",
			"client_key_private_key_path":        info.ClientKeyFile,
			"client_key_password_from_file_path": info.ClientKeyPasswordFile,
			"cache_client_region_id": `[{"regionId":"cn-hangzhou","endpoint":"` +
				strings.TrimPrefix(info.KMS, "https://") + `","vpc":false}]`,
			"HTTPS_PROXY":   info.Proxy,
			"https_proxy":   info.Proxy,
			"SSL_CERT_FILE": info.CAFile,
			"SSL_CERT_DIR":  t.TempDir(),
			"NO_PROXY":      "",
			"no_proxy":      "",
		})
		if r.Error != "" || !r.ValueMatches || r.SecretType != "Rds" || r.VersionID == "" {
			t.Fatalf("result %+v", r)
		}
	})

	t.Run("client_key with an unregistered key is rejected", func(t *testing.T) {
		// A well-formed client key the emulator never registered: GenerateSessionAccessKey answers
		// InvalidAccessKeyId.NotFound.
		ck, err := kmstest.WriteClientKey(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		r := run(t, "db-secret", map[string]string{
			"credentials_type":                   "client_key",
			"client_key_private_key_path":        ck.File,
			"client_key_password_from_file_path": ck.PasswordFile,
			"cache_client_region_id": `[{"regionId":"cn-hangzhou","endpoint":"` +
				strings.TrimPrefix(info.KMS, "https://") + `","vpc":false}]`,
			"HTTPS_PROXY":   info.Proxy,
			"https_proxy":   info.Proxy,
			"SSL_CERT_FILE": info.CAFile,
			"SSL_CERT_DIR":  t.TempDir(),
		})
		if r.Error == "" || !strings.Contains(r.Error, "InvalidAccessKeyId.NotFound") {
			t.Fatalf("result %+v", r)
		}
	})

	t.Run("dedicated gateway, client key, CA verified", func(t *testing.T) {
		cfg, err := json.Marshal([]map[string]any{{
			"regionId":             "cn-hangzhou",
			"endpoint":             strings.TrimPrefix(info.DKMS, "https://"),
			"clientKeyFile":        info.ClientKeyFile,
			"passwordFromFilePath": info.ClientKeyPasswordFile,
			"ignoreSslCerts":       false,
			"caCert":               string(caPEM),
		}})
		if err != nil {
			t.Fatal(err)
		}
		r := run(t, "db-secret", map[string]string{"cache_client_dkms_config_info": string(cfg)})
		if r.Error != "" || !r.ValueMatches || r.VersionID == "" {
			t.Fatalf("result %+v", r)
		}
	})

	t.Run("dedicated gateway refuses a certificate from another CA", func(t *testing.T) {
		other, err := kmstest.NewServer()
		if err != nil {
			t.Fatal(err)
		}
		otherCA := string(other.CACertPEM())
		other.Close()
		cfg, err := json.Marshal([]map[string]any{{
			"regionId":             "cn-hangzhou",
			"endpoint":             strings.TrimPrefix(info.DKMS, "https://"),
			"clientKeyFile":        info.ClientKeyFile,
			"passwordFromFilePath": info.ClientKeyPasswordFile,
			"ignoreSslCerts":       false,
			"caCert":               otherCA,
		}})
		if err != nil {
			t.Fatal(err)
		}
		r := run(t, "db-secret", map[string]string{"cache_client_dkms_config_info": string(cfg)})
		if r.Error == "" || !strings.Contains(r.Error, "certificate") {
			t.Fatalf("result %+v", r)
		}
	})

	stop()
	for _, want := range []string{"listener=proxy", "action=sts:GenerateSessionAccessKey status=200"} {
		if !strings.Contains(emuLog.String(), want) {
			t.Errorf("emulator log has no %q: the client_key exchange did not go through the proxy", want)
		}
	}
	if !strings.Contains(emuLog.String(), "action=GetSecretValue") {
		t.Errorf("emulator log has no request line:\n%s", emuLog.String())
	}
	if strings.Contains(emuLog.String(), "p@ss=w0rd") || strings.Contains(emuLog.String(), "test-secret") {
		t.Error("the emulator logged a secret value or an AccessKey secret")
	}
}

// TestSecretsManagerClientChild is the child process of the test above; it does nothing in a normal run.
func TestSecretsManagerClientChild(t *testing.T) {
	resultPath := os.Getenv(smChildEnv)
	if resultPath == "" {
		t.Skip("child process of TestSecretsManagerClientAgainstEmulatorProcess")
	}
	var r smChildResult
	func() {
		client, err := smsdk.NewClient()
		if err != nil {
			r.Error = "NewClient: " + err.Error()
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		done := make(chan struct{})
		go func() {
			defer close(done)
			info, err := client.GetSecretInfo(os.Getenv("KMSDB_SMCLIENT_SECRET"))
			if err != nil {
				r.Error = "GetSecretInfo: " + err.Error()
				return
			}
			r.SecretName, r.VersionID, r.SecretType = info.SecretName, info.VersionId, info.SecretType
			r.ValueMatches = info.SecretValue == `{"AccountName":"app","AccountPassword":"p@ss=w0rd"}`
		}()
		select {
		case <-done:
		case <-ctx.Done():
			r.Error = "GetSecretInfo did not return within 60s"
		}
	}()
	b, _ := json.Marshal(r)
	if err := os.WriteFile(resultPath, b, 0o600); err != nil {
		t.Fatal(err)
	}
	// Exit before the leak check: the client's refresh goroutines cannot be stopped.
	os.Exit(0)
}
