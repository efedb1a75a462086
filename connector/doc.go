// Package connector holds what applications see of kmsdb's database
// connectors, which open database connections with the credentials of a KMS
// secret and make a password rotation invisible to the application.
//
// Applications use the driver packages (drivers/mysqlkms, drivers/pgkms);
// this package holds what they share with them: the error type (Error, its
// Class and the sentinels), the counters (Stats), the defaults of the
// rotation loop (DefaultGracePeriod, DefaultProbeInterval) and the
// process-wide default cache (DefaultCache, SetDefaultCache), and the
// Observer through which an application watches all of it. The rotation loop
// itself is internal to the module.
//
// # Rotation without errors
//
// Each new connection takes the cached secret (no KMS call when the cache is
// warm), decodes the account (secretsource.DecodeDBAccount) and logs in. While
// that works, nothing else happens: a connector keeps no state on the fast path.
// When the database rejects the credentials (an AuthFailure, as the driver
// classifies it), the connection goes through the versions the process
// already holds, newest first, without waiting and without a KMS call:
//
//  1. the cached current version (re-read at each step, so a version a
//     refresh just brought is used at once);
//  2. the version the cache replaced when it last learnt a new one (the
//     cache's Replaced: during a rotation, the password a database that
//     has not been changed yet still accepts);
//  3. ACSPrevious, fetched from KMS once per current version, only when the
//     cache holds no replaced version (a process started mid-rotation).
//
// What one connection learns is shared by every connection of the connector
// (or pgkms.Pool): a
// version the database refused is not tried first by the next connections,
// and an older version that logged in stands in for the rejected current one
// (new connections use it directly) until it is refused in turn (the
// database changed: the current version is tried at once) or a grace period
// passes (one connection checks the current version again).
//
// When every version held was refused, the connection waits, woken at once
// when another connection logs in or the cache brings a new version, while:
//
//   - the connector refreshes the secret from KMS in the background (never more
//     than one refresh at a time: the first at the first refusal, the next
//     0.3 s and 0.65 s after it, then one a second; the connector starts
//     the 0.3 s and 0.65 s ones itself while the version is still refused,
//     and a waiting connection wakes when the next is due; the cache's
//     per-secret rate limit, burst 3, applies): N connections rejected on
//     one version cause one KMS call;
//   - one connection of the connector at a time retries a refused version, at
//     most every 25 ms at first, growing with the age of the rejection to
//     every 250 ms: the database may be in the middle of its own change.
//
// The rotation grace period (default 30 s, DefaultGracePeriod) starts when
// the current version is first refused and is shared by the connections of
// the connector. Once it has passed, a connection that has nothing left to try
// fails at once with ErrCredentialsRejected (naming the secret, the version
// and the user): only one login per probe interval (default one second,
// DefaultProbeInterval) reaches the database to see whether it was fixed,
// and KMS is asked at most once a second. The first refresh that brings a
// version the database accepts heals every connection.
//
// A pgkms.Pool (pgxpool opens its connections itself) follows the same
// algorithm: a new connection logs in with the account the loop chooses, and
// only a rejected login enters the loop.
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
// # The default cache
//
// A connector given no source (the drivers' WithSource) uses the
// process-wide default: a *cache.Cache in front of the source config.Load
// builds from the environment and secretsmanager.properties (as Alibaba's Go
// client is configured), built on first use and shared by every such
// connector. Install another (any secretsource.Cache) with SetDefaultCache.
//
// # Observing
//
// One call, best made at start, gives a logger, the default cache's hooks and
// an event per connection to the whole process:
//
//	connector.SetDefaultObserver(connector.Observer{
//		Logger: slog.Default(),
//		Cache:  cache.Hooks{RefreshFailed: func(_ context.Context, e cache.RefreshFailedEvent) { ... }},
//		Login:  func(_ context.Context, e connector.LoginEvent) { ... },
//	})
//
// It reaches every connector and pgkms.Pool built without the drivers'
// WithLogger, the default cache (its hooks and lines), and the configuration
// warnings of a default cache built after it. A LoginEvent ends each
// connection attempt sequence: the secret, the version and user that logged
// in (or were tried last), the attempts, the time waited, whether an older
// version stood in, and the scrubbed *Error of a failure; never a password.
// A cache of the application's own takes the same hooks with
// cache.WithHooks(o.Cache). Stats gives the same counts without an Observer.
// The module github.com/kmsdb/kmsdb/kmsdbotel is such an Observer for
// OpenTelemetry: connector.SetDefaultObserver(kmsdbotel.NewObserver())
// (docs/observability.md lists its metrics and spans).
package connector
