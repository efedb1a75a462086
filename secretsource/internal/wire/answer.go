package wire

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/kmsdb/kmsdb/secretsource"
)

// Response holds the fields of a GetSecretValue answer as both gateways send
// them: every value a string, times in ISO 8601, the rotation interval as
// "604800s", binary data base64. Both sources convert their answers through it,
// so both gateways build identical secrets.
type Response struct {
	SecretName        string
	SecretType        string
	SecretDataType    string // text | binary
	SecretData        string
	VersionID         string
	VersionStages     []string
	CreateTime        string
	AutomaticRotation string // Enabled | Disabled | Invalid
	RotationInterval  string
	NextRotationDate  string
	LastRotationDate  string
	ExtendedConfig    string
	Origin            secretsource.Origin // the call that brought the answer
}

// String shows the metadata of r, never SecretData.
func (r Response) String() string {
	return fmt.Sprintf("wire.Response(name=%q version=%q stages=%q type=%q dataType=%q data=REDACTED)",
		r.SecretName, r.VersionID, r.VersionStages, r.SecretType, r.SecretDataType)
}

// GoString is String, so %#v cannot print the secret data.
func (r Response) GoString() string { return r.String() }

// Format prints String for every verb.
func (r Response) Format(st fmt.State, _ rune) { _, _ = io.WriteString(st, r.String()) }

// LogValue makes slog print the metadata only.
func (r Response) LogValue() slog.Value { return slog.StringValue(r.String()) }

// MarshalJSON shows every field but SecretData.
func (r Response) MarshalJSON() ([]byte, error) {
	type plain Response
	p := plain(r)
	p.SecretData = "REDACTED"
	return json.Marshal(p)
}

// Secret checks that r answers the request for version ref of the secret
// name and converts it into a *secretsource.Secret. An answer that names no
// secret or another one, has no version id or no value, lacks the version id
// or stage asked for (the zero ref asks for ACSCurrent, see
// CheckAnswer), or carries binary data that is not base64, is a
// *secretsource.Error of KindInvalidAnswer that never holds the value. A
// malformed date or interval is not an error: it is left zero and reported
// in the returned warnings so the caller can log it, since the value itself
// is still good.
func (r Response) Secret(name string, ref secretsource.VersionRef) (*secretsource.Secret, []string, error) {
	f := secretsource.Fields{
		Name:              r.SecretName,
		VersionID:         r.VersionID,
		VersionStages:     r.VersionStages,
		SecretType:        r.SecretType,
		DataType:          strings.ToLower(r.SecretDataType),
		AutomaticRotation: strings.EqualFold(r.AutomaticRotation, "Enabled"),
		ExtendedConfig:    r.ExtendedConfig,
		Origin:            r.Origin,
	}
	if err := CheckAnswer(secretsource.NewSecret(f), name, ref); err != nil {
		return nil, nil, err
	}
	if r.SecretData == "" {
		return nil, nil, &secretsource.Error{Kind: secretsource.KindInvalidAnswer, Secret: name,
			Message: fmt.Sprintf("version %q has no secret data", r.VersionID)}
	}
	if f.DataType == "" {
		f.DataType = secretsource.DataText
	}
	if f.DataType == secretsource.DataBinary {
		v, err := decodeBase64(r.SecretData)
		if err != nil {
			return nil, nil, &secretsource.Error{Kind: secretsource.KindInvalidAnswer, Secret: name,
				Message: "binary secret data is not valid base64"}
		}
		f.Value = v
	} else {
		f.Value = []byte(r.SecretData)
	}
	var warnings []string
	// Warnings name the field and its length, never its text: an answer that
	// is odd enough to need one may hold anything there.
	parse := func(field, s string, dst *time.Time) {
		t, err := ParseTime(s)
		if err != nil {
			warnings = append(warnings, fmt.Sprintf("%s (%d bytes): %v", field, len(s), err))
		}
		*dst = t
	}
	parse("CreateTime", r.CreateTime, &f.CreateTime)
	parse("NextRotationDate", r.NextRotationDate, &f.NextRotationDate)
	parse("LastRotationDate", r.LastRotationDate, &f.LastRotationDate)
	d, err := ParseRotationInterval(r.RotationInterval)
	if err != nil {
		warnings = append(warnings, fmt.Sprintf("RotationInterval (%d bytes): %v", len(r.RotationInterval), err))
	}
	f.RotationInterval = d
	return secretsource.NewSecret(f), warnings, nil
}

func decodeBase64(s string) ([]byte, error) {
	s = strings.TrimSpace(s)
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if v, err := enc.DecodeString(s); err == nil {
			return v, nil
		}
	}
	return nil, errors.New("not base64")
}

var timeLayouts = []string{
	time.RFC3339Nano,           // 2020-02-21T15:39:26Z, with fraction or offset
	"2006-01-02T15:04:05Z0700", // +0800 without colon
	"2006-01-02T15:04:05.999Z0700",
	"2006-01-02T15:04Z",   // minutes only, as some Alibaba APIs send
	"2006-01-02 15:04:05", // no zone: UTC
	"2006-01-02T15:04:05", // no zone: UTC
}

// ParseTime parses a KMS timestamp (ISO 8601, UTC "Z" or an offset). An empty
// string is the zero time and no error.
func ParseTime(s string) (time.Time, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return time.Time{}, nil
	}
	for _, layout := range timeLayouts {
		if t, err := time.Parse(layout, s); err == nil {
			return t.UTC(), nil
		}
	}
	return time.Time{}, errors.New("not an ISO 8601 time")
}

// ParseRotationInterval parses KMS's rotation interval: a number of seconds
// with an "s" suffix ("604800s"), a bare number of seconds, or a Go duration
// ("168h"). An empty string is zero and no error; negative or overflowing
// values are errors.
func ParseRotationInterval(s string) (time.Duration, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return 0, nil
	}
	num := strings.TrimSuffix(s, "s")
	if n, err := strconv.ParseInt(num, 10, 64); err == nil {
		if n < 0 {
			return 0, errors.New("negative interval")
		}
		if n > math.MaxInt64/int64(time.Second) {
			return 0, errors.New("interval too large")
		}
		return time.Duration(n) * time.Second, nil
	}
	if f, err := strconv.ParseFloat(num, 64); err == nil && !strings.ContainsAny(num, "eEnNiI") {
		if f < 0 {
			return 0, errors.New("negative interval")
		}
		if f*float64(time.Second) >= math.MaxInt64 {
			return 0, errors.New("interval too large")
		}
		return time.Duration(f * float64(time.Second)), nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, errors.New("not a number of seconds like 604800s")
	}
	if d < 0 {
		return 0, errors.New("negative interval")
	}
	return d, nil
}

// CheckAnswer reports whether s is a usable answer to a request for the
// version ref of the secret name: a secret with name's name, a version id,
// and, when ref asks for one, that version id and stage (the zero ref asks for
// ACSCurrent). A gateway that answers HTTP 200 with an empty body, "{}" or an
// error document, or a proxy that serves another secret's answer, fails here
// instead of replacing a good value. The error is a *secretsource.Error of
// KindInvalidAnswer naming what is missing (KindNotFound for another version
// than the id asked for, which KMS itself answers for managed secrets); it
// never holds the value.
//
// Sources check their answers with it; a cache in front of any Source checks
// at least the name and the version id.
func CheckAnswer(s *secretsource.Secret, name string, ref secretsource.VersionRef) error {
	bad := func(msg string) error {
		return &secretsource.Error{Kind: secretsource.KindInvalidAnswer, Secret: name, Message: msg}
	}
	switch {
	case s == nil:
		return bad("the answer holds no secret")
	case s.Name() == "":
		return bad("the answer names no secret")
	case s.Name() != name:
		return bad(fmt.Sprintf("the answer is for another secret (%q)", s.Name()))
	case s.VersionID() == "":
		return bad("the answer has no version id")
	case ref.VersionID != "" && s.VersionID() != ref.VersionID:
		// Not junk: KMS answers ACSCurrent when a managed secret (Rds, PolarDB,
		// Redis, RAMCredentials, ECS) is asked for a version id alone.
		return &secretsource.Error{Kind: secretsource.KindNotFound, Secret: name, Message: fmt.Sprintf("asked for version %q, KMS answered "+
			"version %q: KMS ignores a version id without a stage for Rds, PolarDB, Redis, RAMCredentials and ECS "+
			"secrets; set the Stage (ACSCurrent or ACSPrevious) with the VersionID", ref.VersionID, s.VersionID())}
	}
	stage := ref.Stage
	if stage == "" && ref.VersionID == "" {
		stage = secretsource.StageCurrent
	}
	if stage != "" && !s.HasStage(stage) {
		return bad(fmt.Sprintf("version %q does not carry the stage %s asked for (stages %q)", s.VersionID(), stage, s.VersionStages()))
	}
	return nil
}

// CheckCall refuses a call to a closed source or for an empty secret name
// with a KindConfig error naming source ("kms", "dkms").
func CheckCall(source string, closed bool, name string) error {
	switch {
	case closed:
		return &secretsource.Error{Kind: secretsource.KindConfig, Secret: name, Source: source, Message: "source is closed"}
	case name == "":
		return &secretsource.Error{Kind: secretsource.KindConfig, Source: source, Message: "empty secret name"}
	}
	return nil
}

// DescribeJSONError says what is wrong with a JSON document of n bytes and
// where, without quoting any of it: encoding/json's own messages quote the
// offending character, which can be part of a secret value.
func DescribeJSONError(err error, n int) string {
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	switch {
	case errors.As(err, &se):
		if se.Offset >= int64(n) {
			return fmt.Sprintf("JSON truncated after %d bytes", n)
		}
		return fmt.Sprintf("malformed JSON at byte offset %d of %d", se.Offset, n)
	case errors.As(err, &te):
		got := te.Value
		if i := strings.IndexByte(got, ' '); i >= 0 { // "number 5": keep the JSON kind only
			got = got[:i]
		}
		field := te.Field
		if field == "" {
			field = "the document"
		}
		return fmt.Sprintf("field %s is a JSON %s, want %s (byte offset %d of %d)", field, got, jsonKind(te.Type.Kind().String()), te.Offset, n)
	}
	return "not valid JSON (" + strconv.Itoa(n) + " bytes)"
}

func jsonKind(goKind string) string {
	switch goKind {
	case "string":
		return "a string"
	case "slice", "array":
		return "an array"
	case "struct", "map":
		return "an object"
	case "bool":
		return "a boolean"
	}
	return "a number"
}
