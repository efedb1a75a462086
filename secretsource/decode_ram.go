package secretsource

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"time"
)

// AccessKey is a RAM AccessKey pair decoded from a RAMCredentials secret.
// Its String, Format, LogValue and MarshalJSON show the id, never the secret.
type AccessKey struct {
	ID                string
	Secret            string
	GenerateTimestamp time.Time // when KMS created the pair; zero when the secret does not say

	SecretName string // the KMS secret it came from
	VersionID  string // the version it came from
}

func (k AccessKey) String() string {
	return fmt.Sprintf("AccessKey(id=%q generated=%s secret=%q version=%q accessKeySecret=REDACTED)",
		k.ID, k.GenerateTimestamp.Format(time.RFC3339), k.SecretName, k.VersionID)
}

// GoString is the same as String.
func (k AccessKey) GoString() string { return k.String() }

// Format makes every fmt verb print the redacted form.
func (k AccessKey) Format(st fmt.State, verb rune) { _, _ = fmt.Fprint(st, k.String()) }

// LogValue makes slog print the id only.
func (k AccessKey) LogValue() slog.Value {
	return slog.GroupValue(slog.String("id", k.ID), slog.Time("generated", k.GenerateTimestamp),
		slog.String("secret", k.SecretName), slog.String("version", k.VersionID),
		slog.String("accessKeySecret", "REDACTED"))
}

// MarshalJSON shows the id only.
func (k AccessKey) MarshalJSON() ([]byte, error) {
	return json.Marshal(struct {
		ID                string
		GenerateTimestamp time.Time
		SecretName        string
		VersionID         string
		Secret            string
	}{k.ID, k.GenerateTimestamp, k.SecretName, k.VersionID, "REDACTED"})
}

// Timestamp layouts KMS uses for GenerateTimestamp (RFC 3339 in UTC), and the
// variants seen in hand-made Generic secrets.
var accessKeyTimeLayouts = []string{time.RFC3339Nano, "2006-01-02T15:04:05", "2006-01-02 15:04:05"}

// DecodeAccessKey decodes a RAM AccessKey from s: the JSON object
// {"AccessKeyId":…,"AccessKeySecret":…,"GenerateTimestamp":"2016-03-25T10:42:40Z"}
// that RAMCredentials secrets hold (keys match case-insensitively;
// GenerateTimestamp is optional). The error names the secret and the missing
// or malformed field, never the value.
func DecodeAccessKey(s *Secret) (AccessKey, error) {
	if s == nil {
		return AccessKey{}, &Error{Kind: KindConfig, Source: "decode", Message: "nil secret"}
	}
	var buf [16]jsonMember
	obj, ok := parseObject(string(s.fields().Value), buf[:0])
	if !ok {
		return AccessKey{}, decodeError(s, "", `secret value is not a JSON object; a RAM secret holds {"AccessKeyId":…,"AccessKeySecret":…}`)
	}
	k := AccessKey{SecretName: s.Name(), VersionID: s.VersionID()}
	var ferr *FieldError
	if k.ID, _, ferr = obj.str("AccessKeyId"); ferr != nil {
		return AccessKey{}, decodeError(s, ferr.Field, ferr.Problem)
	}
	if k.Secret, _, ferr = obj.str("AccessKeySecret"); ferr != nil {
		return AccessKey{}, decodeError(s, ferr.Field, ferr.Problem)
	}
	if strings.TrimSpace(k.ID) == "" {
		return AccessKey{}, decodeError(s, "AccessKeyId", "missing or empty")
	}
	if k.Secret == "" {
		return AccessKey{}, decodeError(s, "AccessKeySecret", "missing or empty")
	}
	ts, present, ferr := obj.str("GenerateTimestamp")
	if ferr != nil {
		return AccessKey{}, decodeError(s, ferr.Field, ferr.Problem)
	}
	if ts = strings.TrimSpace(ts); present && ts != "" {
		var err error
		for _, layout := range accessKeyTimeLayouts {
			if k.GenerateTimestamp, err = time.Parse(layout, ts); err == nil {
				break
			}
		}
		if err != nil {
			return AccessKey{}, decodeError(s, "GenerateTimestamp", "expected an RFC 3339 time such as 2016-03-25T10:42:40Z")
		}
	}
	return k, nil
}
