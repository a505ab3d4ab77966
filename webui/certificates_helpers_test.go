package webui

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/PuerkitoBio/goquery"

	"github.com/edgegate/edgegate/certs"
	"github.com/edgegate/edgegate/certs/ca"
)

// certsNow is the fixed time of the certificate page tests.
var certsNow = time.Date(2030, 6, 1, 12, 0, 0, 0, time.UTC)

type certsFakeAdmin struct{ Admin }

func (certsFakeAdmin) SetupDone() (bool, error) { return true, nil }

// certsTestCA signs the test certificates.
type certsTestCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
}

func newCertsTestCA(t *testing.T) *certsTestCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "Test Root"},
		NotBefore: certsNow.AddDate(-1, 0, 0), NotAfter: certsNow.AddDate(10, 0, 0),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return &certsTestCA{cert: cert, key: key}
}

// issue signs a leaf valid from notBefore to notAfter; the chain is leaf
// then root.
func (a *certsTestCA) issue(t *testing.T, cn string, hosts []string, notBefore, notAfter time.Time, eku ...x509.ExtKeyUsage) ([]*x509.Certificate, crypto.Signer) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serial, err := rand.Int(rand.Reader, big.NewInt(1<<62))
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial, Subject: pkix.Name{CommonName: cn}, DNSNames: hosts,
		NotBefore: notBefore, NotAfter: notAfter, KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: eku,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, a.cert, &key.PublicKey, a.key)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return []*x509.Certificate{leaf, a.cert}, key
}

// certsEntity is the entity the manager would show for chain.
func certsEntity(id, name string, chain []*x509.Certificate, hasKey bool) certs.Certificate {
	leaf := chain[0]
	sum := sha256.Sum256(leaf.Raw)
	c := certs.Certificate{
		ID: id, Name: name, Chain: certs.EncodeChainPEM(chain), Source: certs.SourceLocal,
		Subject: leaf.Subject.String(), Issuer: leaf.Issuer.String(), Serial: leaf.SerialNumber.Text(16),
		From: leaf.NotBefore.UnixMilli(), To: leaf.NotAfter.UnixMilli(), SANs: append([]string{}, leaf.DNSNames...),
		KeyType: "ecdsa-p256", SHA256: hex.EncodeToString(sum[:]), HasKey: hasKey, Domain: leaf.Subject.CommonName,
		Usage: []certs.Role{},
	}
	c.Valid = !certsNow.Before(leaf.NotBefore) && certsNow.Before(leaf.NotAfter)
	if !c.Valid {
		c.InvalidReason = "expired"
	}
	return c
}

// certsFakeStore is an in-memory certificate manager that records what the
// UI asked of it.
type certsFakeStore struct {
	t    *testing.T
	ca   *certsTestCA
	m    map[string]certs.Certificate
	keys map[string]crypto.Signer
	next int

	created   []certs.IssueParams
	createErr error
	added     []certs.Meta
	acmeErr   error
	renewErr  error
	revoked   map[string]string // id → reason
	revokeErr error
	deleteErr error
}

func newCertsFakeStore(t *testing.T) *certsFakeStore {
	return &certsFakeStore{t: t, ca: newCertsTestCA(t), m: map[string]certs.Certificate{},
		keys: map[string]crypto.Signer{}, revoked: map[string]string{}}
}

// put stores a certificate of the test CA and returns it.
func (s *certsFakeStore) put(id, name string, notBefore, notAfter time.Time, withKey bool, eku ...x509.ExtKeyUsage) certs.Certificate {
	chain, key := s.ca.issue(s.t, name, []string{name + ".example.net"}, notBefore, notAfter, eku...)
	c := certsEntity(id, name, chain, withKey)
	s.m[id] = c
	if withKey {
		s.keys[id] = key
	}
	return c
}

func (s *certsFakeStore) List() ([]certs.Certificate, error) {
	var out []certs.Certificate
	for _, c := range s.m {
		out = append(out, c)
	}
	return out, nil
}

func (s *certsFakeStore) Get(id string) (certs.Certificate, error) {
	c, ok := s.m[id]
	if !ok {
		return certs.Certificate{}, fmt.Errorf("certs: get %q: %w", id, certs.ErrNotFound)
	}
	return c, nil
}

func (s *certsFakeStore) Key(id string) (crypto.Signer, error) {
	if _, err := s.Get(id); err != nil {
		return nil, err
	}
	return s.keys[id], nil
}

func (s *certsFakeStore) Add(meta certs.Meta, chain []*x509.Certificate, key crypto.Signer, source certs.Source) (certs.Certificate, error) {
	s.added = append(s.added, meta)
	if meta.ClientCA && !chain[0].IsCA {
		return certs.Certificate{}, fmt.Errorf("certs: add: %w: only a CA certificate can be trusted for client certificates", certs.ErrInvalid)
	}
	s.next++
	id := fmt.Sprintf("imported-%d", s.next)
	name := meta.Name
	if name == "" {
		name = chain[0].Subject.CommonName
	}
	c := certsEntity(id, name, chain, key != nil)
	c.Source = source
	s.m[id] = c
	if key != nil {
		s.keys[id] = key
	}
	return c, nil
}

func (s *certsFakeStore) Create(meta certs.Meta, p certs.IssueParams) (certs.Certificate, error) {
	s.created = append(s.created, p)
	if s.createErr != nil {
		return certs.Certificate{}, s.createErr
	}
	subject, err := ca.ParseDN(p.Subject)
	if err != nil {
		return certs.Certificate{}, fmt.Errorf("certs: create: %w: %w", certs.ErrInvalid, err)
	}
	s.next++
	id := fmt.Sprintf("cert-%d", s.next)
	name := meta.Name
	if name == "" {
		name = subject.CommonName
	}
	notAfter := certsNow.Add(time.Duration(p.ValiditySeconds) * time.Second)
	chain, key := s.ca.issue(s.t, subject.CommonName, p.Hosts, certsNow.Add(-time.Minute), notAfter, x509.ExtKeyUsageClientAuth)
	c := certsEntity(id, name, chain, true)
	s.m[id], s.keys[id] = c, key
	return c, nil
}

func (s *certsFakeStore) ObtainACME(context.Context, certs.Meta, []string, bool) (certs.Certificate, error) {
	return certs.Certificate{}, s.acmeErr
}

func (s *certsFakeStore) Renew(_ context.Context, id string) (certs.Certificate, error) {
	c, err := s.Get(id)
	if err != nil {
		return c, err
	}
	if s.renewErr != nil {
		return certs.Certificate{}, fmt.Errorf("certs: renew %q: %w", id, s.renewErr)
	}
	return c, nil
}

func (s *certsFakeStore) Revoke(_ context.Context, id, reason string) (certs.Certificate, error) {
	c, err := s.Get(id)
	if err != nil {
		return c, err
	}
	if s.revokeErr != nil {
		return certs.Certificate{}, s.revokeErr
	}
	s.revoked[id] = reason
	c.Revoked, c.RevocationReason, c.RevokedAt, c.Valid = true, reason, certsNow.UnixMilli(), false
	s.m[id] = c
	return c, nil
}

func (s *certsFakeStore) Delete(id string) error {
	if _, err := s.Get(id); err != nil {
		return err
	}
	if s.deleteErr != nil {
		return fmt.Errorf("certs: delete %q: %w", id, s.deleteErr)
	}
	delete(s.m, id)
	return nil
}

type certsFakeAuthority struct{ root *x509.Certificate }

func (a certsFakeAuthority) Issuers() []ca.IssuerInfo {
	return []ca.IssuerInfo{{ID: "root", Kind: ca.IssuerLocal, Active: true, Cert: a.root, Root: a.root}}
}

func (certsFakeAuthority) RootFingerprint() string { return "AA:BB:CC" }

// newCertificatesTestUI is a UI on store with a logged-in session.
func newCertificatesTestUI(t *testing.T, store *certsFakeStore) (*UI, *session) {
	t.Helper()
	return newCertificatesTestUILogging(t, store, io.Discard)
}

// newCertificatesTestUILogging is newCertificatesTestUI logging to logs.
func newCertificatesTestUILogging(t *testing.T, store *certsFakeStore, logs io.Writer) (*UI, *session) {
	t.Helper()
	u := New(Options{
		Admin: certsFakeAdmin{}, Certificates: store, Authority: certsFakeAuthority{root: store.ca.cert},
		Now: func() time.Time { return certsNow }, Logger: slog.New(slog.NewTextHandler(logs, nil)),
	})
	t.Cleanup(u.Close)
	return u, u.sessions.create()
}

// certsDo sends a request as session ss (nil: without a session).
func certsDo(t *testing.T, u *UI, ss *session, req *http.Request) *httptest.ResponseRecorder {
	t.Helper()
	if ss != nil {
		req.AddCookie(&http.Cookie{Name: sessionCookie, Value: ss.id})
	}
	rec := httptest.NewRecorder()
	u.Handler().ServeHTTP(rec, req)
	return rec
}

func certsGet(t *testing.T, u *UI, ss *session, path string) *httptest.ResponseRecorder {
	t.Helper()
	return certsDo(t, u, ss, httptest.NewRequest(http.MethodGet, path, nil))
}

func certsPost(t *testing.T, u *UI, ss *session, path string, form url.Values) *httptest.ResponseRecorder {
	t.Helper()
	req := httptest.NewRequest(http.MethodPost, path, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return certsDo(t, u, ss, req)
}

// certsUpload is one file of a multipart upload.
type certsUpload struct {
	name string
	data []byte
}

func certsPostUpload(t *testing.T, u *UI, ss *session, fields map[string]string, files ...certsUpload) *httptest.ResponseRecorder {
	t.Helper()
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	for k, v := range fields {
		if err := mw.WriteField(k, v); err != nil {
			t.Fatal(err)
		}
	}
	for _, f := range files {
		fw, err := mw.CreateFormFile("file", f.name)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := fw.Write(f.data); err != nil {
			t.Fatal(err)
		}
	}
	if err := mw.Close(); err != nil {
		t.Fatal(err)
	}
	req := httptest.NewRequest(http.MethodPost, "/certificates/import", &body)
	req.Header.Set("Content-Type", mw.FormDataContentType())
	return certsDo(t, u, ss, req)
}

// certsDoc parses a page answered with status want.
func certsDoc(t *testing.T, rec *httptest.ResponseRecorder, want int) *goquery.Document {
	t.Helper()
	if rec.Code != want {
		t.Fatalf("status %d, want %d; body:\n%s", rec.Code, want, rec.Body.String())
	}
	doc, err := goquery.NewDocumentFromReader(rec.Body)
	if err != nil {
		t.Fatal(err)
	}
	return doc
}

// certsText is the trimmed text of the elements with data-testid id.
func certsText(doc *goquery.Document, id string) string {
	return strings.TrimSpace(doc.Find(`[data-testid="` + id + `"]`).Text())
}
