// Package kms is a secretsource.Source for the KMS OpenAPI (the shared KMS
// gateway, kms.<region>.aliyuncs.com), on the official
// github.com/aliyun/alibaba-cloud-sdk-go/services/kms client with credentials
// from github.com/aliyun/credentials-go.
//
// # Credentials
//
// Config.Credential takes any credentials-go Credential. NewCredential builds
// the usual ones from plain values: access_key, sts, ram_role_arn (the seed's
// "sts" and "ram_role"), ecs_ram_role, oidc_role_arn (RRSA on ACK),
// credentials_uri, client_key (see ClientKey) and the default chain. A nil
// Credential is the default chain too. The core SDK asks the credential for an
// AccessKeyId/AccessKeySecret (and SecurityToken, sent as a query parameter)
// on every request; the credential caches and refreshes temporary credentials
// itself.
//
// The types that fetch temporary credentials (ram_role_arn, oidc_role_arn,
// ecs_ram_role, credentials_uri, and those links of the default chain) are
// kmsdb's own providers with credentials-go's requests and defaults. They
// reach STS over HTTPS with a clone of http.DefaultTransport, as
// credentials-go does: an STSEndpoint behind a private CA needs that CA in the
// system pool (or in http.DefaultTransport's TLS configuration).
//
// # Regions and endpoints
//
// A Source asks one region (Config.Region). To fail over between regions,
// build a Source per region and compose them with secretsource.Failover, as
// config.Load does: the next region is asked only when the previous one
// failed in a way that may heal (throttled, unavailable, internal error,
// network error, timeout); not found, access denied and bad credentials are
// returned at once. A region's host is its Endpoint when set, else
// kms-vpc.<id>.aliyuncs.com with VPC, else kms.<id>.aliyuncs.com.
//
// Credential requests (STS, ECS metadata, credentials URI) never follow a
// redirect, read at most 64 KiB of an answer and are bounded by
// CredentialOptions.ConnectTimeout + ReadTimeout. The default chain reads the
// CLI profile (~/.aliyun/config.json) and the credentials file
// (~/.alibabacloud/credentials) itself, and a profile that assumes a role,
// reads the metadata service or exchanges an OIDC token uses kmsdb's
// providers too; a CLI profile in CloudSSO or OAuth mode, which only
// credentials-go's HTTP client could serve, is refused with an error. Only a
// credentials-go Credential built in code and passed in Config.Credential
// still uses credentials-go's network providers, which follow redirects.
//
// # TLS, timeouts and redirects
//
// HTTPS is the default and certificates are always verified, against the
// system roots or Config.RootCAs. A region's CAFile adds a private CA for that
// region only, to a copy of those roots (config: "caFilePath" in the region's
// cache_client_region_id entry); nothing process-wide changes, unlike
// SSL_CERT_FILE (which Go ignores on macOS and Windows). Each request to a
// region is bounded by Config.Timeout, connection, headers and body included;
// the SDK's own retries are off. A redirect is never followed (the request is
// signed, and its AccessKeyId, nonce and signature must reach no other host):
// it is an error of KindInvalidAnswer.
//
// # Answers are checked, not trusted
//
// The answer body is read up to 1 MiB (KMS stores values of at most 64 KiB,
// which JSON escaping can grow up to six times, plus a few KiB of metadata;
// a longer body is an error) and parsed by this package,
// not by the SDK, whose JSON errors quote the bytes around a fault. An answer
// that is not a usable secret is an error of KindInvalidAnswer (retryable
// with backoff: it usually comes from a broken gateway or proxy): an empty or
// malformed body, an error document sent with HTTP 200, an answer without a
// secret name, version id or value, for another secret, or without the stage
// asked for. Another version than
// the version id asked for is KindNotFound: KMS answers ACSCurrent when a
// managed secret is asked for a version id alone. A cache in front keeps
// serving its last good value meanwhile. Parse errors
// say what is wrong and where (field, byte offset), never the bytes.
//
// # Context
//
// The core SDK takes no context. Each call gets a transport that binds its
// HTTP request to the caller's context, so cancelling the context aborts the
// request on the wire, and the SDK call runs in a goroutine so the caller
// returns at once even when the SDK is busy elsewhere (in a credential
// provider fetching an STS token, for example).
//
// # Errors
//
// Every failure is a *secretsource.Error whose Kind comes from the service's
// error code (Throttling* is KindThrottled, Forbidden.ResourceNotFound
// KindNotFound, and so on: one table, shared with package dkms), with Code
// and RequestID kept. Of an error answer only the service's JSON error
// document is read: its Code, RequestId and Message (scrubbed, at most 200
// bytes); any other body is counted, never copied. Messages from the SDK and
// the service are scrubbed before they reach an error or a log (the userinfo
// and query strings of URLs, the value after a sensitive key such as
// AccessKeySecret or SecurityToken, including values inside JSON that is
// itself escaped in JSON, and everything after "string to sign"):
// the core SDK's transport errors quote the signed URL, which holds the
// AccessKeyId, the STS token and the signature, and SignatureDoesNotMatch
// echoes the string to sign.
//
// The SDKs' own debug output (DEBUG=sdk, DEBUG=credential, DEBUG=tea in the
// environment) prints signed URLs and headers to stdout; it is off unless the
// environment asks for it, and this package never turns it on.
package kms
