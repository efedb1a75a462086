package ramsecret

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync/atomic"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/kmsdb/kmsdb/secretsource"
)

// ECS hands out the login held in an ECS secret (SecretType ECS), always the
// version the cache holds now, in the shapes an SSH client needs. It is safe
// for concurrent use. Create it with NewECS.
type ECS struct {
	cache secretsource.Cache
	name  string
	cfg   config

	rec     recovery
	retries atomic.Int64
}

// NewECS returns an ECS for the secret secretName, read through c. It does
// not contact KMS.
func NewECS(c secretsource.Cache, secretName string, opts ...Option) (*ECS, error) {
	if c == nil {
		return nil, errors.New("ramsecret: NewECS: the cache must not be nil")
	}
	if secretName == "" {
		return nil, errors.New("ramsecret: NewECS: the secret name must not be empty")
	}
	cfg, err := newConfig(opts)
	if err != nil {
		return nil, err
	}
	return &ECS{cache: c, name: secretName, cfg: cfg}, nil
}

// SecretName is the name of the ECS secret.
func (e *ECS) SecretName() string { return e.name }

// Credential returns the current login.
func (e *ECS) Credential(ctx context.Context) (secretsource.ECSCredential, error) {
	s, err := e.cache.GetSecret(ctx, e.name)
	if err != nil {
		return secretsource.ECSCredential{}, namedError(e.name, err)
	}
	return decodeECS(s)
}

func decodeECS(s *secretsource.Secret) (secretsource.ECSCredential, error) {
	c, err := secretsource.DecodeECSCredential(s)
	if err != nil {
		return secretsource.ECSCredential{}, fmt.Errorf("ramsecret: secret %q version %q: %w", s.Name(), s.VersionID(), err)
	}
	return c, nil
}

// SSHSigner parses the private key of an SSH-key login (PEM: PKCS#1, PKCS#8,
// SEC 1 or OpenSSH, unencrypted). The error names the secret, never the key.
func SSHSigner(c secretsource.ECSCredential) (ssh.Signer, error) {
	if c.PrivateKey == "" {
		return nil, fmt.Errorf("ramsecret: secret %q version %q: the login has no PrivateKey (it is a password login)",
			c.SecretName, c.VersionID)
	}
	signer, err := ssh.ParsePrivateKey([]byte(c.PrivateKey))
	if err != nil {
		// The parser's message is not kept: nothing of the key may reach an error.
		var missing *ssh.PassphraseMissingError
		problem := "is not an unencrypted PEM private key (PKCS#1, PKCS#8, SEC 1 or OpenSSH)"
		if errors.As(err, &missing) {
			problem = "is encrypted with a passphrase, which an ECS secret does not carry"
		}
		return nil, fmt.Errorf("ramsecret: secret %q version %q: PrivateKey %s", c.SecretName, c.VersionID, problem)
	}
	return signer, nil
}

// SSHAuthMethod returns the ssh.AuthMethod for c: public-key authentication
// for an SSH-key login, password authentication for a password login.
func SSHAuthMethod(c secretsource.ECSCredential) (ssh.AuthMethod, error) {
	if c.PrivateKey != "" {
		signer, err := SSHSigner(c)
		if err != nil {
			return nil, err
		}
		return ssh.PublicKeys(signer), nil
	}
	if c.Password != "" {
		return ssh.Password(c.Password), nil
	}
	return nil, fmt.Errorf("ramsecret: secret %q version %q: the login has neither a Password nor a PrivateKey",
		c.SecretName, c.VersionID)
}

// ClientConfig returns an SSH client configuration that logs in with the
// current version of the secret: its user name and its password or key.
// hostKeyCallback checks the server's host key (ssh.FixedHostKey,
// knownhosts.New, ...); it is required. Build a new configuration for each
// connection so that each one uses the current version, or use Dial.
func (e *ECS) ClientConfig(ctx context.Context, hostKeyCallback ssh.HostKeyCallback) (*ssh.ClientConfig, error) {
	cfg, _, err := e.clientConfig(ctx, hostKeyCallback, nil)
	return cfg, err
}

func (e *ECS) clientConfig(ctx context.Context, hostKeyCallback ssh.HostKeyCallback, offered *atomic.Bool) (*ssh.ClientConfig, secretsource.ECSCredential, error) {
	if hostKeyCallback == nil {
		return nil, secretsource.ECSCredential{}, fmt.Errorf("ramsecret: secret %q: a host key callback is required (ssh.FixedHostKey, knownhosts.New)", e.name)
	}
	c, err := e.Credential(ctx)
	if err != nil {
		return nil, secretsource.ECSCredential{}, err
	}
	if c.UserName == "" {
		return nil, secretsource.ECSCredential{}, fmt.Errorf("ramsecret: secret %q version %q: the login has no UserName", e.name, c.VersionID)
	}
	method, err := SSHAuthMethod(c)
	if err != nil {
		return nil, secretsource.ECSCredential{}, err
	}
	if offered != nil {
		method = trackOffer(c, offered)
	}
	return &ssh.ClientConfig{User: c.UserName, Auth: []ssh.AuthMethod{method}, HostKeyCallback: hostKeyCallback}, c, nil
}

// trackOffer returns c's auth method as a callback that records that the
// credential was offered to the server.
func trackOffer(c secretsource.ECSCredential, offered *atomic.Bool) ssh.AuthMethod {
	if c.PrivateKey != "" {
		return ssh.PublicKeysCallback(func() ([]ssh.Signer, error) {
			s, err := SSHSigner(c)
			if err != nil {
				return nil, err
			}
			offered.Store(true)
			return []ssh.Signer{s}, nil
		})
	}
	return ssh.PasswordCallback(func() (string, error) {
		offered.Store(true)
		return c.Password, nil
	})
}

// Dial connects to an SSH server at addr and logs in with the current
// version of the secret. If the handshake fails after the credential was
// offered (the server refused it: the secret was rotated and the cache has
// not seen it yet), Dial invalidates that version, forces one refresh
// (shared and rate-limited) and, if the secret holds a newer version, dials
// once more with it. ctx bounds the connection and the handshake.
func (e *ECS) Dial(ctx context.Context, network, addr string, hostKeyCallback ssh.HostKeyCallback) (*ssh.Client, error) {
	client, used, offered, err := e.dialOnce(ctx, network, addr, hostKeyCallback)
	if err == nil || !offered || ctx.Err() != nil {
		return client, err
	}
	s, rerr := e.rec.recover(ctx, e.cache, e.name, used.VersionID, e.cfg, "login refused")
	if rerr != nil || s.VersionID() == used.VersionID {
		if rerr != nil {
			return nil, fmt.Errorf("ramsecret: secret %q version %q: login refused (%w); refreshing the secret failed: %w",
				e.name, used.VersionID, err, rerr)
		}
		return nil, fmt.Errorf("ramsecret: secret %q version %q: login refused and KMS holds no newer version: %w",
			e.name, used.VersionID, err)
	}
	e.retries.Add(1)
	client, _, _, err = e.dialOnce(ctx, network, addr, hostKeyCallback)
	return client, err
}

func (e *ECS) dialOnce(ctx context.Context, network, addr string, hostKeyCallback ssh.HostKeyCallback) (*ssh.Client, secretsource.ECSCredential, bool, error) {
	var offered atomic.Bool
	cfg, cred, err := e.clientConfig(ctx, hostKeyCallback, &offered)
	if err != nil {
		return nil, cred, false, err
	}
	var d net.Dialer
	conn, err := d.DialContext(ctx, network, addr)
	if err != nil {
		return nil, cred, false, fmt.Errorf("ramsecret: ssh dial %s: %w", addr, err)
	}
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(dl)
	}
	stop := context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Unix(1, 0)) })
	c, chans, reqs, err := ssh.NewClientConn(conn, addr, cfg)
	stop()
	if err != nil {
		_ = conn.Close()
		return nil, cred, offered.Load(), fmt.Errorf("ramsecret: ssh login to %s as %q (secret %q version %q): %w",
			addr, cred.UserName, e.name, cred.VersionID, err)
	}
	_ = conn.SetDeadline(time.Time{})
	return ssh.NewClient(c, chans, reqs), cred, offered.Load(), nil
}

// Stats returns the counters since the ECS was created: Refreshes (forced
// refreshes of the secret asked of the cache) and Retries (logins retried
// with a newer version); Rejected stays 0 (an SSH server's refusal is not a
// call that failed).
func (e *ECS) Stats() Stats {
	return Stats{Refreshes: e.rec.refreshes.Load(), Retries: e.retries.Load()}
}

// String names the secret; it never shows the login.
func (e *ECS) String() string { return fmt.Sprintf("ramsecret.ECS(secret=%q)", e.name) }

// GoString is the same as String, so %#v cannot dump the state.
func (e *ECS) GoString() string { return e.String() }

// Format prints String for every verb (%d or %x would otherwise walk the fields).
func (e *ECS) Format(f fmt.State, _ rune) { _, _ = fmt.Fprint(f, e.String()) }

// LogValue logs the secret's name, never the login.
func (e *ECS) LogValue() slog.Value { return slog.StringValue(e.String()) }

// MarshalJSON encodes the secret's name, never the login.
func (e *ECS) MarshalJSON() ([]byte, error) {
	return json.Marshal(struct{ ECS string }{e.name})
}
