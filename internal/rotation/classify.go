package rotation

import (
	"errors"
	"net"
	"syscall"

	"github.com/kmsdb/kmsdb/connector"
)

// ClassifyNetwork classifies a dial error: a host that does not resolve or a
// network or host that cannot be reached is Permanent; anything else (refused,
// timeout, reset) is Other. Drivers call it for errors that are not the
// database's own.
func ClassifyNetwork(err error) connector.Class {
	var dnsErr *net.DNSError
	if errors.As(err, &dnsErr) && dnsErr.IsNotFound {
		return connector.Permanent
	}
	if errors.Is(err, syscall.ENETUNREACH) || errors.Is(err, syscall.EHOSTUNREACH) {
		return connector.Permanent
	}
	if errors.Is(err, syscall.ENOENT) { // a unix socket that does not exist
		return connector.Permanent
	}
	return connector.Other
}
