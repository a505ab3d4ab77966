package trust

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"go.etcd.io/bbolt"
)

// testNow is the fixed time every test runs at.
var testNow = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// testCert is a certificate with its key, able to sign more.
type testCert struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
}

type certOpt func(*x509.Certificate)

// leaf makes an end-entity client certificate.
func leaf() certOpt {
	return func(c *x509.Certificate) {
		c.IsCA = false
		c.KeyUsage = x509.KeyUsageDigitalSignature
		c.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
	}
}

func validity(from, to time.Time) certOpt {
	return func(c *x509.Certificate) { c.NotBefore, c.NotAfter = from, to }
}

func pathLen(n int) certOpt {
	return func(c *x509.Certificate) { c.MaxPathLen, c.MaxPathLenZero = n, n == 0 }
}

func permittedDNS(domains ...string) certOpt {
	return func(c *x509.Certificate) { c.PermittedDNSDomains = domains }
}

func dnsNames(names ...string) certOpt {
	return func(c *x509.Certificate) { c.DNSNames = names }
}

func serial(n int64) certOpt {
	return func(c *x509.Certificate) { c.SerialNumber = big.NewInt(n) }
}

// newCert makes a certificate named cn, signed by parent (self-signed when
// parent is nil): by default a CA valid from an hour before testNow for a
// year.
func newCert(t testing.TB, parent *testCert, cn string, opts ...certOpt) *testCert {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	sn, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          sn,
		Subject:               pkix.Name{CommonName: cn, Organization: []string{"edgegate test"}},
		NotBefore:             testNow.Add(-time.Hour),
		NotAfter:              testNow.AddDate(1, 0, 0),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
	}
	for _, o := range opts {
		o(tmpl)
	}
	signer, signerKey := tmpl, key
	if parent != nil {
		signer, signerKey = parent.cert, parent.key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, signer, &key.PublicKey, signerKey)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return &testCert{cert: c, key: key}
}

// crl makes a DER CRL signed by tc revoking serials (at an hour before
// testNow) and due for update at next.
func (tc *testCert) crl(t testing.TB, next time.Time, serials ...*big.Int) []byte {
	t.Helper()
	var revoked []x509.RevocationListEntry
	for _, s := range serials {
		revoked = append(revoked, x509.RevocationListEntry{SerialNumber: s, RevocationTime: testNow.Add(-time.Hour)})
	}
	der, err := x509.CreateRevocationList(rand.Reader, &x509.RevocationList{
		Number:                    big.NewInt(1),
		ThisUpdate:                testNow.Add(-2 * time.Hour),
		NextUpdate:                next,
		RevokedCertificateEntries: revoked,
	}, tc.cert, tc.key)
	if err != nil {
		t.Fatal(err)
	}
	return der
}

func (tc *testCert) pem() []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: tc.cert.Raw})
}

func (tc *testCert) id() string { return fingerprint(tc.cert.Raw)[:16] }

func crlPEM(der []byte) []byte { return pem.EncodeToMemory(&pem.Block{Type: "X509 CRL", Bytes: der}) }

func concat(parts ...[]byte) []byte { return bytes.Join(parts, nil) }

// entryOf is an entry as a caller of Validate hands it: facts not filled.
func entryOf(list ListName, name string, tc *testCert, crl []byte) Entry {
	e := Entry{List: list, Name: name, Source: Source{Kind: SourceUpload, Name: name}, CRL: crl}
	if tc != nil {
		e.DER = tc.cert.Raw
	}
	return e
}

// clock is a settable Now.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// applyRecorder keeps what OnApply received.
type applyRecorder struct {
	mu    sync.Mutex
	snaps []Snapshot
}

func (r *applyRecorder) OnApply(s Snapshot) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.snaps = append(r.snaps, s)
}

func (r *applyRecorder) last(t testing.TB) Snapshot {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.snaps) == 0 {
		t.Fatal("OnApply never called")
	}
	return r.snaps[len(r.snaps)-1]
}

func (r *applyRecorder) calls() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.snaps)
}

func openDB(t testing.TB, path string) *bbolt.DB {
	t.Helper()
	db, err := bbolt.Open(path, 0o600, &bbolt.Options{Timeout: time.Second, NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	return db
}

// testStore is a store on its own database, with a settable clock and an
// OnApply recorder; adjust tweaks the options before Open.
type testStore struct {
	*Store
	db    *bbolt.DB
	path  string
	clock *clock
	rec   *applyRecorder
}

func newTestStore(t testing.TB, adjust func(*Options)) *testStore {
	t.Helper()
	ts := &testStore{path: filepath.Join(t.TempDir(), "edgegate.db"), clock: &clock{now: testNow}, rec: &applyRecorder{}}
	ts.db = openDB(t, ts.path)
	t.Cleanup(func() { _ = ts.db.Close() })
	o := Options{DB: ts.db, Now: ts.clock.Now, OnApply: ts.rec.OnApply}
	if adjust != nil {
		adjust(&o)
	}
	s, err := Open(o)
	if err != nil {
		t.Fatal(err)
	}
	ts.Store = s
	return ts
}

// mustApplyStaged applies the staged version, confirming.
func (ts *testStore) mustApplyStaged(t testing.TB) Version {
	t.Helper()
	staged, ok, err := ts.Staged()
	if err != nil || !ok {
		t.Fatalf("Staged() = %v, %v", ok, err)
	}
	v, err := ts.Apply(context.Background(), staged.Number, ApplyOptions{By: "test", Confirm: true})
	if err != nil {
		t.Fatalf("Apply(%d): %v", staged.Number, err)
	}
	return v
}

func names(entries []Entry) []string {
	out := []string{}
	for _, e := range entries {
		out = append(out, string(e.List)+"/"+e.Name)
	}
	return out
}

func subjects(certs []*x509.Certificate) []string {
	out := []string{}
	for _, c := range certs {
		out = append(out, c.Subject.CommonName)
	}
	return out
}

// fakePublisher records publications; fail makes them fail, off makes it
// answer ErrNotPublished.
type fakePublisher struct {
	mu        sync.Mutex
	fail, off bool
	published map[string]int
}

func (p *fakePublisher) Publish(_ context.Context, list ListName, name string, pemData []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.off {
		return 0, ErrNotPublished
	}
	if p.fail {
		return 0, errors.New("vault unreachable")
	}
	if _, _, err := ParseBundle(pemData); err != nil {
		return 0, err
	}
	if p.published == nil {
		p.published = make(map[string]int)
	}
	p.published[string(list)+"/"+name]++
	return p.published[string(list)+"/"+name], nil
}
