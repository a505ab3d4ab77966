package auth

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"net"
	"net/url"
	"testing"
	"time"
)

// testCA is a throwaway CA for client and server certificates.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pool *x509.CertPool
}

func newTestCA(t testing.TB) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "test root", Organization: []string{"edgegate test"}},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return &testCA{cert: cert, key: key, pool: pool}
}

// issue returns a leaf signed by the CA; tweak fills in names and usage.
func (ca *testCA) issue(t testing.TB, tweak func(*x509.Certificate)) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serial, _ := rand.Int(rand.Reader, big.NewInt(1<<62))
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth, x509.ExtKeyUsageServerAuth},
	}
	tweak(tmpl)
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}
}

func sensorCert(t testing.TB, ca *testCA) tls.Certificate {
	return ca.issue(t, func(c *x509.Certificate) {
		c.Subject = pkix.Name{CommonName: "sensor-1", Organization: []string{"Acme, Inc."}, OrganizationalUnit: []string{"plant 7"}}
		c.DNSNames = []string{"sensor-1.plant7.example", "alt.example"}
		c.URIs = []*url.URL{{Scheme: "spiffe", Host: "plant7.example", Path: "/sensor/1"}}
	})
}

// serverTLS is a server config for 127.0.0.1 with the given client-cert
// mode, trusting ca for client certificates.
func serverTLS(t testing.TB, ca *testCA, mode tls.ClientAuthType) *tls.Config {
	srv := ca.issue(t, func(c *x509.Certificate) {
		c.Subject = pkix.Name{CommonName: "gateway"}
		c.IPAddresses = []net.IP{net.IPv4(127, 0, 0, 1)}
	})
	return &tls.Config{
		Certificates: []tls.Certificate{srv},
		ClientAuth:   mode,
		ClientCAs:    ca.pool,
		MinVersion:   tls.VersionTLS12,
		// A TLS 1.3 server writes tickets after the handshake; over an
		// unbuffered pipe that would wait for a client that is not reading.
		SessionTicketsDisabled: true,
	}
}

// handshake connects a TLS client presenting client (if any) to a server
// with srvConf over a pipe, and returns the server side after the
// handshake.
func handshake(t testing.TB, ca *testCA, srvConf *tls.Config, client *tls.Certificate) *tls.Conn {
	t.Helper()
	a, b := net.Pipe()
	t.Cleanup(func() { _ = a.Close(); _ = b.Close() })
	srv := tls.Server(a, srvConf)
	cliConf := &tls.Config{RootCAs: ca.pool, ServerName: "127.0.0.1", MinVersion: tls.VersionTLS12}
	if client != nil {
		cliConf.Certificates = []tls.Certificate{*client}
	}
	cli := tls.Client(b, cliConf)
	done := make(chan error, 1)
	go func() { done <- cli.Handshake() }()
	if err := srv.Handshake(); err != nil {
		t.Fatalf("server handshake: %v", err)
	}
	if err := <-done; err != nil {
		t.Fatalf("client handshake: %v", err)
	}
	return srv
}
