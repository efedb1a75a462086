package secretsource

import (
	"encoding/json"
	"encoding/pem"
	"fmt"
	"log/slog"
	"strings"
)

// ECSCredential is the login of an ECS instance decoded from an ECS secret:
// a user name with either a password or an SSH key pair.
// Its String, Format, LogValue and MarshalJSON never show the password or
// the private key.
type ECSCredential struct {
	UserName   string
	Password   string // empty for an SSH key pair secret
	PublicKey  string // OpenSSH public key, when the secret carries one
	PrivateKey string // PEM private key; empty for a password secret

	SecretName string // the KMS secret it came from
	VersionID  string // the version it came from
}

// IsKeyPair reports whether the credential is an SSH key pair rather than a password.
func (c ECSCredential) IsKeyPair() bool { return c.PrivateKey != "" }

func (c ECSCredential) String() string {
	kind := "password"
	if c.IsKeyPair() {
		kind = "ssh-key"
	}
	return fmt.Sprintf("ECSCredential(user=%q kind=%s secret=%q version=%q credential=REDACTED)",
		c.UserName, kind, c.SecretName, c.VersionID)
}

// GoString is the same as String.
func (c ECSCredential) GoString() string { return c.String() }

// Format makes every fmt verb print the redacted form.
func (c ECSCredential) Format(st fmt.State, verb rune) { _, _ = fmt.Fprint(st, c.String()) }

// LogValue makes slog print the user name and kind only.
func (c ECSCredential) LogValue() slog.Value {
	return slog.GroupValue(slog.String("user", c.UserName), slog.Bool("keyPair", c.IsKeyPair()),
		slog.String("secret", c.SecretName), slog.String("version", c.VersionID),
		slog.String("credential", "REDACTED"))
}

// MarshalJSON shows the user name and public key only.
func (c ECSCredential) MarshalJSON() ([]byte, error) {
	return json.Marshal(struct {
		UserName, PublicKey   string
		SecretName, VersionID string
		Password, PrivateKey  string
	}{c.UserName, c.PublicKey, c.SecretName, c.VersionID, "REDACTED", "REDACTED"})
}

// DecodeECSCredential decodes an ECS login from s: {"UserName":…,"Password":…}
// or {"UserName":…,"PublicKey":…,"PrivateKey":"-----BEGIN …"} (keys match
// case-insensitively). The error names the secret and the missing or
// malformed field, never the value.
func DecodeECSCredential(s *Secret) (ECSCredential, error) {
	if s == nil {
		return ECSCredential{}, &Error{Kind: KindConfig, Source: "decode", Message: "nil secret"}
	}
	var buf [16]jsonMember
	obj, ok := parseObject(string(s.fields().Value), buf[:0])
	if !ok {
		return ECSCredential{}, decodeError(s, "", `secret value is not a JSON object; an ECS secret holds {"UserName":…,"Password":…} or {"UserName":…,"PrivateKey":…}`)
	}
	c := ECSCredential{SecretName: s.Name(), VersionID: s.VersionID()}
	for _, f := range []struct {
		dst *string
		key string
	}{{&c.UserName, "UserName"}, {&c.Password, "Password"}, {&c.PublicKey, "PublicKey"}, {&c.PrivateKey, "PrivateKey"}} {
		v, _, ferr := obj.str(f.key)
		if ferr != nil {
			return ECSCredential{}, decodeError(s, ferr.Field, ferr.Problem)
		}
		*f.dst = v
	}
	if strings.TrimSpace(c.UserName) == "" {
		return ECSCredential{}, decodeError(s, "UserName", "missing or empty")
	}
	switch {
	case c.PrivateKey != "":
		if block, _ := pem.Decode([]byte(c.PrivateKey)); block == nil {
			return ECSCredential{}, decodeError(s, "PrivateKey", "expected a PEM encoded private key")
		}
	case c.Password == "":
		return ECSCredential{}, decodeError(s, "Password", `missing or empty, and no "PrivateKey" either: expected a password or an SSH key pair`)
	}
	return c, nil
}
