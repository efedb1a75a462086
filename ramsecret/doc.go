// Package ramsecret turns KMS secrets into credentials for other programs:
// a RAM secret (SecretType RAMCredentials, a rotated AccessKey) becomes a
// credentials provider for the Alibaba Cloud SDKs, and an ECS secret (a
// password or an SSH key pair) becomes what an SSH client needs.
//
// Everything reads through a cache (secretsource/cache), so the hot path is
// one atomic load and KMS is asked only when the cache refreshes.
//
// # One provider, every SDK
//
// A *Provider satisfies the interfaces the SDKs ask for:
//
//   - credentials-go's credentials.Credential, for the Tea SDKs
//     (openapi.Config{Credential: p}, kms-20160120, ecs-20140526, ...);
//   - alibaba-cloud-sdk-go's credentials.CredentialsProvider, for core clients
//     (kms.NewClientWithOptions(region, sdk.NewConfig(), p)), and its
//     provider.Provider, for NewClientWithProvider(region, p);
//   - p.AccessKey, a plain func(ctx) (AccessKey, error), for anything else
//     (OSS, SLS, custom signing).
//
// Each request signs with one consistent key pair: the decoded key is an
// immutable value replaced as a whole when the cache holds a new version, and
// every call hands out a fresh copy, so no request ever sees the id of one
// key with the secret of another.
//
// The SDK clients themselves are not safe for concurrent use in the versions
// this module builds with (alibaba-cloud-sdk-go v1.63.107 writes its HTTP
// timeouts into the shared client on every request; a Tea client resets its
// Headers field per request, and tea's shared default HTTP client writes its
// Timeout under a lock that its readers do not take): the race detector
// flags all three. Give each goroutine its own client (and a Tea client its
// own openapi.Config.HttpClient); they can all share one Provider.
//
// # Rotation
//
// KMS rotates a RAM secret on a schedule: it creates a new AccessKey, moves
// the ACSCurrent stage to it, and deletes the old key a while later. The cache
// refreshes shortly after the secret's NextRotationDate (with jitter), so most
// rotations are picked up before the old key stops working. For the rest,
// Do and DoClient recognise the errors a deleted or disabled key produces,
// invalidate that key's version in the cache, force one (rate-limited,
// shared) refresh, and retry the call once with the new key. N concurrent
// failures on one key cause one refresh.
//
// The codes treated as "this AccessKey is no longer valid" are listed in
// RejectedKeyCodes; IsRejectedKey reads them from the error types of the core
// SDK, the Tea SDKs, OSS (v1 and v2) and SLS without parsing messages.
//
// # ECS secrets
//
// NewECS reads an ECS secret (a user name with a password or a PEM key pair).
// ClientConfig returns an x/crypto/ssh client configuration for the current
// version, SSHSigner and SSHAuthMethod convert one login, and Dial connects
// and logs in, invalidating the version, refreshing once and dialing again
// when the server refuses a login that KMS has since rotated.
//
// # Secrets stay secret
//
// No error, log line or formatted value of this package contains an
// AccessKey secret, a password or a private key. Beware of the SDKs' own
// types: credentials-go's CredentialModel prints its secret when formatted.
package ramsecret
