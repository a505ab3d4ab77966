package ca

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"net"
	"net/url"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"go.etcd.io/bbolt"
)

func verifyOpts(a *Authority, chain [][]byte, now time.Time, usage x509.ExtKeyUsage) (x509.VerifyOptions, *x509.Certificate, error) {
	inters := x509.NewCertPool()
	var leaf *x509.Certificate
	for i, der := range chain {
		c, err := x509.ParseCertificate(der)
		if err != nil {
			return x509.VerifyOptions{}, nil, err
		}
		if i == 0 {
			leaf = c
		} else {
			inters.AddCert(c)
		}
	}
	return x509.VerifyOptions{
		Roots:         a.Pool(),
		Intermediates: inters,
		CurrentTime:   now,
		KeyUsages:     []x509.ExtKeyUsage{usage},
	}, leaf, nil
}

func TestIssueServerVerifies(t *testing.T) {
	t.Parallel()
	a, _, clk := newAuthority(t)
	cert, err := a.IssueServer([]string{"GW.local", "192.168.1.10", "::1", "*.gw.local", "gw.local"}, 30*24*time.Hour)
	if err != nil {
		t.Fatalf("IssueServer: %v", err)
	}
	if len(cert.Certificate) != 2 {
		t.Fatalf("chain length = %d, want leaf + intermediate", len(cert.Certificate))
	}
	leaf := cert.Leaf
	if leaf == nil {
		t.Fatal("Leaf not set")
	}
	if got := leaf.Subject.CommonName; got != "gw.local" {
		t.Errorf("CN = %q, want first name %q", got, "gw.local")
	}
	if want := []string{"gw.local", "*.gw.local"}; !slices.Equal(leaf.DNSNames, want) {
		t.Errorf("DNSNames = %q, want %q", leaf.DNSNames, want)
	}
	if len(leaf.IPAddresses) != 2 || !leaf.IPAddresses[0].Equal(net.ParseIP("192.168.1.10")) || !leaf.IPAddresses[1].Equal(net.IPv6loopback) {
		t.Errorf("IPAddresses = %v, want [192.168.1.10 ::1]", leaf.IPAddresses)
	}
	if leaf.IsCA {
		t.Error("leaf is a CA")
	}
	if got := leaf.NotAfter.Sub(clk.Now()); got != 30*24*time.Hour {
		t.Errorf("validity = %v, want 720h", got)
	}
	if _, err := tls.X509KeyPair(pemChain(cert.Certificate), mustKeyPEM(t, cert)); err != nil {
		t.Errorf("certificate and key do not pair: %v", err)
	}

	for _, name := range []string{"gw.local", "sensor.gw.local", "192.168.1.10", "::1"} {
		opts, leaf, err := verifyOpts(a, cert.Certificate, clk.Now(), x509.ExtKeyUsageServerAuth)
		if err != nil {
			t.Fatal(err)
		}
		opts.DNSName = name
		chains, err := leaf.Verify(opts)
		if err != nil {
			t.Errorf("Verify for %q: %v", name, err)
			continue
		}
		if got := len(chains[0]); got != 3 {
			t.Errorf("verified chain length = %d, want leaf, intermediate, root", got)
		}
	}
	opts, leaf, _ := verifyOpts(a, cert.Certificate, clk.Now(), x509.ExtKeyUsageServerAuth)
	opts.DNSName = "other.example"
	if _, err := leaf.Verify(opts); err == nil {
		t.Error("Verify for a name not in the certificate succeeded")
	}
	opts, leaf, _ = verifyOpts(a, cert.Certificate, clk.Now(), x509.ExtKeyUsageClientAuth)
	if _, err := leaf.Verify(opts); err == nil {
		t.Error("server certificate verified for client auth")
	}
}

func TestIssueServerRejects(t *testing.T) {
	t.Parallel()
	a, _, _ := newAuthority(t)
	tests := []struct {
		name     string
		names    []string
		validity time.Duration
	}{
		{"no names", nil, time.Hour},
		{"empty name", []string{"gw.local", ""}, time.Hour},
		{"space in name", []string{"gw local"}, time.Hour},
		{"IP with zone", []string{"fe80::1%eth0"}, time.Hour},
		{"negative validity", []string{"gw.local"}, -time.Hour},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := a.IssueServer(tt.names, tt.validity)
			if err == nil || !strings.HasPrefix(err.Error(), "ca: issue server certificate") {
				t.Errorf("IssueServer(%q, %v) error = %v, want a wrapped error", tt.names, tt.validity, err)
			}
		})
	}
}

func TestIssueServerValidityCappedAtIntermediate(t *testing.T) {
	t.Parallel()
	a, _, _ := newAuthority(t)
	cert, err := a.IssueServer([]string{"gw.local"}, 20*365*24*time.Hour)
	if err != nil {
		t.Fatalf("IssueServer: %v", err)
	}
	if !cert.Leaf.NotAfter.Equal(a.Intermediate().NotAfter) {
		t.Errorf("NotAfter = %v, want capped at intermediate %v", cert.Leaf.NotAfter, a.Intermediate().NotAfter)
	}
}

func TestIssueClientVerifies(t *testing.T) {
	t.Parallel()
	a, _, clk := newAuthority(t)
	spiffe, _ := url.Parse("spiffe://edgegate.test/sensor/42")
	certPEM, keyPEM, err := a.IssueClient(ClientRequest{
		CommonName:   "sensor-42",
		DNSNames:     []string{"sensor-42.plant.example"},
		URIs:         []*url.URL{spiffe},
		Organization: []string{"Plant A"},
		Validity:     7 * 24 * time.Hour,
	})
	if err != nil {
		t.Fatalf("IssueClient: %v", err)
	}
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatalf("X509KeyPair: %v", err)
	}
	if len(pair.Certificate) != 2 {
		t.Fatalf("cert PEM holds %d certificates, want leaf + intermediate", len(pair.Certificate))
	}
	if inter, _ := x509.ParseCertificate(pair.Certificate[1]); inter == nil || !inter.Equal(a.Intermediate()) {
		t.Error("second certificate is not the intermediate")
	}
	if block, _ := pem.Decode(keyPEM); block == nil || block.Type != "PRIVATE KEY" {
		t.Error("key is not PKCS#8 PEM")
	}

	opts, leaf, err := verifyOpts(a, pair.Certificate, clk.Now(), x509.ExtKeyUsageClientAuth)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := leaf.Verify(opts); err != nil {
		t.Errorf("Verify for client auth: %v", err)
	}
	opts.KeyUsages = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
	if _, err := leaf.Verify(opts); err == nil {
		t.Error("client certificate verified for server auth")
	}

	if got := leaf.Subject.String(); got != "CN=sensor-42,O=Plant A" {
		t.Errorf("subject = %q, want %q", got, "CN=sensor-42,O=Plant A")
	}
	if !slices.Equal(leaf.DNSNames, []string{"sensor-42.plant.example"}) {
		t.Errorf("DNSNames = %q", leaf.DNSNames)
	}
	if len(leaf.URIs) != 1 || leaf.URIs[0].String() != "spiffe://edgegate.test/sensor/42" {
		t.Errorf("URIs = %v, want the SPIFFE ID", leaf.URIs)
	}
	if got := leaf.NotAfter.Sub(clk.Now()); got != 7*24*time.Hour {
		t.Errorf("validity = %v, want 168h", got)
	}
}

func TestIssueClientDefaultsAndRejects(t *testing.T) {
	t.Parallel()
	a, _, clk := newAuthority(t)
	u, _ := url.Parse("spiffe://edgegate.test/s")
	certPEM, _, err := a.IssueClient(ClientRequest{URIs: []*url.URL{u}})
	if err != nil {
		t.Fatalf("IssueClient with only a URI: %v", err)
	}
	block, _ := pem.Decode(certPEM)
	leaf, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	if got := leaf.NotAfter.Sub(clk.Now()); got != DefaultLeafValidity {
		t.Errorf("default validity = %v, want %v", got, DefaultLeafValidity)
	}

	for _, req := range []ClientRequest{
		{},
		{Organization: []string{"only an O"}},
		{CommonName: "x", URIs: []*url.URL{nil}},
		{CommonName: "x", Validity: -time.Second},
	} {
		if _, _, err := a.IssueClient(req); err == nil || !strings.HasPrefix(err.Error(), "ca: issue client certificate") {
			t.Errorf("IssueClient(%+v) error = %v, want a wrapped error", req, err)
		}
	}
}

func TestLoadOrIssueServer(t *testing.T) {
	t.Parallel()
	clk := newClock()
	path := filepath.Join(t.TempDir(), "edgegate.db")
	db := openDB(t, path)
	a, err := Open(db, Options{DeviceName: "gw", Now: clk.Now})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	names := []string{"gw.local", "10.0.0.1"}
	first, err := a.LoadOrIssueServer(names)
	if err != nil {
		t.Fatalf("LoadOrIssueServer: %v", err)
	}
	if got := first.Leaf.NotAfter.Sub(first.Leaf.NotBefore); got != ServerValidity+backdate {
		t.Errorf("lifetime = %v, want %v", got, ServerValidity+backdate)
	}
	opts, leaf, _ := verifyOpts(a, first.Certificate, clk.Now(), x509.ExtKeyUsageServerAuth)
	opts.DNSName = "10.0.0.1"
	if _, err := leaf.Verify(opts); err != nil {
		t.Errorf("stored server certificate does not verify: %v", err)
	}

	serialOf := func(c *tls.Certificate) string { return c.Leaf.SerialNumber.String() }
	same := func(t *testing.T, a *Authority, names []string, want *tls.Certificate) *tls.Certificate {
		t.Helper()
		got, err := a.LoadOrIssueServer(names)
		if err != nil {
			t.Fatalf("LoadOrIssueServer(%q): %v", names, err)
		}
		if serialOf(got) != serialOf(want) {
			t.Errorf("LoadOrIssueServer(%q) issued serial %s, want stored %s", names, serialOf(got), serialOf(want))
		}
		return got
	}
	fresh := func(t *testing.T, a *Authority, names []string, old *tls.Certificate) *tls.Certificate {
		t.Helper()
		got, err := a.LoadOrIssueServer(names)
		if err != nil {
			t.Fatalf("LoadOrIssueServer(%q): %v", names, err)
		}
		if serialOf(got) == serialOf(old) {
			t.Errorf("LoadOrIssueServer(%q) returned stored serial %s, want a new certificate", names, serialOf(got))
		}
		return got
	}

	same(t, a, names, first)
	same(t, a, []string{"10.0.0.1", "GW.LOCAL", "gw.local"}, first) // order, case, duplicates

	// Stable across a restart.
	closeDB(t, db)
	db = openDB(t, path)
	a, err = Open(db, Options{Now: clk.Now})
	if err != nil {
		t.Fatalf("reopen: %v", err)
	}
	loaded := same(t, a, names, first)
	if len(loaded.Certificate) != 2 || loaded.PrivateKey == nil {
		t.Fatal("loaded certificate lacks chain or key")
	}
	if _, err := tls.X509KeyPair(pemChain(loaded.Certificate), mustKeyPEM(t, loaded)); err != nil {
		t.Errorf("loaded certificate and key do not pair: %v", err)
	}

	// Names changed: a superset, a subset.
	second := fresh(t, a, append(names, "gw.example"), first)
	third := fresh(t, a, []string{"gw.local"}, second)

	// Just before two thirds of the lifetime: kept. Just after: renewed.
	lifetime := third.Leaf.NotAfter.Sub(third.Leaf.NotBefore)
	clk.Set(third.Leaf.NotBefore.Add(lifetime*2/3 - time.Minute))
	same(t, a, []string{"gw.local"}, third)
	clk.Set(third.Leaf.NotBefore.Add(lifetime*2/3 + time.Minute))
	renewed := fresh(t, a, []string{"gw.local"}, third)
	if !renewed.Leaf.NotBefore.Equal(clk.Now().Add(-backdate)) {
		t.Errorf("renewed NotBefore = %v, want now-%v", renewed.Leaf.NotBefore, backdate)
	}
	same(t, a, []string{"gw.local"}, renewed)
}

func TestLoadOrIssueServerReplacesCorrupt(t *testing.T) {
	t.Parallel()
	a, db, _ := newAuthority(t)
	first, err := a.LoadOrIssueServer([]string{"gw.local"})
	if err != nil {
		t.Fatalf("LoadOrIssueServer: %v", err)
	}
	err = db.Update(func(tx *bbolt.Tx) error {
		return tx.Bucket(bucketCA).Bucket(keyServer).Put(fieldCert, []byte("not DER"))
	})
	if err != nil {
		t.Fatal(err)
	}
	got, err := a.LoadOrIssueServer([]string{"gw.local"})
	if err != nil {
		t.Fatalf("LoadOrIssueServer over a corrupt entry: %v", err)
	}
	if got.Leaf.SerialNumber.Cmp(first.Leaf.SerialNumber) == 0 {
		t.Error("corrupt entry not replaced")
	}
	again, err := a.LoadOrIssueServer([]string{"gw.local"})
	if err != nil || again.Leaf.SerialNumber.Cmp(got.Leaf.SerialNumber) != 0 {
		t.Errorf("replacement not stored: err=%v", err)
	}
}

func TestLoadOrIssueServerConcurrent(t *testing.T) {
	t.Parallel()
	a, _, _ := newAuthority(t)
	const n = 8
	serials := make(chan string, n)
	errs := make(chan error, n)
	for range n {
		go func() {
			c, err := a.LoadOrIssueServer([]string{"gw.local"})
			if err != nil {
				errs <- err
				return
			}
			serials <- c.Leaf.SerialNumber.String()
		}()
	}
	var first string
	for range n {
		select {
		case err := <-errs:
			t.Fatalf("LoadOrIssueServer: %v", err)
		case s := <-serials:
			if first == "" {
				first = s
			} else if s != first {
				t.Errorf("concurrent callers got serials %s and %s, want one certificate", first, s)
			}
		}
	}
}

func TestNeedsRenewal(t *testing.T) {
	t.Parallel()
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	cert := &x509.Certificate{NotBefore: start, NotAfter: start.Add(90 * 24 * time.Hour)}
	tests := []struct {
		name string
		now  time.Time
		want bool
	}{
		{"before NotBefore (clock went back)", start.Add(-time.Second), true},
		{"at NotBefore", start, false},
		{"half way", start.Add(45 * 24 * time.Hour), false},
		{"just before two thirds", start.Add(60*24*time.Hour - time.Second), false},
		{"exactly two thirds", start.Add(60 * 24 * time.Hour), false},
		{"just after two thirds", start.Add(60*24*time.Hour + time.Second), true},
		{"one day left", cert.NotAfter.Add(-24 * time.Hour), true},
		{"at NotAfter", cert.NotAfter, true},
		{"expired", cert.NotAfter.Add(time.Hour), true},
	}
	for _, tt := range tests {
		if got := needsRenewal(cert, tt.now); got != tt.want {
			t.Errorf("%s: needsRenewal = %v, want %v", tt.name, got, tt.want)
		}
	}
}

func pemChain(ders [][]byte) []byte {
	var out []byte
	for _, d := range ders {
		out = append(out, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: d})...)
	}
	return out
}

func mustKeyPEM(t *testing.T, c *tls.Certificate) []byte {
	t.Helper()
	der, err := x509.MarshalPKCS8PrivateKey(c.PrivateKey)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
}
