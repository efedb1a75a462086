package secretsource

import (
	"encoding/json"
	"fmt"
)

// DBAccount is a database login decoded from a secret: an Rds secret
// (AccountName/AccountPassword) or a Generic secret that carries the
// account and, optionally, the endpoint.
// Its String and LogValue never show the password.
type DBAccount struct {
	Username string
	Password string
	Host     string // empty when the secret does not carry the endpoint
	Port     int    // 0 when the secret does not carry it
	DBName   string
	Engine   string // mysql, postgres, ... when the secret says so

	SecretName string // the secret it came from
	VersionID  string // the version it came from
}

func (a DBAccount) String() string {
	return fmt.Sprintf("DBAccount(user=%q host=%q port=%d db=%q secret=%q version=%q password=REDACTED)",
		a.Username, a.Host, a.Port, a.DBName, a.SecretName, a.VersionID)
}

// GoString is the same as String.
func (a DBAccount) GoString() string { return a.String() }

// DecodeDBAccount decodes a database account from s. The error names the
// secret and the missing or malformed field, never the value.
func DecodeDBAccount(s *Secret) (DBAccount, error) {
	// Replaced by the full decoder (both Generic spellings, CustomData).
	var raw struct {
		AccountName     string `json:"AccountName"`
		AccountPassword string `json:"AccountPassword"`
	}
	if err := json.Unmarshal(s.f.Value, &raw); err != nil {
		return DBAccount{}, &Error{Kind: KindConfig, Secret: s.f.Name, Message: "secret value is not a JSON object"}
	}
	return DBAccount{Username: raw.AccountName, Password: raw.AccountPassword, SecretName: s.f.Name, VersionID: s.f.VersionID}, nil
}
