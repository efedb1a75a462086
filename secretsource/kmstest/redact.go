package kmstest

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"time"
)

// Redaction of the test-tool types that carry secret values (SecretSpec.Data, SecretState and VersionState
// values, RotationEvent.OldValue/NewValue, ClientKey.Password). Their fields stay exported and usable; only
// printing is redacted, in every form a test or a program may use: fmt (every verb, value and pointer, %#v
// included), log/slog (text and JSON handlers, through LogValue) and encoding/json (MarshalJSON). A test that
// wants a value reads the field.

// redacted stands for a value in printed forms.
const redacted = "[redacted]"

// String describes the spec without its Data.
func (s SecretSpec) String() string {
	return fmt.Sprintf("kmstest.SecretSpec{Name:%q Type:%s DataType:%s Data:%s ExtendedConfig:%v AutomaticRotation:%t RotationInterval:%v}",
		s.Name, s.Type, s.DataType, redacted, s.ExtendedConfig, s.AutomaticRotation, s.RotationInterval)
}

// GoString is String, so %#v does not print Data either.
func (s SecretSpec) GoString() string { return s.String() }

// Format prints String for every verb (%d or %x of the struct would otherwise print the fields).
func (s SecretSpec) Format(f fmt.State, _ rune) { _, _ = fmt.Fprint(f, s.String()) }

// LogValue logs the spec without its Data.
func (s SecretSpec) LogValue() slog.Value {
	return slog.GroupValue(slog.String("name", s.Name), slog.String("type", s.Type),
		slog.String("dataType", s.DataType), slog.String("data", redacted))
}

// MarshalJSON encodes the spec with Data redacted.
func (s SecretSpec) MarshalJSON() ([]byte, error) {
	return json.Marshal(struct {
		Name, Type, Data, DataType string
		ExtendedConfig             map[string]any `json:",omitempty"`
		AutomaticRotation          bool
		RotationInterval           time.Duration
	}{s.Name, s.Type, redacted, s.DataType, s.ExtendedConfig, s.AutomaticRotation, s.RotationInterval})
}

// Format prints String for every verb.
func (st SecretState) Format(f fmt.State, _ rune) { _, _ = fmt.Fprint(f, st.String()) }

// LogValue logs the state without any value.
func (st SecretState) LogValue() slog.Value {
	return slog.GroupValue(slog.String("name", st.Name), slog.String("type", st.Type),
		slog.String("current", st.CurrentVersionID), slog.String("previous", st.PreviousVersionID),
		slog.String("pending", st.PendingVersionID), slog.Int("versions", len(st.Versions)),
		slog.Int("rotations", st.Rotations))
}

// MarshalJSON encodes the state with every value redacted.
func (st SecretState) MarshalJSON() ([]byte, error) {
	red := func(v string) string {
		if v == "" {
			return ""
		}
		return redacted
	}
	return json.Marshal(struct {
		Name, Type, DataType string
		CurrentVersionID     string
		CurrentValue         string
		PreviousVersionID    string
		PreviousValue        string
		PendingVersionID     string
		PendingValue         string
		Versions             []VersionState
		CreateTime           time.Time
		LastRotationDate     time.Time
		NextRotationDate     time.Time
		Rotations            int
	}{st.Name, st.Type, st.DataType, st.CurrentVersionID, red(st.CurrentValue), st.PreviousVersionID,
		red(st.PreviousValue), st.PendingVersionID, red(st.PendingValue), st.Versions, st.CreateTime,
		st.LastRotationDate, st.NextRotationDate, st.Rotations})
}

// Format prints String for every verb.
func (v VersionState) Format(f fmt.State, _ rune) { _, _ = fmt.Fprint(f, v.String()) }

// LogValue logs the version without its value.
func (v VersionState) LogValue() slog.Value {
	return slog.GroupValue(slog.String("versionId", v.VersionID), slog.Any("stages", v.Stages))
}

// MarshalJSON encodes the version with its value redacted.
func (v VersionState) MarshalJSON() ([]byte, error) {
	return json.Marshal(struct {
		VersionID  string
		Value      string
		Stages     []string
		CreateTime time.Time
	}{v.VersionID, redacted, v.Stages, v.CreateTime})
}

// Format prints String for every verb.
func (e RotationEvent) Format(f fmt.State, _ rune) { _, _ = fmt.Fprint(f, e.String()) }

// LogValue logs the event without the values.
func (e RotationEvent) LogValue() slog.Value {
	return slog.GroupValue(slog.String("secret", e.SecretName), slog.String("type", e.SecretType),
		slog.String("phase", e.Phase), slog.String("oldVersion", e.OldVersionID),
		slog.String("newVersion", e.NewVersionID))
}

// MarshalJSON encodes the event with both values redacted.
func (e RotationEvent) MarshalJSON() ([]byte, error) {
	return json.Marshal(struct {
		SecretName, SecretType     string
		OldVersionID, NewVersionID string
		OldValue, NewValue         string
		Phase                      string
	}{e.SecretName, e.SecretType, e.OldVersionID, e.NewVersionID, redacted, redacted, e.Phase})
}

// Format prints String for every verb.
func (k ClientKey) Format(f fmt.State, _ rune) { _, _ = fmt.Fprint(f, k.String()) }

// LogValue logs the key id and files, never the password.
func (k ClientKey) LogValue() slog.Value {
	return slog.GroupValue(slog.String("keyId", k.KeyID), slog.String("file", k.File),
		slog.String("passwordFile", k.PasswordFile), slog.String("password", redacted))
}

// MarshalJSON encodes the key id and files, with the password redacted.
func (k ClientKey) MarshalJSON() ([]byte, error) {
	return json.Marshal(struct {
		KeyID, File, PasswordFile, Password string
	}{k.KeyID, k.File, k.PasswordFile, redacted})
}
