package acme

// The gateway side of the tests against a real Pebble (started by
// internal/pebbletest): the challenge servers (plain HTTP for http-01, TLS
// for tls-alpn-01) answering for every client the test makes, on the ports
// Pebble's VA is configured to validate on.

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-acme/lego/v4/challenge/http01"

	"github.com/edgegate/edgegate/internal/pebbletest"
)

// memStore is an in-memory AccountStore that counts saves.
type memStore struct {
	mu    sync.Mutex
	data  map[string][]byte
	saves int
}

func newMemStore() *memStore { return &memStore{data: make(map[string][]byte)} }

func (s *memStore) LoadAccount(_ context.Context, key string) ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	d, ok := s.data[key]
	if !ok {
		return nil, ErrAccountNotFound
	}
	return slices.Clone(d), nil
}

func (s *memStore) SaveAccount(_ context.Context, key string, data []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.data[key] = slices.Clone(data)
	s.saves++
	return nil
}

func (s *memStore) saveCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.saves
}

// lockedBuffer collects log output written from several goroutines.
type lockedBuffer = pebbletest.LockedBuffer

func debugLogger(w io.Writer) *slog.Logger {
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// pebbleEnv is a running Pebble whose VA validates against the
// gateway-side challenge servers of the test.
type pebbleEnv struct {
	*pebbletest.Pebble

	mu           sync.Mutex
	clients      []*Client
	httpTokens   []string // tokens requested on the http-01 server
	alpnAnswered int      // tls-alpn-01 handshakes answered with a challenge cert
}

// startPebble starts the challenge servers, then Pebble validating on
// their ports.
func startPebble(t *testing.T, opts pebbletest.Options) *pebbleEnv {
	t.Helper()
	env := &pebbleEnv{}
	opts.HTTPPort = env.serveHTTP01(t)
	opts.TLSPort = env.serveTLSALPN01(t)
	env.Pebble = pebbletest.Start(t, opts)
	return env
}

// client returns a Client for this Pebble, answering challenges through the
// environment's servers. cfg's DirectoryURL and RootCAs are filled in.
func (env *pebbleEnv) client(t *testing.T, cfg Config, store AccountStore) *Client {
	t.Helper()
	cfg.DirectoryURL = env.DirectoryURL()
	cfg.RootCAs = env.HTTPSRoots()
	c, err := New(cfg, store)
	if err != nil {
		t.Fatal(err)
	}
	env.mu.Lock()
	env.clients = append(env.clients, c)
	env.mu.Unlock()
	return c
}

func (env *pebbleEnv) snapshotClients() []*Client {
	env.mu.Lock()
	defer env.mu.Unlock()
	return slices.Clone(env.clients)
}

func (env *pebbleEnv) servedTokens() []string {
	env.mu.Lock()
	defer env.mu.Unlock()
	return slices.Clone(env.httpTokens)
}

func (env *pebbleEnv) alpnCount() int {
	env.mu.Lock()
	defer env.mu.Unlock()
	return env.alpnAnswered
}

// serveHTTP01 runs the gateway's port-80 server: every client's HTTPHandler
// in front of a 404. It returns the server's port.
func (env *pebbleEnv) serveHTTP01(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if token, ok := strings.CutPrefix(r.URL.Path, http01.PathPrefix); ok {
			env.mu.Lock()
			env.httpTokens = append(env.httpTokens, token)
			env.mu.Unlock()
		}
		next := http.NotFoundHandler()
		for _, c := range env.snapshotClients() {
			next = c.HTTPHandler(next)
		}
		next.ServeHTTP(w, r)
	})
	serve(t, &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}, ln)
	return ln.Addr().(*net.TCPAddr).Port
}

// serveTLSALPN01 runs the gateway's TLS server the way certs/tlsconf would:
// GetCertificate asks the clients for a challenge certificate first. It
// returns the server's port.
func (env *pebbleEnv) serveTLSALPN01(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	fallback := selfSigned(t, "fallback.edgegate.test")
	cfg := &tls.Config{
		NextProtos: []string{"http/1.1", ALPNProto},
		GetCertificate: func(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
			for _, c := range env.snapshotClients() {
				if cert, ok := c.ChallengeCertificate(hello); ok {
					env.mu.Lock()
					env.alpnAnswered++
					env.mu.Unlock()
					return cert, nil
				}
			}
			return fallback, nil
		},
	}
	srv := &http.Server{Handler: http.NotFoundHandler(), TLSConfig: cfg, ReadHeaderTimeout: 10 * time.Second}
	serve(t, srv, tls.NewListener(ln, cfg))
	return ln.Addr().(*net.TCPAddr).Port
}

// serve runs srv on ln until the test ends.
func serve(t *testing.T, srv *http.Server, ln net.Listener) {
	t.Helper()
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = srv.Serve(ln)
	}()
	t.Cleanup(func() {
		_ = srv.Close()
		<-done
	})
}

func writeFile(t *testing.T, path string, data []byte) {
	t.Helper()
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
}

// selfSigned returns a throwaway certificate for name.
func selfSigned(t *testing.T, name string) *tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: name},
		DNSNames:     []string{name},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return &tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}
