package config

import (
	"context"
	"log/slog"
	"strings"
	"testing"

	"github.com/kmsdb/kmsdb/internal/syncbuf"
	"github.com/kmsdb/kmsdb/secretsource/dkms"
	"github.com/kmsdb/kmsdb/secretsource/local"
)

// captureDefault points slog.Default at a buffer (every level) for the rest
// of the test and restores it after. Tests using it are not parallel.
func captureDefault(t *testing.T) *syncbuf.Buffer {
	t.Helper()
	buf := &syncbuf.Buffer{}
	old := slog.Default()
	slog.SetDefault(slog.New(slog.NewTextHandler(buf, &slog.HandlerOptions{Level: slog.LevelDebug})))
	t.Cleanup(func() { slog.SetDefault(old) })
	return buf
}

func closeSource(t *testing.T, src *Source) {
	t.Helper()
	if err := src.Close(); err != nil {
		t.Error(err)
	}
}

// warnLines returns the lines of out at level WARN that contain all of want.
func warnLines(out string, want ...string) []string {
	var lines []string
	for _, l := range strings.Split(out, "\n") {
		ok := strings.Contains(l, "level=WARN")
		for _, w := range want {
			ok = ok && strings.Contains(l, w)
		}
		if ok {
			lines = append(lines, l)
		}
	}
	return lines
}

// TestWarningsReachDefaultLogger: with no WithLogger (the default cache's
// case), ignoreSslCerts, plain HTTP and a mistyped key reach slog.Default()
// at Warn, each once; with a logger they go there and not to the default.
func TestWarningsReachDefaultLogger(t *testing.T) {
	fx := newFixtures(t)
	t.Chdir(t.TempDir())
	writeFile(t, ".", DefaultPropertiesFile, "refresh_secret_tll=60000\n")
	env := envOf(map[string]string{
		"cache_client_dkms_config_info": `[{"regionId":"cn-hangzhou","endpoint":"kst-1.cryptoservice.kms.aliyuncs.com","clientKeyFile":"` +
			fx.clientKey + `","passwordFromEnvVariable":"DKMS_PW","ignoreSslCerts":true}]`,
		"DKMS_PW":                   fx.clientKeyPassword,
		"cache_client_region_id":    "cn-hangzhou",
		"credentials_type":          "ak",
		"credentials_access_key_id": "LTAIwarn", "credentials_access_secret": secretValue,
	})
	ctx := context.Background()

	t.Run("no logger", func(t *testing.T) {
		def := captureDefault(t)
		src, err := Load(ctx, env, WithHTTP())
		if err != nil {
			t.Fatal(err)
		}
		closeSource(t, src)
		out := def.String()
		if got := warnLines(out, "ignoreSslCerts"); len(got) != 1 {
			t.Errorf("ignoreSslCerts warned %d times at Warn, want once:\n%s", len(got), out)
		}
		if got := warnLines(out, "line 1: unknown key ignored (did you mean refresh_secret_ttl?)"); len(got) != 1 {
			t.Errorf("unknown key not warned once:\n%s", out)
		}
		if got := warnLines(out, "plain HTTP"); len(got) != 1 {
			t.Errorf("WithHTTP not warned once:\n%s", out)
		}
		if strings.Contains(out, "level=DEBUG") || strings.Contains(out, "level=INFO") || strings.Contains(out, secretValue) ||
			strings.Contains(out, fx.clientKeyPassword) || strings.Contains(out, "tll") {
			t.Errorf("default logger got more than warnings:\n%s", out)
		}
	})
	t.Run("own logger", func(t *testing.T) {
		def := captureDefault(t)
		var own syncbuf.Buffer
		src, err := Load(ctx, env, WithLogger(slog.New(slog.NewTextHandler(&own, nil))))
		if err != nil {
			t.Fatal(err)
		}
		closeSource(t, src)
		if def.String() != "" {
			t.Errorf("slog.Default got lines although a logger was given:\n%s", def.String())
		}
		if len(warnLines(own.String(), "ignoreSslCerts")) != 1 || len(warnLines(own.String(), "unknown key ignored")) != 1 {
			t.Errorf("own logger:\n%s", own.String())
		}
	})
	t.Run("WithDKMS in code", func(t *testing.T) {
		def := captureDefault(t)
		s, err := LoadSettings(ctx, WithLookupEnv(nil), WithoutPropertiesFile(), WithDKMS(dkms.Endpoint{RegionID: "cn-hangzhou",
			Endpoint: "kst-1.cryptoservice.kms.aliyuncs.com", ClientKeyFile: fx.clientKey, Password: fx.clientKeyPassword, IgnoreSSLCerts: true}))
		if err != nil {
			t.Fatal(err)
		}
		if len(s.Warnings) != 1 || !strings.Contains(s.Warnings[0], "NOT verified") {
			t.Errorf("warnings %q", s.Warnings)
		}
		src, err := s.Source()
		if err != nil {
			t.Fatal(err)
		}
		closeSource(t, src)
		if got := warnLines(def.String(), "ignoreSslCerts"); len(got) != 1 {
			t.Errorf("ignoreSslCerts warned %d times:\n%s", len(got), def.String())
		}
	})
}

// TestLocalSecretsFromEnvironment: KMSDB_LOCAL_SECRETS(_FILE) in the
// environment does not replace KMS configured in code (code beats the
// environment); it is warned about instead. When a local source does serve
// the secrets, every Load says so at Warn.
func TestLocalSecretsFromEnvironment(t *testing.T) {
	t.Chdir(t.TempDir())
	localFile := writeFile(t, t.TempDir(), "secrets.yaml", "db/app: local-value\n")
	ctx := context.Background()
	isLocal := func(src *Source) bool { return strings.HasPrefix(src.String(), "config.Source(local.Source(") }

	for _, tt := range []struct {
		name    string
		env     map[string]string
		code    []Option
		local   bool
		warning string
	}{
		{"env switch, KMS in code", map[string]string{EnvLocal: "true"},
			[]Option{WithRegion("cn-hangzhou"), WithAccessKey("LTAIcode", secretValue)}, false,
			"KMSDB_LOCAL_SECRETS is set in the environment but ignored: KMS is configured in code (WithRegion)"},
		{"env file, KMS in code", map[string]string{EnvLocalSecretsFile: localFile},
			[]Option{WithSetting(KeyRegions, "cn-hangzhou"), WithSetting(KeyCredentialsType, "ecs_ram_role")}, false,
			"KMSDB_LOCAL_SECRETS_FILE is set in the environment but ignored: KMS is configured in code (cache_client_region_id set in code)"},
		{"env switch, properties file in code", map[string]string{EnvLocal: "true"},
			[]Option{WithPropertiesFile(writeFile(t, t.TempDir(), "p.properties", "cache_client_region_id=cn-hangzhou\ncredentials_type=ecs_ram_role\n"))}, false,
			"(WithPropertiesFile)"},
		{"env switch, cache settings only in code", map[string]string{EnvLocal: "true"},
			[]Option{WithSetting(KeySecretNames, "db/app")}, true, "local source (KMSDB_LOCAL_SECRETS=true)"},
		{"env file alone", map[string]string{EnvLocalSecretsFile: localFile}, nil, true, "local source (KMSDB_LOCAL_SECRETS_FILE=" + localFile + ")"},
		{"WithLocal in code", map[string]string{"cache_client_region_id": "cn-hangzhou"},
			[]Option{WithLocal(local.FromMap(map[string]string{"db/app": "x"}))}, true, "local source (config.WithLocal)"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			def := captureDefault(t)
			opts := append([]Option{envOf(tt.env)}, tt.code...)
			for i := 1; i <= 2; i++ { // every Load warns
				src, err := Load(ctx, opts...)
				if err != nil {
					t.Fatal(err)
				}
				closeSource(t, src)
				if isLocal(src) != tt.local {
					t.Errorf("local source %v, want %v", isLocal(src), tt.local)
				}
				if got := warnLines(def.String(), tt.warning); len(got) != i {
					t.Errorf("Load %d: %d warnings %q at Warn, want %d:\n%s", i, len(got), tt.warning, i, def.String())
				}
			}
		})
	}
}
