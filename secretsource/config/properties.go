package config

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"unicode/utf16"
	"unicode/utf8"
)

// DefaultPropertiesFile is the file Alibaba's secret clients read from the
// working directory when no other file is named.
const DefaultPropertiesFile = "secretsmanager.properties"

// property is one key/value pair of a properties file, with the line it
// starts on (the only thing a message may say about a pair whose key is
// unknown: a key Load does not read may be the tail of a secret).
type property struct {
	key, value string
	line       int
	// hasSep is false when the line has no '=' or ':' separator ("key" or
	// "key value"): a secret's continuation line that lost the backslash
	// before it reads so.
	hasSep bool
	// lossyEscape: the value held a backslash escape that changes the text
	// (anything but \\ \= \: \# \! "\ " and \uXXXX), as a Windows path
	// written with single backslashes does: "C:\keys\new" reads "C:keys" + a
	// line feed + "ew".
	lossyEscape bool
}

// parseProperties reads a properties file as java.util.Properties.load does,
// since Alibaba's Java client reads secretsmanager.properties with it and
// the same file serves both:
//
//   - lines end at \n, \r or \r\n; blank lines and lines whose first
//     non-blank character is '#' or '!' are skipped (blanks are ' ', \t, \f);
//   - a line ending in an odd number of backslashes continues on the next
//     line: the backslash and line end are removed, and so are the leading
//     blanks of the next line (a comment line never continues; an empty
//     continuation line ends the value; Java 9 and later's reading of a line
//     holding only a backslash);
//   - the key ends at the first unescaped '=', ':' or blank; blanks around
//     the separator are skipped, so "key value", "key:value" and "key = value"
//     are the same pair, and a key alone has an empty value;
//   - in keys and values, \t \n \r \f are control characters, \uXXXX is a
//     UTF-16 code unit (surrogate pairs combine), and a backslash before any
//     other character stands for that character (\\ \= \: \# \! and "\ ");
//   - a key given twice keeps its last value.
//
// Where Java differs: the file is read as UTF-8 (Java reads ISO-8859-1, so
// Java users write non-ASCII as \uXXXX, which reads the same here); a file
// that is not valid UTF-8 is read as ISO-8859-1, as Java does; a leading
// byte order mark is skipped. The only error is a malformed \uXXXX (Java's
// IllegalArgumentException), reported by line number, never by its text.
func parseProperties(data []byte) ([]property, error) {
	text := string(data)
	if !utf8.ValidString(text) {
		r := make([]rune, len(data))
		for i, b := range data {
			r[i] = rune(b)
		}
		text = string(r)
	}
	text = strings.TrimPrefix(text, "\ufeff")
	var out []property
	p := lineReader{s: text, line: 1}
	for {
		raw, line, ok := p.next()
		if !ok {
			return out, nil
		}
		prop, err := splitProperty(raw)
		if err != nil {
			return nil, fmt.Errorf("line %d: %w", line, err)
		}
		prop.line = line
		out = append(out, prop)
	}
}

func isBlank(c byte) bool { return c == ' ' || c == '\t' || c == '\f' }

// lineReader yields logical lines as java.util.Properties' LineReader does:
// comments and blank lines skipped, continuations joined, escapes left in.
type lineReader struct {
	s    string
	i    int
	line int // line number of s[i]
}

// eol consumes the line end at s[i] (\n, \r or \r\n), if any, and
// returns its length.
func (r *lineReader) eol() int {
	if r.i >= len(r.s) {
		return 0
	}
	n := 1
	if r.s[r.i] == '\r' && r.i+1 < len(r.s) && r.s[r.i+1] == '\n' {
		n = 2
	}
	r.i += n
	r.line++
	return n
}

func (r *lineReader) atEOL() bool { return r.i >= len(r.s) || r.s[r.i] == '\n' || r.s[r.i] == '\r' }

// next returns the next logical line and the number of the line its text
// starts on. It follows the LineReader of Java 9 and later: while the logical
// line is still empty (a line holding only a backslash continues into the
// next), blank lines are skipped and '#' or '!' starts a comment.
func (r *lineReader) next() (string, int, bool) {
	var b strings.Builder
	start := 0
	for {
		for r.i < len(r.s) && isBlank(r.s[r.i]) {
			r.i++
		}
		if r.i >= len(r.s) {
			return b.String(), start, b.Len() > 0
		}
		if b.Len() == 0 {
			switch r.s[r.i] {
			case '\n', '\r': // a blank line
				r.eol()
				continue
			case '#', '!': // a comment, which never continues
				for !r.atEOL() {
					r.i++
				}
				r.eol()
				continue
			}
			start = r.line
		} else if r.atEOL() { // an empty continuation line ends the value
			r.eol()
			return b.String(), start, true
		}
		j := r.i
		for !r.atEOL() {
			r.i++
		}
		seg := r.s[j:r.i]
		eolLen := r.eol()
		n := 0
		for n < len(seg) && seg[len(seg)-1-n] == '\\' {
			n++
		}
		if n%2 == 0 {
			b.WriteString(seg)
			return b.String(), start, true
		}
		b.WriteString(seg[:len(seg)-1]) // the odd backslash escapes the line end
		if r.i >= len(r.s) && eolLen < 2 {
			// Java returns the line when the input ends right after the
			// backslash or its one-character line end, even when the line is
			// empty ("\\" alone reads as an empty key with an empty value);
			// after \r\n it finds the end one step later and returns nothing.
			return b.String(), start, true
		}
	}
}

// splitProperty splits a logical line into key and value and unescapes both
// (java.util.Properties.load0 and loadConvert).
func splitProperty(line string) (property, error) {
	keyEnd, valueStart := len(line), len(line)
	escaped := false
	for i := 0; i < len(line); i++ {
		c := line[i]
		if !escaped && (c == '=' || c == ':' || isBlank(c)) {
			keyEnd, valueStart = i, i+1
			break
		}
		escaped = c == '\\' && !escaped
	}
	hasSep := keyEnd < len(line) && (line[keyEnd] == '=' || line[keyEnd] == ':')
	for valueStart < len(line) {
		c := line[valueStart]
		if !isBlank(c) {
			if !hasSep && (c == '=' || c == ':') {
				hasSep = true
			} else {
				break
			}
		}
		valueStart++
	}
	key, _, err := unescape(line[:keyEnd])
	if err != nil {
		return property{}, err
	}
	value, lossy, err := unescape(line[valueStart:])
	if err != nil {
		return property{}, err
	}
	return property{key: key, value: value, hasSep: hasSep, lossyEscape: lossy}, nil
}

var errBadUnicodeEscape = errors.New(`malformed \uXXXX escape (expected four hexadecimal digits)`)

// unescape applies the escapes of the properties format. lossy reports an
// escape that changes what was written: a control character escape or a
// backslash dropped before an ordinary character.
func unescape(s string) (out string, lossy bool, err error) {
	if !strings.Contains(s, `\`) {
		return s, false, nil
	}
	var b strings.Builder
	var units []uint16 // pending \u code units, so surrogate pairs combine
	flush := func() {
		if len(units) > 0 {
			b.WriteString(string(utf16.Decode(units)))
			units = units[:0]
		}
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c != '\\' {
			flush()
			b.WriteByte(c)
			continue
		}
		i++
		if i >= len(s) { // a lone trailing backslash is dropped
			lossy = true
			break
		}
		c = s[i]
		if c == 'u' {
			if len(s)-i-1 < 4 {
				return "", false, errBadUnicodeEscape
			}
			var u uint16
			for _, h := range []byte(s[i+1 : i+5]) {
				var d byte
				switch {
				case h >= '0' && h <= '9':
					d = h - '0'
				case h >= 'a' && h <= 'f':
					d = h - 'a' + 10
				case h >= 'A' && h <= 'F':
					d = h - 'A' + 10
				default:
					return "", false, errBadUnicodeEscape
				}
				u = u<<4 | uint16(d)
			}
			units = append(units, u)
			i += 4
			continue
		}
		flush()
		switch c {
		case 't':
			c, lossy = '\t', true
		case 'n':
			c, lossy = '\n', true
		case 'r':
			c, lossy = '\r', true
		case 'f':
			c, lossy = '\f', true
		case '\\', '=', ':', '#', '!', ' ':
		default:
			lossy = true // the backslash is dropped: "C:\keys" reads "C:keys"
		}
		b.WriteByte(c)
	}
	flush()
	return b.String(), lossy, nil
}

// propertiesWarnings reports the pairs of a properties file that Load
// ignores or that may not say what was meant. A warning names a known key
// and a line number, never a value, and never the text of an unknown key:
// that text may be the tail of a secret whose line lost its continuation
// backslash.
func propertiesWarnings(path string, props []property) []string {
	var out []string
	last := map[string]int{} // line of the pair that wins, per key
	for _, p := range props {
		last[p.key] = p.line
	}
	for _, p := range props {
		if l := last[p.key]; l != p.line && slices.Contains(knownKeys, p.key) {
			out = append(out, fmt.Sprintf("properties file %s line %d: %s is given again on line %d, which wins", path, p.line, p.key, l))
		}
		if !slices.Contains(knownKeys, p.key) {
			hint := "not a key kmsdb reads (files shared with the Java client may hold others)"
			switch {
			case closestKey(p.key) != "":
				hint = fmt.Sprintf("did you mean %s?", closestKey(p.key))
			case !p.hasSep:
				hint = "a line without '=' or ':': if it continues the value on the line before, end that line with a backslash"
			}
			out = append(out, fmt.Sprintf("properties file %s line %d: unknown key ignored (%s)", path, p.line, hint))
			continue
		}
		if p.lossyEscape {
			out = append(out, fmt.Sprintf("properties file %s line %d: %s: a backslash escape changed the value, "+
				`as java.util.Properties reads it (\t, \n, \r, \f are control characters; a backslash before another `+
				`character is dropped): write \\ for a backslash (C:\\keys\\key.json) or use '/'`, path, p.line, p.key))
		}
	}
	return out
}

// closestKey returns the known key within two edits of key (a typo such as
// refresh_secret_tll), or "". Keys shorter than six characters match nothing.
func closestKey(key string) string {
	if len(key) < 6 {
		return ""
	}
	best, bestD := "", 3
	for _, k := range knownKeys {
		if d := editDistance(strings.ToLower(key), k, bestD); d < bestD {
			best, bestD = k, d
		}
	}
	return best
}

// editDistance is the Levenshtein distance of a and b, or limit when it is at
// least limit.
func editDistance(a, b string, limit int) int {
	if d := len(a) - len(b); d >= limit || -d >= limit {
		return limit
	}
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		rowMin := cur[0]
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
			rowMin = min(rowMin, cur[j])
		}
		if rowMin >= limit {
			return limit
		}
		prev, cur = cur, prev
	}
	return min(prev[len(b)], limit)
}
