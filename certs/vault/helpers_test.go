package vault_test

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"log/slog"
	"math/big"
	"sync"
	"testing"
	"time"

	"github.com/edgegate/edgegate/certs/vault"
	"github.com/edgegate/edgegate/certs/vault/vaulttest"
)

// logBuffer collects a client's logs, to check what they say and that they
// hold no secret.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func (b *logBuffer) logger() *slog.Logger {
	return slog.New(slog.NewTextHandler(b, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// newClient returns a client of srv logging in with auth, after edit.
func newClient(t *testing.T, srv *vaulttest.Server, auth vault.Auth, edit ...func(*vault.Config)) (*vault.Client, *logBuffer) {
	t.Helper()
	logs := &logBuffer{}
	pool := srv.CAPool()
	cfg := vault.Config{
		Address: srv.URL(),
		Mount:   srv.Mount(),
		Auth:    auth,
		RootCAs: func() *x509.CertPool { return pool },
		Timeout: 5 * time.Second,
		Logger:  logs.logger(),
	}
	for _, e := range edit {
		e(&cfg)
	}
	c, err := vault.New(cfg)
	if err != nil {
		t.Fatalf("vault.New: %v", err)
	}
	t.Cleanup(c.Close)
	return c, logs
}

func tokenAuth(srv *vaulttest.Server) vault.Auth {
	return vault.Auth{Method: vault.AuthToken, Token: srv.RootToken()}
}

func appRoleAuth(srv *vaulttest.Server) vault.Auth {
	roleID, secretID := srv.AppRole()
	return vault.Auth{Method: vault.AuthAppRole, RoleID: roleID, SecretID: secretID}
}

// pki is a throwaway CA issuing device (client) certificates.
type pki struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pool *x509.CertPool
}

func newPKI(t *testing.T, name string) *pki {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: name},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign,
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
	return &pki{cert: cert, key: key, pool: pool}
}

func (p *pki) device(t *testing.T, id string) *tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2),
		Subject:      pkix.Name{CommonName: id},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, p.cert, &key.PublicKey, p.key)
	if err != nil {
		t.Fatal(err)
	}
	return &tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// fakeClock is a settable clock shared by a client and the fake vault.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

const pemA = "-----BEGIN CERTIFICATE-----\nA\n-----END CERTIFICATE-----\n"
const pemB = "-----BEGIN CERTIFICATE-----\nB\n-----END CERTIFICATE-----\n"

// atomicPool is a root pool the test swaps while a client uses it.
type atomicPool struct {
	mu   sync.Mutex
	pool *x509.CertPool
}

func (p *atomicPool) get() *x509.CertPool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.pool
}

func (p *atomicPool) set(pool *x509.CertPool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.pool = pool
}
