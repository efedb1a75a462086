package connector

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/kmsdb/kmsdb/secretsource"
)

// Class says what a connection error means for the rotation algorithm. Each
// driver package classifies its driver's errors (see drivers/mysqlkms and
// drivers/pgkms for the exact codes).
type Class int

const (
	// Other errors are returned at once, as they are: connection refused,
	// timeouts, too many connections. Retrying them is database/sql's or
	// pgxpool's business, not a rotation's.
	Other Class = iota
	// AuthFailure: the database rejected the user name or password. It may
	// heal: the secret or the database may be in a rotation window.
	AuthFailure
	// Permanent errors cannot heal by trying other credentials or waiting:
	// account locked, password expired, unknown database, no privilege,
	// network unreachable, invalid configuration. Returned at once.
	Permanent
	// SecretUnavailable: the secret could not be read or decoded. Whether
	// retrying can help is told by secretsource.IsRetryable on the error.
	SecretUnavailable
)

func (c Class) String() string {
	switch c {
	case Other:
		return "other"
	case AuthFailure:
		return "auth failure"
	case Permanent:
		return "permanent"
	case SecretUnavailable:
		return "secret unavailable"
	}
	return "Class(" + strconv.Itoa(int(c)) + ")"
}

// Sentinels matched by errors.Is on an *Error of the corresponding Class.
var (
	// ErrCredentialsRejected: the database kept rejecting the secret's
	// credentials through the rotation grace period (or the caller's context
	// ended first). Retrying later can help if the secret or the database is
	// fixed.
	ErrCredentialsRejected = errors.New("connector: credentials rejected")
	// ErrLoginRefused: the database refused the login for a reason retrying
	// cannot fix (account locked, password expired, unknown database, ...).
	ErrLoginRefused = errors.New("connector: login refused")
)

// Error is a failure to open a database connection with the credentials of
// a secret. It names the secret, the version and the user, never the
// password; Err is the driver's error with every occurrence of the password
// scrubbed: not in its text, nor in anything reachable from it (errors.Is,
// errors.As, errors.Unwrap, fields). errors.As reaches the driver's own
// error types that hold no password (*pgconn.PgError, *mysql.MySQLError, net
// errors); a *pgconn.ConnectError is a copy whose Config holds the host,
// port, database and user only.
//
// Retrying can help for Class AuthFailure (later, after the rotation is
// fixed), Other (as for any connection error) and SecretUnavailable when
// secretsource.IsRetryable(err); not for Permanent.
type Error struct {
	Secret   string        // the secret's name
	Version  string        // the version whose credentials were used last; empty if none was read
	User     string        // the database user of that version
	Class    Class         // what the failure means
	Attempts int           // logins tried
	Waited   time.Duration // time spent since the first attempt
	Err      error         // the driver's or the source's error, scrubbed
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString("connector: secret ")
	b.WriteString(strconv.Quote(e.Secret))
	if e.Version != "" {
		b.WriteString(" version ")
		b.WriteString(strconv.Quote(e.Version))
	}
	if e.User != "" {
		b.WriteString(" (user ")
		b.WriteString(strconv.Quote(e.User))
		b.WriteString(")")
	}
	b.WriteString(": ")
	switch e.Class {
	case AuthFailure:
		fmt.Fprintf(&b, "the database rejected the credentials (%d login(s) over %s)", e.Attempts, e.Waited.Round(time.Millisecond))
	case Permanent:
		b.WriteString("the database refused the login; retrying cannot help")
	case SecretUnavailable:
		b.WriteString("cannot get database credentials from the secret")
	default:
		b.WriteString("connect failed")
	}
	if e.Err != nil {
		b.WriteString(": ")
		b.WriteString(withoutSecret(e.Err, e.Secret))
	}
	return b.String()
}

// withoutSecret renders err for a message that names the secret already: a
// *secretsource.Error of that secret does not name it again.
func withoutSecret(err error, secret string) string {
	// Only err itself: a *secretsource.Error deeper in the chain keeps the
	// secret's name, or the text of the errors wrapping it would be lost.
	if se, ok := err.(*secretsource.Error); ok && se.Secret == secret { //nolint:errorlint // the outermost error only, see above
		c := *se
		c.Secret = ""
		return c.Error()
	}
	return err.Error()
}

// Unwrap returns the scrubbed underlying error.
func (e *Error) Unwrap() error { return e.Err }

// Is matches ErrCredentialsRejected for AuthFailure and ErrLoginRefused for
// Permanent.
func (e *Error) Is(target error) bool {
	return (target == ErrCredentialsRejected && e.Class == AuthFailure) ||
		(target == ErrLoginRefused && e.Class == Permanent)
}
