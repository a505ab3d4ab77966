package e2e

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"math/big"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/edgegate/edgegate/certs/ca"
	"github.com/edgegate/edgegate/certs/keyseal"
)

// clientCert is a client certificate issued for a test, as files for
// mosquitto and as a tls.Certificate for Go.
type clientCert struct {
	certFile, keyFile string
	tls               tls.Certificate
}

// pki is the daemon's local CA as a test client sees it.
type pki struct {
	rootFile string // PEM of the root, for --cafile
	pool     *x509.CertPool
	root     *x509.Certificate
	certs    map[string]clientCert // by name given to issue
}

// clientCertRequest names a certificate to issue.
type clientCertRequest struct {
	name string // key in pki.certs
	cn   string
	uris []string
}

// openLocalCA reads the local CA from a stopped daemon's store and issues
// the requested client certificates from it. bbolt allows one process per
// file, so the daemon must not be running.
func openLocalCA(t testing.TB, d *daemon, reqs ...clientCertRequest) *pki {
	t.Helper()
	if d.running() {
		t.Fatal("openLocalCA needs the daemon stopped (bbolt allows one process)")
	}
	db, err := bolt.Open(filepath.Join(d.dataDir, "edgegate.db"), 0o600, &bolt.Options{Timeout: 5 * time.Second})
	if err != nil {
		t.Fatalf("open the daemon's store: %v", err)
	}
	defer db.Close()

	// The root as stored (bucket ca, entry root, field cert; DER), which is
	// what clients are told to trust.
	var rootDER []byte
	if err := db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket([]byte("ca"))
		if b == nil {
			return os.ErrNotExist
		}
		r := b.Bucket([]byte("root"))
		if r == nil {
			return os.ErrNotExist
		}
		rootDER = append([]byte(nil), r.Get([]byte("cert"))...)
		return nil
	}); err != nil || len(rootDER) == 0 {
		t.Fatalf("read the local CA root from the store: %v", err)
	}
	root, err := x509.ParseCertificate(rootDER)
	if err != nil {
		t.Fatalf("parse the local CA root: %v", err)
	}
	if got, want := fingerprint(rootDER), d.fingerprint; got != want {
		t.Fatalf("banner says local ca SHA256 %s, the stored root is %s", want, got)
	}

	dir := t.TempDir()
	p := &pki{rootFile: filepath.Join(dir, "root.pem"), pool: x509.NewCertPool(), root: root, certs: map[string]clientCert{}}
	p.pool.AddCert(root)
	writeFile(t, p.rootFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: rootDER}))

	if len(reqs) == 0 {
		return p
	}
	// The daemon is stopped: open its store with its device key.
	sealer, err := keyseal.LoadOrCreate(filepath.Join(d.dataDir, "device.key"), false)
	if err != nil {
		t.Fatalf("device key: %v", err)
	}
	authority, err := ca.Open(db, ca.Options{Sealer: sealer})
	if err != nil {
		t.Fatalf("open the local CA: %v", err)
	}
	for _, r := range reqs {
		var uris []*url.URL
		for _, s := range r.uris {
			u, err := url.Parse(s)
			if err != nil {
				t.Fatal(err)
			}
			uris = append(uris, u)
		}
		certPEM, keyPEM, err := authority.IssueClient(ca.ClientRequest{CommonName: r.cn, URIs: uris})
		if err != nil {
			t.Fatalf("issue client certificate %q: %v", r.name, err)
		}
		p.certs[r.name] = newClientCert(t, dir, r.name, certPEM, keyPEM)
	}
	return p
}

func newClientCert(t testing.TB, dir, name string, certPEM, keyPEM []byte) clientCert {
	t.Helper()
	c := clientCert{certFile: filepath.Join(dir, name+".crt"), keyFile: filepath.Join(dir, name+".key")}
	writeFile(t, c.certFile, certPEM)
	writeFile(t, c.keyFile, keyPEM)
	var err error
	if c.tls, err = tls.X509KeyPair(certPEM, keyPEM); err != nil {
		t.Fatalf("client certificate %q: %v", name, err)
	}
	return c
}

// foreignClientCert is a client certificate from a CA the gateway does not
// know.
func foreignClientCert(t testing.TB, cn string) clientCert {
	t.Helper()
	return newTestCA(t, "foreign test CA").issueClient(t, cn)
}

// testCA is a CA of the test's own, outside the gateway: a client
// certificate it issues is trusted only once its certificate is.
type testCA struct {
	cert    *x509.Certificate
	certPEM []byte
	key     *ecdsa.PrivateKey
}

func newTestCA(t testing.TB, cn string) *testCA {
	t.Helper()
	return newTestCAUnder(t, cn, nil)
}

// newTestCAUnder makes a CA signed by parent: an intermediate; a root
// when parent is nil.
func newTestCAUnder(t testing.TB, cn string, parent *testCA) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(now.UnixNano()), Subject: pkix.Name{CommonName: cn},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	issuer, issuerKey := tmpl, key
	if parent != nil {
		issuer, issuerKey = parent.cert, parent.key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, issuer, key.Public(), issuerKey)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return &testCA{cert: cert, certPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), key: key}
}

// crlPEM is a CRL of ca revoking the given certificates, valid for a day.
func (ca *testCA) crlPEM(t testing.TB, revoked ...clientCert) []byte {
	t.Helper()
	now := time.Now()
	tmpl := &x509.RevocationList{Number: big.NewInt(now.UnixNano()), ThisUpdate: now.Add(-time.Minute), NextUpdate: now.Add(24 * time.Hour)}
	for _, c := range revoked {
		leaf, err := x509.ParseCertificate(c.tls.Certificate[0])
		if err != nil {
			t.Fatal(err)
		}
		tmpl.RevokedCertificateEntries = append(tmpl.RevokedCertificateEntries,
			x509.RevocationListEntry{SerialNumber: leaf.SerialNumber, RevocationTime: now.Add(-time.Minute)})
	}
	der, err := x509.CreateRevocationList(rand.Reader, tmpl, ca.cert, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "X509 CRL", Bytes: der})
}

// issueClient issues a client certificate for cn.
func (ca *testCA) issueClient(t testing.TB, cn string) clientCert {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(now.UnixNano()), Subject: pkix.Name{CommonName: cn},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour),
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}, KeyUsage: x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, key.Public(), ca.key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return newClientCert(t, t.TempDir(), cn,
		pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}))
}

// tlsConfig trusts only the local CA root and presents cert when given.
func (p *pki) tlsConfig(cert *clientCert) *tls.Config {
	cfg := &tls.Config{RootCAs: p.pool, MinVersion: tls.VersionTLS12}
	if cert != nil {
		cfg.Certificates = []tls.Certificate{cert.tls}
	}
	return cfg
}

func writeFile(t testing.TB, path string, b []byte) {
	t.Helper()
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// fingerprint formats a SHA-256 fingerprint as the banner does
// (upper-case hex pairs joined by colons).
func fingerprint(der []byte) string {
	sum := sha256.Sum256(der)
	h := strings.ToUpper(hex.EncodeToString(sum[:]))
	var parts []string
	for i := 0; i < len(h); i += 2 {
		parts = append(parts, h[i:i+2])
	}
	return strings.Join(parts, ":")
}

// x509PoolOf is a pool holding one DER certificate.
func x509PoolOf(t testing.TB, der []byte) *x509.CertPool {
	t.Helper()
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	p := x509.NewCertPool()
	p.AddCert(c)
	return p
}
