package ramsecret_test

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	openapi "github.com/alibabacloud-go/darabonba-openapi/v2/client"
	kms3 "github.com/alibabacloud-go/kms-20160120/v3/client"
	"github.com/alibabacloud-go/tea/tea"
	"github.com/aliyun/alibaba-cloud-sdk-go/sdk"
	sdkcred "github.com/aliyun/alibaba-cloud-sdk-go/sdk/auth/credentials"
	kmssdk "github.com/aliyun/alibaba-cloud-sdk-go/services/kms"
	credgo "github.com/aliyun/credentials-go/credentials"

	"github.com/kmsdb/kmsdb/internal/syncbuf"
	"github.com/kmsdb/kmsdb/ramsecret"
	"github.com/kmsdb/kmsdb/secretsource"
	"github.com/kmsdb/kmsdb/secretsource/cache"
	"github.com/kmsdb/kmsdb/secretsource/kms"
	"github.com/kmsdb/kmsdb/secretsource/kmstest"
)

const (
	region   = "cn-hangzhou"
	sourceAK = "LTAI5tRamsecretSource01" // the key the cache reads KMS with
	sourceSK = "ramsecret-source-key-secret"
	ramName  = "acs/ram/user/app"
	firstAK  = "LTAI5tRamsecretFirst001"
	firstSK  = "ramsecret-first-key-secret-0000"
)

type env struct {
	srv   *kmstest.Server
	cache *cache.Cache
	p     *ramsecret.Provider
	logs  *syncbuf.Buffer

	mu      sync.Mutex
	secrets []string // every AccessKey secret the RAM secret ever held
}

func (e *env) keySecrets() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]string{firstSK, sourceSK}, e.secrets...)
}

func ramSpec(interval time.Duration) kmstest.SecretSpec {
	return kmstest.SecretSpec{
		Name: ramName, Type: "RAMCredentials",
		Data:              fmt.Sprintf(`{"AccessKeyId":%q,"AccessKeySecret":%q,"GenerateTimestamp":"2024-05-01T00:00:00Z"}`, firstAK, firstSK),
		ExtendedConfig:    map[string]any{"SecretSubType": "RamUserAccessKey", "UserName": "app"},
		AutomaticRotation: interval > 0, RotationInterval: interval,
	}
}

// newEnv starts the emulator with a RAM secret, and a real cache over the
// real KMS source (alibaba-cloud-sdk-go) in front of it.
func newEnv(t *testing.T, spec kmstest.SecretSpec, srvOpts []kmstest.Option, cacheOpts ...cache.Option) *env {
	t.Helper()
	logs := &syncbuf.Buffer{}
	logger := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	srv := kmstest.Start(t, append([]kmstest.Option{kmstest.WithAccessKey(sourceAK, sourceSK), kmstest.WithSecret(spec),
		kmstest.WithLogger(logger)}, srvOpts...)...)
	src, err := kms.New(kms.Config{Region: kms.Region{ID: region, Endpoint: srv.KMSAddr()}, Scheme: "http",
		Credential: staticCredential(t, sourceAK, sourceSK), Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	c, err := cache.New(src, append([]cache.Option{cache.WithLogger(logger)}, cacheOpts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = c.Close()
		_ = src.Close()
	})
	p, err := ramsecret.New(c, ramName, ramsecret.WithLogger(logger))
	if err != nil {
		t.Fatal(err)
	}
	e := &env{srv: srv, cache: c, p: p, logs: logs}
	srv.OnRotate(func(ev kmstest.RotationEvent) {
		var k struct{ AccessKeySecret string }
		if json.Unmarshal([]byte(ev.NewValue), &k) == nil && k.AccessKeySecret != "" {
			e.mu.Lock()
			e.secrets = append(e.secrets, k.AccessKeySecret)
			e.mu.Unlock()
		}
	})
	return e
}

// staticCredential is a credentials-go AccessKey credential.
func staticCredential(t *testing.T, id, secret string) credgo.Credential {
	t.Helper()
	cred, err := credgo.NewCredential(&credgo.Config{Type: tea.String("access_key"),
		AccessKeyId: tea.String(id), AccessKeySecret: tea.String(secret)})
	if err != nil {
		t.Fatal(err)
	}
	return cred
}

// coreClient is an alibaba-cloud-sdk-go KMS client signing with the
// provider. A core client is not safe for concurrent use (each request
// writes its timeouts into the shared http.Client): one per goroutine.
func coreClient(t *testing.T, srv *kmstest.Server, p *ramsecret.Provider) *kmssdk.Client {
	t.Helper()
	c, tr, err := newCoreClient(srv, p)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		c.Shutdown()
		tr.CloseIdleConnections()
	})
	return c
}

func newCoreClient(srv *kmstest.Server, cred sdkcred.CredentialsProvider) (*kmssdk.Client, *http.Transport, error) {
	cfg := sdk.NewConfig()
	cfg.AutoRetry = false
	tr := &http.Transport{}
	cfg.HttpTransport = tr
	c, err := kmssdk.NewClientWithOptions(region, cfg, cred)
	if err != nil {
		return nil, nil, err
	}
	c.Domain = srv.KMSAddr()
	return c, tr, nil
}

// teaClient is a Tea kms-20160120/v3 client signing with the provider
// (ACS3-HMAC-SHA256). It gets its own HTTP client: tea's shared default
// client writes its Timeout while other goroutines read it (a data race in
// tea v1.5.3 under concurrent use), and its idle connections would outlive
// the test.
func teaClient(t *testing.T, srv *kmstest.Server, p *ramsecret.Provider) *kms3.Client {
	t.Helper()
	hc := teaHTTPClient{&http.Client{Transport: &http.Transport{}, Timeout: 30 * time.Second}}
	c, err := kms3.NewClient(&openapi.Config{Endpoint: tea.String(srv.KMSAddr()), Protocol: tea.String("http"),
		RegionId: tea.String(region), Credential: p, HttpClient: hc})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(hc.c.CloseIdleConnections)
	return c
}

// teaHTTPClient adapts an *http.Client to tea's dara.HttpClient.
type teaHTTPClient struct{ c *http.Client }

func (h teaHTTPClient) Call(r *http.Request, _ *http.Transport) (*http.Response, error) {
	return h.c.Do(r)
}

func coreDescribe(c *kmssdk.Client) (string, error) {
	req := kmssdk.CreateDescribeSecretRequest()
	req.SecretName = ramName
	resp, err := c.DescribeSecret(req)
	if err != nil {
		return "", err
	}
	return resp.SecretName, nil
}

func teaDescribe(c *kms3.Client) (string, error) {
	resp, err := c.DescribeSecret(&kms3.DescribeSecretRequest{SecretName: tea.String(ramName)})
	if err != nil {
		return "", err
	}
	return tea.StringValue(resp.Body.SecretName), nil
}

// staticDescribe signs with a key handed over explicitly (the plain provider,
// as for OSS or SLS clients built per key).
func staticDescribe(srv *kmstest.Server, k secretsource.AccessKey) (string, error) {
	c, tr, err := newCoreClient(srv, sdkcred.NewStaticAKCredentialsProvider(k.ID, k.Secret))
	if err != nil {
		return "", err
	}
	defer tr.CloseIdleConnections()
	defer c.Shutdown()
	return coreDescribe(c)
}

// checkNoSecrets fails if any text holds the secret of any AccessKey the
// RAM secret ever held.
func checkNoSecrets(t *testing.T, e *env, texts []string) {
	t.Helper()
	secrets := e.keySecrets()
	for _, text := range texts {
		for _, s := range secrets {
			if strings.Contains(text, s) {
				t.Errorf("an AccessKey secret appears in output: %.200q", text)
			}
		}
	}
}
