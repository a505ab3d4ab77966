package ca

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"path/filepath"
	"testing"
	"time"

	"go.etcd.io/bbolt"

	"github.com/edgegate/edgegate/certs/keyseal"
)

// testSealer returns a sealer with a random device key.
func testSealer(t *testing.T) *keyseal.Sealer {
	t.Helper()
	key := make([]byte, keyseal.KeySize)
	if _, err := rand.Read(key); err != nil {
		t.Fatal(err)
	}
	s, err := keyseal.New(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// env is an authority on its own database with a settable clock and a
// device key, as the gateway runs it.
type env struct {
	a      *Authority
	db     *bbolt.DB
	path   string
	clk    *clock
	sealer *keyseal.Sealer
	opts   Options
}

// newEnv opens a sealed CA on a fresh database; mod adjusts the options.
func newEnv(t *testing.T, mod func(*Options)) *env {
	t.Helper()
	e := &env{clk: newClock(), sealer: testSealer(t), path: filepath.Join(t.TempDir(), "edgegate.db")}
	e.opts = Options{DeviceName: "gw-test", Sealer: e.sealer}
	if mod != nil {
		mod(&e.opts)
	}
	e.opts.Now = e.clk.Now
	e.db = openDB(t, e.path)
	a, err := Open(e.db, e.opts)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	e.a = a
	return e
}

// reopen closes and reopens the database and the authority, as after a
// reboot.
func (e *env) reopen(t *testing.T) {
	t.Helper()
	closeDB(t, e.db)
	e.db = openDB(t, e.path)
	a, err := Open(e.db, e.opts)
	if err != nil {
		t.Fatalf("reopen: %v", err)
	}
	e.a = a
}

// advance moves the clock by d.
func (e *env) advance(d time.Duration) { e.clk.Set(e.clk.Now().Add(d)) }

func (e *env) maintain(t *testing.T) MaintenanceResult {
	t.Helper()
	res, err := e.a.Maintain()
	if err != nil {
		t.Fatalf("Maintain: %v", err)
	}
	return res
}

func mustIssue(t *testing.T, a *Authority, req IssueRequest) *Issued {
	t.Helper()
	out, err := a.Issue(req)
	if err != nil {
		t.Fatalf("Issue(%+v): %v", req, err)
	}
	return out
}

// verifyIssued verifies out against pool at now for usage and returns the
// verified chain's length.
func verifyIssued(out *Issued, pool *x509.CertPool, now time.Time, usage x509.ExtKeyUsage) error {
	inters := x509.NewCertPool()
	for _, c := range out.Chain {
		inters.AddCert(c)
	}
	_, err := out.Cert.Verify(x509.VerifyOptions{
		Roots: pool, Intermediates: inters, CurrentTime: now, KeyUsages: []x509.ExtKeyUsage{usage},
	})
	return err
}

// rawKey returns the stored key value of entry name.
func rawKey(t *testing.T, db *bbolt.DB, name []byte) []byte {
	t.Helper()
	var v []byte
	err := db.View(func(tx *bbolt.Tx) error {
		if eb := tx.Bucket(bucketCA).Bucket(name); eb != nil {
			v = bytes.Clone(eb.Get(fieldKey))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// testCA is a CA outside the authority, like an enterprise PKI's.
type testCA struct {
	cert *x509.Certificate
	key  crypto.Signer
}

type caOpts struct {
	notBefore, notAfter time.Time
	keyUsage            x509.KeyUsage
	notCA               bool
	maxPathLen          int // -1 none
}

// makeCA creates a CA certificate signed by parent (nil: self-signed).
func makeCA(t *testing.T, cn string, parent *testCA, now time.Time, o *caOpts) *testCA {
	t.Helper()
	if o == nil {
		o = &caOpts{}
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serial, _ := randomSerial()
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: cn, Organization: []string{"Enterprise"}},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(5 * 365 * 24 * time.Hour),
		IsCA:                  !o.notCA,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		MaxPathLen:            o.maxPathLen,
		MaxPathLenZero:        o.maxPathLen == 0,
	}
	if o.maxPathLen < 0 {
		tmpl.MaxPathLen, tmpl.MaxPathLenZero = -1, false
	}
	if !o.notBefore.IsZero() {
		tmpl.NotBefore = o.notBefore
	}
	if !o.notAfter.IsZero() {
		tmpl.NotAfter = o.notAfter
	}
	if o.keyUsage != 0 {
		tmpl.KeyUsage = o.keyUsage
	}
	if o.notCA {
		tmpl.KeyUsage = x509.KeyUsageDigitalSignature
		tmpl.MaxPathLen, tmpl.MaxPathLenZero = 0, false
	}
	tmpl.SubjectKeyId, _ = subjectKeyID(key.Public())
	parentCert, parentKey := tmpl, crypto.Signer(key)
	if parent != nil {
		parentCert, parentKey = parent.cert, parent.key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parentCert, key.Public(), parentKey)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return &testCA{cert: cert, key: key}
}

func pemOf(certs ...*x509.Certificate) []byte {
	var out []byte
	for _, c := range certs {
		out = append(out, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})...)
	}
	return out
}

// parseCRL parses a DER CRL and checks it is signed by issuer.
func parseCRL(t *testing.T, der []byte, issuer *x509.Certificate) *x509.RevocationList {
	t.Helper()
	rl, err := x509.ParseRevocationList(der)
	if err != nil {
		t.Fatalf("parse CRL: %v", err)
	}
	if err := rl.CheckSignatureFrom(issuer); err != nil {
		t.Fatalf("CRL not signed by %s: %v", issuer.Subject, err)
	}
	return rl
}
