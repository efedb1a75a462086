package ramsecret

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"

	sdkerrors "github.com/aliyun/alibaba-cloud-sdk-go/sdk/errors"

	"github.com/kmsdb/kmsdb/secretsource"
)

// memCache is a stand-in for *cache.Cache in the pure unit tests: it serves
// a version chosen by the test and counts refreshes. The emulator tests use
// the real cache.
type memCache struct {
	mu        sync.Mutex
	current   *secretsource.Secret // what GetSecret returns
	latest    *secretsource.Secret // what Refresh finds in "KMS"
	refreshes atomic.Int64
	gate      chan struct{} // when set, Refresh waits for it
}

func (m *memCache) GetSecret(ctx context.Context, name string) (*secretsource.Secret, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.current == nil {
		return nil, &secretsource.Error{Kind: secretsource.KindNotFound, Secret: name}
	}
	return m.current, nil
}

func (m *memCache) Invalidate(name, rejectedVersion string) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.current != nil && m.current.VersionID() == rejectedVersion
}

func (m *memCache) Refresh(ctx context.Context, name string) (*secretsource.Secret, error) {
	m.refreshes.Add(1)
	if m.gate != nil {
		<-m.gate
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.current = m.latest
	return m.current, nil
}

func (m *memCache) rotate(s *secretsource.Secret) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.latest = s
}

func ramSecret(version, id, secret string) *secretsource.Secret {
	return secretsource.NewSecret(secretsource.Fields{
		Name: "acs/ram/user/unit", VersionID: version, SecretType: secretsource.TypeRAM, DataType: secretsource.DataText,
		Value: fmt.Appendf(nil, `{"AccessKeyId":%q,"AccessKeySecret":%q,"GenerateTimestamp":"2024-01-02T03:04:05Z"}`, id, secret),
	})
}

// Shapes of the OSS v1 and SLS error types (not dependencies of this module):
// their code is an exported field with no method.
type ossV1ServiceError struct {
	Code, Message, RequestID string
	StatusCode               int
}

func (e ossV1ServiceError) Error() string { return "oss: service returned error: " + e.Code }

type slsError struct {
	HTTPCode  int32
	Code      string
	Message   string
	RequestID string
}

func (e slsError) Error() string { return e.Code }

type ossV2ServiceError struct{ Code string }

func (e *ossV2ServiceError) Error() string { return "Error returned by Service" }

func (e *ossV2ServiceError) ErrorCode() string { return e.Code }

func rejectedErr() error {
	return sdkerrors.NewServerError(404, `{"RequestId":"r","HostId":"h","Code":"InvalidAccessKeyId.NotFound","Message":"Specified access key is not found."}`, "")
}
