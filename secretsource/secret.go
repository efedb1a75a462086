// Package secretsource defines what a secret is, where it comes from, and the
// errors fetching one can produce. It knows nothing of databases or caching.
//
// A *Secret is immutable once built: the cache hands the same value to many
// goroutines. It never shows its value when formatted, logged or marshalled.
package secretsource

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"slices"
	"time"
)

// Version stages defined by KMS Secrets Manager.
const (
	StageCurrent  = "ACSCurrent"
	StagePrevious = "ACSPrevious"
	StagePending  = "ACSPending"
)

// Secret types as KMS reports them in SecretType.
const (
	TypeGeneric = "Generic"
	TypeRds     = "Rds"
	TypeRAM     = "RAMCredentials"
	TypeECS     = "ECS"
)

// Data types as KMS reports them in SecretDataType.
const (
	DataText   = "text"
	DataBinary = "binary"
)

// Fields is everything a source knows about one version of a secret. It is
// the input of New; a *Secret exposes the same facts through read-only methods.
type Fields struct {
	Name              string
	VersionID         string
	VersionStages     []string
	SecretType        string // Generic, Rds, RAMCredentials, ECS
	DataType          string // text or binary
	Value             []byte // the secret data; for binary secrets the decoded bytes
	CreateTime        time.Time
	AutomaticRotation bool
	RotationInterval  time.Duration
	NextRotationDate  time.Time
	LastRotationDate  time.Time
	ExtendedConfig    string // raw JSON as KMS returns it; empty when not fetched
	Origin            Origin // the call that fetched this version
}

// Origin says where a version of a secret was fetched from: what a trace or
// a log line of the fetch shows. It never holds a secret value or a credential.
type Origin struct {
	Source    string // which source answered, e.g. "kms", "dkms", "local" (as in Error.Source)
	Region    string // the region that answered, when known
	Endpoint  string // the host (host:port) that answered, when known
	RequestID string // the service's request id of the call, when it gave one
}

// String shows the name and version of f, never its value.
func (f Fields) String() string {
	return fmt.Sprintf("secretsource.Fields(name=%q version=%q type=%q value=REDACTED)", f.Name, f.VersionID, f.SecretType)
}

// GoString is the same as String, so %#v cannot print the value.
func (f Fields) GoString() string { return f.String() }

// Format makes every fmt verb print the redacted form.
func (f Fields) Format(st fmt.State, verb rune) { _, _ = fmt.Fprint(st, f.String()) }

// LogValue makes slog print the name and version only.
func (f Fields) LogValue() slog.Value {
	return slog.GroupValue(slog.String("name", f.Name), slog.String("version", f.VersionID), slog.String("type", f.SecretType))
}

// MarshalJSON shows the metadata of f, never its value.
func (f Fields) MarshalJSON() ([]byte, error) { return NewSecret(f).MarshalJSON() }

// Secret is one version of a secret. It is immutable and safe to share.
// Formatting it with fmt, slog or encoding/json shows only its name and version.
//
// The fields live behind a pointer so that even a dereferenced Secret value
// (fmt.Printf("%+v", *s)) prints an address, never the value.
type Secret struct {
	f *Fields
}

// zeroFields backs the zero Secret, so its accessors return zero values.
var zeroFields Fields

// fields returns the secret's facts; a nil or zero Secret has none.
func (s *Secret) fields() *Fields {
	if s == nil || s.f == nil {
		return &zeroFields
	}
	return s.f
}

// NewSecret builds a Secret from f, copying every slice so the caller cannot mutate it later.
func NewSecret(f Fields) *Secret {
	f.VersionStages = slices.Clone(f.VersionStages)
	f.Value = slices.Clone(f.Value)
	return &Secret{f: &f}
}

// Name is the secret's name.
func (s *Secret) Name() string { return s.fields().Name }

// VersionID identifies this version of the secret.
func (s *Secret) VersionID() string { return s.fields().VersionID }

// VersionStages returns a copy of the stages attached to this version.
func (s *Secret) VersionStages() []string { return slices.Clone(s.fields().VersionStages) }

// HasStage reports whether this version carries the given stage.
func (s *Secret) HasStage(stage string) bool { return slices.Contains(s.fields().VersionStages, stage) }

// Type is the KMS SecretType (Generic, Rds, RAMCredentials, ECS).
func (s *Secret) Type() string { return s.fields().SecretType }

// DataType is text or binary.
func (s *Secret) DataType() string { return s.fields().DataType }

// Text returns the secret value as a string. Handle it with care: never log it.
func (s *Secret) Text() string { return string(s.fields().Value) }

// Bytes returns a copy of the secret value.
func (s *Secret) Bytes() []byte { return slices.Clone(s.fields().Value) }

// CreateTime is when this version was created.
func (s *Secret) CreateTime() time.Time { return s.fields().CreateTime }

// AutomaticRotation reports whether KMS rotates this secret on a schedule.
func (s *Secret) AutomaticRotation() bool { return s.fields().AutomaticRotation }

// RotationInterval is the rotation period, zero when unknown.
func (s *Secret) RotationInterval() time.Duration { return s.fields().RotationInterval }

// NextRotationDate is when KMS will rotate the secret next, zero when unknown.
func (s *Secret) NextRotationDate() time.Time { return s.fields().NextRotationDate }

// LastRotationDate is when KMS last rotated the secret, zero when unknown.
func (s *Secret) LastRotationDate() time.Time { return s.fields().LastRotationDate }

// ExtendedConfig is the raw JSON extended configuration, empty when not fetched.
func (s *Secret) ExtendedConfig() string { return s.fields().ExtendedConfig }

// Origin says which source, region, endpoint and request fetched this
// version; zero when the source does not say.
func (s *Secret) Origin() Origin { return s.fields().Origin }

// Fields returns a copy of everything the secret holds, value included.
func (s *Secret) Fields() Fields {
	f := *s.fields()
	f.VersionStages = slices.Clone(f.VersionStages)
	f.Value = slices.Clone(f.Value)
	return f
}

// String shows the name and version, never the value.
func (s *Secret) String() string {
	if s == nil {
		return "secret(nil)"
	}
	return fmt.Sprintf("secret(name=%q version=%q type=%q value=REDACTED)", s.fields().Name, s.fields().VersionID, s.fields().SecretType)
}

// GoString is the same as String, so %#v cannot print the value.
func (s *Secret) GoString() string { return s.String() }

// Format makes every fmt verb print the redacted form.
func (s *Secret) Format(st fmt.State, verb rune) { _, _ = fmt.Fprint(st, s.String()) }

// LogValue makes slog print the name and version only.
func (s *Secret) LogValue() slog.Value {
	if s == nil {
		return slog.StringValue("nil")
	}
	return slog.GroupValue(
		slog.String("name", s.fields().Name),
		slog.String("version", s.fields().VersionID),
		slog.String("type", s.fields().SecretType),
	)
}

// MarshalJSON shows the metadata, never the value.
func (s *Secret) MarshalJSON() ([]byte, error) {
	if s == nil {
		return []byte("null"), nil
	}
	return json.Marshal(struct {
		Name          string   `json:"name"`
		VersionID     string   `json:"versionId"`
		VersionStages []string `json:"versionStages,omitempty"`
		SecretType    string   `json:"secretType,omitempty"`
		Value         string   `json:"value"`
	}{s.fields().Name, s.fields().VersionID, s.fields().VersionStages, s.fields().SecretType, "REDACTED"})
}

// Source fetches the current (ACSCurrent) version of a secret.
// Implementations return errors of type *Error (see errors.go).
type Source interface {
	GetSecret(ctx context.Context, name string) (*Secret, error)
}

// SourceFunc adapts a function to Source.
type SourceFunc func(ctx context.Context, name string) (*Secret, error)

// GetSecret calls f.
func (f SourceFunc) GetSecret(ctx context.Context, name string) (*Secret, error) { return f(ctx, name) }

// VersionRef selects one version of a secret: by stage, by version id, or both.
// The zero value means ACSCurrent. For managed secrets (Rds, PolarDB, Redis,
// RAMCredentials, ECS) KMS serves only ACSCurrent and ACSPrevious, and ignores
// a VersionID given without a Stage (it answers with ACSCurrent): give both.
type VersionRef struct {
	Stage     string
	VersionID string
}

// Matches reports whether s is the version ref selects: its version id is
// ref.VersionID (when given) and it has the stage ref.Stage (when given);
// the zero VersionRef selects ACSCurrent.
func (ref VersionRef) Matches(s *Secret) bool {
	if ref.VersionID != "" && ref.VersionID != s.VersionID() {
		return false
	}
	stage := ref.Stage
	if stage == "" && ref.VersionID == "" {
		stage = StageCurrent
	}
	return stage == "" || s.HasStage(stage)
}

// VersionSource is an optional capability of a Source: fetching a version
// other than ACSCurrent (for example ACSPrevious during a rotation window).
// Discover it with a type assertion.
type VersionSource interface {
	GetSecretVersion(ctx context.Context, name string, ref VersionRef) (*Secret, error)
}
