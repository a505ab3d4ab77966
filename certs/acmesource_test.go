package certs

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/edgegate/edgegate/certs/acme"
)

// fakeACME is an ACME CA in memory that issues certificates valid for
// validity (30 days by default) from a root of its own, or fails with err.
type fakeACME struct {
	validity time.Duration
	root     *x509.Certificate
	rootKey  crypto.Signer
	now      func() time.Time
	err      error
	orders   int
	revoked  []string
}

func newFakeACME(t *testing.T, now func() time.Time) *fakeACME {
	root, key := selfSigned(t, "Fake ACME Root", true, now().Add(-time.Hour), now().Add(10*365*24*time.Hour))
	return &fakeACME{validity: 30 * 24 * time.Hour, root: root, rootKey: key, now: now}
}

func (f *fakeACME) Obtain(_ context.Context, names []string) (*acme.Certificate, error) {
	if f.err != nil {
		return nil, f.err
	}
	f.orders++
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	serial, _ := rand.Int(rand.Reader, big.NewInt(1<<62))
	now := f.now()
	tmpl := &x509.Certificate{
		SerialNumber: serial, Subject: pkix.Name{CommonName: names[0]}, DNSNames: names,
		NotBefore: now, NotAfter: now.Add(f.validity), ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, f.root, key.Public(), f.rootKey)
	if err != nil {
		return nil, err
	}
	keyDER, _ := x509.MarshalPKCS8PrivateKey(key)
	return &acme.Certificate{
		ChainPEM: append(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
			pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: f.root.Raw})...),
		KeyPEM: pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}),
	}, nil
}

func (f *fakeACME) Renew(ctx context.Context, names []string, _ *x509.Certificate) (*acme.Certificate, error) {
	return f.Obtain(ctx, names)
}

func (f *fakeACME) RenewalInfo(context.Context, *x509.Certificate) (*acme.RenewalInfo, error) {
	return nil, acme.ErrNoRenewalInfo
}

func (f *fakeACME) Revoke(_ context.Context, certPEM []byte, _ uint) error {
	f.revoked = append(f.revoked, string(certPEM))
	return nil
}

func (f *fakeACME) HTTPHandler(next http.Handler) http.Handler { return next }

func (f *fakeACME) ChallengeCertificate(*tls.ClientHelloInfo) (*tls.Certificate, bool) {
	return nil, false
}

func TestACMEObtainRenewFallBack(t *testing.T) {
	e := newEnv(t)
	m := e.open(t)
	ctx := context.Background()
	if _, err := m.ObtainACME(ctx, Meta{}, []string{"gw.example.com"}, true); !errors.Is(err, ErrNoACME) {
		t.Fatalf("without a client: %v, want ErrNoACME", err)
	}
	ca := newFakeACME(t, e.clock.Now)
	m.SetACME(ca)
	c, err := m.ObtainACME(ctx, Meta{}, []string{"gw.example.com", "mqtt.example.com"}, true)
	if err != nil {
		t.Fatal(err)
	}
	if c.ID != "acme-gw.example.com" || c.Source != SourceACME || !c.LetsEncrypt || !c.AutoRenew || c.Usage[0] != RoleServer {
		t.Fatalf("obtained %+v", c)
	}
	if e.tls.leaf().SerialNumber.Text(16) != c.Serial {
		t.Fatal("the listeners do not serve the ACME certificate")
	}

	// Due at 20 of 30 days; the CA is down: back-off, still served.
	e.clock.Add(20*24*time.Hour + renewJitter)
	ca.err = errors.New("acme: connection refused")
	if _, err := m.RenewDue(ctx); err == nil {
		t.Fatal("failed renewal reported no error")
	}
	if s, _ := m.Serving(); s.ID != c.ID {
		t.Fatalf("fell back %d days before expiry", time.Until(time.UnixMilli(c.To))/(24*time.Hour))
	}
	// Within 7 days of expiry the local CA takes over, with the error kept.
	e.clock.Add(4 * 24 * time.Hour)
	if _, err := m.Renew(ctx, c.ID); err == nil {
		t.Fatal("failed renewal reported no error")
	}
	s, _ := m.Serving()
	got, _ := m.Get(c.ID)
	if s.ID != ServerCertificateID || !got.Renewal.FellBack || got.Renewal.LastError == "" {
		t.Fatalf("near expiry: serving %s, ACME renewal %+v", s.ID, got.Renewal)
	}
	// The CA answers again: renewed and served again.
	ca.err = nil
	if _, err := m.Renew(ctx, c.ID); err != nil {
		t.Fatal(err)
	}
	s, _ = m.Serving()
	got, _ = m.Get(c.ID)
	if s.ID != c.ID || got.Renewal.FellBack || got.Serial == c.Serial || !slices.Equal(got.SANs, c.SANs) {
		t.Fatalf("after recovery: serving %s, %+v", s.ID, got)
	}

	// Revocation goes to the ACME CA.
	if _, err := m.Revoke(ctx, c.ID, "superseded"); err != nil {
		t.Fatal(err)
	}
	if len(ca.revoked) != 1 {
		t.Errorf("ACME CA got %d revocations, want 1", len(ca.revoked))
	}
}
