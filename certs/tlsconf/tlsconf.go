// Package tlsconf builds the *tls.Config of every TLS listener of the gateway
// (broker TLS and WSS, the web UI). The configs read the server certificate
// and the client-CA pools from atomic snapshots held by a [Manager] at each
// handshake, so a rotated certificate or a new pool applies to the next
// handshake without restarting a listener or touching live connections.
package tlsconf

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// ErrNoCertificate is returned by the GetCertificate callback of a
// [Manager.ServerConfig] config when no certificate has been set.
var ErrNoCertificate = errors.New("tlsconf: no certificate configured")

// ErrNoCertificates is returned by [LoadPoolPEM] when the input holds no
// CERTIFICATE block.
var ErrNoCertificates = errors.New("tlsconf: no certificate found in PEM data")

// Manager holds the current server certificate and the named client-CA pools.
// Setters replace whole snapshots atomically; handshakes read them without
// locks. A Manager is safe for concurrent use and is shared by all listeners.
type Manager struct {
	cert  atomic.Pointer[tls.Certificate]
	pools atomic.Pointer[map[string]*x509.CertPool]
	check atomic.Pointer[ClientCheck]
	acme  atomic.Pointer[ChallengeResponder]

	// poolsMu serialises writers of pools (copy-on-write); readers only Load.
	poolsMu sync.Mutex
}

// NewManager returns a Manager with no certificate and no pools.
func NewManager() *Manager {
	m := &Manager{}
	m.pools.Store(&map[string]*x509.CertPool{})
	return m
}

// SetCertificate makes c the server certificate for the next handshakes of all
// configs built by m; nil removes it (handshakes then fail with
// [ErrNoCertificate]). Established connections are not affected. c must not
// be modified afterwards.
//
// Per-SNI selection will come later; the snapshot is a single default now.
func (m *Manager) SetCertificate(c *tls.Certificate) {
	m.cert.Store(c)
}

// SetClientCAs sets the client-CA pool called name (e.g. "local" for the
// local CA, or a listener-specific pool) for the next handshakes; a nil pool
// removes it. pool must not be modified afterwards: build a new one instead.
func (m *Manager) SetClientCAs(name string, pool *x509.CertPool) {
	m.poolsMu.Lock()
	defer m.poolsMu.Unlock()
	next := maps.Clone(*m.pools.Load())
	if pool == nil {
		delete(next, name)
	} else {
		next[name] = pool
	}
	m.pools.Store(&next)
}

// ACMEProto is the ALPN protocol of ACME's tls-alpn-01 challenge (RFC 8737).
const ACMEProto = "acme-tls/1"

// ChallengeResponder returns the certificate answering an ACME tls-alpn-01
// challenge for hello, or false when it is not one it expects.
type ChallengeResponder func(hello *tls.ClientHelloInfo) (*tls.Certificate, bool)

// SetChallengeResponder makes every listener answer tls-alpn-01 challenges
// through r; nil stops it. Only handshakes that offer ACMEProto reach r, so
// MQTT clients' ALPN lists are not affected.
func (m *Manager) SetChallengeResponder(r ChallengeResponder) {
	if r == nil {
		m.acme.Store(nil)
		return
	}
	m.acme.Store(&r)
}

// challengeConfig is the config of a tls-alpn-01 validation handshake, nil
// when hello is not one the responder expects.
func (m *Manager) challengeConfig(hello *tls.ClientHelloInfo) *tls.Config {
	r := m.acme.Load()
	if r == nil || !slices.Contains(hello.SupportedProtos, ACMEProto) {
		return nil
	}
	cert, ok := (*r)(hello)
	if !ok {
		return nil
	}
	return &tls.Config{MinVersion: tls.VersionTLS12, NextProtos: []string{ACMEProto}, Certificates: []tls.Certificate{*cert}}
}

// ClientCheck judges a client certificate that verified against its pool,
// given as its verified chain (leaf first): a non-nil error refuses it,
// e.g. because it was revoked.
type ClientCheck func(chain []*x509.Certificate) error

// SetClientCheck makes check run on every client certificate at every
// handshake, full or resumed; nil removes it. [Manager.CheckClient] runs
// the same check for connections that are already up.
func (m *Manager) SetClientCheck(check ClientCheck) {
	if check == nil {
		m.check.Store(nil)
		return
	}
	m.check.Store(&check)
}

// CheckClient runs the client check on the chain of an established
// connection: nil when there is no check, no chain, or the chain passes.
func (m *Manager) CheckClient(chain []*x509.Certificate) error {
	c := m.check.Load()
	if c == nil || len(chain) == 0 {
		return nil
	}
	return (*c)(chain)
}

func (m *Manager) clientCAs(name string) *x509.CertPool {
	return (*m.pools.Load())[name]
}

// ClientAuth is how a listener treats client certificates.
type ClientAuth uint8

const (
	// None does not ask for a client certificate.
	None ClientAuth = iota
	// Optional asks for one and verifies it if given; clients without a
	// certificate are accepted (and authenticate otherwise, e.g. password).
	Optional
	// Required rejects clients without a certificate that verifies.
	Required
)

var clientAuthNames = [...]string{None: "none", Optional: "optional", Required: "required"}

// ParseClientAuth parses "none", "optional" or "required".
func ParseClientAuth(s string) (ClientAuth, error) {
	for i, n := range clientAuthNames {
		if s == n {
			return ClientAuth(i), nil
		}
	}
	return None, fmt.Errorf("tlsconf: invalid client auth %q (want none, optional or required)", s)
}

// String returns the name ParseClientAuth accepts.
func (a ClientAuth) String() string {
	if int(a) < len(clientAuthNames) {
		return clientAuthNames[a]
	}
	return fmt.Sprintf("ClientAuth(%d)", uint8(a))
}

func (a ClientAuth) tlsType() tls.ClientAuthType {
	switch a {
	case Optional:
		return tls.VerifyClientCertIfGiven
	case Required:
		return tls.RequireAndVerifyClientCert
	default:
		return tls.NoClientCert
	}
}

// ServerOptions are the per-listener settings of [Manager.ServerConfig].
type ServerOptions struct {
	ClientAuth ClientAuth
	// ClientCAs names the pool (see [Manager.SetClientCAs]) client
	// certificates must chain to. It is looked up at every handshake. With
	// Required, a missing pool fails the handshake; with Optional, clients
	// without a certificate are still accepted and all certificates are
	// rejected. The system roots are never used for client certificates.
	ClientCAs string
	// NextProtos is the ALPN list. It must be complete: an http.Server adds
	// "h2" to its own clone of the returned config, but the per-handshake
	// config does not see that, so the web UI passes {"h2", "http/1.1"}.
	NextProtos []string
}

// ServerConfig returns a config for a TLS listener. Certificate and client-CA
// pool are read from m at each handshake, through GetCertificate and
// GetConfigForClient; the options themselves are fixed (a listener whose
// options change is restarted by its owner).
//
// Session tickets stay enabled. A resumed session carries the client
// certificate of the original handshake instead of re-sending it, so
// resumption must not outlive a pool change. crypto/tls as of Go 1.26 declines
// a ticket whose chain no longer verifies against the ClientCAs of the
// per-handshake config (older releases did not), and VerifyConnection, which
// unlike VerifyPeerCertificate runs on resumption, repeats that check so the
// guarantee does not depend on the toolchain; it then runs the client check
// (revocation, see [Manager.SetClientCheck]) on full and resumed handshakes.
func (m *Manager) ServerConfig(o ServerOptions) *tls.Config {
	o.NextProtos = append([]string(nil), o.NextProtos...)
	getCert := func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
		if c := m.cert.Load(); c != nil {
			return c, nil
		}
		return nil, ErrNoCertificate
	}
	return &tls.Config{
		MinVersion:     tls.VersionTLS12,
		NextProtos:     o.NextProtos,
		GetCertificate: getCert,
		// Documentation only: the config from GetConfigForClient decides.
		ClientAuth: o.ClientAuth.tlsType(),
		GetConfigForClient: func(hello *tls.ClientHelloInfo) (*tls.Config, error) {
			if cfg := m.challengeConfig(hello); cfg != nil {
				return cfg, nil
			}
			// Session tickets are encrypted with the keys of this parent
			// config, which the returned config inherits (it sets none).
			cfg := &tls.Config{
				MinVersion:     tls.VersionTLS12,
				NextProtos:     o.NextProtos,
				GetCertificate: getCert,
				ClientAuth:     o.ClientAuth.tlsType(),
			}
			if o.ClientAuth == None {
				return cfg, nil
			}
			pool := m.clientCAs(o.ClientCAs)
			if pool == nil {
				if o.ClientAuth == Required {
					return nil, fmt.Errorf("tlsconf: client CA pool %q not configured", o.ClientCAs)
				}
				// A nil ClientCAs would make crypto/tls verify client
				// certificates against the system roots.
				pool = x509.NewCertPool()
			}
			cfg.ClientCAs = pool
			cfg.VerifyConnection = func(cs tls.ConnectionState) error {
				chain, err := verifiedChain(cs, pool, time.Now())
				if err != nil {
					return err
				}
				if err := m.CheckClient(chain); err != nil {
					return fmt.Errorf("tlsconf: client certificate refused: %w", err)
				}
				return nil
			}
			return cfg, nil
		},
	}
}

// verifiedChain returns the client's verified chain (nil without a client
// certificate). A full handshake was just verified against pool by
// crypto/tls; the client certificate of a resumed session is verified again
// against pool, the pool of the current handshake.
func verifiedChain(cs tls.ConnectionState, pool *x509.CertPool, now time.Time) ([]*x509.Certificate, error) {
	if len(cs.PeerCertificates) == 0 {
		return nil, nil
	}
	if !cs.DidResume && len(cs.VerifiedChains) > 0 {
		return cs.VerifiedChains[0], nil
	}
	inters := x509.NewCertPool()
	for _, c := range cs.PeerCertificates[1:] {
		inters.AddCert(c)
	}
	chains, err := cs.PeerCertificates[0].Verify(x509.VerifyOptions{
		Roots:         pool,
		Intermediates: inters,
		CurrentTime:   now,
		KeyUsages:     []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	})
	if err != nil {
		return nil, fmt.Errorf("tlsconf: resumed session's client certificate no longer verifies: %w", err)
	}
	return chains[0], nil
}

// LoadPoolPEM returns a pool of all CERTIFICATE blocks in data. Other block
// types (e.g. a key bundled by mistake) are ignored; a CERTIFICATE block that
// does not parse is an error, unlike x509.CertPool.AppendCertsFromPEM which
// skips it silently. No certificate at all gives [ErrNoCertificates].
func LoadPoolPEM(data []byte) (*x509.CertPool, error) {
	pool := x509.NewCertPool()
	n := 0
	for i := 1; ; i++ {
		var block *pem.Block
		block, data = pem.Decode(data)
		if block == nil {
			break
		}
		if block.Type != "CERTIFICATE" {
			continue
		}
		cert, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("tlsconf: PEM block %d: %w", i, err)
		}
		pool.AddCert(cert)
		n++
	}
	if n == 0 {
		return nil, ErrNoCertificates
	}
	return pool, nil
}
