package testdb

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"

	"github.com/kmsdb/kmsdb/secretsource"
)

// Secrets is an in-memory secret store for tests of what sits above a
// source (the cache and the connectors): each Put makes a new version
// ACSCurrent and moves the one before to ACSPrevious, as a KMS rotation
// does. It implements secretsource.Source and secretsource.VersionSource
// and counts the calls it answers. The KMS emulator (secretsource/kmstest)
// is the wire-level equivalent.
type Secrets struct {
	mu       sync.Mutex
	versions map[string][]*secretsource.Secret // oldest first
	seq      int
	calls    atomic.Int64
}

// NewSecrets returns an empty store.
func NewSecrets() *Secrets { return &Secrets{versions: map[string][]*secretsource.Secret{}} }

// Account is the JSON a database secret holds. Host, Port and DBName are
// omitted when empty.
type Account struct {
	User     string `json:"AccountName"`
	Password string `json:"AccountPassword"`
	Host     string `json:"host,omitempty"`
	Port     int    `json:"port,omitempty"`
	DBName   string `json:"dbname,omitempty"`
}

// String shows the account without its password, so test logs never print it.
func (a Account) String() string {
	return fmt.Sprintf("testdb.Account(user=%q host=%q port=%d db=%q password=REDACTED)", a.User, a.Host, a.Port, a.DBName)
}

// GoString is String.
func (a Account) GoString() string { return a.String() }

// Format prints String for every verb.
func (a Account) Format(st fmt.State, _ rune) { _, _ = io.WriteString(st, a.String()) }

// LogValue makes slog print String.
func (a Account) LogValue() slog.Value { return slog.StringValue(a.String()) }

// Account returns the account of user on this server: its TCP endpoint and DBName.
func (s *Server) Account(user, password string) Account {
	return Account{User: user, Password: password, Host: s.Host(), Port: s.Port(), DBName: Database}
}

// PutAccount stores a new version of secret name holding a (an Rds secret)
// and returns its version id.
func (st *Secrets) PutAccount(name string, a Account) string {
	b, err := json.Marshal(a) //nolint:gosec // test-only: an Rds secret's value is the account JSON, password included, by design
	if err != nil {
		panic(err)
	}
	return st.Put(name, secretsource.TypeRds, string(b))
}

// Put stores a new version of secret name with the given type and text
// value, makes it ACSCurrent and the previous current ACSPrevious, and
// returns its version id.
func (st *Secrets) Put(name, secretType, value string) string {
	return st.PutExtended(name, secretType, value, "")
}

// PutExtended is Put with an ExtendedConfig (raw JSON, as KMS returns it),
// where Rds secrets keep their endpoint in CustomData.
func (st *Secrets) PutExtended(name, secretType, value, extendedConfig string) string {
	st.mu.Lock()
	defer st.mu.Unlock()
	st.seq++
	id := "v" + strconv.Itoa(st.seq)
	vs := st.versions[name]
	st.versions[name] = append(vs, secretsource.NewSecret(secretsource.Fields{
		Name: name, VersionID: id, SecretType: secretType, DataType: secretsource.DataText, Value: []byte(value),
		ExtendedConfig: extendedConfig,
	}))
	return id
}

// Calls is the number of GetSecret and GetSecretVersion calls answered.
func (st *Secrets) Calls() int64 { return st.calls.Load() }

// GetSecret returns the ACSCurrent version.
func (st *Secrets) GetSecret(ctx context.Context, name string) (*secretsource.Secret, error) {
	return st.GetSecretVersion(ctx, name, secretsource.VersionRef{})
}

// GetSecretVersion returns ACSCurrent, ACSPrevious or a version by id.
func (st *Secrets) GetSecretVersion(ctx context.Context, name string, ref secretsource.VersionRef) (*secretsource.Secret, error) {
	st.calls.Add(1)
	st.mu.Lock()
	defer st.mu.Unlock()
	vs := st.versions[name]
	pick := func(i int, stage string) (*secretsource.Secret, error) {
		if i < 0 || i >= len(vs) {
			return nil, &secretsource.Error{Kind: secretsource.KindNotFound, Secret: name, Source: "testdb",
				Message: fmt.Sprintf("no version with stage %q", stage)}
		}
		f := vs[i].Fields()
		f.VersionStages = []string{stage}
		return secretsource.NewSecret(f), nil
	}
	switch {
	case ref.VersionID != "":
		for i, v := range vs {
			if v.VersionID() == ref.VersionID {
				stage := ""
				switch i {
				case len(vs) - 1:
					stage = secretsource.StageCurrent
				case len(vs) - 2:
					stage = secretsource.StagePrevious
				}
				return pick(i, stage)
			}
		}
		return nil, &secretsource.Error{Kind: secretsource.KindNotFound, Secret: name, Source: "testdb", Message: "no such version id"}
	case ref.Stage == "" || ref.Stage == secretsource.StageCurrent:
		return pick(len(vs)-1, secretsource.StageCurrent)
	case ref.Stage == secretsource.StagePrevious:
		return pick(len(vs)-2, secretsource.StagePrevious)
	}
	return nil, &secretsource.Error{Kind: secretsource.KindNotFound, Secret: name, Source: "testdb", Message: "unknown stage " + ref.Stage}
}
