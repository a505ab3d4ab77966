package webui

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/PuerkitoBio/goquery"

	"github.com/edgegate/edgegate/certs"
	"github.com/edgegate/edgegate/certs/ca"
	"github.com/edgegate/edgegate/gateway/broker"
	"github.com/edgegate/edgegate/gateway/broker/sys"
)

type dashFakeBroker struct{ liveFakeBroker }

func (*dashFakeBroker) Listeners() []broker.ListenerStatus {
	return []broker.ListenerStatus{{Name: "tcp"}}
}
func (*dashFakeBroker) Stats() sys.Stats {
	return sys.Stats{
		Version: "v9.9", UptimeSeconds: 3700, Clients: sys.Gauge{Count: 5000},
		Alarms: []sys.Alarm{{ID: "high_heap", Message: "heap above 256 MiB"}},
	}
}

type dashFakeCertificates struct{ Certificates }

func (dashFakeCertificates) List() ([]certs.Certificate, error) {
	now := time.Now()
	return []certs.Certificate{
		{ID: "late", Name: "server-late", To: now.Add(20 * 24 * time.Hour).UnixMilli(), Usage: []certs.Role{"server"}},
		{ID: "soon", Name: "server-soon", To: now.Add(3 * 24 * time.Hour).UnixMilli(), AutoRenew: true},
		{ID: "far", Name: "far-away", To: now.Add(300 * 24 * time.Hour).UnixMilli(), Usage: []certs.Role{"server"}},
		{ID: "unused", Name: "not-in-use", To: now.Add(2 * 24 * time.Hour).UnixMilli()},
		{ID: "gone", Name: "revoked", Revoked: true, To: now.Add(time.Hour).UnixMilli(), AutoRenew: true},
	}, nil
}

// getPage renders path for a logged-in session and parses it.
func getPage(t *testing.T, u *UI, path string) (*goquery.Document, int) {
	t.Helper()
	ss := u.sessions.create()
	r := httptest.NewRequest(http.MethodGet, path, nil)
	r.AddCookie(&http.Cookie{Name: sessionCookie, Value: ss.id})
	w := httptest.NewRecorder()
	u.Handler().ServeHTTP(w, r)
	doc, err := goquery.NewDocumentFromReader(w.Body)
	if err != nil {
		t.Fatal(err)
	}
	return doc, w.Code
}

func TestDashboardShowsHealthAlarmsAndExpiringCertificates(t *testing.T) {
	u := New(Options{Admin: liveFakeAdmin{}, Broker: &dashFakeBroker{}, Settings: liveFakeSettings{}, Certificates: dashFakeCertificates{}})
	defer u.Close()
	doc, code := getPage(t, u, "/")
	if code != http.StatusOK {
		t.Fatalf("status %d", code)
	}
	checks := map[string]string{
		"health":            "1 alarm raised",
		"clients-connected": "5000",
		"uptime":            "1h 1m",
		"alarms":            "heap above 256 MiB",
	}
	for id, want := range checks {
		if got := strings.TrimSpace(doc.Find(`[data-testid="` + id + `"]`).Text()); !strings.Contains(got, want) {
			t.Errorf("%s shows %q; want %q", id, got, want)
		}
	}
	var expiring []string
	doc.Find(`[data-testid="expiring"] a`).Each(func(_ int, s *goquery.Selection) { expiring = append(expiring, s.Text()) })
	if strings.Join(expiring, ",") != "server-soon,server-late" {
		t.Errorf("expiring certificates %v; want the in-use ones within 30 days, soonest first", expiring)
	}
	if doc.Find(`body[data-live="stats,clients"]`).Length() != 1 {
		t.Error("the dashboard does not ask for the stats and clients feeds")
	}
	if doc.Find(`[data-testid="chart"][data-history]`).Length() != 1 {
		t.Error("no chart with its history")
	}
}

type trustFakeAuthority struct{ root, inter *x509.Certificate }

func (a trustFakeAuthority) Issuers() []ca.IssuerInfo {
	return []ca.IssuerInfo{{ID: "abc", Kind: ca.IssuerLocal, Active: true, Cert: a.inter, Root: a.root}}
}
func (trustFakeAuthority) RootFingerprint() string { return "" }

func selfSigned(t *testing.T, cn string) *x509.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: cn}, IsCA: true, BasicConstraintsValid: true,
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestTrustPageListsAnchorsIssuersAndListeners(t *testing.T) {
	auth := trustFakeAuthority{root: selfSigned(t, "Root CA"), inter: selfSigned(t, "Intermediate CA")}
	u := New(Options{Admin: liveFakeAdmin{}, Broker: &dashFakeBroker{}, Settings: liveFakeSettings{}, Authority: auth})
	defer u.Close()
	doc, code := getPage(t, u, "/trust")
	if code != http.StatusOK {
		t.Fatalf("status %d", code)
	}
	if got := doc.Find(`[data-testid="trust-anchors-row"]`).Text(); !strings.Contains(got, "Root CA") {
		t.Errorf("trust list %q; want the local root", got)
	}
	issuer := doc.Find(`[data-testid="trust-issuers-row"]`)
	if !strings.Contains(issuer.Text(), "Intermediate CA") || issuer.Find(`a[href="/pki/crl/abc.crl"]`).Length() != 1 {
		t.Errorf("issuer list %q; want the intermediate with its CRL link", issuer.Text())
	}
	if got := doc.Find(`[data-testid="trust-listeners"] tbody tr`).Length(); got != 2 {
		t.Errorf("%d TLS listeners shown; the defaults have 2 (tls, wss)", got)
	}
}

func TestColonHex(t *testing.T) {
	if got := colonHex("abcdef"); got != "AB:CD:EF" {
		t.Fatalf("colonHex = %q", got)
	}
}
