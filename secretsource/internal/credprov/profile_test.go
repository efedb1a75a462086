package credprov

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/aliyun/credentials-go/credentials/providers"

	"github.com/kmsdb/kmsdb/internal/credtest"
	"github.com/kmsdb/kmsdb/secretsource"
)

// useCLIConfig writes config as ~/.aliyun/config.json of a fresh HOME and
// enables the CLI profile; it returns the file.
func useCLIConfig(t *testing.T, config string) string {
	t.Helper()
	t.Setenv("ALIBABA_CLOUD_CLI_PROFILE_DISABLED", "false")
	dir := filepath.Join(os.Getenv("HOME"), ".aliyun")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	f := filepath.Join(dir, "config.json")
	if err := os.WriteFile(f, []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}
	return f
}

// useCredentialsFile writes content as ~/.alibabacloud/credentials of the
// HOME and points nothing else at it (ALIBABA_CLOUD_CREDENTIALS_FILE unset).
func useCredentialsFile(t *testing.T, content string) string {
	t.Helper()
	t.Setenv("ALIBABA_CLOUD_CREDENTIALS_FILE", "")
	os.Unsetenv("ALIBABA_CLOUD_CREDENTIALS_FILE")
	dir := filepath.Join(os.Getenv("HOME"), ".alibabacloud")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	f := filepath.Join(dir, "credentials")
	if err := os.WriteFile(f, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return f
}

// cliConfig is a CLI configuration whose current profile is current.
func cliConfig(current string, profiles ...string) string {
	return `{"current":"` + current + `","profiles":[` + strings.Join(profiles, ",") + `]}`
}

const (
	akProfile  = `{"name":"ak","mode":"AK","access_key_id":"` + testAK + `","access_key_secret":"` + testSecret + `"}`
	stsProfile = `{"name":"sts","mode":"StsToken","access_key_id":"STS.k","access_key_secret":"s","sts_token":"tok"}`
)

func roleProfile(name, region string) string {
	return `{"name":"` + name + `","mode":"RamRoleArn","access_key_id":"` + testAK + `","access_key_secret":"` + testSecret +
		`","ram_role_arn":"acs:ram::1234567890123456:role/kmstest-role","ram_session_name":"cli","expired_seconds":1800,` +
		`"sts_region":"` + region + `","external_id":"ext"}`
}

// TestCLIProfileModes: each mode of a CLI profile builds the static provider
// or this package's provider, with the profile's settings; the profile is
// ALIBABA_CLOUD_PROFILE, else "current"; the file ALIBABA_CLOUD_CONFIG_FILE,
// else ~/.aliyun/config.json.
func TestCLIProfileModes(t *testing.T) {
	credtest.Hermetic(t)
	config := cliConfig("ak", akProfile, stsProfile, roleProfile("role", "cn-x"),
		`{"name":"chain","mode":"ChainableRamRoleArn","source_profile":"role","ram_role_arn":"acs:ram::1:role/second"}`,
		`{"name":"ecs","mode":"EcsRamRole","ram_role_name":"r1"}`,
		`{"name":"oidc","mode":"OIDC","oidc_token":"`+oidcToken+`","oidc_provider_arn":"acs:ram::1:oidc-provider/p",`+
			`"ram_role_arn":"acs:ram::1:role/o","enable_vpc":true,"sts_region":"cn-y"}`,
		`{"name":"ext","mode":"External","process_command":"echo {}"}`)
	file := useCLIConfig(t, config)
	t.Setenv("ALIBABA_CLOUD_ECS_METADATA_DISABLED", "false")

	build := func(t *testing.T, name string) providers.CredentialsProvider {
		t.Helper()
		t.Setenv("ALIBABA_CLOUD_PROFILE", name)
		p, err := NewCLIProfile("", "", HTTPOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if err := p.load(); err != nil {
			t.Fatal(err)
		}
		if p.file != file {
			t.Errorf("file %q, want %q", p.file, file)
		}
		return p.inner
	}
	t.Run("current", func(t *testing.T) {
		p, err := NewCLIProfile("", "", HTTPOptions{})
		if err != nil {
			t.Fatal(err)
		}
		cc, err := p.GetCredentials()
		if err != nil || cc.AccessKeyId != testAK || cc.AccessKeySecret != testSecret || cc.ProviderName != "cli_profile/static_ak" {
			t.Fatalf("current profile: %v %+v", err, cc)
		}
	})
	t.Run("StsToken", func(t *testing.T) {
		t.Setenv("ALIBABA_CLOUD_PROFILE", "sts")
		p, _ := NewCLIProfile("", "", HTTPOptions{})
		cc, err := p.GetCredentials()
		if err != nil || cc.SecurityToken != "tok" || cc.ProviderName != "cli_profile/static_sts" {
			t.Fatalf("%v %+v", err, cc)
		}
	})
	t.Run("RamRoleArn", func(t *testing.T) {
		r, ok := build(t, "role").(*RAMRoleARN)
		if !ok {
			t.Fatal("not credprov's RAMRoleARN")
		}
		if r.o.RoleSessionName != "cli" || r.o.SessionDuration.Seconds() != 1800 || r.o.STSEndpoint != "sts.cn-x.aliyuncs.com" ||
			r.external != "ext" {
			t.Errorf("settings %+v external %q", r.o, r.external)
		}
		if _, ok := r.previous.(*providers.StaticAKCredentialsProvider); !ok {
			t.Errorf("previous %T", r.previous)
		}
	})
	t.Run("ChainableRamRoleArn", func(t *testing.T) {
		r, ok := build(t, "chain").(*RAMRoleARN)
		if !ok {
			t.Fatal("not credprov's RAMRoleARN")
		}
		if src, ok := r.previous.(*RAMRoleARN); !ok || r.o.RoleARN != "acs:ram::1:role/second" || src.o.RoleSessionName != "cli" {
			t.Errorf("source %T, role %q", r.previous, r.o.RoleARN)
		}
	})
	t.Run("EcsRamRole", func(t *testing.T) {
		if e, ok := build(t, "ecs").(*ECSRAMRole); !ok || e.o.RoleName != "r1" {
			t.Fatalf("not credprov's ECSRAMRole with role r1")
		}
	})
	t.Run("OIDC", func(t *testing.T) {
		o, ok := build(t, "oidc").(*OIDCRoleARN)
		if !ok || o.oidc.OIDCToken != oidcToken || o.o.STSEndpoint != "sts-vpc.cn-y.aliyuncs.com" {
			t.Fatalf("OIDC %T", o)
		}
	})
	t.Run("External", func(t *testing.T) {
		if _, ok := build(t, "ext").(*External); !ok {
			t.Fatal("not the external command")
		}
	})
	t.Run("External runs", func(t *testing.T) {
		script := writeFile(t, "cred.sh", "#!/bin/sh\necho '{\"mode\":\"AK\",\"access_key_id\":\"ext-id\",\"access_key_secret\":\"ext-secret\"}'\n")
		if err := os.Chmod(script, 0o700); err != nil {
			t.Fatal(err)
		}
		t.Setenv("ALIBABA_CLOUD_CONFIG_FILE", writeFile(t, "ext.json", cliConfig("x",
			`{"name":"x","mode":"External","process_command":"`+script+`"}`)))
		t.Setenv("ALIBABA_CLOUD_PROFILE", "")
		p, _ := NewCLIProfile("", "", HTTPOptions{})
		if cc, err := p.GetCredentials(); err != nil || cc.AccessKeyId != "ext-id" || !strings.HasPrefix(cc.ProviderName, "cli_profile/") {
			t.Fatalf("%v %+v", err, cc)
		}
	})
	t.Run("ALIBABA_CLOUD_CONFIG_FILE", func(t *testing.T) {
		t.Setenv("ALIBABA_CLOUD_PROFILE", "")
		other := writeFile(t, "cli.json", cliConfig("sts", stsProfile))
		t.Setenv("ALIBABA_CLOUD_CONFIG_FILE", other)
		p, _ := NewCLIProfile("", "", HTTPOptions{})
		if cc, err := p.GetCredentials(); err != nil || cc.AccessKeyId != "STS.k" {
			t.Fatalf("%v %+v", err, cc)
		}
	})
	t.Run("disabled", func(t *testing.T) {
		t.Setenv("ALIBABA_CLOUD_CLI_PROFILE_DISABLED", "TRUE")
		if _, err := NewCLIProfile("", "", HTTPOptions{}); err == nil || !strings.Contains(err.Error(), "disabled") {
			t.Fatalf("got %v", err)
		}
	})
}

// TestProfileTypes: each type of the credentials file builds the static
// provider or this package's provider; the profile is ALIBABA_CLOUD_PROFILE,
// else [default]; the file ALIBABA_CLOUD_CREDENTIALS_FILE, else
// ~/.alibabacloud/credentials.
func TestProfileTypes(t *testing.T) {
	credtest.Hermetic(t)
	t.Setenv("ALIBABA_CLOUD_ECS_METADATA_DISABLED", "false")
	useCredentialsFile(t, "[default]\ntype = access_key\naccess_key_id = "+testAK+"\naccess_key_secret = "+testSecret+"\n"+
		"[ecs]\ntype = ecs_ram_role\nrole_name = r2\n"+
		"[role]\ntype = ram_role_arn\naccess_key_id = "+testAK+"\naccess_key_secret = "+testSecret+
		"\nrole_arn = acs:ram::1:role/i\nrole_session_name = ini\npolicy = {}\n")
	cc, err := NewProfile("", HTTPOptions{}).GetCredentials()
	if err != nil || cc.AccessKeyId != testAK || cc.ProviderName != "profile/static_ak" {
		t.Fatalf("[default]: %v %+v", err, cc)
	}
	p := NewProfile("ecs", HTTPOptions{})
	inner, err := p.load()
	if e, ok := inner.(*ECSRAMRole); err != nil || !ok || e.o.RoleName != "r2" {
		t.Fatalf("[ecs]: %v %T", err, inner)
	}
	t.Setenv("ALIBABA_CLOUD_PROFILE", "role")
	inner, err = NewProfile("", HTTPOptions{}).load()
	r, ok := inner.(*RAMRoleARN)
	if err != nil || !ok || r.o.RoleSessionName != "ini" || r.o.Policy != "{}" || r.o.SessionDuration.Seconds() != 3600 {
		t.Fatalf("[role]: %v %T", err, inner)
	}
	t.Setenv("ALIBABA_CLOUD_CREDENTIALS_FILE", writeFile(t, "creds", "[role]\ntype = access_key\naccess_key_id = other\naccess_key_secret = x\n"))
	if cc, err := NewProfile("", HTTPOptions{}).GetCredentials(); err != nil || cc.AccessKeyId != "other" {
		t.Fatalf("ALIBABA_CLOUD_CREDENTIALS_FILE: %v", err)
	}
}

// TestProfileFileErrors: a file or profile that cannot be used is a config
// error naming the file, the profile and what is wrong, never a value of
// the file.
func TestProfileFileErrors(t *testing.T) {
	credtest.Hermetic(t)
	secret := "file-secret-value-77aa"
	cli := []struct{ config, want string }{
		{`{"current":"a","profiles":[{"name":"a","mode":"AK","access_key_secret":"` + secret + `"`, "JSON syntax error"},
		{`{"current":"a","profiles":[{"name":"a","mode":"AK","access_key_id":1,"access_key_secret":"` + secret + `"}]}`, "access_key_id"},
		{`{"current":"a","profiles":[]}`, "has no profiles"},
		{cliConfig("missing", akProfile), `profile "missing"`},
		{cliConfig("a", `{"name":"a","mode":"Magic","access_key_secret":"`+secret+`"}`), `unsupported profile mode "Magic"`},
		{cliConfig("a", `{"name":"a","mode":"AK","access_key_secret":"`+secret+`"}`), "access key id is empty"},
		{cliConfig("a", `{"name":"a","mode":"RamRoleArn","access_key_id":"k","access_key_secret":"`+secret+`"}`), "RoleArn is empty"},
		{cliConfig("a", `{"name":"a","mode":"ChainableRamRoleArn","source_profile":"a","ram_role_arn":"r"}`), "a loop?"},
		{cliConfig("a", `{"name":"a","mode":"ChainableRamRoleArn","source_profile":"nope","ram_role_arn":"r"}`), `profile "nope"`},
	}
	for i, c := range cli {
		t.Run(fmt.Sprintf("cli/%d", i), func(t *testing.T) {
			file := useCLIConfig(t, c.config)
			p, _ := NewCLIProfile("", "", HTTPOptions{})
			_, err := p.GetCredentials()
			var e *Error
			if !errors.As(err, &e) || e.Kind != secretsource.KindConfig || !strings.Contains(err.Error(), c.want) ||
				!strings.Contains(err.Error(), file) {
				t.Fatalf("got %v, want a config error naming %s and saying %q", err, file, c.want)
			}
			mustNotShow(t, err, secret)
		})
	}
	ini := []struct{ content, want string }{
		{"[default]\naccess_key_secret " + secret + "\n", "not a valid INI file"},
		{"[other]\ntype = access_key\n", "no profile [default]"},
		{"[default]\naccess_key_id = k\n", "no type"},
		{"[default]\ntype = access_key\naccess_key_secret = " + secret + "\n", "needs access_key_id"},
		{"[default]\ntype = ram_role_arn\naccess_key_id = k\naccess_key_secret = " + secret + "\nrole_arn = r\nrole_session_name =\n",
			"role_session_name is empty"},
		{"[default]\ntype = rsa_key_pair\npublic_key_id = k\nprivate_key_file = /k\n", "rsa_key_pair is not supported"},
		{"[default]\ntype = bearer\n", `unsupported type "bearer"`},
	}
	for i, c := range ini {
		t.Run(fmt.Sprintf("ini/%d", i), func(t *testing.T) {
			file := useCredentialsFile(t, c.content)
			_, err := NewProfile("", HTTPOptions{}).GetCredentials()
			var e *Error
			if !errors.As(err, &e) || e.Kind != secretsource.KindConfig || !strings.Contains(err.Error(), c.want) ||
				!strings.Contains(err.Error(), file) {
				t.Fatalf("got %v, want a config error naming %s and saying %q", err, file, c.want)
			}
			mustNotShow(t, err, secret)
		})
	}
	t.Run("missing files move on", func(t *testing.T) {
		t.Setenv("ALIBABA_CLOUD_CLI_PROFILE_DISABLED", "false")
		t.Setenv("HOME", t.TempDir())
		t.Setenv("ALIBABA_CLOUD_CREDENTIALS_FILE", "")
		os.Unsetenv("ALIBABA_CLOUD_CREDENTIALS_FILE")
		_, err := NewChain(HTTPOptions{}).GetCredentials()
		var ce *ChainError
		if !errors.As(err, &ce) || len(ce.Messages) != 3 || !strings.Contains(ce.Messages[1], ".aliyun") ||
			!strings.Contains(ce.Messages[2], ".alibabacloud") {
			t.Fatalf("got %v, want both files' absence, in order", err)
		}
	})
}

// TestCLIProfileRefusedModes: CloudSSO and OAuth profiles are refused with
// an error naming the profile, the mode and what to do, and the chain stops
// there: the credentials file's AccessKey behind it is not used.
func TestCLIProfileRefusedModes(t *testing.T) {
	credtest.Hermetic(t)
	useCredentialsFile(t, "[default]\ntype = access_key\naccess_key_id = fallback\naccess_key_secret = x\n")
	for _, mode := range []string{"CloudSSO", "OAuth"} {
		t.Run(mode, func(t *testing.T) {
			useCLIConfig(t, cliConfig("p", `{"name":"p","mode":"`+mode+`","access_token":"tok-secret-1","oauth_site_type":"CN",`+
				`"oauth_refresh_token":"tok-secret-2","cloud_sso_sign_in_url":"https://127.0.0.1:1"}`))
			cc, err := NewChain(HTTPOptions{}).GetCredentials()
			if err == nil {
				t.Fatalf("the chain went on to %s", cc.ProviderName)
			}
			for _, want := range []string{`profile "p"`, "mode " + mode, "credentials_type", "ALIBABA_CLOUD_CLI_PROFILE_DISABLED"} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("the error does not say %q: %v", want, err)
				}
			}
			mustNotShow(t, err, "tok-secret-")
			// As the source of a chained role too.
			useCLIConfig(t, cliConfig("c", `{"name":"p","mode":"`+mode+`"}`,
				`{"name":"c","mode":"ChainableRamRoleArn","source_profile":"p","ram_role_arn":"r"}`))
			if _, err := NewChain(HTTPOptions{}).GetCredentials(); !errors.Is(err, errRefusedMode) {
				t.Fatalf("source profile %s: %v", mode, err)
			}
		})
	}
}

// tunnel is an HTTP proxy that tunnels a CONNECT to a loopback address as
// asked (a followed redirect to the thief reaches the thief) and any other
// to target: STS requests for sts.*.aliyuncs.com reach a loopback server.
type tunnel struct {
	srv   *httptest.Server
	mu    sync.Mutex
	conns []net.Conn
	wg    sync.WaitGroup
}

func startTunnel(t *testing.T, target string) *tunnel {
	t.Helper()
	tu := &tunnel{}
	tu.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodConnect {
			http.Error(w, "CONNECT only", http.StatusMethodNotAllowed)
			return
		}
		to := target
		if strings.HasPrefix(r.Host, "127.0.0.1:") {
			to = r.Host
		}
		up, err := net.Dial("tcp", to)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		conn, brw, err := w.(http.Hijacker).Hijack()
		if err != nil {
			up.Close()
			return
		}
		tu.mu.Lock()
		tu.conns = append(tu.conns, conn, up)
		tu.mu.Unlock()
		_, _ = io.WriteString(conn, "HTTP/1.1 200 Connection established\r\n\r\n")
		tu.wg.Add(2)
		go func() { defer tu.wg.Done(); _, _ = io.Copy(up, brw); up.Close() }()
		go func() { defer tu.wg.Done(); _, _ = io.Copy(conn, bufio.NewReader(up)); conn.Close() }()
	}))
	t.Cleanup(func() {
		tu.mu.Lock()
		for _, c := range tu.conns {
			c.Close()
		}
		tu.mu.Unlock()
		tu.wg.Wait()
		tu.srv.Close()
	})
	return tu
}

// TestProfilesRedirectsNotFollowed: the role, OIDC and metadata modes of
// both files go through this package's providers: through the default
// chain, a 302 from the hostile server is refused, the redirect target gets
// nothing, and the error names the provider and the status and shows no
// secret.
func TestProfilesRedirectsNotFollowed(t *testing.T) {
	credtest.Hermetic(t)
	cases := []struct {
		name, provider string
		sts            bool // STS over HTTPS (through a CONNECT tunnel), else the metadata service (plain HTTP proxy)
		cli, ini       string
	}{
		{name: "cli RamRoleArn", provider: "ram_role_arn", sts: true, cli: cliConfig("role", roleProfile("role", ""))},
		{name: "cli ChainableRamRoleArn", provider: "ram_role_arn", sts: true, cli: cliConfig("c", akProfile,
			`{"name":"c","mode":"ChainableRamRoleArn","source_profile":"ak","ram_role_arn":"acs:ram::1:role/c"}`)},
		{name: "cli OIDC", provider: "oidc_role_arn", sts: true, cli: cliConfig("o", `{"name":"o","mode":"OIDC","oidc_token":"`+
			oidcToken+`","oidc_provider_arn":"acs:ram::1:oidc-provider/p","ram_role_arn":"acs:ram::1:role/o"}`)},
		{name: "cli EcsRamRole", provider: "ecs_ram_role", cli: cliConfig("e", `{"name":"e","mode":"EcsRamRole","ram_role_name":"r"}`)},
		{name: "ini ram_role_arn", provider: "ram_role_arn", sts: true, ini: "[default]\ntype = ram_role_arn\naccess_key_id = " +
			testAK + "\naccess_key_secret = " + testSecret + "\nrole_arn = acs:ram::1:role/i\nrole_session_name = ini\n"},
		{name: "ini ecs_ram_role", provider: "ecs_ram_role", ini: "[default]\ntype = ecs_ram_role\nrole_name = r\n"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Setenv("HOME", t.TempDir())
			t.Setenv("ALIBABA_CLOUD_ECS_METADATA_DISABLED", "false") // ECSRAMRole builds; step 5 is the same hostile proxy
			if c.cli != "" {
				useCLIConfig(t, c.cli)
			}
			if c.ini != "" {
				useCredentialsFile(t, c.ini)
			}
			h := startHostile(t, c.sts)
			h.redirect(http.StatusFound)
			o := HTTPOptions{Proxy: h.srv.URL}
			if c.sts {
				o.Proxy = startTunnel(t, h.srv.Listener.Addr().String()).srv.URL
				o.TLSConfig = h.tlsConfig()
				o.TLSConfig.ServerName = "example.com" // named by httptest's certificate
			}
			cc, err := NewChain(o).GetCredentials()
			if h.hits.Load() == 0 {
				t.Fatal("the hostile server was not reached: the test proves nothing")
			}
			if n := h.stolen.Load(); n != 0 {
				t.Errorf("the redirect target got %d requests", n)
			}
			if err == nil {
				t.Fatalf("credentials from %s", cc.ProviderName)
			}
			outer := "cli_profile: profile \"" + strings.Split(strings.TrimPrefix(c.cli, `{"current":"`), `"`)[0] + "\": "
			if c.ini != "" {
				outer = "profile: profile [default]: "
			}
			if msg := err.Error(); !strings.Contains(msg, outer+c.provider) || !strings.Contains(msg, "302") {
				t.Errorf("the error does not name %s%s and the status: %s", outer, c.provider, msg)
			}
			mustNotShow(t, err, testSecret, oidcToken, "leaked-location-query")
		})
	}
}

// TestProfilesEmulator: role profiles of both files get real temporary
// credentials from the emulator's STS (reached as sts.aliyuncs.com through
// its proxy), through the default chain.
func TestProfilesEmulator(t *testing.T) {
	cases := []struct {
		name, cli, ini, provider string
	}{
		{name: "cli RamRoleArn", cli: cliConfig("role", roleProfile("role", "")),
			provider: "default/cli_profile/ram_role_arn/static_ak"},
		{name: "cli ChainableRamRoleArn", cli: cliConfig("c", roleProfile("role", "ap-northeast-1"),
			`{"name":"c","mode":"ChainableRamRoleArn","source_profile":"role","ram_role_arn":"acs:ram::1234567890123456:role/kmstest-role"}`),
			provider: "default/cli_profile/ram_role_arn/ram_role_arn/static_ak"},
		{name: "ini ram_role_arn", ini: "[default]\ntype = ram_role_arn\naccess_key_id = " + testAK + "\naccess_key_secret = " + testSecret +
			"\nrole_arn = acs:ram::1234567890123456:role/kmstest-role\nrole_session_name = ini\n",
			provider: "default/profile/ram_role_arn/static_ak"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			srv := startEmulator(t)
			if c.cli != "" {
				useCLIConfig(t, c.cli)
			}
			if c.ini != "" {
				useCredentialsFile(t, c.ini)
			}
			cc, err := NewChain(HTTPOptions{Proxy: srv.ProxyURL(), TLSConfig: srv.TLSClientConfig()}).GetCredentials()
			if err != nil {
				t.Fatal(err)
			}
			if !strings.HasPrefix(cc.AccessKeyId, "STS.") || cc.SecurityToken == "" || cc.ProviderName != c.provider {
				t.Fatalf("got %q from %q, want temporary credentials from %q", cc.AccessKeyId, cc.ProviderName, c.provider)
			}
			if n := srv.Calls("sts:AssumeRole", ""); n < 1 {
				t.Errorf("%d AssumeRole calls", n)
			}
		})
	}
	t.Run("cli OIDC", func(t *testing.T) {
		srv := startEmulator(t)
		useCLIConfig(t, cliConfig("o", `{"name":"o","mode":"OIDC","oidc_token_file":"`+srv.OIDCTokenFile()+
			`","oidc_provider_arn":"`+srv.OIDCProviderARN()+`","ram_role_arn":"`+srv.RoleARN()+`"}`))
		cc, err := NewChain(HTTPOptions{Proxy: srv.ProxyURL(), TLSConfig: srv.TLSClientConfig()}).GetCredentials()
		if err != nil || cc.ProviderName != "default/cli_profile/oidc_role_arn" || srv.Calls("sts:AssumeRoleWithOIDC", "") != 1 {
			t.Fatalf("%v %+v", err, cc)
		}
	})
}
