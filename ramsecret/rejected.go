package ramsecret

import (
	"errors"
	"fmt"
	"reflect"
	"slices"

	"github.com/alibabacloud-go/tea/tea"
	sdkerrors "github.com/aliyun/alibaba-cloud-sdk-go/sdk/errors"
)

// RejectedKeyCodes returns the service error codes that mean the AccessKey used
// to sign the request is no longer valid: deleted after a rotation, or
// disabled. They are matched exactly, on the code only.
//
//   - InvalidAccessKeyId.NotFound: the POP (RPC and ROA) APIs, through the
//     core SDK (*errors.ServerError) and the Tea SDKs (*tea.SDKError,
//     darabonba ClientError), and STS, for a deleted key.
//   - InvalidAccessKeyId.Inactive: the same APIs, for a disabled key.
//   - InvalidAccessKeyId: OSS (v1 oss.ServiceError, v2 *oss.ServiceError) and
//     SLS, for a key that does not exist.
//   - Unauthorized: SLS (*sls.Error), for a key that is missing or disabled.
//
// Signature errors (SignatureDoesNotMatch) are not in the list: a valid key
// never produces them, so refreshing the secret cannot help.
//
// It returns a copy; add codes with WithRejectedKeyCodes.
func RejectedKeyCodes() []string { return slices.Clone(rejectedKeyCodes) }

var rejectedKeyCodes = []string{
	"InvalidAccessKeyId.NotFound",
	"InvalidAccessKeyId.Inactive",
	"InvalidAccessKeyId",
	"Unauthorized",
}

// errorCode returns the service error code carried by err or by any error it
// wraps, and whether one was found. It reads, without parsing messages:
//
//   - alibaba-cloud-sdk-go: *errors.ServerError and *errors.ClientError (ErrorCode());
//   - Tea SDKs: *tea.SDKError (Code), and the darabonba errors with
//     GetCode() *string (dara.SDKError, openapi ClientError/ServerError/ThrottlingError);
//   - OSS v2: *oss.ServiceError (ErrorCode());
//   - types with an exported string field named Code: OSS v1 oss.ServiceError,
//     SLS *sls.Error, secretsource.Error.
func errorCode(err error) (string, bool) {
	var code string
	found := walk(err, func(e error) bool {
		code = codeOf(e)
		return code != ""
	})
	return code, found
}

// IsRejectedKey reports whether err says the AccessKey that signed the
// request is no longer valid (one of RejectedKeyCodes). A Provider also
// honours its WithRejectedKeyCodes and WithRejectedKeyFunc options; use
// (*Provider).IsRejectedKey for those.
func IsRejectedKey(err error) bool {
	return walk(err, func(e error) bool { return defaultCodes[codeOf(e)] })
}

var defaultCodes = func() map[string]bool {
	m := map[string]bool{}
	for _, c := range rejectedKeyCodes {
		m[c] = true
	}
	return m
}()

// codeOf returns the code of e itself (not of the errors it wraps), "" if none.
func codeOf(e error) string {
	// One node only, by design: walk visits the chain (OriginError too, which
	// errors.As does not follow) and the outermost code wins.
	switch v := e.(type) { //nolint:errorlint // one node of walk's chain, see above
	case *sdkerrors.ServerError:
		return v.ErrorCode()
	case *sdkerrors.ClientError:
		return v.ErrorCode()
	case *tea.SDKError:
		return tea.StringValue(v.Code)
	case interface{ ErrorCode() string }:
		return v.ErrorCode()
	case interface{ GetCode() *string }:
		return tea.StringValue(v.GetCode())
	}
	return codeField(e)
}

// codeField reads an exported string field named Code from a struct or a
// pointer to one: the shape of OSS v1's ServiceError and SLS's Error, which
// have no method for it.
func codeField(e error) (code string) {
	defer func() {
		if recover() != nil {
			code = ""
		}
	}()
	v := reflect.ValueOf(e)
	for v.Kind() == reflect.Pointer || v.Kind() == reflect.Interface {
		if v.IsNil() {
			return ""
		}
		v = v.Elem()
	}
	if v.Kind() != reflect.Struct {
		return ""
	}
	f, ok := v.Type().FieldByName("Code")
	if !ok || !f.IsExported() || len(f.Index) != 1 {
		return ""
	}
	fv := v.Field(f.Index[0])
	switch {
	case fv.Kind() == reflect.String:
		return fv.String()
	case fv.Kind() == reflect.Pointer && fv.Type().Elem().Kind() == reflect.String && !fv.IsNil():
		return fv.Elem().String()
	}
	return ""
}

// walk calls f on err and every error it wraps (depth first, like errors.As)
// until f returns true.
func walk(err error, f func(error) bool) bool {
	for depth := 0; err != nil && depth < 100; depth++ {
		if f(err) {
			return true
		}
		switch u := err.(type) { //nolint:errorlint // this is the chain walk errors.As would do, plus OriginError
		case interface{ Unwrap() error }:
			err = u.Unwrap()
		case interface{ Unwrap() []error }:
			for _, e := range u.Unwrap() {
				if walk(e, f) {
					return true
				}
			}
			return false
		default:
			// *errors.ServerError keeps its cause behind OriginError.
			if o, ok := err.(interface{ OriginError() error }); ok {
				err = o.OriginError()
				continue
			}
			return false
		}
	}
	return false
}

// RejectedKeyError is returned by Do and DoClient when the service rejected
// the AccessKey and recovery did not produce a call that succeeded: the
// secret held no newer key, the refresh failed, or the new key was rejected
// too. Retrying at once will not help; a later call may, once KMS has
// rotated the secret. It names the secret and version, never the key.
type RejectedKeyError struct {
	Secret    string // the RAM secret's name
	VersionID string // the version whose key was rejected last
	Code      string // the service's error code
	Retried   bool   // whether the call was retried with a newer key
	Refresh   error  // why the forced refresh failed, if it did
	Err       error  // the service's error
}

// Error names the secret, the version and the code, then the service's error.
func (e *RejectedKeyError) Error() string {
	msg := fmt.Sprintf("ramsecret: secret %q: AccessKey of version %q rejected (%s)", e.Secret, e.VersionID, e.Code)
	switch {
	case e.Refresh != nil:
		msg += "; refreshing the secret failed: " + e.Refresh.Error()
	case e.Retried:
		msg += " after a retry with the newest version"
	default:
		msg += "; KMS holds no newer version"
	}
	if e.Err != nil {
		msg += ": " + e.Err.Error()
	}
	return msg
}

// Unwrap returns the service's error and the refresh error, so errors.As
// finds the SDK's error type.
func (e *RejectedKeyError) Unwrap() []error {
	errs := make([]error, 0, 2)
	for _, err := range []error{e.Err, e.Refresh} {
		if err != nil {
			errs = append(errs, err)
		}
	}
	return errs
}

var errNilCall = errors.New("ramsecret: the call must not be nil")
