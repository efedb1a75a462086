package kmstest

import (
	"errors"
	"log/slog"
	"time"
)

// Option configures a Server.
type Option func(*config)

type config struct {
	clock          func() time.Time
	ramRevokeDelay time.Duration
	tempTTL        time.Duration
	logger         *slog.Logger
	keys           []keyPair
	secrets        []SecretSpec
	metadataRole   string
	kmsAddr        string
	kmsTLSAddr     string
	metadataAddr   string
	proxyAddr      string
	stateDir       string
	err            error
}

type keyPair struct{ id, secret string }

func defaultConfig() config {
	return config{
		clock:        time.Now,
		tempTTL:      time.Hour,
		metadataRole: "kmstest-ecs-role",
	}
}

// WithAccessKey registers a permanent AccessKey pair the gateways and STS accept.
func WithAccessKey(id, secret string) Option {
	return func(c *config) {
		if id == "" || secret == "" {
			c.err = errors.Join(c.err, errors.New("kmstest: WithAccessKey: id and secret must not be empty"))
			return
		}
		c.keys = append(c.keys, keyPair{id, secret})
	}
}

// WithSecret adds a secret at start. An invalid spec makes NewServer fail.
func WithSecret(spec SecretSpec) Option {
	return func(c *config) { c.secrets = append(c.secrets, spec) }
}

// WithClock sets the emulator's time source (token expiry, rotation dates, request timestamps). Advance adds to it.
func WithClock(now func() time.Time) Option {
	return func(c *config) {
		if now != nil {
			c.clock = now
		}
	}
}

// WithRAMKeyRevokeDelay sets how long the previous AccessKey of a RAMCredentials secret keeps working after a
// rotation (emulator time). 0, the default, revokes it at once.
func WithRAMKeyRevokeDelay(d time.Duration) Option {
	return func(c *config) { c.ramRevokeDelay = d }
}

// WithTempCredentialTTL sets the lifetime of the temporary credentials issued by STS, the metadata service and
// the credentials URI (default 1h).
func WithTempCredentialTTL(d time.Duration) Option {
	return func(c *config) {
		if d > 0 {
			c.tempTTL = d
		}
	}
}

// WithLogger logs one line per request (listener, action, status, error code; never a value or a key secret).
func WithLogger(l *slog.Logger) Option {
	return func(c *config) { c.logger = l }
}

// Addrs are the listen addresses of the emulator's listeners. An empty field is "127.0.0.1:0": loopback, on a
// free port.
type Addrs struct {
	KMS      string // the shared gateway over plain HTTP
	KMSTLS   string // the shared gateway over HTTPS; its certificate is valid for 127.0.0.1, ::1 and localhost only
	Metadata string // ECS metadata, credentials URI and the admin endpoint
	Proxy    string // the HTTP proxy (ProxyURL)
}

// WithAddrs sets the listen addresses (the last WithAddrs given wins); the DKMS listener always binds 127.0.0.1 on
// a free port.
func WithAddrs(a Addrs) Option {
	return func(c *config) {
		c.kmsAddr, c.kmsTLSAddr, c.metadataAddr, c.proxyAddr = a.KMS, a.KMSTLS, a.Metadata, a.Proxy
	}
}
