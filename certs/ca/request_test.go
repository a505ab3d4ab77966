package ca

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"net"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestIssueLeaves(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	now := e.clk.Now()
	tests := []struct {
		name    string
		req     IssueRequest
		keyAlg  x509.PublicKeyAlgorithm
		sigAlg  x509.SignatureAlgorithm
		usages  []x509.ExtKeyUsage
		keyUse  x509.KeyUsage
		subject string
	}{
		{
			name:    "default server",
			req:     IssueRequest{Server: true, Hosts: []string{"gw.local", "10.0.0.1"}},
			keyAlg:  x509.ECDSA,
			sigAlg:  x509.ECDSAWithSHA256,
			usages:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
			keyUse:  x509.KeyUsageDigitalSignature,
			subject: "CN=gw.local",
		},
		{
			name: "P-384 client with a DN and SHA-384",
			req: IssueRequest{Client: true, KeyType: KeyECDSAP384, SignatureAlgorithm: x509.ECDSAWithSHA384,
				Subject: "CN=sensor-1,O=Acme,C=FR", Hosts: []string{"spiffe://edgegate.test/sensor/1", "ops@acme.example"}},
			keyAlg:  x509.ECDSA,
			sigAlg:  x509.ECDSAWithSHA384,
			usages:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
			keyUse:  x509.KeyUsageDigitalSignature,
			subject: "CN=sensor-1,O=Acme,C=FR",
		},
		{
			name:    "RSA server and client",
			req:     IssueRequest{Server: true, Client: true, KeyType: KeyRSA2048, Hosts: []string{"dual.gw.local"}},
			keyAlg:  x509.RSA,
			sigAlg:  x509.ECDSAWithSHA256, // the issuer's key decides
			usages:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
			keyUse:  x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
			subject: "CN=dual.gw.local",
		},
		{
			name:    "URI only: empty subject",
			req:     IssueRequest{Client: true, Hosts: []string{"spiffe://edgegate.test/s"}},
			keyAlg:  x509.ECDSA,
			sigAlg:  x509.ECDSAWithSHA256,
			usages:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
			keyUse:  x509.KeyUsageDigitalSignature,
			subject: "",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			out := mustIssue(t, e.a, tt.req)
			c := out.Cert
			if c.PublicKeyAlgorithm != tt.keyAlg || c.SignatureAlgorithm != tt.sigAlg {
				t.Errorf("key %v signature %v, want %v %v", c.PublicKeyAlgorithm, c.SignatureAlgorithm, tt.keyAlg, tt.sigAlg)
			}
			if !slices.Equal(c.ExtKeyUsage, tt.usages) || c.KeyUsage != tt.keyUse {
				t.Errorf("usages %v %v, want %v %v", c.ExtKeyUsage, c.KeyUsage, tt.usages, tt.keyUse)
			}
			if got := c.Subject.String(); got != tt.subject {
				t.Errorf("subject %q, want %q", got, tt.subject)
			}
			if c.IsCA || !c.BasicConstraintsValid {
				t.Error("leaf is a CA or lacks basic constraints")
			}
			if len(out.Chain) != 1 || !out.Chain[0].Equal(e.a.Intermediate()) {
				t.Errorf("chain = %d certificates, want the intermediate", len(out.Chain))
			}
			if got := c.NotAfter.Sub(now); got != DefaultLeafValidity {
				t.Errorf("validity %v, want %v", got, DefaultLeafValidity)
			}
			for _, u := range tt.usages {
				if err := verifyIssued(out, e.a.Pool(), now, u); err != nil {
					t.Errorf("verify for %v: %v", u, err)
				}
			}
			keyPEM, err := out.KeyPEM()
			if err != nil {
				t.Fatal(err)
			}
			if _, err := tls.X509KeyPair(out.CertPEM(), keyPEM); err != nil {
				t.Errorf("certificate and key do not pair: %v", err)
			}
		})
	}
}

func TestIssueSANs(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	out := mustIssue(t, e.a, IssueRequest{Server: true, Client: true, Hosts: []string{
		"GW.local", "*.gw.local", "192.168.1.10", "::1", "spiffe://edgegate.test/gw", "urn:uuid:6e8bc430-9c3a-11d9-9669-0800200c9a66", "pki@gw.example",
	}})
	c := out.Cert
	if !slices.Equal(c.DNSNames, []string{"gw.local", "*.gw.local"}) {
		t.Errorf("DNSNames = %q", c.DNSNames)
	}
	if len(c.IPAddresses) != 2 || !c.IPAddresses[0].Equal(net.ParseIP("192.168.1.10")) || !c.IPAddresses[1].Equal(net.IPv6loopback) {
		t.Errorf("IPAddresses = %v", c.IPAddresses)
	}
	var uris []string
	for _, u := range c.URIs {
		uris = append(uris, u.String())
	}
	if !slices.Equal(uris, []string{"spiffe://edgegate.test/gw", "urn:uuid:6e8bc430-9c3a-11d9-9669-0800200c9a66"}) {
		t.Errorf("URIs = %q", uris)
	}
	if !slices.Equal(c.EmailAddresses, []string{"pki@gw.example"}) {
		t.Errorf("EmailAddresses = %q", c.EmailAddresses)
	}
	if c.Subject.CommonName != "gw.local" {
		t.Errorf("CN = %q, want the first DNS name", c.Subject.CommonName)
	}
}

func TestIssueValidityCappedAtIssuer(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	out := mustIssue(t, e.a, IssueRequest{Server: true, Hosts: []string{"gw.local"}, Validity: 20 * 365 * 24 * time.Hour})
	if !out.Cert.NotAfter.Equal(e.a.Intermediate().NotAfter) {
		t.Errorf("NotAfter = %v, want capped at the intermediate's %v", out.Cert.NotAfter, e.a.Intermediate().NotAfter)
	}
	out = mustIssue(t, e.a, IssueRequest{Client: true, Subject: "CN=s", Validity: time.Hour})
	if got := out.Cert.NotAfter.Sub(e.clk.Now()); got != time.Hour {
		t.Errorf("validity = %v, want 1h", got)
	}
}

func TestIssueRejects(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	now := e.clk.Now()
	notCA := makeCA(t, "leaf", nil, now, &caOpts{notCA: true})
	noCertSign := makeCA(t, "crl only", nil, now, &caOpts{keyUsage: x509.KeyUsageCRLSign})
	expired := makeCA(t, "old", nil, now, &caOpts{notBefore: now.Add(-48 * time.Hour), notAfter: now.Add(-time.Hour)})
	good := makeCA(t, "good", nil, now, &caOpts{maxPathLen: -1})
	other := makeCA(t, "other", nil, now, nil)
	rsaKey, _ := rsa.GenerateKey(rand.Reader, 2048)

	tests := []struct {
		name    string
		req     IssueRequest
		want    error
		wantMsg string
	}{
		{"no purpose", IssueRequest{Hosts: []string{"a.local"}}, ErrInvalidRequest, "CA, Client and/or Server"},
		{"no subject, no host", IssueRequest{Client: true}, ErrInvalidRequest, "Subject or at least one host"},
		{"CA without subject", IssueRequest{CA: true, Issuer: &Signer{Cert: good.cert, Key: good.key}}, ErrInvalidRequest, "CA certificate needs a Subject"},
		{"path length on a leaf", IssueRequest{Server: true, Hosts: []string{"a.local"}, MaxPathLen: 1}, ErrInvalidRequest, "only for CA"},
		{"path length below -1", IssueRequest{CA: true, Subject: "CN=x", MaxPathLen: -2}, ErrInvalidRequest, "MaxPathLen -2"},
		{"negative validity", IssueRequest{Server: true, Hosts: []string{"a.local"}, Validity: -time.Hour}, ErrInvalidRequest, "negative validity"},
		{"bad key type", IssueRequest{Server: true, Hosts: []string{"a.local"}, KeyType: "rsa-1024"}, ErrInvalidRequest, "allowed: ecdsa-p256"},
		{"bad subject", IssueRequest{Client: true, Subject: "CN=a;O=b"}, ErrInvalidRequest, "unescaped ';'"},
		{"bad hosts named", IssueRequest{Server: true, Hosts: []string{"ok.local", "not ok", "x:1"}}, ErrInvalidRequest, `"not ok": contains whitespace`},
		{"RSA signature by an ECDSA issuer", IssueRequest{Server: true, Hosts: []string{"a.local"}, SignatureAlgorithm: x509.SHA256WithRSA}, ErrInvalidRequest, "needs an RSA issuer key"},
		{"sub-CA from the local intermediate", IssueRequest{CA: true, Subject: "CN=sub"}, ErrNotCA, "path length 0"},
		{"issuer not a CA", IssueRequest{Client: true, Subject: "CN=x", Issuer: &Signer{Cert: notCA.cert, Key: notCA.key}}, ErrNotCA, "not a CA certificate"},
		{"issuer without certSign", IssueRequest{Client: true, Subject: "CN=x", Issuer: &Signer{Cert: noCertSign.cert, Key: noCertSign.key}}, ErrNotCA, "keyCertSign"},
		{"issuer expired", IssueRequest{Client: true, Subject: "CN=x", Issuer: &Signer{Cert: expired.cert, Key: expired.key}}, ErrExpired, "expired"},
		{"issuer key mismatch", IssueRequest{Client: true, Subject: "CN=x", Issuer: &Signer{Cert: good.cert, Key: other.key}}, ErrKeyMismatch, "good"},
		{"issuer key of another kind", IssueRequest{Client: true, Subject: "CN=x", Issuer: &Signer{Cert: good.cert, Key: rsaKey}}, ErrKeyMismatch, ""},
		{"issuer chain broken", IssueRequest{Client: true, Subject: "CN=x", Issuer: &Signer{Cert: good.cert, Key: good.key, Chain: []*x509.Certificate{other.cert}}}, ErrChainInvalid, `"CN=good,O=Enterprise" is not signed by "CN=other,O=Enterprise"`},
		{"issuer without key", IssueRequest{Client: true, Subject: "CN=x", Issuer: &Signer{Cert: good.cert}}, ErrInvalidRequest, "both Cert and Key"},
		{"AIA without base URL", IssueRequest{Server: true, Hosts: []string{"a.local"}, AIA: true}, ErrInvalidRequest, "no AIA base URL"},
		{"AIA for a foreign issuer", IssueRequest{Client: true, Subject: "CN=x", AIA: true, Issuer: &Signer{Cert: good.cert, Key: good.key}}, ErrInvalidRequest, "own issuers"},
	}
	for _, tt := range tests {
		_, err := e.a.Issue(tt.req)
		if !errors.Is(err, tt.want) || !strings.Contains(err.Error(), tt.wantMsg) || !strings.HasPrefix(err.Error(), "ca: issue certificate") {
			t.Errorf("%s: error = %v, want %v containing %q", tt.name, err, tt.want, tt.wantMsg)
		}
	}
}

// A CA made from a foreign root (as the certificate manager's store holds)
// issues a sub-CA, which issues a leaf; chains stop below the root.
func TestIssueFromExistingCA(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	now := e.clk.Now()
	root := makeCA(t, "Plant Root", nil, now, &caOpts{maxPathLen: 2})
	rootSigner := &Signer{Cert: root.cert, Key: root.key}

	sub := mustIssue(t, e.a, IssueRequest{
		Issuer: rootSigner, CA: true, MaxPathLen: 0, Subject: "CN=Line 2 CA,O=Acme", KeyType: KeyRSA2048,
		SignatureAlgorithm: x509.ECDSAWithSHA384,
	})
	c := sub.Cert
	if !c.IsCA || !c.MaxPathLenZero || c.KeyUsage != x509.KeyUsageCertSign|x509.KeyUsageCRLSign {
		t.Errorf("sub-CA IsCA=%v MaxPathLenZero=%v KeyUsage=%v", c.IsCA, c.MaxPathLenZero, c.KeyUsage)
	}
	if c.SignatureAlgorithm != x509.ECDSAWithSHA384 || c.PublicKeyAlgorithm != x509.RSA {
		t.Errorf("sub-CA signature %v key %v", c.SignatureAlgorithm, c.PublicKeyAlgorithm)
	}
	if len(sub.Chain) != 0 {
		t.Errorf("chain of a certificate signed by a root holds %d certificates, want none", len(sub.Chain))
	}
	if got := c.NotAfter.Sub(now); got != DefaultCAValidity {
		t.Errorf("default CA validity %v, want %v", got, DefaultCAValidity)
	}

	leaf := mustIssue(t, e.a, IssueRequest{
		Issuer: &Signer{Cert: sub.Cert, Key: sub.Key, Chain: []*x509.Certificate{root.cert}},
		Server: true, Hosts: []string{"plc.line2.local"}, SignatureAlgorithm: x509.SHA256WithRSAPSS,
	})
	if len(leaf.Chain) != 1 || !leaf.Chain[0].Equal(sub.Cert) {
		t.Fatalf("leaf chain = %d certificates, want the sub-CA only", len(leaf.Chain))
	}
	if leaf.Cert.SignatureAlgorithm != x509.SHA256WithRSAPSS {
		t.Errorf("leaf signature %v", leaf.Cert.SignatureAlgorithm)
	}
	pool := x509.NewCertPool()
	pool.AddCert(root.cert)
	if err := verifyIssued(leaf, pool, now, x509.ExtKeyUsageServerAuth); err != nil {
		t.Errorf("leaf of the sub-CA does not verify to the plant root: %v", err)
	}

	// The sub-CA's path length 0 and the root's 2 are enforced.
	if _, err := e.a.Issue(IssueRequest{Issuer: &Signer{Cert: sub.Cert, Key: sub.Key}, CA: true, Subject: "CN=deeper"}); !errors.Is(err, ErrNotCA) {
		t.Errorf("CA under a path-length-0 CA: %v, want ErrNotCA", err)
	}
	for _, n := range []int{2, -1} {
		if _, err := e.a.Issue(IssueRequest{Issuer: rootSigner, CA: true, Subject: "CN=too deep", MaxPathLen: n}); !errors.Is(err, ErrInvalidRequest) {
			t.Errorf("MaxPathLen %d under a root of path length 2: %v, want ErrInvalidRequest", n, err)
		}
	}
	mid := mustIssue(t, e.a, IssueRequest{Issuer: rootSigner, CA: true, Subject: "CN=mid", MaxPathLen: 1})
	if mid.Cert.MaxPathLen != 1 {
		t.Errorf("MaxPathLen = %d, want 1", mid.Cert.MaxPathLen)
	}
	// Validity is capped at the foreign issuer's expiry too.
	long := mustIssue(t, e.a, IssueRequest{Issuer: rootSigner, Client: true, Subject: "CN=long", Validity: 100 * 365 * 24 * time.Hour})
	if !long.Cert.NotAfter.Equal(root.cert.NotAfter) {
		t.Errorf("NotAfter %v, want capped at the issuer's %v", long.Cert.NotAfter, root.cert.NotAfter)
	}
}

func TestIssueAIA(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(o *Options) { o.AIABaseURLs = []string{"http://gw.local:8080/pki/", "https://10.0.0.1/pki"} })
	out := mustIssue(t, e.a, IssueRequest{Server: true, Hosts: []string{"gw.local"}, AIA: true})
	id := e.a.Issuer().ID
	wantIssuer := []string{"http://gw.local:8080/pki/issuer/" + id + ".crt", "https://10.0.0.1/pki/issuer/" + id + ".crt"}
	wantCRL := []string{"http://gw.local:8080/pki/crl/" + id + ".crl", "https://10.0.0.1/pki/crl/" + id + ".crl"}
	if !slices.Equal(out.Cert.IssuingCertificateURL, wantIssuer) || !slices.Equal(out.Cert.CRLDistributionPoints, wantCRL) {
		t.Errorf("AIA %q CDP %q, want %q %q", out.Cert.IssuingCertificateURL, out.Cert.CRLDistributionPoints, wantIssuer, wantCRL)
	}
	// What the URLs name exists.
	if iss, ok := e.a.IssuerByID(id); !ok || !iss.Cert.Equal(e.a.Intermediate()) {
		t.Error("IssuerByID does not find the issuer of the AIA URL")
	}
	if der, ok := e.a.CRLByIssuerID(id); !ok {
		t.Error("CRLByIssuerID does not find the CRL of the distribution point")
	} else {
		parseCRL(t, der, e.a.Intermediate())
	}
	plain := mustIssue(t, e.a, IssueRequest{Server: true, Hosts: []string{"gw.local"}})
	if len(plain.Cert.IssuingCertificateURL)+len(plain.Cert.CRLDistributionPoints) != 0 {
		t.Error("AIA added without being asked for")
	}

	for _, bad := range []string{"ftp://x/pki", "http:///pki", "http://x/pki?a=1", "http://u:p@x/"} {
		db := openDB(t, t.TempDir()+"/x.db")
		if _, err := Open(db, Options{DeviceName: "gw", AIABaseURLs: []string{bad}}); err == nil || !strings.Contains(err.Error(), "AIABaseURLs") {
			t.Errorf("Open with AIA base %q: %v", bad, err)
		}
	}
}

// newCSR makes a CSR with key for subject and SANs.
func newCSR(t testing.TB, key crypto.Signer, subject pkix.Name, dns []string, uris []*url.URL) []byte {
	t.Helper()
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{
		Subject: subject, DNSNames: dns, URIs: uris,
	}, key)
	if err != nil {
		t.Fatal(err)
	}
	return der
}

func TestSignCSR(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	now := e.clk.Now()
	key, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	spiffe, _ := url.Parse("spiffe://edgegate.test/sensor/7")
	der := newCSR(t, key, pkix.Name{CommonName: "sensor-7", Organization: []string{"Acme"}}, []string{"Sensor-7.local"}, []*url.URL{spiffe})
	pemCSR := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der})

	for name, in := range map[string][]byte{"DER": der, "PEM": pemCSR, "PEM with spaces": append([]byte("\n  "), append(pemCSR, "\n\n"...)...)} {
		out, err := e.a.SignCSR(in, IssueRequest{Client: true})
		if err != nil {
			t.Fatalf("%s: SignCSR: %v", name, err)
		}
		if out.Key != nil {
			t.Errorf("%s: a signed CSR came with a key", name)
		}
		c := out.Cert
		if !publicKeysEqual(c.PublicKey, key.Public()) {
			t.Errorf("%s: certificate is not for the CSR's key", name)
		}
		if c.Subject.String() != "CN=sensor-7,O=Acme" || !slices.Equal(c.DNSNames, []string{"sensor-7.local"}) ||
			len(c.URIs) != 1 || c.URIs[0].String() != spiffe.String() {
			t.Errorf("%s: subject %q DNS %q URIs %v, want the CSR's", name, c.Subject, c.DNSNames, c.URIs)
		}
		if err := verifyIssued(out, e.a.Pool(), now, x509.ExtKeyUsageClientAuth); err != nil {
			t.Errorf("%s: verify: %v", name, err)
		}
		if kp, err := out.KeyPEM(); kp != nil || err != nil {
			t.Errorf("%s: KeyPEM = %q, %v; want nothing", name, kp, err)
		}
	}

	// The request overrides subject and hosts.
	out, err := e.a.SignCSR(der, IssueRequest{Server: true, Subject: "CN=override", Hosts: []string{"other.local"}, Validity: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if out.Cert.Subject.String() != "CN=override" || !slices.Equal(out.Cert.DNSNames, []string{"other.local"}) || len(out.Cert.URIs) != 0 {
		t.Errorf("override: subject %q DNS %q URIs %v", out.Cert.Subject, out.Cert.DNSNames, out.Cert.URIs)
	}
	if got := out.Cert.NotAfter.Sub(now); got != time.Hour {
		t.Errorf("validity %v, want 1h", got)
	}

	// A CSR asking for CA:TRUE gets a leaf: only the request decides.
	caCSR, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{
		Subject:         pkix.Name{CommonName: "wannabe"},
		ExtraExtensions: []pkix.Extension{{Id: []int{2, 5, 29, 19}, Critical: true, Value: []byte{0x30, 0x03, 0x01, 0x01, 0xff}}},
	}, key)
	if err != nil {
		t.Fatal(err)
	}
	if out, err := e.a.SignCSR(caCSR, IssueRequest{Client: true}); err != nil || out.Cert.IsCA {
		t.Errorf("CSR asking for CA: %v, IsCA=%v", err, out != nil && out.Cert.IsCA)
	}

	// An RSA and an Ed25519 key are fine too.
	rsaKey, _ := rsa.GenerateKey(rand.Reader, 2048)
	_, edKey, _ := ed25519.GenerateKey(rand.Reader)
	for _, k := range []crypto.Signer{rsaKey, edKey} {
		if _, err := e.a.SignCSR(newCSR(t, k, pkix.Name{CommonName: "k"}, nil, nil), IssueRequest{Client: true}); err != nil {
			t.Errorf("SignCSR with a %T key: %v", k, err)
		}
	}
}

func TestSignCSRRejects(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	good := newCSR(t, key, pkix.Name{CommonName: "s"}, nil, nil)
	tampered := newCSR(t, key, pkix.Name{CommonName: "s"}, nil, nil)
	tampered[len(tampered)-3] ^= 0xff // inside the signature
	withEmail, _ := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{
		Subject: pkix.Name{ExtraNames: []pkix.AttributeTypeAndValue{{Type: []int{1, 2, 840, 113549, 1, 9, 1}, Value: "a@b.c"}}},
	}, key)
	badHost, _ := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{
		Subject: pkix.Name{CommonName: "s"}, DNSNames: []string{"bad_-.x..y"},
	}, key)
	twoPEM := append(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: good}),
		pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: good})...)

	tests := []struct {
		name    string
		csr     []byte
		req     IssueRequest
		wantMsg string
	}{
		{"garbage", []byte("hello"), IssueRequest{Client: true}, "parse CSR"},
		{"bad signature", tampered, IssueRequest{Client: true}, "signature does not verify"},
		{"certificate PEM", pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: e.a.Root().Raw}), IssueRequest{Client: true}, `PEM block is "CERTIFICATE"`},
		{"two CSRs", twoPEM, IssueRequest{Client: true}, "data after the CSR"},
		{"truncated PEM", []byte("-----BEGIN CERTIFICATE REQUEST-----\nMIIB"), IssueRequest{Client: true}, "malformed PEM"},
		{"huge", make([]byte, maxCSRSize+1), IssueRequest{Client: true}, "larger than"},
		{"key type set", good, IssueRequest{Client: true, KeyType: KeyRSA2048}, "key is the CSR's"},
		{"unknown subject attribute", withEmail, IssueRequest{Client: true}, "unknown attribute type"},
		{"bad SAN", badHost, IssueRequest{Client: true}, `"bad_-.x..y"`},
		{"no purpose", good, IssueRequest{}, "CA, Client and/or Server"},
	}
	for _, tt := range tests {
		_, err := e.a.SignCSR(tt.csr, tt.req)
		if !errors.Is(err, ErrInvalidRequest) || !strings.Contains(err.Error(), tt.wantMsg) || !strings.HasPrefix(err.Error(), "ca: sign CSR") {
			t.Errorf("%s: error = %v, want ErrInvalidRequest containing %q", tt.name, err, tt.wantMsg)
		}
	}
}

func FuzzParseCSR(f *testing.F) {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	der := newCSR(f, key, pkix.Name{CommonName: "s", Organization: []string{"o"}}, []string{"s.local"}, nil)
	f.Add(der)
	f.Add(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}))
	f.Add(pem.EncodeToMemory(&pem.Block{Type: "NEW CERTIFICATE REQUEST", Bytes: der[:len(der)/2]}))
	f.Add([]byte("-----BEGIN CERTIFICATE REQUEST-----\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := parseCSR(data)
		if err != nil {
			if !errors.Is(err, ErrInvalidRequest) {
				t.Fatalf("parseCSR error %v does not wrap ErrInvalidRequest", err)
			}
			return
		}
		if r.CheckSignature() != nil {
			t.Fatal("parseCSR returned a CSR whose signature does not verify")
		}
	})
}
