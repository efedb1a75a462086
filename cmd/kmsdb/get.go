package main

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/kmsdb/kmsdb/secretsource"
	"github.com/kmsdb/kmsdb/secretsource/config"
)

func init() {
	register("get", "print a secret's metadata, configured like Alibaba's client (value redacted unless --show-value)", runGet)
}

const getUsage = `usage: kmsdb get [--show-value] [--stage STAGE] [--version-id ID] [--json] [--timeout 15s] SECRET

Fetches SECRET with the configuration Alibaba's secret client reads (environment
variables credentials_type, cache_client_region_id, ... and ./secretsmanager.properties,
or the file named by KMSDB_PROPERTIES_FILE) and prints its metadata. The value is
shown only with --show-value; so are the values in ExtendedConfig (CustomData can
hold anything) but those of SecretSubType, DBInstanceId, RegionId, InstanceId and
UserName, which are shown as REDACTED.

`

// loadSource is config.Load; tests replace it to add the emulator's CA.
// The commands pass a logger that prints the configuration's warnings
// (ignoreSslCerts, unknown keys, a local source) on stderr.
var loadSource = func(ctx context.Context, opts ...config.Option) (*config.Source, error) {
	return config.Load(ctx, opts...)
}

// runGet implements `kmsdb get`.
func runGet(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("get", flag.ContinueOnError)
	fs.SetOutput(stderr)
	showValue := fs.Bool("show-value", false, "print the secret value (it is a secret: mind your terminal and logs)")
	stage := fs.String("stage", "", "version stage to fetch, e.g. ACSPrevious (default ACSCurrent)")
	versionID := fs.String("version-id", "", "version id to fetch (managed secrets: with --stage, which that version must carry)")
	asJSON := fs.Bool("json", false, "print one JSON object")
	timeout := fs.Duration("timeout", 15*time.Second, "give up after this long")
	fs.Usage = func() {
		fmt.Fprint(stderr, getUsage)
		fs.PrintDefaults()
	}
	name, err := parseSecretArg(fs, args)
	if err != nil {
		return err
	}
	if *timeout <= 0 {
		fs.Usage()
		return usagef("--timeout must be positive, got %v", *timeout)
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	stopNotice := noticeWait(stderr, "get", "KMS to answer for secret %q (--timeout %s)", name, *timeout)
	defer stopNotice()

	src, err := loadSource(ctx, config.WithLogger(warningLogger(stderr)))
	if err != nil {
		return err
	}
	defer src.Close()
	var s *secretsource.Secret
	if *stage != "" || *versionID != "" {
		s, err = src.GetSecretVersion(ctx, name, secretsource.VersionRef{Stage: *stage, VersionID: *versionID})
	} else {
		s, err = src.GetSecret(ctx, name)
	}
	stopNotice()
	if err != nil {
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return fmt.Errorf("no answer within --timeout %s: %w", *timeout, err)
		}
		if *versionID != "" && *stage == "" && secretsource.KindOf(err) == secretsource.KindNotFound {
			return fmt.Errorf("%w\n(KMS ignores --version-id without --stage for managed secrets: Rds, PolarDB, Redis, "+
				"RAMCredentials, ECS; for those add --stage ACSCurrent or --stage ACSPrevious, the only two KMS serves)", err)
		}
		return err
	}
	if *versionID != "" && s.VersionID() != *versionID {
		// KMS ignores a VersionId sent without a VersionStage for managed (Rds, PolarDB, Redis, RAMCredentials,
		// ECS) secrets and answers with ACSCurrent: never show another version than the one asked for.
		hint := ""
		if *stage == "" && s.Type() != "" && s.Type() != "Generic" {
			hint = fmt.Sprintf(": %s is a managed %s secret, for which KMS ignores --version-id without --stage; "+
				"add --stage ACSCurrent or --stage ACSPrevious (KMS serves only those two for it)", name, s.Type())
		}
		return fmt.Errorf("asked for version %s of secret %q, KMS answered with version %s%s", *versionID, name, s.VersionID(), hint)
	}
	if *asJSON {
		return printJSON(stdout, s, *showValue)
	}
	return printText(stdout, s, *showValue)
}

func valueText(s *secretsource.Secret, show bool) string {
	if !show {
		return fmt.Sprintf("REDACTED (%d bytes; --show-value prints it)", len(s.Bytes()))
	}
	if s.DataType() == secretsource.DataBinary {
		return base64.StdEncoding.EncodeToString(s.Bytes())
	}
	return s.Text()
}

// harmlessExtendedKeys are the ExtendedConfig keys (at any depth, in
// CustomData too) whose values kmsdb get shows without --show-value: what
// KMS itself puts there to describe the secret. Anything else may be a
// password (CustomData is free-form) and is shown as REDACTED.
var harmlessExtendedKeys = map[string]bool{
	"SecretSubType": true, "DBInstanceId": true, "RegionId": true, "InstanceId": true, "UserName": true,
}

const redacted = "REDACTED"

// extendedConfigText is the secret's ExtendedConfig, in full with show, and
// otherwise with every value not known to be harmless redacted (keys stay,
// so the structure can be seen).
func extendedConfigText(s *secretsource.Secret, show bool) string {
	ec := s.ExtendedConfig()
	if show || strings.TrimSpace(ec) == "" {
		return ec
	}
	dec := json.NewDecoder(strings.NewReader(ec))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil || dec.More() {
		return fmt.Sprintf("%s (not JSON, %d bytes; --show-value prints it)", redacted, len(ec))
	}
	b, err := json.Marshal(redactExtended(v, false))
	if err != nil {
		return redacted
	}
	return string(b)
}

// redactExtended keeps the shape of v and the values of harmless keys.
func redactExtended(v any, harmless bool) any {
	switch v := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(v))
		for k, e := range v {
			out[k] = redactExtended(e, harmlessExtendedKeys[k])
		}
		return out
	case []any:
		out := make([]any, len(v))
		for i, e := range v {
			out[i] = redactExtended(e, harmless)
		}
		return out
	case nil:
		return nil
	default:
		if harmless {
			return v
		}
		return redacted
	}
}

func timeText(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format(time.RFC3339)
}

func printText(w io.Writer, s *secretsource.Secret, show bool) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	interval := "-"
	if d := s.RotationInterval(); d > 0 {
		interval = d.String()
	}
	for _, row := range [][2]string{
		{"Name", s.Name()},
		{"VersionId", s.VersionID()},
		{"VersionStages", strings.Join(s.VersionStages(), ",")},
		{"SecretType", s.Type()},
		{"SecretDataType", s.DataType()},
		{"CreateTime", timeText(s.CreateTime())},
		{"AutomaticRotation", fmt.Sprint(s.AutomaticRotation())},
		{"RotationInterval", interval},
		{"LastRotationDate", timeText(s.LastRotationDate())},
		{"NextRotationDate", timeText(s.NextRotationDate())},
		{"ExtendedConfig", orDash(extendedConfigText(s, show))},
		{"SecretData", valueText(s, show)},
	} {
		fmt.Fprintf(tw, "%s:\t%s\n", row[0], row[1])
	}
	return tw.Flush()
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func printJSON(w io.Writer, s *secretsource.Secret, show bool) error {
	out := struct {
		Name              string          `json:"SecretName"`
		VersionID         string          `json:"VersionId"`
		VersionStages     []string        `json:"VersionStages"`
		SecretType        string          `json:"SecretType"`
		DataType          string          `json:"SecretDataType"`
		CreateTime        string          `json:"CreateTime"`
		AutomaticRotation bool            `json:"AutomaticRotation"`
		RotationInterval  string          `json:"RotationInterval,omitempty"`
		LastRotationDate  string          `json:"LastRotationDate,omitempty"`
		NextRotationDate  string          `json:"NextRotationDate,omitempty"`
		ExtendedConfig    json.RawMessage `json:"ExtendedConfig,omitempty"`
		SecretData        string          `json:"SecretData"`
	}{
		Name: s.Name(), VersionID: s.VersionID(), VersionStages: s.VersionStages(), SecretType: s.Type(),
		DataType: s.DataType(), CreateTime: timeText(s.CreateTime()), AutomaticRotation: s.AutomaticRotation(),
		SecretData: valueText(s, show),
	}
	if d := s.RotationInterval(); d > 0 {
		out.RotationInterval = d.String()
	}
	if t := s.LastRotationDate(); !t.IsZero() {
		out.LastRotationDate = timeText(t)
	}
	if t := s.NextRotationDate(); !t.IsZero() {
		out.NextRotationDate = timeText(t)
	}
	if ec := extendedConfigText(s, show); ec != "" && json.Valid([]byte(ec)) {
		out.ExtendedConfig = json.RawMessage(ec)
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(out)
}
