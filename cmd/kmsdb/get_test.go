package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"strings"
	"testing"

	"github.com/kmsdb/kmsdb/internal/credtest"
	"github.com/kmsdb/kmsdb/secretsource"
	"github.com/kmsdb/kmsdb/secretsource/config"
	"github.com/kmsdb/kmsdb/secretsource/kmstest"
)

const (
	getTestAK       = "LTAI5tGetTestKey"
	getTestSecret   = "get-test-secret=="
	getTestPassword = "Pa55-get-never-printed"
	getOldPassword  = "Pa55-old-never-printed"
)

// getEnv configures `kmsdb get` through Alibaba's environment variables
// against an emulator, and lets config.Load trust its CA.
func getEnv(t *testing.T) *kmstest.Server {
	t.Helper()
	srv := kmstest.Start(t, kmstest.WithAccessKey(getTestAK, getTestSecret),
		kmstest.WithSecret(kmstest.SecretSpec{Name: "db/app", Type: "Rds",
			Data:           `{"AccountName":"app","AccountPassword":"` + getOldPassword + `"}`,
			ExtendedConfig: map[string]any{"SecretSubType": "SingleUser"}}))
	if err := srv.AddVersion("db/app", `{"AccountName":"app","AccountPassword":"`+getTestPassword+`"}`, "v2"); err != nil {
		t.Fatal(err)
	}
	useEmulator(t, srv, getTestAK, getTestSecret)
	return srv
}

// useEmulator configures the CLI as a user would, by Alibaba's environment
// variables only (an AccessKey, the emulator's HTTPS endpoint as the
// region), with no credentials file, profile, ECS metadata or
// secretsmanager.properties to fall back on; the CLI trusts the emulator's CA.
func useEmulator(t *testing.T, srv *kmstest.Server, akID, akSecret string) {
	t.Helper()
	credtest.Hermetic(t)
	t.Setenv("credentials_type", "ak")
	t.Setenv("credentials_access_key_id", akID)
	t.Setenv("credentials_access_secret", akSecret)
	t.Setenv("cache_client_region_id", `[{"regionId":"cn-hangzhou","endpoint":"`+srv.KMSTLSAddr()+`"}]`)
	t.Chdir(t.TempDir())
	old := loadSource
	loadSource = func(ctx context.Context, opts ...config.Option) (*config.Source, error) {
		return config.Load(ctx, append(opts, config.WithRootCAs(srv.CertPool()))...)
	}
	t.Cleanup(func() { loadSource = old })
}

func TestGet(t *testing.T) {
	srv := getEnv(t)
	state, _ := srv.Secret("db/app")
	ctx := context.Background()
	tests := []struct {
		name     string
		args     []string
		want     []string
		password bool
	}{
		{"redacted", []string{"db/app"}, []string{"Name:", "db/app", "VersionStages:", "ACSCurrent", "SecretType:", "Rds", "REDACTED", "SubType"}, false},
		{"show value", []string{"--show-value", "db/app"}, []string{"SecretData:", getTestPassword}, true},
		{"flag after name", []string{"db/app", "--show-value"}, []string{getTestPassword}, true},
		{"previous stage", []string{"--stage", "ACSPrevious", "db/app"}, []string{"ACSPrevious", "REDACTED"}, false},
		{"json", []string{"--json", "db/app"}, []string{`"SecretName": "db/app"`, `"SecretData": "REDACTED`}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out, errOut bytes.Buffer
			if err := runGet(ctx, tt.args, &out, &errOut); err != nil {
				t.Fatalf("%v\nstderr: %s", err, errOut.String())
			}
			for _, w := range tt.want {
				if !strings.Contains(out.String(), w) {
					t.Errorf("output lacks %q:\n%s", w, out.String())
				}
			}
			if (!tt.password && strings.Contains(out.String()+errOut.String(), getTestPassword)) ||
				strings.Contains(out.String()+errOut.String(), getOldPassword) {
				t.Errorf("password printed without --show-value:\n%s", out.String())
			}
			if strings.Contains(out.String()+errOut.String(), getTestSecret) {
				t.Error("AccessKey secret printed")
			}
		})
	}
	var out bytes.Buffer
	// KMS ignores a version id given alone for an Rds secret: the id goes with the stage it carries.
	if err := runGet(ctx, []string{"--json", "--stage", "ACSPrevious", "--version-id", state.PreviousVersionID, "db/app"}, &out, &out); err != nil {
		t.Fatal(err)
	}
	var got map[string]any
	if err := json.Unmarshal(out.Bytes(), &got); err != nil || got["VersionId"] != state.PreviousVersionID {
		t.Errorf("json by version id: %v %s", err, out.String())
	}
}

func TestGetErrors(t *testing.T) {
	getEnv(t)
	ctx := context.Background()
	var out, errOut bytes.Buffer
	if err := runGet(ctx, nil, &out, &errOut); err == nil || !strings.Contains(errOut.String(), "usage: kmsdb get") {
		t.Errorf("no args: %v %s", err, errOut.String())
	}
	if code := runMain(ctx, []string{"get"}, &out, &errOut); code != 2 {
		t.Errorf("kmsdb get without SECRET: exit code %d, want 2", code)
	}
	if err := runGet(ctx, []string{"a", "b"}, &out, &errOut); err == nil {
		t.Error("two secrets accepted")
	}
	if err := runGet(ctx, []string{"--nope", "a"}, &out, &errOut); err == nil {
		t.Error("unknown flag accepted")
	}
	if err := runGet(ctx, []string{"-h"}, &out, &errOut); !errors.Is(err, flag.ErrHelp) {
		t.Errorf("-h: %v", err)
	}
	err := runGet(ctx, []string{"missing/secret"}, &out, &errOut)
	if !errors.Is(err, secretsource.ErrNotFound) || !strings.Contains(err.Error(), "missing/secret") {
		t.Errorf("missing secret: %v", err)
	}
	// One prefix per layer: main adds "kmsdb get: ", so get adds none of its own.
	if strings.HasPrefix(err.Error(), "get:") {
		t.Errorf("get's error repeats the command name: %v", err)
	}
	// A broken configuration names the key.
	t.Setenv("cache_client_region_id", `[{"regionId":"cn-hangzhou",`)
	err = runGet(ctx, []string{"db/app"}, &out, &errOut)
	if !errors.Is(err, secretsource.ErrConfig) || !strings.Contains(err.Error(), "cache_client_region_id") {
		t.Errorf("broken config: %v", err)
	}
	if strings.Contains(out.String()+errOut.String()+err.Error(), getTestSecret) {
		t.Error("AccessKey secret printed")
	}
}

// TestGetRedactsExtendedConfig: CustomData is free-form and can hold a
// password; without --show-value only values known to be harmless show.
func TestGetRedactsExtendedConfig(t *testing.T) {
	const (
		inCustomData = "Pa55-in-custom-data"
		nested       = "Pa55-nested-deeper"
		inList       = "Pa55-in-a-list"
		topLevel     = "Pa55-top-level-key"
	)
	srv := kmstest.Start(t, kmstest.WithAccessKey(getTestAK, getTestSecret),
		kmstest.WithSecret(kmstest.SecretSpec{Name: "db/ext", Type: "Rds",
			Data: `{"AccountName":"app","AccountPassword":"` + getTestPassword + `"}`,
			ExtendedConfig: map[string]any{
				"SecretSubType": "SingleUser", "DBInstanceId": "rm-harmless-id", "Token": topLevel,
				"CustomData": map[string]any{
					"password": inCustomData, "UserName": "bob-harmless", "port": 3306, "enabled": true,
					"deeper": map[string]any{"token": nested, "RegionId": "cn-harmless-1"},
					"list":   []any{inList},
				},
			}}))
	useEmulator(t, srv, getTestAK, getTestSecret)
	secrets := []string{inCustomData, nested, inList, topLevel, getTestPassword}
	for _, args := range [][]string{{"db/ext"}, {"--json", "db/ext"}} {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			var out, errOut bytes.Buffer
			if err := runGet(context.Background(), args, &out, &errOut); err != nil {
				t.Fatalf("%v\nstderr: %s", err, errOut.String())
			}
			for _, s := range secrets {
				if strings.Contains(out.String()+errOut.String(), s) {
					t.Errorf("printed %q without --show-value:\n%s", s, out.String())
				}
			}
			for _, w := range []string{"SingleUser", "rm-harmless-id", "bob-harmless", "cn-harmless-1", "CustomData", "deeper", "REDACTED"} {
				if !strings.Contains(out.String(), w) {
					t.Errorf("output lacks %q:\n%s", w, out.String())
				}
			}
			if strings.Contains(out.String(), "3306") {
				t.Errorf("a value of an unknown key (port) shown:\n%s", out.String())
			}
		})
	}
	var out bytes.Buffer
	if err := runGet(context.Background(), []string{"--show-value", "db/ext"}, &out, &out); err != nil {
		t.Fatal(err)
	}
	for _, s := range secrets {
		if !strings.Contains(out.String(), s) {
			t.Errorf("--show-value does not print %q:\n%s", s, out.String())
		}
	}
}

// TestGetVersionIDWithoutStage: KMS ignores a VersionId without a VersionStage for managed secrets and answers
// with ACSCurrent; `kmsdb get --version-id` then fails and says to add --stage, instead of showing the current
// version as the one asked for. With --stage it works.
func TestGetVersionIDWithoutStage(t *testing.T) {
	srv := getEnv(t)
	state, _ := srv.Secret("db/app")
	ctx := context.Background()
	var out, errOut bytes.Buffer
	err := runGet(ctx, []string{"--version-id", state.PreviousVersionID, "db/app"}, &out, &errOut)
	if err == nil || !strings.Contains(err.Error(), state.PreviousVersionID) || !strings.Contains(err.Error(), "--stage ACSPrevious") {
		t.Fatalf("err %v, stdout %q", err, out.String())
	}
	if out.Len() != 0 || strings.Contains(err.Error(), getTestPassword) {
		t.Fatalf("printed %q / the error shows the password", out.String())
	}
	out.Reset()
	if err := runGet(ctx, []string{"--version-id", state.PreviousVersionID, "--stage", "ACSPrevious", "db/app"}, &out, &errOut); err != nil ||
		!strings.Contains(out.String(), state.PreviousVersionID) {
		t.Fatalf("with --stage: %v\n%s", err, out.String())
	}
	// Asking for the current version by id alone is what KMS answers: no error.
	out.Reset()
	if err := runGet(ctx, []string{"--version-id", state.CurrentVersionID, "db/app"}, &out, &errOut); err != nil {
		t.Fatalf("current version by id: %v", err)
	}
}
