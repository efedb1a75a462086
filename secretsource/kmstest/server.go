// Internal hooks for the dedicated gateway (dkms*.go, clientkey*.go), kept stable:
//
//   - s.admit(w, action, secret) counts the call and applies an injected fault. It is the only fault entry point:
//     it sleeps for Latency, hijacks and closes the connection for Drop, and for a Code writes the error itself in
//     the gateway's format: a protobuf api.Error (dkms-gcs-sdk openapi-util/protobuf/api) when action starts with
//     "dkms:", the JSON service body otherwise. It returns false when it has answered (or dropped) the request.
//     The dedicated gateway calls it with action "dkms:GetSecretValue" after decoding the request body (so the
//     secret name is known) and before verifying the signature, as the shared gateway does.
//   - s.getSecretValue(name, stage, versionID, fetchExt) reads the store; *apiError carries the service code.
//   - s.now() is the emulator clock; s.logger the request logger (never log values).
//   - s.tlsCert is the leaf shared by every TLS listener, s.caPEM / s.caCert its CA.
//   - s.dkms is created with newDKMSState(s) and served by s.dkmsHandler().
//   - s.persist() saves the state file when WithStateDir is set (state.go). Every change to access keys, client
//     keys or secrets calls it after releasing s.mu (lock order: a secret's rotMu, then persistMu, then s.mu).
//   - The metadata listener also serves the admin endpoint (admin.go); the proxy listener is proxy.go.

package kmstest

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Server is an in-process emulator of Alibaba Cloud KMS secrets (shared and dedicated gateways), STS, the ECS
// metadata service and a credentials URI. Every listener binds 127.0.0.1 on a free port. It verifies request
// signatures the way the service does, so the official SDKs can be tested against it unmodified.
// All methods are safe for concurrent use.
type Server struct {
	cfg    config
	logger *slog.Logger

	mu           sync.Mutex
	wallClock    func() time.Time // request timestamps and nonces (see signature.go); tests may replace it before use
	offset       atomic.Int64     // nanoseconds added by Advance; read without mu (now is called under mu)
	keys         map[string]*accessKey
	secrets      map[string]*secretEntry
	nonces       map[string]time.Time // key id + SignatureNonce -> first seen (wall clock)
	nonceSweepAt int
	faults       []*faultEntry
	calls        map[callKey]int
	hooks        []func(RotationEvent)
	checks       []func(RotationEvent) error // OnRotatePending
	imdsToken    map[string]time.Time        // IMDSv2 token -> expiry

	caCert    *x509.Certificate
	caKey     *ecdsa.PrivateKey
	caPEM     []byte
	tlsCert   tls.Certificate
	dir       string // CA file, OIDC token file, client keys: a temp dir removed on Close, or the state dir
	removeDir bool
	caFile    string
	stateDir  string     // WithStateDir; "" = nothing persisted
	persistMu sync.Mutex // serializes state file writes (see state.go)

	oidcToken     string
	oidcTokenFile string

	kmsLn, kmsTLSLn, dkmsLn, stsLn, metaLn, proxyLn net.Listener
	servers                                         []*http.Server
	closing                                         chan struct{}
	wg                                              sync.WaitGroup
	closeOnce                                       sync.Once
	tunnels                                         tunnelSet // CONNECT tunnels of the proxy (proxy.go)

	dkms *dkmsState
}

// NewServer starts an emulator with every listener on 127.0.0.1:0. Close it when done.
func NewServer(opts ...Option) (*Server, error) {
	cfg := defaultConfig()
	for _, o := range opts {
		o(&cfg)
	}
	if cfg.err != nil {
		return nil, cfg.err
	}
	s := &Server{
		cfg:       cfg,
		logger:    cfg.logger,
		keys:      map[string]*accessKey{},
		secrets:   map[string]*secretEntry{},
		nonces:    map[string]time.Time{},
		calls:     map[callKey]int{},
		imdsToken: map[string]time.Time{},
		closing:   make(chan struct{}),
		wallClock: time.Now,
	}
	if s.logger == nil {
		s.logger = slog.New(slog.DiscardHandler)
	}
	ok := false
	defer func() {
		if !ok {
			s.Close()
		}
	}()
	var state *persistedState
	if cfg.stateDir != "" {
		if err := os.MkdirAll(cfg.stateDir, 0o700); err != nil {
			return nil, fmt.Errorf("kmstest: state directory: %w", err)
		}
		s.dir = cfg.stateDir
		var err error
		if state, err = loadState(cfg.stateDir); err != nil {
			return nil, err
		}
	} else {
		dir, err := os.MkdirTemp("", "kmstest-")
		if err != nil {
			return nil, fmt.Errorf("kmstest: temp dir: %w", err)
		}
		s.dir, s.removeDir = dir, true
	}
	statePath := filepath.Join(s.dir, stateFileName)
	caDER, caKey, err := caFromState(statePath, state)
	if err != nil {
		return nil, err
	}
	if err := s.initTLS(caDER, caKey); err != nil {
		return nil, err
	}
	s.dkms = newDKMSState(s)
	s.oidcToken = "kmstest-oidc." + randomToken(24)
	if state != nil {
		if err := s.restoreState(statePath, state); err != nil {
			return nil, err
		}
	}
	s.oidcTokenFile = filepath.Join(s.dir, "oidc-token")
	if err := writeFileAtomic(s.oidcTokenFile, []byte(s.oidcToken)); err != nil {
		return nil, fmt.Errorf("kmstest: write OIDC token file: %w", err)
	}
	for _, k := range cfg.keys {
		if _, kept := s.keys[k.id]; !kept {
			s.AddAccessKey(k.id, k.secret)
		}
	}
	for _, spec := range cfg.secrets {
		if _, kept := s.secrets[spec.Name]; kept {
			continue
		}
		if err := s.AddSecret(spec); err != nil {
			return nil, err
		}
	}
	s.stateDir = cfg.stateDir // from here on every change is saved
	s.persist()

	tlsCfg := &tls.Config{
		Certificates: []tls.Certificate{s.tlsCert},
		MinVersion:   tls.VersionTLS12,
		// The dedicated-gateway SDK presents its client key certificate; accept and ignore it here
		// (the request signature is what authenticates).
		ClientAuth: tls.RequestClientCert,
	}
	listen := func(h http.Handler, useTLS bool, addr string) (net.Listener, error) {
		if addr == "" {
			addr = "127.0.0.1:0"
		}
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			return nil, fmt.Errorf("kmstest: listen: %w", err)
		}
		srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second,
			ErrorLog: slog.NewLogLogger(s.logger.Handler(), slog.LevelDebug)}
		serveLn := ln
		if useTLS {
			serveLn = tls.NewListener(ln, tlsCfg)
		}
		s.servers = append(s.servers, srv)
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			_ = srv.Serve(serveLn)
		}()
		return ln, nil
	}
	if s.kmsLn, err = listen(s.logRequests("kms", s.openAPIHandler()), false, cfg.kmsAddr); err != nil {
		return nil, err
	}
	if s.kmsTLSLn, err = listen(s.logRequests("kms-tls", s.openAPIHandler()), true, cfg.kmsTLSAddr); err != nil {
		return nil, err
	}
	if s.dkmsLn, err = listen(s.logRequests("dkms", s.dkmsHandler()), true, ""); err != nil {
		return nil, err
	}
	if s.stsLn, err = listen(s.logRequests("sts", s.stsHandler()), true, ""); err != nil {
		return nil, err
	}
	if s.metaLn, err = listen(s.logRequests("metadata", s.metadataHandler()), false, cfg.metadataAddr); err != nil {
		return nil, err
	}
	if s.proxyLn, err = listen(s.logRequests("proxy", s.proxyHandler()), false, cfg.proxyAddr); err != nil {
		return nil, err
	}
	ok = true
	return s, nil
}

// Start is NewServer for tests: it fails tb on error and closes the server in tb.Cleanup.
func Start(tb testing.TB, opts ...Option) *Server {
	tb.Helper()
	s, err := NewServer(opts...)
	if err != nil {
		tb.Fatalf("kmstest: %v", err)
	}
	tb.Cleanup(s.Close)
	return s
}

// Close stops every listener (proxy tunnels included), waits for their goroutines and removes the temporary
// files (with WithStateDir it saves the state and leaves the directory). It is idempotent.
func (s *Server) Close() {
	s.closeOnce.Do(func() {
		close(s.closing)
		s.tunnels.closeAll() // first: a tunnelled connection would hold the Shutdown of the listener behind it
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		for _, srv := range s.servers {
			if err := srv.Shutdown(ctx); err != nil {
				_ = srv.Close()
			}
		}
		s.wg.Wait()
		s.persist()
		if s.removeDir && s.dir != "" {
			_ = os.RemoveAll(s.dir)
		}
	})
}

func lnAddr(ln net.Listener) string {
	if ln == nil {
		return ""
	}
	return ln.Addr().String()
}

// KMSAddr is the shared gateway (KMS OpenAPI) over plain HTTP, as "127.0.0.1:PORT".
func (s *Server) KMSAddr() string { return lnAddr(s.kmsLn) }

// KMSTLSAddr is the shared gateway over HTTPS (certificate valid for 127.0.0.1 and localhost, signed by CAFile).
func (s *Server) KMSTLSAddr() string { return lnAddr(s.kmsTLSLn) }

// DKMSAddr is the dedicated gateway (DKMS, protobuf) over HTTPS.
func (s *Server) DKMSAddr() string { return lnAddr(s.dkmsLn) }

// STSAddr is the STS endpoint (AssumeRole, AssumeRoleWithOIDC) over HTTPS; pass it as credentials-go STSEndpoint.
func (s *Server) STSAddr() string { return lnAddr(s.stsLn) }

// MetadataURL is the ECS instance metadata service, "http://127.0.0.1:PORT". It also answers absolute-form proxy
// requests for http://100.100.100.200/..., so credentials-go's ECS RAM role provider works with HttpOptions.Proxy.
func (s *Server) MetadataURL() string { return "http://" + lnAddr(s.metaLn) }

// CredentialsURI is the endpoint for credentials-go's credentials_uri provider.
func (s *Server) CredentialsURI() string { return s.MetadataURL() + "/credentials" }

// RoleARN is a role ARN that the STS endpoint accepts (any well-formed role ARN is accepted for a valid signer).
func (s *Server) RoleARN() string { return "acs:ram::1234567890123456:role/kmstest-role" }

// OIDCProviderARN is the OIDC provider ARN for AssumeRoleWithOIDC.
func (s *Server) OIDCProviderARN() string {
	return "acs:ram::1234567890123456:oidc-provider/kmstest-oidc"
}

// OIDCTokenFile is a file holding the only OIDC token AssumeRoleWithOIDC accepts.
func (s *Server) OIDCTokenFile() string { return s.oidcTokenFile }

// MetadataRoleName is the ECS RAM role name served by the metadata service.
func (s *Server) MetadataRoleName() string { return s.cfg.metadataRole }

// now is the emulator clock: the WithClock function (or time.Now) plus everything Advance added.
func (s *Server) now() time.Time {
	return s.cfg.clock().Add(time.Duration(s.offset.Load()))
}

// Advance moves the emulator clock forward by d (token expiry, rotation dates, RAM key revocation, timestamps
// the gateways accept). With WithClock the offset is added to that clock.
func (s *Server) Advance(d time.Duration) {
	s.offset.Add(int64(d))
}

// logRequests logs one line per request to the configured logger: never a parameter value.
func (s *Server) logRequests(listener string, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rw := &statusWriter{ResponseWriter: w, status: http.StatusOK}
		h.ServeHTTP(rw, r)
		s.logger.LogAttrs(r.Context(), slog.LevelInfo, "request",
			slog.String("listener", listener), slog.String("method", r.Method), slog.String("path", r.URL.Path),
			slog.String("action", rw.action), slog.Int("status", rw.status), slog.String("code", rw.code))
	})
}

// statusWriter records what logRequests prints. It passes Hijack through for dropped connections.
type statusWriter struct {
	http.ResponseWriter
	status       int
	action, code string
}

func (w *statusWriter) WriteHeader(code int) {
	w.status = code
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	h, ok := w.ResponseWriter.(http.Hijacker)
	if !ok {
		return nil, nil, errors.New("kmstest: connection cannot be hijacked")
	}
	return h.Hijack()
}

func (w *statusWriter) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// noteAction lets handlers tell the request log what they did.
func noteAction(w http.ResponseWriter, action, code string) {
	if sw, ok := w.(*statusWriter); ok {
		if action != "" {
			sw.action = action
		}
		if code != "" {
			sw.code = code
		}
	}
}
