// Package connector is the driver-agnostic core of kmsdb's database
// connectors: it opens database connections with the credentials of a KMS
// secret and makes a password rotation invisible to the application.
//
// Applications use the driver packages (drivers/mysqlkms, drivers/pgkms);
// this package holds what they share: the Provider of secrets (a
// *cache.Cache), the rotation algorithm (Run), the database/sql
// driver.Connector built on it (Connector), and the error type (Error).
//
// # Rotation without errors
//
// Each new connection takes the cached secret (no KMS call when the cache is
// warm), decodes the account (secretsource.DecodeDBAccount) and logs in. When
// the database rejects the credentials (an AuthFailure, as the driver
// classifies it):
//
//  1. the version used is invalidated in the provider (Invalidate acts only
//     if it is still the cached version, so N connections failing on one
//     version cause one fetch), and the secret is refreshed (forced, but
//     rate-limited and joined by the cache);
//  2. a new version is tried at once;
//  3. if the version did not change, the ACSPrevious version is tried once
//     (when the provider implements secretsource.VersionSource): during a
//     rotation the secret may already name the new password while the
//     database still has the old one;
//  4. otherwise the login is retried with jittered exponential backoff
//     (50 ms doubling to 1 s), refreshing the secret before each try, until
//     the rotation grace period (default 30 s, DefaultGracePeriod) has passed
//     since the version was first rejected, or the caller's context ends: the
//     database may have been changed before the secret, or the other way.
//
// When ACSPrevious logs in while ACSCurrent is rejected, later connections
// use ACSPrevious directly (no failed login each time) until the current
// version changes or a grace period has passed, then try ACSCurrent again.
// The grace period is shared by the connections of one Login: once a version
// has been rejected for longer than the grace period, new connections stop
// waiting and fail after the immediate steps 1-3, so a truly wrong password
// does not make every connection hang.
//
// Errors that cannot heal by waiting (a locked account, an expired password,
// an unknown database, no privilege, an unreachable network) are returned at
// once, without a KMS call. Other errors (connection refused, timeouts, too
// many connections) are returned at once too: database/sql and pgxpool
// decide what to do with them.
//
// # Errors
//
// Every error is an *Error naming the secret, the version and the user, never
// the password: driver errors are scrubbed of any occurrence of the password
// (also URL- and quote-escaped) before they are wrapped. errors.As still
// reaches the driver's own error (*mysql.MySQLError, *pgconn.PgError) through
// Unwrap; errors.Is works with ErrCredentialsRejected, ErrLoginRefused and the
// secretsource.Err* sentinels.
//
// # The default provider
//
// A connector given no provider or source uses the process-wide default: a
// *cache.Cache in front of the source config.Load builds from the
// environment and secretsmanager.properties (as Alibaba's Go client is
// configured), built on first use and shared by every such connector. Install
// another with SetDefaultProvider.
package connector
