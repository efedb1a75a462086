package pgkms

import (
	"crypto/tls"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/kmsdb/kmsdb/internal/rotation"
	"github.com/kmsdb/kmsdb/secretsource"
)

// endpoint decides where a connection goes: where the base configuration
// says, or, when it names no host (or WithEndpointFromSecret), where the
// secret says. See "Security: a secret never moves a pinned host" in the
// package documentation.
type endpoint struct {
	// connString is the base configuration's connection string; filling in
	// the secret's host re-parses it with that host, so the host gets the
	// TLS settings pgx derives for it (sslmode, sslrootcert, SNI...).
	connString string
	hostNamed  bool // the user named a host: in the connection string, PGHOST, a service, or in code
	portNamed  bool // the same for the port
	fromSecret bool // WithEndpointFromSecret
	// derived: the configuration is what connString parses to (no host,
	// port or TLS setting changed in code), so a re-parse may stand in for it.
	derived  bool
	baseHost string

	last atomic.Pointer[resolvedEndpoint] // the secret's endpoint as last resolved
}

// resolvedEndpoint is the base configuration re-parsed for a secret's host.
type resolvedEndpoint struct {
	host string
	port uint16 // 0: the base configuration's own port
	cfg  *pgconn.Config
	err  error
}

// newEndpoint reads what the user wrote in cc: its connection string, the
// PG* environment variables pgx read, and what code changed after parsing.
func newEndpoint(cc *pgx.ConnConfig, fromSecret bool) *endpoint {
	e := &endpoint{connString: cc.ConnString(), fromSecret: fromSecret, baseHost: cc.Host}
	n := namedInConnString(e.connString)
	e.hostNamed = n.host || os.Getenv("PGHOST") != ""
	e.portNamed = n.port || os.Getenv("PGPORT") != ""
	if n.service || os.Getenv("PGSERVICE") != "" {
		// A service file entry is the user's configuration too; it may name
		// the host, and reading it here would only guess what pgx read.
		e.hostNamed, e.portNamed = true, true
	}
	ref, err := pgx.ParseConfig(e.connString)
	switch {
	case err != nil:
		e.hostNamed, e.portNamed = true, true // cannot tell: keep what is there
	case !sameHosts(&ref.Config, &cc.Config):
		e.hostNamed, e.portNamed = true, true // set in code
	default:
		e.derived = sameTLS(&ref.Config, &cc.Config)
	}
	return e
}

// apply points cfg at the secret's endpoint when the rules allow it.
func (e *endpoint) apply(cfg *pgx.ConnConfig, acct secretsource.DBAccount) error {
	if acct.Host == "" || (e.hostNamed && !e.fromSecret) {
		return nil
	}
	if acct.Port < 0 || acct.Port > 65535 { // DecodeDBAccount checks it; a Source of its own may not
		return &secretsource.Error{Kind: secretsource.KindConfig, Secret: acct.SecretName, Source: "pgkms",
			Err: &secretsource.FieldError{Field: "port", Problem: "not a port number 1-65535"}}
	}
	var port uint16 // 0: keep the base configuration's port
	switch {
	case e.fromSecret:
		port = uint16(acct.Port)
		if port == 0 {
			port = 5432
		}
	case acct.Port != 0 && !e.portNamed:
		port = uint16(acct.Port)
	}
	if !e.derived {
		e.patch(cfg, acct.Host, port)
		return nil
	}
	r := e.last.Load()
	if r == nil || r.host != acct.Host || r.port != port {
		r = e.resolve(acct, port)
		e.last.Store(r)
	}
	if r.err != nil {
		return r.err
	}
	cfg.Host, cfg.Port, cfg.TLSConfig = r.cfg.Host, r.cfg.Port, cloneTLS(r.cfg.TLSConfig)
	cfg.Fallbacks = make([]*pgconn.FallbackConfig, len(r.cfg.Fallbacks))
	for i, fb := range r.cfg.Fallbacks {
		cfg.Fallbacks[i] = &pgconn.FallbackConfig{Host: fb.Host, Port: fb.Port, TLSConfig: cloneTLS(fb.TLSConfig)}
	}
	return nil
}

// resolve parses the base connection string with the secret's host (and
// port) added, the way pgx would have parsed it had the user written them.
func (e *endpoint) resolve(acct secretsource.DBAccount, port uint16) *resolvedEndpoint {
	r := &resolvedEndpoint{host: acct.Host, port: port}
	bad := func(problem string) *resolvedEndpoint {
		r.err = &secretsource.Error{Kind: secretsource.KindConfig, Secret: acct.SecretName, Source: "pgkms", Err: &secretsource.FieldError{Field: "host", Problem: problem}}
		return r
	}
	if strings.ContainsAny(acct.Host, ",\x00") || strings.ContainsFunc(acct.Host, func(c rune) bool { return c < ' ' || c == 0x7f }) {
		return bad("not a single host name (a comma or a control character)")
	}
	s := e.connString
	if strings.HasPrefix(s, "postgres://") || strings.HasPrefix(s, "postgresql://") {
		sep := "?"
		if strings.Contains(s, "?") {
			sep = "&"
		}
		s += sep + "host=" + rotation.PercentEncode(acct.Host)
		if port != 0 {
			s += "&port=" + strconv.Itoa(int(port))
		}
	} else {
		s += " host=" + quoteValue(acct.Host)
		if port != 0 {
			s += " port=" + strconv.Itoa(int(port))
		}
	}
	cfg, err := pgx.ParseConfig(s)
	if err != nil {
		return bad("the base configuration does not accept it as its host: " + scrubParseError(err, s).Error())
	}
	if cfg.Host != acct.Host || (port != 0 && cfg.Port != port) {
		return bad("pgx reads it as another host")
	}
	for _, fb := range cfg.Fallbacks {
		if fb.Host != cfg.Host || fb.Port != cfg.Port {
			return bad("pgx reads it as more than one host")
		}
	}
	r.cfg = &cfg.Config
	return r
}

// patch points cfg at host for a configuration changed in code (which a
// re-parse of its connection string would undo): the TLS server name follows
// the host when it was derived from the base host, every fallback keeps its
// TLS mode (sslmode=prefer is a TLS attempt then a plain one).
func (e *endpoint) patch(cfg *pgx.ConnConfig, host string, port uint16) {
	if port == 0 {
		port = cfg.Port
	}
	cfg.Host, cfg.Port = host, port
	cfg.TLSConfig = e.retarget(cfg.TLSConfig, host)
	var fbs []*pgconn.FallbackConfig
	for _, fb := range cfg.Fallbacks {
		if (fb.TLSConfig == nil) != (cfg.TLSConfig == nil) {
			fbs = append(fbs, &pgconn.FallbackConfig{Host: host, Port: port, TLSConfig: e.retarget(fb.TLSConfig, host)})
			break
		}
	}
	cfg.Fallbacks = fbs
}

// retarget returns t for host: a copy with ServerName set when it named the base host.
func (e *endpoint) retarget(t *tls.Config, host string) *tls.Config {
	if t == nil || t.InsecureSkipVerify || (t.ServerName != "" && t.ServerName != e.baseHost) {
		return t
	}
	t = t.Clone()
	t.ServerName = host
	return t
}

func cloneTLS(t *tls.Config) *tls.Config {
	if t == nil {
		return nil
	}
	return t.Clone()
}

// sameHosts reports whether a and b connect to the same hosts and ports, in order.
func sameHosts(a, b *pgconn.Config) bool {
	if a.Host != b.Host || a.Port != b.Port || len(a.Fallbacks) != len(b.Fallbacks) {
		return false
	}
	for i, fa := range a.Fallbacks {
		if fb := b.Fallbacks[i]; fa.Host != fb.Host || fa.Port != fb.Port {
			return false
		}
	}
	return true
}

// sameTLS reports whether a and b (with the same hosts) have TLS settings
// that a re-parse reproduces: what pgx derives from the connection string.
func sameTLS(a, b *pgconn.Config) bool {
	if !tlsEquivalent(a.TLSConfig, b.TLSConfig) {
		return false
	}
	for i, fa := range a.Fallbacks {
		if !tlsEquivalent(fa.TLSConfig, b.Fallbacks[i].TLSConfig) {
			return false
		}
	}
	return true
}

func tlsEquivalent(a, b *tls.Config) bool {
	if a == nil || b == nil {
		return a == b
	}
	rootsEqual := (a.RootCAs == nil && b.RootCAs == nil) || (a.RootCAs != nil && a.RootCAs.Equal(b.RootCAs))
	return rootsEqual && a.ServerName == b.ServerName && a.InsecureSkipVerify == b.InsecureSkipVerify &&
		(a.VerifyPeerCertificate == nil) == (b.VerifyPeerCertificate == nil) &&
		(a.VerifyConnection == nil) == (b.VerifyConnection == nil) &&
		(a.GetClientCertificate == nil) == (b.GetClientCertificate == nil) &&
		len(a.Certificates) == len(b.Certificates) && slices.Equal(a.NextProtos, b.NextProtos) &&
		a.MinVersion == b.MinVersion && a.MaxVersion == b.MaxVersion
}

// quoteValue quotes v for a keyword/value connection string.
func quoteValue(v string) string {
	return "'" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(v) + "'"
}

// named says which parts of the endpoint a connection string names.
type named struct{ host, port, service bool }

// namedInConnString reads what the user wrote, not what pgx fills in
// (pgx.ParseConfig puts a default host and port in every configuration).
// Empty values name nothing, as for pgx.
func namedInConnString(s string) named {
	var n named
	note := func(key, value string) {
		switch key {
		case "host":
			n.host = n.host || strings.Trim(value, ",") != ""
		case "port":
			n.port = n.port || strings.Trim(value, ",") != ""
		case "service":
			n.service = n.service || value != ""
		}
	}
	if rest, ok := cutURLScheme(s); ok {
		// [userinfo@]host[:port][,host[:port]...][/dbname][?query]; as for
		// pgx, only a '/' ends the search for the userinfo's '@'.
		if i := strings.IndexAny(rest, "@/"); i >= 0 && rest[i] == '@' {
			rest = rest[i+1:]
		}
		netloc := rest
		if i := strings.IndexAny(rest, "/?"); i >= 0 {
			netloc, rest = rest[:i], rest[i:]
		} else {
			rest = ""
		}
		for _, hp := range strings.Split(netloc, ",") {
			host, port := hp, ""
			if strings.HasPrefix(hp, "[") {
				if j := strings.IndexByte(hp, ']'); j >= 0 {
					host, port = hp[:j+1], strings.TrimPrefix(hp[j+1:], ":")
				}
			} else if j := strings.IndexByte(hp, ':'); j >= 0 {
				host, port = hp[:j], hp[j+1:]
			}
			note("host", host)
			note("port", strings.TrimSpace(port))
		}
		if _, query, ok := strings.Cut(rest, "?"); ok {
			for _, pair := range strings.Split(query, "&") {
				k, v, _ := strings.Cut(pair, "=")
				note(uriDecode(k), uriDecode(v))
			}
		}
		return n
	}
	for _, p := range keywordValuePairs(s) {
		note(p.key, p.value)
	}
	return n
}

func cutURLScheme(s string) (string, bool) {
	if rest, ok := strings.CutPrefix(s, "postgresql://"); ok {
		return rest, true
	}
	return strings.CutPrefix(s, "postgres://")
}

// uriDecode percent-decodes s ('+' stays '+', as for pgx); undecodable text is kept as is.
func uriDecode(s string) string {
	if d, err := url.PathUnescape(s); err == nil {
		return d
	}
	return s
}

// kvPair is one keyword=value of a keyword/value connection string.
type kvPair struct {
	key   string // as written
	raw   string // the value as written, quotes and backslashes included
	value string // the value as pgx reads it
	// stray holds the words between this value and the next keyword, which
	// a malformed string leaves there (password=a b c=d: "b"); they may be
	// the rest of what the user meant as the value.
	stray string
}

// keywordValuePairs splits a keyword/value connection string as pgx does
// (spaces around '=', single quotes, backslash escapes), without failing:
// malformed input yields what can be read, an unterminated quoted value
// runs to the end.
func keywordValuePairs(s string) []kvPair {
	var out []kvPair
	const space = " \t\n\r\v\f"
	s = strings.TrimLeft(s, space)
	for len(s) > 0 {
		eq := strings.IndexByte(s, '=')
		if eq < 0 {
			break
		}
		key := strings.Trim(s[:eq], space)
		if i := strings.LastIndexAny(key, space); i >= 0 {
			if len(out) > 0 {
				out[len(out)-1].stray = key[:i]
			}
			key = key[i+1:] // malformed: the word before '='
		}
		s = strings.TrimLeft(s[eq+1:], space)
		end, quoted := 0, len(s) > 0 && s[0] == '\''
		if quoted {
			end = 1
			for ; end < len(s) && s[end] != '\''; end++ {
				if s[end] == '\\' {
					end++
				}
			}
			end = min(end+1, len(s)) // the closing quote
		} else {
			for ; end < len(s) && !strings.ContainsRune(space, rune(s[end])); end++ {
				if s[end] == '\\' {
					end++
				}
			}
			end = min(end, len(s))
		}
		raw := s[:end]
		value := raw
		if quoted {
			value = strings.TrimSuffix(strings.TrimPrefix(value, "'"), "'")
		}
		out = append(out, kvPair{key: key, raw: raw, value: unescapeValue(value)})
		s = strings.TrimLeft(s[end:], space)
	}
	return out
}

// unescapeValue drops each backslash and keeps the byte after it, as libpq does.
func unescapeValue(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' {
			i++
			if i == len(s) {
				break
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}
