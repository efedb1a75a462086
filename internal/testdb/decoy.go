package testdb

import (
	"bufio"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"strconv"
	"sync"
	"testing"
	"time"
)

// Decoy is a server of an attacker's on loopback: it records every
// connection made to it and, when it plays PostgreSQL, asks the client for
// its password in clear text (AuthenticationCleartextPassword) and records
// what arrives, as a fake server that a tampered secret points at would.
// Tests use it to show that a login never reaches it.
type Decoy struct {
	ln       net.Listener
	postgres bool
	wg       sync.WaitGroup

	mu        sync.Mutex
	conns     int
	passwords []string
}

// StartDecoy listens on a free port of 127.0.0.2 (127.0.0.1 where that
// address is not there), so that its host differs from the real servers',
// until the test ends. With
// postgres set it speaks enough of the PostgreSQL protocol to receive a
// password; otherwise it closes every connection at once.
func StartDecoy(t testing.TB, postgres bool) *Decoy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.2:0")
	if err != nil {
		ln, err = net.Listen("tcp", "127.0.0.1:0")
	}
	if err != nil {
		t.Fatal(err)
	}
	d := &Decoy{ln: ln, postgres: postgres}
	d.wg.Go(d.serve)
	t.Cleanup(func() { _ = ln.Close(); d.wg.Wait() })
	return d
}

// Host is the decoy's IP address.
func (d *Decoy) Host() string { return d.ln.Addr().(*net.TCPAddr).IP.String() }

// Port is the decoy's port.
func (d *Decoy) Port() int { return d.ln.Addr().(*net.TCPAddr).Port }

// Addr is host:port.
func (d *Decoy) Addr() string { return net.JoinHostPort(d.Host(), strconv.Itoa(d.Port())) }

// Connections is the number of connections accepted so far.
func (d *Decoy) Connections() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.conns
}

// Passwords lists the passwords clients sent (PostgreSQL decoys only).
func (d *Decoy) Passwords() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]string(nil), d.passwords...)
}

func (d *Decoy) serve() {
	for {
		c, err := d.ln.Accept()
		if err != nil {
			return
		}
		d.mu.Lock()
		d.conns++
		d.mu.Unlock()
		d.wg.Go(func() {
			defer c.Close()
			if d.postgres {
				_ = c.SetDeadline(time.Now().Add(10 * time.Second))
				if pw, err := pgCapturePassword(c); err == nil {
					d.mu.Lock()
					d.passwords = append(d.passwords, pw)
					d.mu.Unlock()
				}
			}
		})
	}
}

// pgCapturePassword answers an SSLRequest with "no", reads the startup
// message, asks for a cleartext password and returns it.
func pgCapturePassword(c net.Conn) (string, error) {
	r := bufio.NewReader(c)
	for {
		var hdr [8]byte
		if _, err := io.ReadFull(r, hdr[:]); err != nil {
			return "", err
		}
		n := int(binary.BigEndian.Uint32(hdr[:4]))
		if n < 8 || n > 1<<16 {
			return "", errors.New("bad startup length")
		}
		if _, err := io.CopyN(io.Discard, r, int64(n-8)); err != nil {
			return "", err
		}
		switch binary.BigEndian.Uint32(hdr[4:]) {
		case 80877103, 80877104: // SSLRequest, GSSENCRequest: refuse, the client goes on in plain text
			if _, err := c.Write([]byte{'N'}); err != nil {
				return "", err
			}
			continue
		}
		break
	}
	// AuthenticationCleartextPassword.
	if _, err := c.Write([]byte{'R', 0, 0, 0, 8, 0, 0, 0, 3}); err != nil {
		return "", err
	}
	var hdr [5]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return "", err
	}
	n := int(binary.BigEndian.Uint32(hdr[1:]))
	if hdr[0] != 'p' || n < 5 || n > 1<<16 {
		return "", errors.New("not a password message")
	}
	body := make([]byte, n-4)
	if _, err := io.ReadFull(r, body); err != nil {
		return "", err
	}
	pw := string(body[:len(body)-1]) // NUL-terminated
	// Fail the login, as a server that wants the password and nothing else would.
	const fields = "SFATAL\x00C28P01\x00Mpassword authentication failed\x00\x00"
	msg := binary.BigEndian.AppendUint32([]byte{'E'}, uint32(4+len(fields)))
	_, _ = c.Write(append(msg, fields...))
	return pw, nil
}
