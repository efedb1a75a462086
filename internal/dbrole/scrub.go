package dbrole

import (
	"cmp"
	"errors"
	"slices"
	"strconv"
	"strings"

	"github.com/go-sql-driver/mysql"
	"github.com/jackc/pgx/v5/pgconn"
)

// The server's error text is not trusted to leave a password out: MariaDB
// and MySQL quote the statement from the point of a syntax error (near
// 'IDENTIFIED BY \'<password>\'...), cut at an arbitrary length, and a
// PostgreSQL error may quote a literal. scrubErr returns err with every
// spelling of the secrets removed from the server's message, and the quoted
// statement of a MariaDB "near '...'" dropped whole (a cut password would
// survive a replacement). The error number, SQLSTATE and type stay, so
// ErrorNumber, SQLState and IsAuthFailure still work.
func scrubErr(err error, secrets ...string) error {
	if err == nil {
		return nil
	}
	var me *mysql.MySQLError
	if errors.As(err, &me) {
		c := *me
		c.Message = scrubText(cutNear(c.Message), secrets)
		return &c
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		c := *pe
		for _, f := range []*string{&c.Message, &c.Detail, &c.Hint, &c.Where, &c.InternalQuery, &c.Routine} {
			*f = scrubText(*f, secrets)
		}
		return &c
	}
	msg := err.Error()
	if s := scrubText(msg, secrets); s != msg {
		return errors.New(s)
	}
	return err
}

// cutNear drops what follows a MariaDB/MySQL "near '": the server's quote
// of the statement.
func cutNear(msg string) string {
	if i := strings.Index(msg, " near '"); i >= 0 {
		return msg[:i] + " near [statement not shown]"
	}
	return msg
}

// scrubText replaces every spelling of each secret in msg (raw, quoted as
// a MariaDB or PostgreSQL literal, Go-quoted) with REDACTED, longest first.
func scrubText(msg string, secrets []string) string {
	var forms []string
	for _, s := range secrets {
		if s == "" {
			continue
		}
		q := strconv.Quote(s)
		my := myLiteral(s)
		pg := pgLiteral(s)
		forms = append(forms, my, my[1:len(my)-1], pg, pg[1:len(pg)-1], q, q[1:len(q)-1], s)
	}
	// Longest first: a short form must not break a longer one apart.
	slices.SortStableFunc(forms, func(a, b string) int { return cmp.Compare(len(b), len(a)) })
	for _, f := range forms {
		msg = strings.ReplaceAll(msg, f, "REDACTED")
	}
	return msg
}

// scrubbedError is an error chain whose text held a secret: msg is its
// scrubbed text, cause the scrubbed copy of the driver's error (for
// ErrorNumber and SQLState).
type scrubbedError struct {
	msg   string
	cause error
}

func (e *scrubbedError) Error() string { return e.msg }
func (e *scrubbedError) Unwrap() error { return e.cause }
