package connector

import "time"

// Defaults of the rotation loop (the drivers' WithGracePeriod and
// WithProbeInterval change them).
const (
	// DefaultGracePeriod is how long a login keeps retrying a rejected secret
	// version by default (shared by the connections of a connector): long enough for a rotation that changes the database
	// and the secret a few seconds apart, short enough that a wrong password
	// shows up quickly.
	DefaultGracePeriod = 30 * time.Second

	// DefaultProbeInterval is how often, by default, a connector whose secret
	// is rejected past the grace period lets one login reach the database to see
	// whether it was fixed (every other connection fails at once).
	DefaultProbeInterval = time.Second
)

// Stats counts what a connector (or a pgkms.Pool) did, for metrics and
// tests: the drivers' connectors and pools have a method Stats() Stats.
type Stats struct {
	Logins       int64 // login attempts made through the rotation loop (a pgkms.Pool counts only those that met a rejection)
	AuthFailures int64 // attempts the database rejected as an authentication failure
	Retries      int64 // attempts after the first within one connection
	PreviousUsed int64 // times an older version began to stand in for a rejected current one
	Failed       int64 // connections that failed
}
