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
// password in step. InjectFault makes actions throttle, fail, stall or drop connections; Calls counts requests per
// action and secret. The emulator never rotates by itself.
package kmstest
