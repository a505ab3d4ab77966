package tlsconf

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"io"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"go.etcd.io/bbolt"

	"github.com/edgegate/edgegate/certs/ca"
)

// newCA opens a local CA on a fresh database.
func newCA(t *testing.T, device string) *ca.Authority {
	t.Helper()
	db, err := bbolt.Open(filepath.Join(t.TempDir(), "edgegate.db"), 0o600, &bbolt.Options{Timeout: time.Second})
	if err != nil {
		t.Fatalf("open bbolt: %v", err)
	}
	t.Cleanup(func() { _ = db.Close() })
	a, err := ca.Open(db, ca.Options{DeviceName: device})
	if err != nil {
		t.Fatalf("ca.Open: %v", err)
	}
	return a
}

func serverCert(t *testing.T, a *ca.Authority) *tls.Certificate {
	t.Helper()
	c, err := a.IssueServer([]string{"gw.local", "127.0.0.1"}, time.Hour)
	if err != nil {
		t.Fatalf("IssueServer: %v", err)
	}
	return c
}

func clientCert(t *testing.T, a *ca.Authority, cn string) *tls.Certificate {
	t.Helper()
	certPEM, keyPEM, err := a.IssueClient(ca.ClientRequest{CommonName: cn, Validity: time.Hour})
	if err != nil {
		t.Fatalf("IssueClient: %v", err)
	}
	c, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatalf("X509KeyPair: %v", err)
	}
	return &c
}

// echoServer is a TLS echo server on 127.0.0.1:0. Every accepted connection
// reports the result of its server-side handshake on handshakes, in order.
type echoServer struct {
	addr       string
	handshakes chan error
}

func serve(t *testing.T, cfg *tls.Config) *echoServer {
	t.Helper()
	ln, err := tls.Listen("tcp", "127.0.0.1:0", cfg)
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	s := &echoServer{addr: ln.Addr().String(), handshakes: make(chan error, 64)}
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		conns []net.Conn
	)
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, conn)
			mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer conn.Close()
				err := conn.(*tls.Conn).Handshake()
				s.handshakes <- err
				if err == nil {
					_, _ = io.Copy(conn, conn)
				}
			}()
		}
	}()
	t.Cleanup(func() {
		_ = ln.Close()
		mu.Lock()
		for _, c := range conns {
			_ = c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return s
}

// serverErr returns the server-side result of the next handshake.
func (s *echoServer) serverErr() error { return <-s.handshakes }

// clientConfig trusts root and, when cert is not nil, presents it whatever CAs
// the server asks for (the stdlib default would silently send nothing for a
// certificate from a CA the server does not list, hiding the server's check).
func clientConfig(root *x509.CertPool, cert *tls.Certificate) *tls.Config {
	cfg := &tls.Config{RootCAs: root, ServerName: "gw.local"}
	if cert != nil {
		cfg.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return cert, nil }
	}
	return cfg
}

// dial connects and completes one echo round trip, which in TLS 1.3 is when a
// client learns that the server rejected its certificate.
func dial(t *testing.T, addr string, cfg *tls.Config) (*tls.Conn, error) {
	t.Helper()
	conn, err := tls.Dial("tcp", addr, cfg)
	if err != nil {
		return nil, err
	}
	if err := echo(conn); err != nil {
		conn.Close()
		return nil, err
	}
	return conn, nil
}

func echo(conn *tls.Conn) error {
	// The deadline only keeps a broken test from hanging; nothing asserts on time.
	if err := conn.SetDeadline(time.Now().Add(30 * time.Second)); err != nil {
		return err
	}
	msg := []byte("ping\n")
	if _, err := conn.Write(msg); err != nil {
		return err
	}
	got := make([]byte, len(msg))
	if _, err := io.ReadFull(conn, got); err != nil {
		return err
	}
	if !bytes.Equal(got, msg) {
		return errors.New("echo mismatch")
	}
	return nil
}

// roundTrip dials, checks that client and server agree on the outcome, and
// closes the connection.
func roundTrip(t *testing.T, s *echoServer, cfg *tls.Config) (tls.ConnectionState, error) {
	t.Helper()
	conn, err := dial(t, s.addr, cfg)
	srvErr := s.serverErr()
	if (err == nil) != (srvErr == nil) {
		t.Fatalf("client error %v, server error %v: want both nil or both set", err, srvErr)
	}
	if err != nil {
		return tls.ConnectionState{}, srvErr
	}
	defer conn.Close()
	return conn.ConnectionState(), nil
}

func TestSetCertificateAppliesToNextHandshake(t *testing.T) {
	t.Parallel()
	a := newCA(t, "gw")
	certA, certB := serverCert(t, a), serverCert(t, a)
	m := NewManager()
	m.SetCertificate(certA)
	s := serve(t, m.ServerConfig(ServerOptions{}))
	client := clientConfig(a.Pool(), nil)

	open, err := dial(t, s.addr, client)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	defer open.Close()
	if err := s.serverErr(); err != nil {
		t.Fatalf("server handshake: %v", err)
	}
	if got := open.ConnectionState().PeerCertificates[0]; !got.Equal(certA.Leaf) {
		t.Fatalf("served serial %v, want A %v", got.SerialNumber, certA.Leaf.SerialNumber)
	}

	m.SetCertificate(certB)
	cs, err := roundTrip(t, s, client)
	if err != nil {
		t.Fatalf("handshake after rotation: %v", err)
	}
	if got := cs.PeerCertificates[0]; !got.Equal(certB.Leaf) {
		t.Errorf("after SetCertificate(B) served serial %v, want B %v", got.SerialNumber, certB.Leaf.SerialNumber)
	}
	if got := len(cs.PeerCertificates); got != 2 {
		t.Errorf("server sent %d certificates, want leaf + intermediate", got)
	}

	// The connection opened before the rotation is untouched.
	if err := echo(open); err != nil {
		t.Errorf("connection opened before rotation broke: %v", err)
	}
	if got := open.ConnectionState().PeerCertificates[0]; !got.Equal(certA.Leaf) {
		t.Errorf("open connection now reports serial %v, want A", got.SerialNumber)
	}
}

func TestNoCertificateConfigured(t *testing.T) {
	t.Parallel()
	m := NewManager()
	s := serve(t, m.ServerConfig(ServerOptions{}))
	_, err := roundTrip(t, s, &tls.Config{InsecureSkipVerify: true})
	if !errors.Is(err, ErrNoCertificate) {
		t.Errorf("server error = %v, want ErrNoCertificate", err)
	}
	if got := ErrNoCertificate.Error(); got != "tlsconf: no certificate configured" {
		t.Errorf("ErrNoCertificate = %q", got)
	}

	// Removing the certificate again behaves the same.
	a := newCA(t, "gw")
	m.SetCertificate(serverCert(t, a))
	if _, err := roundTrip(t, s, clientConfig(a.Pool(), nil)); err != nil {
		t.Fatalf("with certificate: %v", err)
	}
	m.SetCertificate(nil)
	if _, err := roundTrip(t, s, &tls.Config{InsecureSkipVerify: true}); !errors.Is(err, ErrNoCertificate) {
		t.Errorf("after SetCertificate(nil): server error = %v, want ErrNoCertificate", err)
	}
}

func TestClientAuth(t *testing.T) {
	t.Parallel()
	local := newCA(t, "gw")
	other := newCA(t, "elsewhere")
	m := NewManager()
	m.SetCertificate(serverCert(t, local))
	m.SetClientCAs("local", local.Pool())

	good := clientCert(t, local, "sensor-1")
	unknown := clientCert(t, other, "sensor-1")
	wrongEKU := serverCert(t, local) // from the pool's CA but not for client auth

	tests := []struct {
		name   string
		opts   ServerOptions
		cert   *tls.Certificate
		wantOK bool
	}{
		{"required, pool cert", ServerOptions{ClientAuth: Required, ClientCAs: "local"}, good, true},
		{"required, no cert", ServerOptions{ClientAuth: Required, ClientCAs: "local"}, nil, false},
		{"required, unknown CA", ServerOptions{ClientAuth: Required, ClientCAs: "local"}, unknown, false},
		{"required, server cert", ServerOptions{ClientAuth: Required, ClientCAs: "local"}, wrongEKU, false},
		{"required, pool missing", ServerOptions{ClientAuth: Required, ClientCAs: "nope"}, good, false},
		{"optional, pool cert", ServerOptions{ClientAuth: Optional, ClientCAs: "local"}, good, true},
		{"optional, no cert", ServerOptions{ClientAuth: Optional, ClientCAs: "local"}, nil, true},
		{"optional, unknown CA", ServerOptions{ClientAuth: Optional, ClientCAs: "local"}, unknown, false},
		{"optional, pool missing, no cert", ServerOptions{ClientAuth: Optional, ClientCAs: "nope"}, nil, true},
		{"optional, pool missing, cert", ServerOptions{ClientAuth: Optional, ClientCAs: "nope"}, good, false},
		{"none, cert ignored", ServerOptions{}, unknown, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := serve(t, m.ServerConfig(tt.opts))
			for _, v := range []uint16{tls.VersionTLS12, tls.VersionTLS13} {
				cfg := clientConfig(local.Pool(), tt.cert)
				cfg.MaxVersion = v
				cs, err := roundTrip(t, s, cfg)
				if (err == nil) != tt.wantOK {
					t.Errorf("%s: server error = %v, want ok=%v", tls.VersionName(v), err, tt.wantOK)
					continue
				}
				if err != nil {
					continue
				}
				if cs.Version != v {
					t.Errorf("negotiated %s, want %s", tls.VersionName(cs.Version), tls.VersionName(v))
				}
			}
		})
	}
}

func TestSetClientCAsAppliesToNextHandshake(t *testing.T) {
	t.Parallel()
	local, other := newCA(t, "gw"), newCA(t, "elsewhere")
	m := NewManager()
	m.SetCertificate(serverCert(t, local))
	m.SetClientCAs("local", local.Pool())
	s := serve(t, m.ServerConfig(ServerOptions{ClientAuth: Required, ClientCAs: "local"}))
	fromLocal := clientConfig(local.Pool(), clientCert(t, local, "a"))
	fromOther := clientConfig(local.Pool(), clientCert(t, other, "b"))

	open, err := dial(t, s.addr, fromLocal)
	if err != nil {
		t.Fatalf("dial with local cert: %v", err)
	}
	defer open.Close()
	if err := s.serverErr(); err != nil {
		t.Fatalf("server handshake: %v", err)
	}
	if _, err := roundTrip(t, s, fromOther); err == nil {
		t.Fatal("cert from other CA accepted before the swap")
	}

	m.SetClientCAs("local", other.Pool())
	if _, err := roundTrip(t, s, fromOther); err != nil {
		t.Errorf("cert from other CA after the swap: %v", err)
	}
	if _, err := roundTrip(t, s, fromLocal); err == nil {
		t.Error("cert from the replaced CA accepted after the swap")
	}
	// A live session is not dropped by a pool change (only revocation will).
	if err := echo(open); err != nil {
		t.Errorf("connection opened before the swap broke: %v", err)
	}

	m.SetClientCAs("local", nil)
	if _, err := roundTrip(t, s, fromOther); err == nil {
		t.Error("handshake succeeded after the pool was removed")
	}
}

// TestResumptionHonoursPoolChange checks that a session ticket from a
// handshake verified against one pool does not let a client in after the pool
// changed: resumption skips sending the client certificate.
func TestResumptionHonoursPoolChange(t *testing.T) {
	t.Parallel()
	for _, v := range []uint16{tls.VersionTLS12, tls.VersionTLS13} {
		t.Run(tls.VersionName(v), func(t *testing.T) {
			t.Parallel()
			local, other := newCA(t, "gw"), newCA(t, "elsewhere")
			m := NewManager()
			m.SetCertificate(serverCert(t, local))
			m.SetClientCAs("local", local.Pool())
			s := serve(t, m.ServerConfig(ServerOptions{ClientAuth: Required, ClientCAs: "local"}))

			cfg := clientConfig(local.Pool(), clientCert(t, local, "sensor"))
			cfg.MaxVersion = v
			cfg.ClientSessionCache = tls.NewLRUClientSessionCache(4)

			cs, err := roundTrip(t, s, cfg)
			if err != nil {
				t.Fatalf("first handshake: %v", err)
			}
			if cs.DidResume {
				t.Fatal("first handshake resumed")
			}
			cs, err = roundTrip(t, s, cfg)
			if err != nil {
				t.Fatalf("second handshake: %v", err)
			}
			if !cs.DidResume {
				t.Fatal("second handshake did not resume: session tickets must stay enabled")
			}

			m.SetClientCAs("local", other.Pool())
			if cs, err := roundTrip(t, s, cfg); err == nil {
				t.Errorf("handshake after pool change succeeded (resumed=%v)", cs.DidResume)
			}
		})
	}
}

func TestVerifiedChain(t *testing.T) {
	t.Parallel()
	local, other := newCA(t, "gw"), newCA(t, "elsewhere")
	cert := clientCert(t, local, "sensor")
	var chain []*x509.Certificate
	for _, der := range cert.Certificate {
		c, err := x509.ParseCertificate(der)
		if err != nil {
			t.Fatal(err)
		}
		chain = append(chain, c)
	}
	now := time.Now()
	resumed := tls.ConnectionState{DidResume: true, PeerCertificates: chain}

	if got, err := verifiedChain(resumed, local.Pool(), now); err != nil || len(got) != len(chain)+1 || !got[0].Equal(chain[0]) {
		t.Errorf("resumed, same pool: chain %d long, %v; want leaf, intermediate, root", len(got), err)
	}
	if _, err := verifiedChain(resumed, other.Pool(), now); err == nil {
		t.Error("resumed, changed pool: accepted")
	}
	if _, err := verifiedChain(resumed, local.Pool(), now.Add(2*time.Hour)); err == nil {
		t.Error("resumed, client certificate expired: accepted")
	}
	full := tls.ConnectionState{PeerCertificates: chain, VerifiedChains: [][]*x509.Certificate{chain}}
	if got, err := verifiedChain(full, other.Pool(), now); err != nil || len(got) != len(chain) {
		t.Errorf("full handshake's verified chain not passed through: %v", err)
	}
	if got, err := verifiedChain(tls.ConnectionState{DidResume: true}, other.Pool(), now); err != nil || got != nil {
		t.Errorf("resumed without client certificate: %v %v", got, err)
	}
}

func TestOldTLSRefused(t *testing.T) {
	t.Parallel()
	a := newCA(t, "gw")
	m := NewManager()
	m.SetCertificate(serverCert(t, a))
	cfg := m.ServerConfig(ServerOptions{})
	if cfg.MinVersion != tls.VersionTLS12 {
		t.Errorf("MinVersion = %s, want TLS 1.2", tls.VersionName(cfg.MinVersion))
	}
	if cfg.SessionTicketsDisabled {
		t.Error("session tickets disabled")
	}
	s := serve(t, cfg)
	for _, v := range []uint16{tls.VersionTLS10, tls.VersionTLS11} {
		client := clientConfig(a.Pool(), nil)
		client.MinVersion, client.MaxVersion = v, v
		if _, err := roundTrip(t, s, client); err == nil {
			t.Errorf("%s client accepted", tls.VersionName(v))
		} else if !strings.Contains(err.Error(), "version") {
			t.Errorf("%s client refused for %q, want a version error", tls.VersionName(v), err)
		}
	}
}

func TestNextProtos(t *testing.T) {
	t.Parallel()
	a := newCA(t, "gw")
	m := NewManager()
	m.SetCertificate(serverCert(t, a))
	s := serve(t, m.ServerConfig(ServerOptions{NextProtos: []string{"mqtt"}}))
	client := clientConfig(a.Pool(), nil)
	client.NextProtos = []string{"mqtt"}
	cs, err := roundTrip(t, s, client)
	if err != nil {
		t.Fatal(err)
	}
	if cs.NegotiatedProtocol != "mqtt" {
		t.Errorf("ALPN = %q, want mqtt", cs.NegotiatedProtocol)
	}
}

func TestParseClientAuth(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in      string
		want    ClientAuth
		wantErr bool
	}{
		{"none", None, false},
		{"optional", Optional, false},
		{"required", Required, false},
		{"", None, true},
		{"Required", None, true},
		{"require", None, true},
		{" none", None, true},
	}
	for _, tt := range tests {
		got, err := ParseClientAuth(tt.in)
		if (err != nil) != tt.wantErr || got != tt.want {
			t.Errorf("ParseClientAuth(%q) = %v, %v; want %v, err=%v", tt.in, got, err, tt.want, tt.wantErr)
		}
		if err == nil && got.String() != tt.in {
			t.Errorf("%v.String() = %q, want %q", got, got.String(), tt.in)
		}
	}
	if got := ClientAuth(9).String(); got != "ClientAuth(9)" {
		t.Errorf("ClientAuth(9).String() = %q", got)
	}
}

func FuzzParseClientAuth(f *testing.F) {
	for _, s := range []string{"none", "optional", "required", "", "Required"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		a, err := ParseClientAuth(s)
		if err != nil {
			return
		}
		if back, err := ParseClientAuth(a.String()); err != nil || back != a || a.String() != s {
			t.Errorf("ParseClientAuth(%q) = %v does not round-trip", s, a)
		}
	})
}

func pemCert(c *x509.Certificate) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})
}

func loadPoolCases(t testing.TB) []struct {
	name     string
	in       []byte
	wantErr  string
	wantSubj int
} {
	db, err := bbolt.Open(filepath.Join(t.TempDir(), "edgegate.db"), 0o600, &bbolt.Options{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	a, err := ca.Open(db, ca.Options{DeviceName: "gw"})
	if err != nil {
		t.Fatal(err)
	}
	root, inter := pemCert(a.Root()), pemCert(a.Intermediate())
	key := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: []byte{1, 2, 3}})
	bad := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: []byte{0x30, 0x00}})
	cat := func(parts ...[]byte) []byte { return bytes.Join(parts, []byte("\n")) }
	return []struct {
		name     string
		in       []byte
		wantErr  string
		wantSubj int
	}{
		{"one certificate", a.TrustBundlePEM(), "", 1},
		{"two certificates with text around", cat([]byte("# bundle"), root, []byte("comment"), inter), "", 2},
		{"key ignored", cat(key, root), "", 1},
		{"empty", nil, "no certificate found", 0},
		{"not PEM", []byte("hello"), "no certificate found", 0},
		{"only a key", key, "no certificate found", 0},
		{"malformed certificate", cat(root, bad), "PEM block 2", 0},
	}
}

func TestLoadPoolPEM(t *testing.T) {
	t.Parallel()
	for _, tt := range loadPoolCases(t) {
		pool, err := LoadPoolPEM(tt.in)
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !strings.HasPrefix(err.Error(), "tlsconf: ") {
				t.Errorf("%s: err = %v, want one containing %q", tt.name, err, tt.wantErr)
			}
			if tt.wantErr == "no certificate found" && !errors.Is(err, ErrNoCertificates) {
				t.Errorf("%s: err = %v, want ErrNoCertificates", tt.name, err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", tt.name, err)
			continue
		}
		if got := len(pool.Subjects()); got != tt.wantSubj { //nolint:staticcheck // SA1019 concerns system pools; this one is ours

			t.Errorf("%s: pool holds %d certificates, want %d", tt.name, got, tt.wantSubj)
		}
	}
}

func FuzzLoadPoolPEM(f *testing.F) {
	for _, tt := range loadPoolCases(f) {
		f.Add(tt.in)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		pool, err := LoadPoolPEM(data)
		if (pool == nil) == (err == nil) {
			t.Fatalf("LoadPoolPEM: pool %v with err %v", pool, err)
		}
	})
}

// TestClientCheckOnEveryHandshake checks that a certificate the client check
// refuses (revoked) is refused on a full handshake and on resumption, and
// that CheckClient judges live connections the same way.
func TestClientCheckOnEveryHandshake(t *testing.T) {
	t.Parallel()
	for _, v := range []uint16{tls.VersionTLS12, tls.VersionTLS13} {
		t.Run(tls.VersionName(v), func(t *testing.T) {
			t.Parallel()
			local := newCA(t, "gw")
			m := NewManager()
			m.SetCertificate(serverCert(t, local))
			m.SetClientCAs("local", local.Pool())
			var revoked sync.Map // CN → true
			m.SetClientCheck(func(chain []*x509.Certificate) error {
				if len(chain) < 2 {
					return errors.New("chain without its issuer")
				}
				if _, ok := revoked.Load(chain[0].Subject.CommonName); ok {
					return errors.New("revoked")
				}
				return nil
			})
			s := serve(t, m.ServerConfig(ServerOptions{ClientAuth: Required, ClientCAs: "local"}))
			sensor := clientCert(t, local, "sensor")
			cfg := clientConfig(local.Pool(), sensor)
			cfg.MaxVersion = v
			cfg.ClientSessionCache = tls.NewLRUClientSessionCache(4)

			if _, err := roundTrip(t, s, cfg); err != nil {
				t.Fatalf("first handshake: %v", err)
			}
			var live []*x509.Certificate // what a live connection's state holds
			for _, der := range sensor.Certificate {
				c, err := x509.ParseCertificate(der)
				if err != nil {
					t.Fatal(err)
				}
				live = append(live, c)
			}
			if _, err := roundTrip(t, s, cfg); err != nil {
				t.Fatalf("resumed handshake: %v", err)
			}
			revoked.Store("sensor", true)
			if err := m.CheckClient(live); err == nil {
				t.Error("CheckClient accepts a revoked certificate")
			}
			if cs, err := roundTrip(t, s, cfg); err == nil {
				t.Errorf("revoked certificate accepted (resumed=%v)", cs.DidResume)
			}
			cfg.ClientSessionCache = nil
			if _, err := roundTrip(t, s, cfg); err == nil {
				t.Error("revoked certificate accepted on a full handshake")
			}
			m.SetClientCheck(nil)
			if _, err := roundTrip(t, s, cfg); err != nil {
				t.Errorf("check removed, handshake still refused: %v", err)
			}
		})
	}
}

// TestChallengeResponder checks that a tls-alpn-01 validation handshake gets
// the challenge certificate, and that other clients, with or without ALPN,
// get the server certificate as before.
func TestChallengeResponder(t *testing.T) {
	t.Parallel()
	local := newCA(t, "gw")
	m := NewManager()
	m.SetCertificate(serverCert(t, local))
	challenge := serverCert(t, newCA(t, "acme-challenge"))
	m.SetChallengeResponder(func(hello *tls.ClientHelloInfo) (*tls.Certificate, bool) {
		return challenge, hello.ServerName == "gw.example.com"
	})
	s := serve(t, m.ServerConfig(ServerOptions{}))
	leafOf := func(protos []string, name string) (*x509.Certificate, string) {
		t.Helper()
		conn, err := tls.Dial("tcp", s.addr, &tls.Config{InsecureSkipVerify: true, NextProtos: protos, ServerName: name}) //nolint:gosec // the test compares certificates itself
		if err != nil {
			t.Fatalf("dial %v: %v", protos, err)
		}
		defer conn.Close()
		cs := conn.ConnectionState()
		return cs.PeerCertificates[0], cs.NegotiatedProtocol
	}
	challengeLeaf, _ := x509.ParseCertificate(challenge.Certificate[0])
	if leaf, proto := leafOf([]string{ACMEProto}, "gw.example.com"); !leaf.Equal(challengeLeaf) || proto != ACMEProto {
		t.Errorf("validation handshake got %s over %q; want the challenge certificate over %s", leaf.Subject, proto, ACMEProto)
	}
	for _, tc := range []struct {
		protos []string
		name   string
	}{{nil, "gw.example.com"}, {[]string{"mqtt"}, "gw.example.com"}, {[]string{ACMEProto}, "other.example.com"}} {
		if leaf, _ := leafOf(tc.protos, tc.name); leaf.Equal(challengeLeaf) {
			t.Errorf("ALPN %v for %s got the challenge certificate", tc.protos, tc.name)
		}
	}
}
