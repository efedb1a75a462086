package ramsecret

import (
	"context"

	"github.com/kmsdb/kmsdb/secretsource"
)

// Do calls call with the provider's current AccessKey. If the service
// rejects the key (IsRejectedKey), Do invalidates that key's version in the
// cache, forces one refresh (shared by every caller that saw the same key
// rejected, and rate-limited by the cache) and, if the secret now holds a
// newer key, calls call once more with it.
//
// Use it for clients you hand the key to yourself (OSS, SLS, custom
// signing). For SDK clients built on the Provider, use DoClient.
//
// When recovery fails, the error is a *RejectedKeyError wrapping the
// service's error; any other error of call is returned as is.
func Do[T any](ctx context.Context, p *Provider, call func(ctx context.Context, key secretsource.AccessKey) (T, error)) (T, error) {
	var zero T
	if call == nil {
		return zero, errNilCall
	}
	key, err := p.AccessKey(ctx)
	if err != nil {
		return zero, err
	}
	v, err := call(ctx, key)
	if err == nil || !p.IsRejectedKey(err) {
		return v, err
	}
	next, rerr := p.afterRejection(ctx, key.VersionID, err)
	if rerr != nil {
		return v, rerr
	}
	v, err = call(ctx, next)
	return v, p.afterRetry(next.VersionID, err)
}

// DoClient is Do for SDK clients that read the key from the Provider
// themselves (a Tea client with openapi.Config{Credential: p}, a core client
// from NewClientWithOptions(region, cfg, p)): call makes the request with
// the client, and on a rejected key DoClient recovers as Do does and calls
// it once more, when the client will sign with the newer key.
func DoClient[T any](ctx context.Context, p *Provider, call func(ctx context.Context) (T, error)) (T, error) {
	var zero T
	if call == nil {
		return zero, errNilCall
	}
	// The version the client is about to sign with (a rotation between here and
	// the signature only makes the recovery below find the newer key at once).
	key, err := p.AccessKey(ctx)
	if err != nil {
		return zero, err
	}
	v, err := call(ctx)
	if err == nil || !p.IsRejectedKey(err) {
		return v, err
	}
	next, rerr := p.afterRejection(ctx, key.VersionID, err)
	if rerr != nil {
		return v, rerr
	}
	v, err = call(ctx)
	return v, p.afterRetry(next.VersionID, err)
}

// afterRejection recovers from callErr, a rejection of version used. It
// returns the key to retry with, or the error to return instead.
func (p *Provider) afterRejection(ctx context.Context, used string, callErr error) (secretsource.AccessKey, error) {
	p.rejected.Add(1)
	code, _ := errorCode(callErr)
	next, err := p.recoverFrom(ctx, used, code)
	if err != nil {
		return secretsource.AccessKey{}, &RejectedKeyError{Secret: p.name, VersionID: used, Code: code, Refresh: err, Err: callErr}
	}
	if next.VersionID == used {
		return secretsource.AccessKey{}, &RejectedKeyError{Secret: p.name, VersionID: used, Code: code, Err: callErr}
	}
	p.retries.Add(1)
	return next, nil
}

// afterRetry wraps a second rejection in a RejectedKeyError.
func (p *Provider) afterRetry(version string, err error) error {
	if err == nil || !p.IsRejectedKey(err) {
		return err
	}
	p.rejected.Add(1)
	code, _ := errorCode(err)
	return &RejectedKeyError{Secret: p.name, VersionID: version, Code: code, Retried: true, Err: err}
}
