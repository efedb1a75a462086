package kmstest

import (
	"crypto/ecdsa"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"
)

// State persistence (WithStateDir).
//
// The state directory holds, all with mode 0600:
//
//	state.json                         CA certificate and key, OIDC token, access keys, client keys (public
//	                                   keys and file names), secrets with every version and stage
//	ca.pem                             the CA certificate (CAFile)
//	oidc-token                         the token AssumeRoleWithOIDC accepts (OIDCTokenFile)
//	clientKey_<id>.json, _Password.txt client keys made by NewClientKey
//
// state.json is rewritten (temporary file + rename) after every change: secrets added, put, rotated or deleted,
// access keys added, revoked or issued (STS, metadata, session keys), client keys registered or revoked. Faults,
// call counters, hooks, nonces, metadata tokens and the Advance offset are not kept.

// stateFileName is the state file inside the state directory.
const stateFileName = "state.json"

// stateFormat is the version of the state file layout.
const stateFormat = 1

type persistedState struct {
	Format     int                  `json:"format"`
	CACert     string               `json:"caCert"` // PEM
	CAKey      string               `json:"caKey"`  // PEM, PKCS#8
	OIDCToken  string               `json:"oidcToken"`
	AccessKeys []persistedAccessKey `json:"accessKeys"`
	ClientKeys []persistedClientKey `json:"clientKeys"`
	Secrets    []persistedSecret    `json:"secrets"`
}

type persistedAccessKey struct {
	ID       string    `json:"id"`
	Secret   string    `json:"secret"`
	Token    string    `json:"securityToken,omitempty"`
	Expires  time.Time `json:"expires,omitzero"`
	Revoked  bool      `json:"revoked,omitempty"`
	RevokeAt time.Time `json:"revokeAt,omitzero"`
}

type persistedClientKey struct {
	KeyID        string `json:"keyId"`
	PublicKey    string `json:"publicKey"` // PEM, PKIX
	File         string `json:"file,omitempty"`
	PasswordFile string `json:"passwordFile,omitempty"`
}

type persistedSecret struct {
	Name              string             `json:"name"`
	Type              string             `json:"type"`
	DataType          string             `json:"dataType"`
	ExtendedConfig    string             `json:"extendedConfig,omitempty"` // JSON text, as returned
	SubType           string             `json:"subType,omitempty"`
	AutomaticRotation bool               `json:"automaticRotation,omitempty"`
	RotationInterval  string             `json:"rotationInterval,omitempty"` // Go duration
	CreateTime        time.Time          `json:"createTime"`
	UpdateTime        time.Time          `json:"updateTime"`
	LastRotation      time.Time          `json:"lastRotation,omitzero"`
	Rotations         int                `json:"rotations,omitempty"`
	Seq               int                `json:"seq"`
	Versions          []persistedVersion `json:"versions"`
}

type persistedVersion struct {
	ID      string    `json:"versionId"`
	Data    string    `json:"data"`
	Stages  []string  `json:"stages"`
	Created time.Time `json:"createTime"`
}

// loadState reads the state file of the state directory; (nil, nil) when there is none yet.
func loadState(dir string) (*persistedState, error) {
	path := filepath.Join(dir, stateFileName)
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("kmstest: state file: %w", err)
	}
	var st persistedState
	if err := json.Unmarshal(b, &st); err != nil {
		// The error of Unmarshal names a type or an offset, never the text of a value.
		return nil, fmt.Errorf("kmstest: state file %s: not valid JSON (%w); remove the directory to start afresh", path, err)
	}
	if st.Format != stateFormat {
		return nil, fmt.Errorf("kmstest: state file %s: format %d, this emulator reads format %d", path, st.Format, stateFormat)
	}
	return &st, nil
}

// caFromState decodes the CA kept in the state; nil, nil when it holds none.
func caFromState(path string, st *persistedState) ([]byte, *ecdsa.PrivateKey, error) {
	if st == nil || st.CACert == "" {
		return nil, nil, nil
	}
	cb, _ := pem.Decode([]byte(st.CACert))
	kb, _ := pem.Decode([]byte(st.CAKey))
	if cb == nil || kb == nil {
		return nil, nil, fmt.Errorf("kmstest: state file %s: caCert and caKey must be PEM blocks", path)
	}
	k, err := x509.ParsePKCS8PrivateKey(kb.Bytes)
	if err != nil {
		return nil, nil, fmt.Errorf("kmstest: state file %s: caKey: %w", path, err)
	}
	ek, ok := k.(*ecdsa.PrivateKey)
	if !ok {
		return nil, nil, fmt.Errorf("kmstest: state file %s: caKey is %T, not ECDSA", path, k)
	}
	return cb.Bytes, ek, nil
}

// restoreState puts the access keys, client keys and secrets of st into the server (before the seed options,
// which then add only what the state does not hold).
func (s *Server) restoreState(path string, st *persistedState) error {
	bad := func(format string, a ...any) error {
		return fmt.Errorf("kmstest: state file %s: "+format, append([]any{path}, a...)...)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, k := range st.AccessKeys {
		if k.ID == "" || k.Secret == "" {
			return bad("accessKeys[%d]: id and secret are required", i)
		}
		s.keys[k.ID] = &accessKey{id: k.ID, secret: k.Secret, token: k.Token, expires: k.Expires,
			revoked: k.Revoked, revokeAt: k.RevokeAt}
	}
	for i, ck := range st.ClientKeys {
		b, _ := pem.Decode([]byte(ck.PublicKey))
		if ck.KeyID == "" || b == nil {
			return bad("clientKeys[%d]: keyId and a PEM publicKey are required", i)
		}
		pk, err := x509.ParsePKIXPublicKey(b.Bytes)
		if err != nil {
			return bad("clientKeys[%d] (%s): publicKey: %v", i, ck.KeyID, err)
		}
		rk, ok := pk.(*rsa.PublicKey)
		if !ok {
			return bad("clientKeys[%d] (%s): publicKey is %T, not RSA", i, ck.KeyID, pk)
		}
		s.dkms.addKey(ck.KeyID, rk)
		s.dkms.setFiles(ClientKey{KeyID: ck.KeyID, File: ck.File, PasswordFile: ck.PasswordFile})
	}
	for i, ps := range st.Secrets {
		if ps.Name == "" || len(ps.Versions) == 0 {
			return bad("secrets[%d]: name and at least one version are required", i)
		}
		var interval time.Duration
		if ps.RotationInterval != "" {
			d, err := time.ParseDuration(ps.RotationInterval)
			if err != nil {
				return bad("secrets[%d] (%s): rotationInterval %q is not a duration", i, ps.Name, ps.RotationInterval)
			}
			interval = d
		}
		e := &secretEntry{name: ps.Name, typ: ps.Type, dataType: ps.DataType, extJSON: ps.ExtendedConfig,
			subType: ps.SubType, autoRotation: ps.AutomaticRotation, interval: interval,
			createTime: ps.CreateTime, updateTime: ps.UpdateTime, lastRotation: ps.LastRotation,
			rotations: ps.Rotations, seq: ps.Seq, rotMu: newChanMutex()}
		for j, v := range ps.Versions {
			if v.ID == "" {
				return bad("secrets[%d] (%s): versions[%d]: versionId is required", i, ps.Name, j)
			}
			e.versions = append(e.versions, &version{id: v.ID, data: v.Data, stages: slices.Clone(v.Stages),
				created: v.Created})
		}
		s.secrets[e.name] = e
	}
	if st.OIDCToken != "" {
		s.oidcToken = st.OIDCToken
	}
	return nil
}

// persist rewrites the state file when the server has a state directory. It is called after every change,
// without s.mu held; errors are logged (the change itself has happened).
func (s *Server) persist() {
	if s.stateDir == "" {
		return
	}
	s.persistMu.Lock()
	defer s.persistMu.Unlock()
	// The snapshot is taken under persistMu, so the last file written holds the latest state.
	b, err := json.MarshalIndent(s.snapshotState(), "", "  ")
	if err == nil {
		err = writeFileAtomic(filepath.Join(s.stateDir, stateFileName), b)
	}
	if err != nil {
		s.logger.Error("cannot save emulator state", "dir", s.stateDir, "error", err.Error())
	}
}

func (s *Server) snapshotState() persistedState {
	st := persistedState{Format: stateFormat, CACert: string(s.caPEM), OIDCToken: s.oidcToken}
	if der, err := x509.MarshalPKCS8PrivateKey(s.caKey); err == nil {
		st.CAKey = string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}))
	}
	now := s.now()
	s.mu.Lock()
	for _, k := range s.keys {
		if !k.expires.IsZero() && now.After(k.expires) {
			continue // an expired temporary key is of no use after a restart
		}
		st.AccessKeys = append(st.AccessKeys, persistedAccessKey{ID: k.id, Secret: k.secret, Token: k.token,
			Expires: k.expires, Revoked: k.revoked, RevokeAt: k.revokeAt})
	}
	for _, name := range s.secretNamesLocked() {
		e := s.secrets[name]
		ps := persistedSecret{Name: e.name, Type: e.typ, DataType: e.dataType, ExtendedConfig: e.extJSON,
			SubType: e.subType, AutomaticRotation: e.autoRotation, CreateTime: e.createTime,
			UpdateTime: e.updateTime, LastRotation: e.lastRotation, Rotations: e.rotations, Seq: e.seq}
		if e.interval > 0 {
			ps.RotationInterval = e.interval.String()
		}
		for _, v := range e.versions {
			ps.Versions = append(ps.Versions, persistedVersion{ID: v.id, Data: v.data, Stages: slices.Clone(v.stages),
				Created: v.created})
		}
		st.Secrets = append(st.Secrets, ps)
	}
	s.mu.Unlock()
	sort.Slice(st.AccessKeys, func(i, j int) bool { return st.AccessKeys[i].ID < st.AccessKeys[j].ID })
	for _, ck := range s.dkms.list() {
		st.ClientKeys = append(st.ClientKeys, persistedClientKey{KeyID: ck.keyID, PublicKey: ck.publicPEM,
			File: ck.files.File, PasswordFile: ck.files.PasswordFile})
	}
	return st
}

// ClientKeys lists the registered client keys, sorted by key id, with the files they were registered from
// (empty when registered otherwise). Password is always empty: it is in PasswordFile. With WithStateDir the
// keys registered in an earlier run are listed too, so a restarted emulator can hand out the same key.
func (s *Server) ClientKeys() []ClientKey {
	var out []ClientKey
	for _, ck := range s.dkms.list() {
		k := ck.files
		k.KeyID = ck.keyID
		k.Password = ""
		out = append(out, k)
	}
	return out
}

// StateDir is the directory given to WithStateDir, "" without it.
func (s *Server) StateDir() string { return s.stateDir }

// WithStateDir keeps the emulator's state in dir (created with mode 0700 if missing) and reloads it on the next
// start with the same dir: the CA (so a client's saved CAFile keeps working; the leaf certificate is new each
// start), the OIDC token, access keys (permanent, RAM-rotated and unexpired temporary ones), registered client
// keys, and every secret with its versions and stages. A secret or access key found in the state wins over a
// WithSecret or WithAccessKey of the same name; the others are added. Files NewClientKey writes go to dir too,
// and Close leaves dir in place. Faults, call counters, hooks and the Advance offset are not kept. Remove the
// directory to start afresh; do not share it between two running servers. Every file is written with mode 0600;
// state.json holds secret values and key secrets in clear text, as a test fixture does.
func WithStateDir(dir string) Option {
	return func(c *config) {
		if strings.TrimSpace(dir) == "" {
			c.err = errors.Join(c.err, errors.New("kmstest: WithStateDir: the directory must not be empty"))
			return
		}
		c.stateDir = dir
	}
}
