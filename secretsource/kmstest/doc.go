// Package kmstest is an in-process emulator of Alibaba Cloud KMS secrets for tests: the shared gateway (KMS
// OpenAPI, HTTP and HTTPS), the dedicated gateway (DKMS, protobuf over HTTPS), STS, the ECS instance metadata
// service and a credentials URI. The official SDKs talk to it unmodified, and it rejects what the service
// rejects: every request signature is verified (HMAC-SHA1 RPC v1, ACS3-HMAC-SHA256, DKMS RSA client keys).
//
// # Endpoints
//
// NewServer (or Start in a test) binds every listener on 127.0.0.1 at a free port:
//
//	srv := kmstest.Start(t, kmstest.WithAccessKey("LTAItest", "test-secret"),
//		kmstest.WithSecret(kmstest.SecretSpec{Name: "db-secret", Type: "Rds",
//			Data: `{"AccountName":"app","AccountPassword":"pw"}`}))
//	client.Domain = srv.KMSAddr()               // core SDK, plain HTTP
//	openapi.Config{Endpoint: tea.String(srv.KMSTLSAddr()), Ca: tea.String(string(srv.CACertPEM()))} // Tea SDK
//
// The TLS listeners share one certificate for 127.0.0.1, ::1 and localhost, signed by a CA generated at start
// (CACertPEM, CAFile, CertPool, TLSClientConfig). credentials-go's STS providers (STSEndpoint: srv.STSAddr())
// clone http.DefaultTransport and have no CA option: a test has to trust the CA there. The ECS RAM role
// provider reaches the metadata service through HttpOptions{Proxy: srv.MetadataURL()}.
//
// # Proxy for fixed hosts
//
// ProxyURL is an HTTP proxy that tunnels CONNECT for sts.aliyuncs.com and sts.ap-northeast-1.aliyuncs.com (both
// named by the leaf certificate) to the STS listener, and CONNECT or absolute-form requests for the emulator's own
// listeners and http://100.100.100.200. With HTTPS_PROXY=ProxyURL and SSL_CERT_FILE=CAFile, Alibaba's secret
// client with credentials type client_key reaches the emulator: its core SDK trades the client key for a session
// AccessKey at the hard-coded https://sts.ap-northeast-1.aliyuncs.com over http.DefaultTransport (which honours
// HTTPS_PROXY), and its KMS client applies HTTPS_PROXY to 127.0.0.1 too. credentials-go's rsa_key_pair ignores
// HTTPS_PROXY: give it Config.Proxy. It is not an open proxy: other hosts get 403.
//
// # State across restarts
//
// WithStateDir keeps the CA, the OIDC token, access keys, client keys and secrets (every version and stage) in a
// directory as JSON (mode 0600), rewritten after each change and reloaded on the next start: a client's saved CA
// file and client key keep working, and rotations survive a restart. Without it everything lives in a temporary
// directory removed by Close.
//
// # Admin endpoint
//
// AdminURL serves the test controls over plain HTTP on the metadata listener (rotate, inject and clear faults,
// read and reset call counters, advance the clock, inspect a secret without its value, revoke keys), for shell
// scripts and other languages; `kmsdb emulator-ctl` wraps it. The gateways never route it and the proxy refuses
// it; it never returns a secret value.
//
// # Secret types and versions
//
// Generic secrets hold any text or binary value, and GetSecretValue reads any of their versions, by stage
// (ACSPending included) or by VersionId. Rds, PolarDB and Redis secrets hold {"AccountName","AccountPassword"},
// RAMCredentials an AccessKey pair, ECS a password or an SSH key pair; these managed secrets are served on both
// gateways as KMS serves them: only the versions marked ACSCurrent and ACSPrevious are readable (any other
// VersionStage is Forbidden.ResourceNotFound, 404), a VersionId given alone is ignored (the ACSCurrent value is
// returned), and a VersionStage with a VersionId is found only when that version carries that stage. Code that
// pins a version id or reads ACSPending of a database secret therefore fails here as it would against KMS.
//
// # Errors
//
// Errors carry the service's JSON body {RequestId, HostId, Code, Message, Recommend}: SignatureDoesNotMatch
// (with "server string to sign is:" in Message, so the core SDK recognizes a wrong AccessKey secret),
// InvalidAccessKeyId.NotFound for unknown, revoked and RAM-rotated-away keys, InvalidSecurityToken.Expired,
// InvalidSecurityToken.MismatchWithAccessKey, MissingSecurityToken, SignatureNonceUsed, InvalidTimeStamp.Expired
// (request timestamps more than 15 minutes from the wall clock), Forbidden.ResourceNotFound (404),
// Rejected.ResourceExist, InvalidAction.NotFound. A body changed after signing breaks the signature
// (SignatureDoesNotMatch) in both schemes.
//
// # Time
//
// Token expiry, rotation dates and RAM key revocation follow the emulator clock: WithClock (default time.Now)
// plus everything Advance added. Request timestamps and nonces are checked against the wall clock, because the
// SDKs sign with it, so Advance can expire a token by hours without making every request stale.
//
// # Rotation and test controls
//
// RotateSecret (and the RotateSecret action) moves ACSPending -> ACSCurrent -> ACSPrevious and generates new
// credentials by type; OnRotate hooks run before and after the stages move, so a test can change a database
// password in step, and OnRotatePending hooks may fail a rotation (the stages then stay), as the service's own
// change of a database account does. InjectFault makes actions throttle, fail, stall or drop connections; Calls counts requests per
// action and secret. The emulator never rotates by itself.
package kmstest
