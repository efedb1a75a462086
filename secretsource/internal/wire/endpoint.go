package wire

import (
	"net"
	"strconv"
	"strings"
)

// notHostChar reports a character a host name label may not hold.
func notHostChar(c rune) bool {
	switch {
	case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '-', c == '_':
		return false
	}
	return true
}

// CheckEndpoint checks that s is a host or host:port, as the KMS and
// dedicated KMS endpoint settings take: a DNS name or an IP address
// (IPv6 in brackets when a port follows), and a port from 1 to 65535. The
// problem it describes never quotes s: a value with a scheme, a path or
// userinfo ("user:password@host") may hold a credential.
func CheckEndpoint(s string) (problem string, ok bool) {
	switch {
	case s == "":
		return "it is empty", false
	case strings.Contains(s, "://"):
		return "it has a scheme (such as https://): give the host alone", false
	case strings.Contains(s, "@"):
		return "it holds '@' (userinfo such as user:password@): give the host alone", false
	case strings.ContainsAny(s, "/?#"):
		return "it has a path, query or fragment: give the host alone", false
	}
	host, port := s, ""
	if h, p, err := net.SplitHostPort(s); err == nil {
		host, port = h, p
		if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
			return "its port is not a number from 1 to 65535", false
		}
	} else if strings.Count(s, ":") > 1 && net.ParseIP(s) != nil {
		return "", true // a bare IPv6 address
	}
	if net.ParseIP(host) != nil {
		return "", true
	}
	if len(host) > 253 {
		return "its host name is longer than 253 characters", false
	}
	for _, label := range strings.Split(host, ".") {
		if label == "" || len(label) > 63 {
			return "its host name has an empty label or one longer than 63 characters", false
		}
		if strings.ContainsFunc(label, notHostChar) {
			return "its host name may hold only letters, digits, '-', '_' and '.'", false
		}
	}
	return "", true
}
