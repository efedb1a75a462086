package kmstest

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"sort"
	"strings"
	"time"
)

// Secret types and version stages, as the service names them.
const (
	typeGeneric = "Generic"
	typeRds     = "Rds"
	typePolarDB = "PolarDB"
	typeRedis   = "Redis" // ApsaraDB for Redis/Tair
	typeRAM     = "RAMCredentials"
	typeECS     = "ECS"

	stageCurrent  = "ACSCurrent"
	stagePrevious = "ACSPrevious"
	stagePending  = "ACSPending"

	// timeLayout is how the service formats CreateTime, NextRotationDate and the like.
	timeLayout = "2006-01-02T15:04:05Z"
)

// SecretSpec describes a secret to add to the emulator.
type SecretSpec struct {
	// Name of the secret. Type is Generic (default), Rds, PolarDB, Redis, RAMCredentials or ECS. Every type
	// but Generic is a managed secret, read as KMS serves those: only ACSCurrent and ACSPrevious, VersionId
	// alone ignored (see the package documentation).
	Name, Type string
	// Data is the text value: JSON {"AccountName","AccountPassword"} for Rds, PolarDB and Redis,
	// {"AccessKeyId","AccessKeySecret"}
	// for RAMCredentials (the pair is registered as an AccessKey the gateways accept), {"UserName","Password"} or
	// {"UserName","PublicKey","PrivateKey"} for ECS, anything for Generic.
	Data string
	// DataType is "text" (default) or "binary"; for binary, Data is the base64 text KMS returns.
	DataType string
	// ExtendedConfig, returned with FetchExtendedConfig, e.g. {"SecretSubType":"SingleUser"|"DoubleUsers"} for
	// Rds, PolarDB and Redis (default SingleUser), {"SecretSubType":"Password"|"SSHKey"} for ECS.
	ExtendedConfig map[string]any
	// AutomaticRotation and RotationInterval give the NextRotationDate the service reports (last rotation, or
	// creation, plus the interval). The emulator never rotates on its own: call RotateSecret or Advance and rotate.
	AutomaticRotation bool
	RotationInterval  time.Duration
}

// SpecError says which field of a SecretSpec is wrong. It never holds the secret value.
type SpecError struct {
	Secret, Field, Problem string
}

func (e *SpecError) Error() string {
	return fmt.Sprintf("kmstest: secret %q: field %s: %s", e.Secret, e.Field, e.Problem)
}

// SecretState is a snapshot of a secret for test assertions. Its String method redacts the values.
type SecretState struct {
	Name, Type, DataType string
	CurrentVersionID     string
	CurrentValue         string
	PreviousVersionID    string // "" when no version has ACSPrevious
	PreviousValue        string
	PendingVersionID     string // "" when no version has ACSPending
	PendingValue         string
	Versions             []VersionState // oldest first
	CreateTime           time.Time
	LastRotationDate     time.Time // zero before the first rotation
	NextRotationDate     time.Time // zero without AutomaticRotation
	Rotations            int
}

// VersionState is one version of a secret.
type VersionState struct {
	VersionID  string
	Value      string
	Stages     []string
	CreateTime time.Time
}

// String describes the state without any value.
func (st SecretState) String() string {
	return fmt.Sprintf("kmstest.SecretState{Name:%q Type:%s Current:%q Previous:%q Pending:%q Versions:%d Rotations:%d}",
		st.Name, st.Type, st.CurrentVersionID, st.PreviousVersionID, st.PendingVersionID, len(st.Versions), st.Rotations)
}

// GoString is String, so %#v does not print values either.
func (st SecretState) GoString() string { return st.String() }

// String describes the version without its value.
func (v VersionState) String() string {
	return fmt.Sprintf("kmstest.VersionState{VersionID:%q Stages:%v}", v.VersionID, v.Stages)
}

// GoString is String.
func (v VersionState) GoString() string { return v.String() }

// RotationEvent is passed to OnRotate hooks.
type RotationEvent struct {
	SecretName, SecretType     string
	OldVersionID, NewVersionID string
	OldValue, NewValue         string
	// Phase is "before" (the new version exists with ACSPending, stages not moved yet) or "after" (the new
	// version is ACSCurrent, the old one ACSPrevious). During "before" the gateways still serve the old
	// version as ACSCurrent; the ACSPending version of a managed (non-Generic) secret cannot be read.
	Phase string
}

// String describes the event without the values.
func (e RotationEvent) String() string {
	return fmt.Sprintf("kmstest.RotationEvent{Secret:%q Phase:%s %q->%q}", e.SecretName, e.Phase, e.OldVersionID, e.NewVersionID)
}

// GoString is String.
func (e RotationEvent) GoString() string { return e.String() }

// secretView is what the gateways return for one version of a secret.
type secretView struct {
	Name, Type, DataType, Data, VersionID string
	Stages                                []string
	CreateTime, NextRotationDate          time.Time
	LastRotationDate                      time.Time
	AutomaticRotation                     bool
	RotationInterval                      time.Duration
	ExtendedConfig                        string
}

type secretEntry struct {
	name, typ, dataType string
	extJSON             string
	subType             string
	autoRotation        bool
	interval            time.Duration
	createTime          time.Time
	updateTime          time.Time
	lastRotation        time.Time
	rotations           int
	versions            []*version // oldest first
	seq                 int
	rotMu               chanMutex // serializes rotations of this secret (held while hooks run)
}

type version struct {
	id, data string
	stages   []string
	created  time.Time
}

// chanMutex is a mutex that does not trip vet's copylocks in value snapshots.
type chanMutex chan struct{}

func newChanMutex() chanMutex { return make(chanMutex, 1) }
func (m chanMutex) Lock()     { m <- struct{}{} }
func (m chanMutex) Unlock()   { <-m }

func (e *secretEntry) byStage(stage string) *version {
	for _, v := range e.versions {
		if slices.Contains(v.stages, stage) {
			return v
		}
	}
	return nil
}

func (e *secretEntry) byID(id string) *version {
	for _, v := range e.versions {
		if v.id == id {
			return v
		}
	}
	return nil
}

func (e *secretEntry) newVersionID() string {
	e.seq++
	return fmt.Sprintf("v%d-%s", e.seq, randomAlnum(6, "abcdefghijklmnopqrstuvwxyz0123456789"))
}

// removeStage takes stage off every version.
func (e *secretEntry) removeStage(stage string) {
	for _, v := range e.versions {
		v.stages = slices.DeleteFunc(v.stages, func(s string) bool { return s == stage })
	}
}

// prune drops the oldest versions without any stage beyond ten kept versions, as the service deprecates them.
func (e *secretEntry) prune() {
	for len(e.versions) > 10 {
		i := slices.IndexFunc(e.versions, func(v *version) bool { return len(v.stages) == 0 })
		if i < 0 {
			return
		}
		e.versions = slices.Delete(e.versions, i, i+1)
	}
}

func (e *secretEntry) nextRotation() time.Time {
	if !e.autoRotation || e.interval <= 0 {
		return time.Time{}
	}
	base := e.lastRotation
	if base.IsZero() {
		base = e.createTime
	}
	return base.Add(e.interval)
}

func (e *secretEntry) automaticRotationString() string {
	switch {
	case e.autoRotation:
		return "Enabled"
	case !e.managed():
		return "" // the service returns AutomaticRotation only for managed (Rds, PolarDB, Redis, RAM, ECS) secrets
	default:
		return "Disabled"
	}
}

func (e *secretEntry) view(v *version, fetchExt bool) secretView {
	sv := secretView{
		Name: e.name, Type: e.typ, DataType: e.dataType, Data: v.data, VersionID: v.id,
		Stages: slices.Clone(v.stages), CreateTime: v.created, NextRotationDate: e.nextRotation(),
		LastRotationDate: e.lastRotation, AutomaticRotation: e.autoRotation, RotationInterval: e.interval,
	}
	if fetchExt {
		sv.ExtendedConfig = e.extJSON
	}
	return sv
}

func errNotFound(name string) *apiError {
	return &apiError{Status: http.StatusNotFound, Code: "Forbidden.ResourceNotFound",
		Message: "The resource you requested is not found: secret " + name + "."}
}

// errVersionNotFound is the answer for a stage or version id the secret has no (readable) version for.
func errVersionNotFound(name, stage, versionID string) *apiError {
	return &apiError{Status: http.StatusNotFound, Code: "Forbidden.ResourceNotFound",
		Message: "The resource you requested is not found: secret " + name + " has no version " +
			strings.TrimSpace(versionID+" "+stage) + "."}
}

// managed reports whether e is a managed secret (database, RAM or ECS). For these KMS returns only the versions
// marked ACSCurrent and ACSPrevious, and ignores a VersionId given without a VersionStage.
func (e *secretEntry) managed() bool { return e.typ != typeGeneric }

// getSecretValue reads one version as GetSecretValue does on both gateways.
//
// Generic secrets: by versionID when given (which must also carry stage when both are given), else by stage
// (default ACSCurrent); any stage can be read, ACSPending included.
//
// Managed secrets (Rds, PolarDB, Redis, RAMCredentials, ECS): only ACSCurrent and ACSPrevious can be read, any
// other stage is not found; a versionID without a stage is ignored (ACSCurrent is returned); a versionID with a
// stage must name the version that carries that stage.
func (s *Server) getSecretValue(name, stage, versionID string, fetchExt bool) (secretView, *apiError) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e := s.secrets[name]
	if e == nil {
		return secretView{}, errNotFound(name)
	}
	var v *version
	switch {
	case e.managed():
		if stage == "" {
			stage, versionID = stageCurrent, ""
		}
		if stage != stageCurrent && stage != stagePrevious {
			return secretView{}, errVersionNotFound(name, stage, versionID)
		}
		v = e.byStage(stage)
		if v != nil && versionID != "" && v.id != versionID {
			v = nil
		}
	case versionID != "":
		v = e.byID(versionID)
		if v != nil && stage != "" && !slices.Contains(v.stages, stage) {
			v = nil
		}
	default:
		if stage == "" {
			stage = stageCurrent
		}
		v = e.byStage(stage)
	}
	if v == nil {
		return secretView{}, errVersionNotFound(name, stage, versionID)
	}
	return e.view(v, fetchExt), nil
}

// AddSecret adds (or replaces) a secret with one version in stage ACSCurrent.
func (s *Server) AddSecret(spec SecretSpec) error {
	e, err := buildEntry(spec, s.now())
	if err != nil {
		return err
	}
	s.mu.Lock()
	if e.typ == typeRAM {
		s.registerRAMKeyLocked(e.versions[0].data)
	}
	s.secrets[e.name] = e
	s.mu.Unlock()
	s.persist()
	return nil
}

// Validate reports what AddSecret would reject in spec, as a *SpecError naming the field.
func (spec SecretSpec) Validate() error {
	_, err := buildEntry(spec, time.Time{})
	return err
}

func buildEntry(spec SecretSpec, now time.Time) (*secretEntry, error) {
	bad := func(field, problem string) error {
		return &SpecError{Secret: spec.Name, Field: field, Problem: problem}
	}
	if spec.Name == "" {
		return nil, bad("Name", "must not be empty")
	}
	typ := spec.Type
	if typ == "" {
		typ = typeGeneric
	}
	dataType := spec.DataType
	switch dataType {
	case "", "text":
		dataType = "text"
	case "binary":
		if _, err := base64.StdEncoding.DecodeString(spec.Data); err != nil {
			return nil, bad("DataType", "binary data must be standard base64")
		}
	default:
		return nil, bad("DataType", fmt.Sprintf("%q is not text or binary", spec.DataType))
	}
	ext := map[string]any{}
	for k, v := range spec.ExtendedConfig {
		ext[k] = v
	}
	sub, _ := ext["SecretSubType"].(string)
	if _, ok := ext["SecretSubType"]; ok && sub == "" {
		return nil, bad("ExtendedConfig.SecretSubType", "must be a non-empty string")
	}
	obj := map[string]any{}
	needJSON := func(keys ...string) error {
		if dataType != "text" {
			return bad("DataType", typ+" secrets hold text JSON")
		}
		if err := json.Unmarshal([]byte(spec.Data), &obj); err != nil {
			return bad("Data", typ+" data must be a JSON object (value not shown)")
		}
		for _, k := range keys {
			if v, _ := obj[k].(string); v == "" {
				return bad("Data", fmt.Sprintf("%s data needs a non-empty string %q", typ, k))
			}
		}
		return nil
	}
	switch typ {
	case typeGeneric:
	case typeRds, typePolarDB, typeRedis:
		if err := needJSON("AccountName", "AccountPassword"); err != nil {
			return nil, err
		}
		switch sub {
		case "":
			sub = "SingleUser"
		case "SingleUser", "DoubleUsers":
		default:
			return nil, bad("ExtendedConfig.SecretSubType", fmt.Sprintf("%q is not SingleUser or DoubleUsers", sub))
		}
	case typeRAM:
		if err := needJSON("AccessKeyId", "AccessKeySecret"); err != nil {
			return nil, err
		}
		if sub == "" {
			sub = "RamUserAccessKey"
		}
	case typeECS:
		if err := needJSON("UserName"); err != nil {
			return nil, err
		}
		if sub == "" {
			sub = "Password"
			if _, ok := obj["PrivateKey"]; ok {
				sub = "SSHKey"
			}
		}
		switch sub {
		case "Password":
			if err := needJSON("UserName", "Password"); err != nil {
				return nil, err
			}
		case "SSHKey":
			if err := needJSON("UserName", "PublicKey", "PrivateKey"); err != nil {
				return nil, err
			}
		default:
			return nil, bad("ExtendedConfig.SecretSubType", fmt.Sprintf("%q is not Password or SSHKey", sub))
		}
	default:
		return nil, bad("Type", fmt.Sprintf("%q is not Generic, Rds, PolarDB, Redis, RAMCredentials or ECS", spec.Type))
	}
	if spec.RotationInterval < 0 {
		return nil, bad("RotationInterval", "must not be negative")
	}
	if spec.AutomaticRotation && spec.RotationInterval == 0 {
		return nil, bad("RotationInterval", "is required with AutomaticRotation")
	}
	if sub != "" {
		ext["SecretSubType"] = sub
	}
	extJSON := ""
	if len(ext) > 0 {
		b, err := json.Marshal(ext)
		if err != nil {
			return nil, bad("ExtendedConfig", "cannot be encoded as JSON: "+err.Error())
		}
		extJSON = string(b)
	}
	e := &secretEntry{
		name: spec.Name, typ: typ, dataType: dataType, extJSON: extJSON, subType: sub,
		autoRotation: spec.AutomaticRotation, interval: spec.RotationInterval,
		createTime: now, updateTime: now, rotMu: newChanMutex(),
	}
	e.versions = []*version{{id: e.newVersionID(), data: spec.Data, stages: []string{stageCurrent}, created: now}}
	return e, nil
}

// DeleteSecret removes a secret at once (no recovery window).
func (s *Server) DeleteSecret(name string) error {
	s.mu.Lock()
	if s.secrets[name] == nil {
		s.mu.Unlock()
		return fmt.Errorf("kmstest: DeleteSecret: secret %q not found", name)
	}
	delete(s.secrets, name)
	s.mu.Unlock()
	s.persist()
	return nil
}

// PutSecretValue stores a new version of a Generic secret, as the PutSecretValue action does. stages default to
// ACSCurrent; moving ACSCurrent makes the old current version ACSPrevious. Putting an existing version id with the
// same data is a no-op, with other data an error. Like KMS, it refuses managed secrets (Rds, PolarDB, Redis,
// RAMCredentials, ECS), whose versions only their rotation makes: to set one up in a test, use AddVersion.
func (s *Server) PutSecretValue(name, data, versionID string, stages ...string) error {
	if err := s.putSecretValue(name, data, "", versionID, stages); err != nil {
		return fmt.Errorf("kmstest: PutSecretValue %q: %w", name, err)
	}
	return nil
}

// AddVersion is a test control, not a KMS action: it stores a version of a secret of any type, with the rules of
// PutSecretValue (stages default to ACSCurrent, moving ACSCurrent makes the old current version ACSPrevious), as
// KMS's own rotation of a managed secret does. Tests use it to give a managed secret a version with a chosen value
// (a password they set in the database); PutSecretValue refuses managed secrets, as KMS does.
func (s *Server) AddVersion(name, data, versionID string, stages ...string) error {
	if err := s.storeVersion(name, data, "", versionID, stages, true); err != nil {
		return fmt.Errorf("kmstest: AddVersion %q: %w", name, err)
	}
	return nil
}

func (s *Server) putSecretValue(name, data, dataType, versionID string, stages []string) *apiError {
	return s.storeVersion(name, data, dataType, versionID, stages, false)
}

func (s *Server) storeVersion(name, data, dataType, versionID string, stages []string, anyType bool) *apiError {
	aerr := s.putSecretValueNoSave(name, data, dataType, versionID, stages, anyType)
	if aerr == nil {
		s.persist()
	}
	return aerr
}

// errPutManaged is KMS's refusal of PutSecretValue on a managed secret. The PutSecretValue reference says the action
// "supports only generic secrets" without naming the code; UnsupportedOperation (message
// Rejected.UnsupportedOperation) is the code KMS's common error table gives for an operation it does not support.
func errPutManaged(name, typ string) *apiError {
	return &apiError{Status: http.StatusBadRequest, Code: "UnsupportedOperation",
		Message: "Rejected.UnsupportedOperation: PutSecretValue supports only Generic secrets; secret " + name + " is a " + typ + " secret"}
}

func (s *Server) putSecretValueNoSave(name, data, dataType, versionID string, stages []string, anyType bool) *apiError {
	if versionID == "" {
		return &apiError{Status: http.StatusBadRequest, Code: "MissingParameter",
			Message: "The parameter VersionId needed but no provided."}
	}
	if len(stages) == 0 {
		stages = []string{stageCurrent}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	e := s.secrets[name]
	if e == nil {
		return errNotFound(name)
	}
	if e.managed() && !anyType {
		return errPutManaged(name, e.typ)
	}
	if dataType != "" && dataType != e.dataType {
		e.dataType = dataType
	}
	if v := e.byID(versionID); v != nil {
		if v.data == data {
			return nil
		}
		return &apiError{Status: http.StatusBadRequest, Code: "Rejected.ResourceExist",
			Message: "The version " + versionID + " of secret " + name + " already exists."}
	}
	now := s.now()
	nv := &version{id: versionID, data: data, created: now}
	for _, st := range stages {
		if st == stageCurrent {
			if old := e.byStage(stageCurrent); old != nil {
				e.removeStage(stagePrevious)
				old.stages = append(slices.DeleteFunc(old.stages, func(x string) bool { return x == stageCurrent }), stagePrevious)
			}
		} else {
			e.removeStage(st)
		}
		if !slices.Contains(nv.stages, st) {
			nv.stages = append(nv.stages, st)
		}
	}
	e.versions = append(e.versions, nv)
	e.updateTime = now
	e.prune()
	if e.typ == typeRAM {
		s.registerRAMKeyLocked(data)
	}
	return nil
}

// OnRotate registers a hook called synchronously on every rotation, twice: Phase "before" and "after" (see
// RotationEvent). The API call that rotated returns only after the hooks. A hook must not rotate the same secret.
func (s *Server) OnRotate(hook func(RotationEvent)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.hooks = append(s.hooks, hook)
}

// OnRotatePending registers a hook called synchronously on every rotation while the new version is ACSPending
// (Phase "before"), ahead of the OnRotate hooks: the step where the service changes the database account of an
// Rds or PolarDB secret. An error aborts the rotation as the service's does when that step fails: the pending
// version is dropped, the stages do not move, and RotateSecret (the action, the admin endpoint) fails with
// Rejected.Unexpected and the error's text, which must therefore never hold a secret value. A hook must not
// rotate the same secret.
func (s *Server) OnRotatePending(hook func(RotationEvent) error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.checks = append(s.checks, hook)
}

// SecretNames lists the names of the emulator's secrets, sorted.
func (s *Server) SecretNames() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.secretNamesLocked()
}

// RotateSecret rotates a secret as the RotateSecret action does and returns the new version id.
//   - Generic: a new random value (in a JSON object, only the password field — AccountPassword, password or
//     Password — changes).
//   - Rds, PolarDB and Redis SingleUser: a new AccountPassword for the same AccountName.
//   - Rds, PolarDB and Redis DoubleUsers: the other account becomes current with a new password. The two
//     accounts are the one in ACSPrevious, or else NAME and NAME_clone (app <-> app_clone).
//   - RAMCredentials: a new AccessKey pair, accepted at once; the old one is revoked after WithRAMKeyRevokeDelay.
//   - ECS: a new Password, or a new ed25519 key pair for SSHKey.
func (s *Server) RotateSecret(name string) (newVersionID string, err error) {
	id, aerr := s.rotate(name, "")
	if aerr != nil {
		return "", fmt.Errorf("kmstest: RotateSecret %q: %w", name, aerr)
	}
	return id, nil
}

func (s *Server) rotate(name, versionID string) (string, *apiError) {
	s.mu.Lock()
	e := s.secrets[name]
	s.mu.Unlock()
	if e == nil {
		return "", errNotFound(name)
	}
	e.rotMu.Lock()
	defer e.rotMu.Unlock()

	s.mu.Lock()
	if s.secrets[name] != e {
		s.mu.Unlock()
		return "", errNotFound(name)
	}
	if versionID != "" && e.byID(versionID) != nil {
		s.mu.Unlock()
		return "", &apiError{Status: http.StatusBadRequest, Code: "Rejected.ResourceExist",
			Message: "The version " + versionID + " of secret " + name + " already exists."}
	}
	cur := e.byStage(stageCurrent)
	oldID, oldData := "", ""
	if cur != nil {
		oldID, oldData = cur.id, cur.data
	}
	var prevData string
	if p := e.byStage(stagePrevious); p != nil {
		prevData = p.data
	}
	newData, err := rotatedValue(e, oldData, prevData, s.now())
	if err != nil {
		s.mu.Unlock()
		return "", &apiError{Status: http.StatusBadRequest, Code: "Rejected.Unexpected", Message: err.Error()}
	}
	if versionID == "" {
		versionID = e.newVersionID()
	}
	e.removeStage(stagePending)
	nv := &version{id: versionID, data: newData, stages: []string{stagePending}, created: s.now()}
	e.versions = append(e.versions, nv)
	if e.typ == typeRAM {
		s.registerRAMKeyLocked(newData)
	}
	hooks, checks := slices.Clone(s.hooks), slices.Clone(s.checks)
	s.mu.Unlock()

	ev := RotationEvent{SecretName: name, SecretType: e.typ, OldVersionID: oldID, NewVersionID: versionID,
		OldValue: oldData, NewValue: newData, Phase: "before"}
	for _, h := range checks {
		if err := h(ev); err != nil {
			s.mu.Lock()
			e.versions = slices.DeleteFunc(e.versions, func(v *version) bool { return v == nv })
			if e.typ == typeRAM {
				if p, ok := parseRAMPair(newData); ok {
					delete(s.keys, p.AccessKeyId)
				}
			}
			s.mu.Unlock()
			s.logger.Warn("rotation failed", "secret", name, "type", e.typ, "version", versionID, "err", err)
			return "", &apiError{Status: http.StatusBadRequest, Code: "Rejected.Unexpected",
				Message: "The rotation of secret " + name + " failed: " + err.Error()}
		}
	}
	for _, h := range hooks {
		h(ev)
	}

	s.mu.Lock()
	now := s.now()
	if old := e.byStage(stageCurrent); old != nil {
		e.removeStage(stagePrevious)
		old.stages = append(slices.DeleteFunc(old.stages, func(x string) bool { return x == stageCurrent }), stagePrevious)
	}
	nv.stages = slices.DeleteFunc(nv.stages, func(x string) bool { return x == stagePending })
	nv.stages = append(nv.stages, stageCurrent)
	e.lastRotation = now
	e.updateTime = now
	e.rotations++
	e.prune()
	if e.typ == typeRAM {
		s.scheduleRAMKeyRevokeLocked(oldData, newData, now)
	}
	hooks = slices.Clone(s.hooks)
	s.mu.Unlock()

	ev.Phase = "after"
	for _, h := range hooks {
		h(ev)
	}
	s.persist()
	s.logger.Info("rotated secret", "secret", name, "type", e.typ, "oldVersion", oldID, "newVersion", versionID)
	return versionID, nil
}

// Secret returns a snapshot of a secret for assertions.
func (s *Server) Secret(name string) (SecretState, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e := s.secrets[name]
	if e == nil {
		return SecretState{}, false
	}
	st := SecretState{Name: e.name, Type: e.typ, DataType: e.dataType, CreateTime: e.createTime,
		LastRotationDate: e.lastRotation, NextRotationDate: e.nextRotation(), Rotations: e.rotations}
	for _, v := range e.versions {
		st.Versions = append(st.Versions, VersionState{VersionID: v.id, Value: v.data, Stages: slices.Clone(v.stages),
			CreateTime: v.created})
		for _, stg := range v.stages {
			switch stg {
			case stageCurrent:
				st.CurrentVersionID, st.CurrentValue = v.id, v.data
			case stagePrevious:
				st.PreviousVersionID, st.PreviousValue = v.id, v.data
			case stagePending:
				st.PendingVersionID, st.PendingValue = v.id, v.data
			}
		}
	}
	return st, true
}

// secretNames lists the secrets sorted by name.
func (s *Server) secretNamesLocked() []string {
	names := make([]string, 0, len(s.secrets))
	for n := range s.secrets {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}
