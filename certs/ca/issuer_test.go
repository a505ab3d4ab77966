package ca

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"errors"
	"strings"
	"testing"
	"time"
)

// enterprise is a three-level enterprise PKI: root, policy CA, issuing CA.
type enterprise struct {
	root, policy, issuing *testCA
}

func newEnterprise(t *testing.T, now time.Time) enterprise {
	t.Helper()
	root := makeCA(t, "Enterprise Root", nil, now, &caOpts{maxPathLen: 2})
	policy := makeCA(t, "Enterprise Policy CA", root, now, &caOpts{maxPathLen: 1})
	issuing := makeCA(t, "Enterprise Issuing CA", policy, now, &caOpts{notAfter: now.Add(2 * 365 * 24 * time.Hour)})
	return enterprise{root: root, policy: policy, issuing: issuing}
}

func TestImportIssuer(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	ent := newEnterprise(t, e.clk.Now())
	localRoot, localInter := e.a.Root(), e.a.Intermediate()
	before := mustIssue(t, e.a, IssueRequest{Client: true, Subject: "CN=before"})

	chain := []*x509.Certificate{ent.issuing.cert, ent.policy.cert, ent.root.cert}
	if err := e.a.ImportIssuer(chain, ent.issuing.key); err != nil {
		t.Fatalf("ImportIssuer: %v", err)
	}
	iss := e.a.Issuer()
	if iss.Kind != IssuerImported || !iss.Active || !iss.Cert.Equal(ent.issuing.cert) || !iss.Root.Equal(ent.root.cert) {
		t.Fatalf("Issuer() = %+v, want the imported issuing CA", iss)
	}
	if len(iss.Chain) != 2 || !iss.Chain[0].Equal(ent.issuing.cert) || !iss.Chain[1].Equal(ent.policy.cert) {
		t.Errorf("issuer chain has %d certificates, want issuing and policy CA", len(iss.Chain))
	}
	bundle := bundleCerts(t, e.a)
	if len(bundle) != 2 || !bundle[0].Equal(localRoot) || !bundle[1].Equal(ent.root.cert) {
		t.Errorf("trust bundle = %d certificates, want the local root then the enterprise root", len(bundle))
	}

	now := e.clk.Now()
	leaf := mustIssue(t, e.a, IssueRequest{Server: true, Hosts: []string{"gw.corp.example"}})
	if len(leaf.Chain) != 2 || !leaf.Chain[0].Equal(ent.issuing.cert) {
		t.Fatal("leaf not issued by the imported issuer with its chain")
	}
	if err := verifyIssued(leaf, e.a.Pool(), now, x509.ExtKeyUsageServerAuth); err != nil {
		t.Errorf("leaf of the imported issuer does not verify: %v", err)
	}
	if err := verifyIssued(before, e.a.Pool(), now, x509.ExtKeyUsageClientAuth); err != nil {
		t.Errorf("leaf of the local issuer no longer verifies: %v", err)
	}
	srv, err := e.a.LoadOrIssueServer([]string{"gw.local"})
	if err != nil {
		t.Fatal(err)
	}
	if len(srv.Certificate) != 3 || srv.Leaf.CheckSignatureFrom(ent.issuing.cert) != nil {
		t.Error("listener certificate not from the imported issuer")
	}

	// Revocation works for its leaves, with its own CRL.
	if err := e.a.Revoke(leaf.Cert.SerialNumber, ReasonKeyCompromise, time.Time{}); err != nil {
		t.Fatal(err)
	}
	rl := parseCRL(t, e.a.CRL(), ent.issuing.cert)
	if len(rl.RevokedCertificateEntries) != 1 {
		t.Error("imported issuer's CRL does not list its revoked leaf")
	}
	if !e.a.IsRevoked(ent.issuing.cert, leaf.Cert.SerialNumber) {
		t.Error("IsRevoked false for the imported issuer's revoked leaf")
	}

	// Persisted, key sealed.
	e.reopen(t)
	if got := e.a.Issuer(); got.Kind != IssuerImported || !got.Cert.Equal(ent.issuing.cert) || len(got.Chain) != 2 {
		t.Fatal("imported issuer lost across reopen")
	}

	// Back to the local issuer: the imported one stays for its leaves.
	if err := e.a.UseLocalIssuer(); err != nil {
		t.Fatal(err)
	}
	if got := e.a.Issuer(); got.Kind != IssuerLocal || !got.Cert.Equal(localInter) {
		t.Fatalf("Issuer() after UseLocalIssuer = %v", got.Kind)
	}
	issuers := e.a.Issuers()
	if len(issuers) != 2 || issuers[1].Kind != IssuerImported || issuers[1].Active {
		t.Errorf("Issuers() = %+v, want the local one active and the imported one kept", issuers)
	}
	if err := verifyIssued(leaf, e.a.Pool(), now, x509.ExtKeyUsageServerAuth); err != nil {
		t.Errorf("imported issuer's leaf no longer verifies: %v", err)
	}
	if chain, err := e.a.ChainFor(leaf.Cert); err != nil || len(chain) != 2 {
		t.Errorf("ChainFor(imported leaf) = %d, %v", len(chain), err)
	}
	if err := e.a.UseLocalIssuer(); err != nil {
		t.Errorf("UseLocalIssuer again: %v", err)
	}

	if err := e.a.RemoveImportedIssuer(); err != nil {
		t.Fatal(err)
	}
	if len(e.a.Issuers()) != 1 || len(bundleCerts(t, e.a)) != 1 || len(e.a.RevokedSerials()) != 0 {
		t.Error("RemoveImportedIssuer left its issuer, root or revocations")
	}
	if _, err := e.a.ChainFor(leaf.Cert); !errors.Is(err, ErrUnknownCertificate) {
		t.Errorf("ChainFor after removal: %v", err)
	}
	e.reopen(t)
	if len(e.a.Issuers()) != 1 {
		t.Error("removed imported issuer back after reopen")
	}
}

func TestImportIssuerWithoutRoot(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	ent := newEnterprise(t, e.clk.Now())
	if err := e.a.ImportIssuer([]*x509.Certificate{ent.issuing.cert, ent.policy.cert}, ent.issuing.key); err != nil {
		t.Fatal(err)
	}
	if got := e.a.Issuer(); got.Root != nil || len(got.Chain) != 2 {
		t.Errorf("Issuer() root %v chain %d, want no root and two certificates", got.Root, len(got.Chain))
	}
	if len(bundleCerts(t, e.a)) != 1 {
		t.Error("something joined the trust bundle without a root")
	}
	// Verifies for whoever trusts the enterprise root.
	leaf := mustIssue(t, e.a, IssueRequest{Client: true, Subject: "CN=x"})
	pool := x509.NewCertPool()
	pool.AddCert(ent.root.cert)
	if err := verifyIssued(leaf, pool, e.clk.Now(), x509.ExtKeyUsageClientAuth); err != nil {
		t.Error(err)
	}
}

func TestImportIssuerRejects(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	now := e.clk.Now()
	ent := newEnterprise(t, now)
	otherRoot := makeCA(t, "Other Root", nil, now, &caOpts{maxPathLen: -1})
	notCA := makeCA(t, "leaf", ent.policy, now, &caOpts{notCA: true})
	noCertSign := makeCA(t, "no certSign", ent.policy, now, &caOpts{keyUsage: x509.KeyUsageCRLSign})
	noCRLSign := makeCA(t, "no cRLSign", ent.policy, now, &caOpts{keyUsage: x509.KeyUsageCertSign})
	expired := makeCA(t, "expired", ent.policy, now, &caOpts{notBefore: now.Add(-48 * time.Hour), notAfter: now.Add(-time.Hour)})
	future := makeCA(t, "future", ent.policy, now, &caOpts{notBefore: now.Add(time.Hour)})
	otherKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	// The issuing CA has path length 0: a CA below it verifies, but its
	// leaves would not.
	deep := makeCA(t, "deep", ent.issuing, now, nil)

	tests := []struct {
		name    string
		chain   []*x509.Certificate
		key     crypto.Signer
		want    error
		wantMsg string
	}{
		{"empty", nil, ent.issuing.key, ErrInvalidRequest, "need the CA certificate"},
		{"nil key", []*x509.Certificate{ent.issuing.cert}, nil, ErrInvalidRequest, "need the CA certificate"},
		{"not a CA", []*x509.Certificate{notCA.cert}, notCA.key, ErrNotCA, "not a CA certificate"},
		{"no certSign", []*x509.Certificate{noCertSign.cert}, noCertSign.key, ErrNotCA, "keyCertSign"},
		{"no cRLSign", []*x509.Certificate{noCRLSign.cert}, noCRLSign.key, ErrNotCA, "cRLSign"},
		{"expired", []*x509.Certificate{expired.cert}, expired.key, ErrExpired, "valid from"},
		{"not yet valid", []*x509.Certificate{future.cert}, future.key, ErrExpired, "valid from"},
		{"expired parent", []*x509.Certificate{ent.issuing.cert, expired.cert}, ent.issuing.key, ErrExpired, "expired"},
		{"key mismatch", []*x509.Certificate{ent.issuing.cert}, otherKey, ErrKeyMismatch, "Enterprise Issuing CA"},
		{"wrong parent", []*x509.Certificate{ent.issuing.cert, otherRoot.cert}, ent.issuing.key, ErrChainInvalid, "is not signed by"},
		{"missing link", []*x509.Certificate{ent.issuing.cert, ent.root.cert}, ent.issuing.key, ErrChainInvalid, "is not signed by"},
		{"root not last", []*x509.Certificate{ent.policy.cert, ent.root.cert, ent.root.cert}, ent.policy.key, ErrChainInvalid, "not last"},
		{"path length", []*x509.Certificate{deep.cert, ent.issuing.cert, ent.policy.cert, ent.root.cert}, deep.key, ErrChainInvalid, `"CN=Enterprise Issuing CA,O=Enterprise" allows 0 CA certificates below it`},
		{"path length without root", []*x509.Certificate{deep.cert, ent.issuing.cert}, deep.key, ErrChainInvalid, "allows 0"},
		{"the local CA", []*x509.Certificate{e.a.Intermediate(), e.a.Root()}, e.a.st.Load().inter.key, ErrInvalidRequest, "is the local CA"},
	}
	for _, tt := range tests {
		err := e.a.ImportIssuer(tt.chain, tt.key)
		if !errors.Is(err, tt.want) || !strings.Contains(err.Error(), tt.wantMsg) || !strings.HasPrefix(err.Error(), "ca: import issuer") {
			t.Errorf("%s: error = %v, want %v containing %q", tt.name, err, tt.want, tt.wantMsg)
		}
	}
	if got := e.a.Issuer(); got.Kind != IssuerLocal || len(e.a.Issuers()) != 1 {
		t.Error("a refused import changed the issuer")
	}
}

func TestImportedIssuerExpiry(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	ent := newEnterprise(t, e.clk.Now())
	if err := e.a.ImportIssuer([]*x509.Certificate{ent.issuing.cert, ent.policy.cert, ent.root.cert}, ent.issuing.key); err != nil {
		t.Fatal(err)
	}
	e.clk.Set(renewalTime(ent.issuing.cert).Add(time.Hour))
	if res := e.maintain(t); !res.ImportedIssuerRenewalDue || res.IssuerChanged {
		t.Errorf("Maintain with a third of the imported issuer's life left = %+v", res)
	}
	e.clk.Set(ent.issuing.cert.NotAfter)
	res := e.maintain(t)
	if !res.IssuerChanged || !res.TrustBundleChanged {
		t.Errorf("Maintain at the imported issuer's expiry = %+v, want IssuerChanged and TrustBundleChanged", res)
	}
	if got := e.a.Issuer(); got.Kind != IssuerLocal {
		t.Errorf("issuer after the imported one expired: %v", got.Kind)
	}
	for _, iss := range e.a.Issuers() {
		if iss.Kind == IssuerImported {
			t.Error("expired imported issuer kept")
		}
	}
	if len(bundleCerts(t, e.a)) != 1 {
		t.Error("root of the expired imported issuer kept in the trust bundle")
	}
}
