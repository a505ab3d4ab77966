package acme

import (
	"crypto/tls"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync"

	"github.com/go-acme/lego/v4/challenge/http01"
	"github.com/go-acme/lego/v4/challenge/tlsalpn01"
)

// http01Solver is lego's challenge.Provider for http-01: Present records the
// key authorization that [Client.HTTPHandler] then serves.
type http01Solver struct {
	log *slog.Logger

	mu      sync.Mutex
	pending map[string]string // token → key authorization
}

func newHTTP01Solver() *http01Solver {
	return &http01Solver{pending: make(map[string]string)}
}

func (s *http01Solver) Present(domain, token, keyAuth string) error {
	s.mu.Lock()
	s.pending[token] = keyAuth
	s.mu.Unlock()
	s.log.Debug("acme challenge presented", "type", HTTP01, "domain", domain)
	return nil
}

func (s *http01Solver) CleanUp(_, token, _ string) error {
	s.mu.Lock()
	delete(s.pending, token)
	s.mu.Unlock()
	return nil
}

func (s *http01Solver) lookup(token string) (string, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	keyAuth, ok := s.pending[token]
	return keyAuth, ok
}

// HTTPHandler answers http-01 challenges: a GET or HEAD of
// /.well-known/acme-challenge/<token> for a pending challenge gets its key
// authorization; every other request goes to next (nil means 404). Wrap the
// handler of the gateway's plain-HTTP listener on port 80 with it.
//
// The Host header is not checked: the token alone identifies the challenge,
// it is unguessable, and the key authorization is what the CA fetches over
// plain HTTP anyway. Not checking keeps the handler working behind a proxy
// that rewrites Host.
func (c *Client) HTTPHandler(next http.Handler) http.Handler {
	if next == nil {
		next = http.NotFoundHandler()
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		token, ok := strings.CutPrefix(r.URL.Path, http01.PathPrefix)
		if ok && (r.Method == http.MethodGet || r.Method == http.MethodHead) {
			if keyAuth, found := c.http01.lookup(token); found {
				w.Header().Set("Content-Type", "text/plain")
				_, _ = io.WriteString(w, keyAuth)
				return
			}
		}
		next.ServeHTTP(w, r)
	})
}

// tlsALPNSolver is lego's challenge.Provider for tls-alpn-01: Present builds
// the challenge certificate that [Client.ChallengeCertificate] then serves.
type tlsALPNSolver struct {
	log *slog.Logger

	mu      sync.Mutex
	pending map[string]*tls.Certificate // server name → challenge certificate
}

func newTLSALPNSolver() *tlsALPNSolver {
	return &tlsALPNSolver{pending: make(map[string]*tls.Certificate)}
}

func (s *tlsALPNSolver) Present(domain, _, keyAuth string) error {
	cert, err := tlsalpn01.ChallengeCert(domain, keyAuth)
	if err != nil {
		return fmt.Errorf("build tls-alpn-01 certificate for %q: %w", domain, err)
	}
	s.mu.Lock()
	s.pending[serverName(domain)] = cert
	s.mu.Unlock()
	s.log.Debug("acme challenge presented", "type", TLSALPN01, "domain", domain)
	return nil
}

func (s *tlsALPNSolver) CleanUp(domain, _, _ string) error {
	s.mu.Lock()
	delete(s.pending, serverName(domain))
	s.mu.Unlock()
	return nil
}

func (s *tlsALPNSolver) lookup(name string) (*tls.Certificate, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	cert, ok := s.pending[serverName(name)]
	return cert, ok
}

func serverName(name string) string {
	return strings.ToLower(strings.TrimSuffix(name, "."))
}

// ChallengeCertificate returns the tls-alpn-01 challenge certificate when the
// client offers [ALPNProto] and a challenge for its SNI is pending; otherwise
// nil and false, and the listener serves its normal certificate. Call it
// first from the TLS listener's GetCertificate.
//
// The CA's validator offers only [ALPNProto], so a normal client never gets
// the challenge certificate.
func (c *Client) ChallengeCertificate(hello *tls.ClientHelloInfo) (*tls.Certificate, bool) {
	if hello == nil || !slices.Contains(hello.SupportedProtos, ALPNProto) {
		return nil, false
	}
	return c.tlsALPN.lookup(hello.ServerName)
}
