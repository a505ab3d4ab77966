// Package vaulttest is a fake HashiCorp Vault for tests: a TLS server on
// 127.0.0.1 speaking the documented subset of the Vault HTTP API that
// certs/vault uses — KV v2 (data read with ?version=, write with cas, soft
// delete, metadata read, list by LIST or GET ?list=true, metadata delete),
// auth/token/lookup-self, AppRole login and TLS certificate login — with
// tokens that expire, read-only and read-write policies, and knobs to make
// it fail, slow or down.
//
// The client's unit tests use it for what a real server does not do on
// demand: expiring tokens mid-sync, garbage, 5xx, slowness. The end-to-end
// tests run a real Vault (test/vaultserver). Where the fake simplifies, it
// does so in ways the client cannot tell apart on the paths it uses.
// Response bodies follow the samples in the Vault API docs (see
// ../testdata/SOURCES.md).
package vaulttest

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"io"
	"log"
	"net"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/edgegate/edgegate/internal/loopbacktls"
)

// Options configures a Server. The zero value is a usable vault.
type Options struct {
	Mount        string // KV v2 mount; default "secret"
	AppRoleMount string // default "approle"
	CertMount    string // default "cert"
	// Namespace, when set, must be sent as X-Vault-Namespace by every
	// request; otherwise none must be sent.
	Namespace string
	// ClientCAs are the CAs cert auth accepts client certificates from;
	// nil refuses every cert login.
	ClientCAs *x509.CertPool
	// TokenTTL is the lease of tokens from logins; 0 means they never
	// expire. The root token never expires.
	TokenTTL time.Duration
	// ReadOnly makes tokens from AppRole and cert logins read-only.
	ReadOnly bool
	// Now is the server's clock for token expiry and timestamps; default
	// time.Now.
	Now func() time.Time
}

// FailFunc decides whether a request fails instead of being served, and how.
type FailFunc func(r *http.Request) (status int, body string, fail bool)

// Counts are the requests served so far, by kind (failed ones included).
type Counts struct {
	DataReads, DataWrites, DataDeletes      int
	MetadataReads, Lists, MetadataDeletes   int
	AppRoleLogins, CertLogins, TokenLookups int
	Forbidden                               int // 403 answers
	Requests                                int
}

// Server is a running fake vault.
type Server struct {
	t    testing.TB
	o    Options
	ca   *x509.Certificate
	tls  *tls.Config
	addr string

	serveMu sync.Mutex // guards srv and serving
	srv     *http.Server
	serving sync.WaitGroup

	mu       sync.Mutex // guards everything below
	kv       map[string]*secret
	tokens   map[string]*tokenInfo
	roles    map[string]appRole // role_id → role
	root     string
	roleID   string
	secretID string
	fail     FailFunc
	delay    time.Duration
	counts   Counts
}

type tokenInfo struct {
	readOnly bool
	expires  time.Time // zero: never
	created  time.Time
	ttl      time.Duration
}

type appRole struct {
	secretID string
	readOnly bool
}

// New starts a fake vault, stopped at the end of the test.
func New(t testing.TB, o Options) *Server {
	t.Helper()
	if o.Mount == "" {
		o.Mount = "secret"
	}
	if o.AppRoleMount == "" {
		o.AppRoleMount = "approle"
	}
	if o.CertMount == "" {
		o.CertMount = "cert"
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	s := &Server{
		t:      t,
		o:      o,
		kv:     map[string]*secret{},
		tokens: map[string]*tokenInfo{},
		roles:  map[string]appRole{},
	}
	s.root = "hvs.root-" + randomHex(t, 12)
	s.tokens[s.root] = &tokenInfo{created: o.Now()}
	s.roleID, s.secretID = s.NewAppRole(o.ReadOnly)
	s.ca, s.tls = newServerTLS(t)

	var lc net.ListenConfig
	ln, err := lc.Listen(t.Context(), "tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("vaulttest: listen: %v", err)
	}
	s.addr = ln.Addr().String()
	s.serve(ln)
	t.Cleanup(s.Stop)
	return s
}

// URL is the vault's address, https://127.0.0.1:port.
func (s *Server) URL() string { return "https://" + s.addr }

// CACertPEM is the PEM of the CA that issued the server's certificate.
func (s *Server) CACertPEM() []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: s.ca.Raw})
}

// CAPool is a pool holding the server's CA.
func (s *Server) CAPool() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(s.ca)
	return p
}

// Mount is the KV v2 mount served.
func (s *Server) Mount() string { return s.o.Mount }

// RootToken is a read-write token that never expires.
func (s *Server) RootToken() string { return s.root }

// AppRole returns the credentials of the AppRole made by New (read-only if
// Options.ReadOnly).
func (s *Server) AppRole() (roleID, secretID string) { return s.roleID, s.secretID }

// NewAppRole makes another AppRole whose logins get read-only or read-write
// tokens.
func (s *Server) NewAppRole(readOnly bool) (roleID, secretID string) {
	roleID, secretID = randomUUID(s.t), randomUUID(s.t)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.roles[roleID] = appRole{secretID: secretID, readOnly: readOnly}
	return roleID, secretID
}

// NewToken mints a token as `vault token create` would, with a ttl (0:
// never expires).
func (s *Server) NewToken(readOnly bool, ttl time.Duration) string {
	tok := "hvs." + randomHex(s.t, 12)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.tokens[tok] = s.newTokenLocked(readOnly, ttl)
	return tok
}

func (s *Server) newTokenLocked(readOnly bool, ttl time.Duration) *tokenInfo {
	now := s.o.Now()
	ti := &tokenInfo{readOnly: readOnly, created: now, ttl: ttl}
	if ttl > 0 {
		ti.expires = now.Add(ttl)
	}
	return ti
}

// ExpireTokens expires every token but the root token now, as if their
// leases had run out: a client mid-sync then gets 403 "permission denied".
func (s *Server) ExpireTokens() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for tok := range s.tokens {
		if tok != s.root {
			delete(s.tokens, tok)
		}
	}
}

// Fail makes requests fail as fn says; nil serves them again.
func (s *Server) Fail(fn FailFunc) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.fail = fn
}

// FailWith makes every request get status and body (e.g. 503 and
// {"errors":["Vault is sealed"]}), until Fail(nil).
func (s *Server) FailWith(status int, body string) {
	s.Fail(func(*http.Request) (int, string, bool) { return status, body, true })
}

// SetDelay delays every answer by d (or until the client gives up).
func (s *Server) SetDelay(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.delay = d
}

// Counts returns the requests served so far.
func (s *Server) Counts() Counts {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.counts
}

// ResetCounts zeroes the counts.
func (s *Server) ResetCounts() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.counts = Counts{}
}

// Stop closes the listener and every connection: the vault is down. It
// returns once the server has stopped. Stopping a stopped server does
// nothing.
func (s *Server) Stop() {
	s.serveMu.Lock()
	defer s.serveMu.Unlock()
	if s.srv == nil {
		return
	}
	_ = s.srv.Close()
	s.serving.Wait()
	s.srv = nil
}

// Start listens again on the same address after Stop, with the same
// content, tokens and certificate: the vault is back.
func (s *Server) Start() {
	s.t.Helper()
	s.serveMu.Lock()
	running := s.srv != nil
	s.serveMu.Unlock()
	if running {
		return
	}
	var lc net.ListenConfig
	ln, err := lc.Listen(context.Background(), "tcp", s.addr)
	if err != nil {
		s.t.Fatalf("vaulttest: listen again on %s: %v", s.addr, err)
	}
	s.serve(ln)
}

func (s *Server) serve(ln net.Listener) {
	srv := &http.Server{
		Handler:           http.HandlerFunc(s.handle),
		TLSConfig:         s.tls,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      5 * time.Minute, // SetDelay may hold an answer long
		IdleTimeout:       time.Minute,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          log.New(io.Discard, "", 0), // handshake errors are the tests' business
	}
	s.serveMu.Lock()
	defer s.serveMu.Unlock()
	s.srv = srv
	s.serving.Add(1)
	go func() {
		defer s.serving.Done()
		if err := srv.Serve(tls.NewListener(ln, s.tls)); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.t.Errorf("vaulttest: serve: %v", err)
		}
	}()
}

// newServerTLS makes a CA and a server certificate for 127.0.0.1 and
// localhost. Client certificates are requested but checked only by cert
// login, as Vault's listener does by default (RequestClientCert unless
// tls_require_and_verify_client_cert): a certificate the cert method does
// not trust gets a 400 from the login, not a failed handshake.
func newServerTLS(t testing.TB) (*x509.Certificate, *tls.Config) {
	t.Helper()
	id := loopbacktls.New(t, "vaulttest CA")
	return id.CA, &tls.Config{
		MinVersion:   tls.VersionTLS12,
		Certificates: []tls.Certificate{id.Certificate},
		ClientAuth:   tls.RequestClientCert,
	}
}

func randomHex(t testing.TB, n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

func randomUUID(t testing.TB) string {
	h := randomHex(t, 16)
	return h[:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}

// writeJSON answers like Vault: JSON with the status.
func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func writeErrors(w http.ResponseWriter, status int, messages ...string) {
	if messages == nil {
		messages = []string{}
	}
	writeJSON(w, status, map[string]any{"errors": messages})
}
