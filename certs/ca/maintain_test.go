package ca

import (
	"bytes"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"testing"
	"time"
)

// bundleCerts parses TrustBundlePEM.
func bundleCerts(t *testing.T, a *Authority) []*x509.Certificate {
	t.Helper()
	var out []*x509.Certificate
	rest := a.TrustBundlePEM()
	for {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			break
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, c)
	}
	return out
}

func TestMaintainRotatesIntermediateWithOverlap(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	first := e.a.Intermediate()
	oldLeaf := mustIssue(t, e.a, IssueRequest{Client: true, Subject: "CN=old", Validity: IntermediateValidity})
	if err := e.a.Revoke(oldLeaf.Cert.SerialNumber, ReasonSuperseded, time.Time{}); err != nil {
		t.Fatal(err)
	}
	keep := mustIssue(t, e.a, IssueRequest{Client: true, Subject: "CN=keep", Validity: IntermediateValidity})

	// Nothing due yet.
	if res := e.maintain(t); res.IssuerChanged || res.TrustBundleChanged || res.CRLsChanged {
		t.Fatalf("fresh CA: Maintain = %+v, want nothing done", res)
	}
	e.clk.Set(renewalTime(first).Add(-time.Minute))
	if res := e.maintain(t); res.IssuerChanged {
		t.Fatal("intermediate rotated before a third of its life was left")
	}
	e.clk.Set(renewalTime(first).Add(time.Minute))
	res := e.maintain(t)
	if !res.IssuerChanged || res.TrustBundleChanged || !res.CRLsChanged {
		t.Fatalf("Maintain = %+v, want IssuerChanged and CRLsChanged only", res)
	}
	second := e.a.Intermediate()
	if second.Equal(first) || second.CheckSignatureFrom(e.a.Root()) != nil {
		t.Fatal("intermediate not replaced by one from the root")
	}
	if got := e.a.Issuer(); !got.Cert.Equal(second) || got.Kind != IssuerLocal || !got.Active {
		t.Errorf("Issuer() = %s %v, want the new local intermediate", got.Cert.Subject, got.Kind)
	}
	issuers := e.a.Issuers()
	if len(issuers) != 2 || issuers[1].Kind != IssuerLocalPrevious || !issuers[1].Cert.Equal(first) || issuers[1].Active {
		t.Fatalf("Issuers() = %+v, want the new intermediate then the previous one", issuers)
	}

	// Leaves of the previous intermediate still verify, with their chain.
	now := e.clk.Now()
	chain, err := e.a.ChainFor(keep.Cert)
	if err != nil || len(chain) != 1 || !chain[0].Equal(first) {
		t.Fatalf("ChainFor(old leaf) = %v, %v; want the previous intermediate", chain, err)
	}
	if err := verifyIssued(&Issued{Cert: keep.Cert, Chain: chain}, e.a.Pool(), now, x509.ExtKeyUsageClientAuth); err != nil {
		t.Errorf("leaf of the previous intermediate does not verify: %v", err)
	}
	// It is still revocable, its revocations stay, and it has its own CRL.
	if !e.a.IsRevoked(first, oldLeaf.Cert.SerialNumber) {
		t.Error("revocation under the previous intermediate lost")
	}
	if err := e.a.RevokeCertificate(keep.Cert, ReasonAffiliationChanged, time.Time{}); err != nil {
		t.Fatalf("revoke a leaf of the previous intermediate: %v", err)
	}
	prevCRL, ok := e.a.CRLByIssuerID(IssuerID(first))
	if !ok {
		t.Fatal("no CRL for the previous intermediate")
	}
	if rl := parseCRL(t, prevCRL, first); len(rl.RevokedCertificateEntries) != 2 {
		t.Errorf("previous intermediate's CRL lists %d serials, want 2", len(rl.RevokedCertificateEntries))
	}
	if rl := parseCRL(t, e.a.CRL(), second); len(rl.RevokedCertificateEntries) != 0 {
		t.Error("the new intermediate's CRL lists the old one's serials")
	}
	if n := bytes.Count(e.a.CRLPEM(), []byte("BEGIN X509 CRL")); n != 2 {
		t.Errorf("CRLPEM holds %d CRLs, want 2", n)
	}
	// New leaves come from the new intermediate.
	if fresh := mustIssue(t, e.a, IssueRequest{Client: true, Subject: "CN=new"}); !fresh.Chain[0].Equal(second) {
		t.Error("new leaf not issued by the new intermediate")
	}

	// Survives a restart.
	e.reopen(t)
	if got := e.a.Issuers(); len(got) != 2 || !got[1].Cert.Equal(first) {
		t.Fatal("previous intermediate lost across reopen")
	}

	// When the previous intermediate expires it goes, with its CRL and
	// revocations.
	e.clk.Set(first.NotAfter)
	res = e.maintain(t)
	if res.IssuerChanged || !res.CRLsChanged {
		t.Errorf("Maintain at the previous intermediate's expiry = %+v", res)
	}
	if got := e.a.Issuers(); len(got) != 1 {
		t.Errorf("Issuers() after expiry holds %d, want 1", len(got))
	}
	if _, ok := e.a.CRLByIssuerID(IssuerID(first)); ok {
		t.Error("CRL of the expired previous intermediate kept")
	}
	if len(e.a.RevokedSerials()) != 0 {
		t.Error("revocations of the expired previous intermediate kept")
	}
}

func TestMaintainNextMaintenance(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(o *Options) { o.CRLValidity = 60 * 24 * time.Hour })
	// Walk a gateway's life by jumping from one NextMaintenance to the
	// next: every step makes progress, and the intermediate never expires.
	inter := e.a.Intermediate()
	rotations := 0
	for range 200 {
		res := e.maintain(t)
		if !res.NextMaintenance.After(e.clk.Now()) {
			t.Fatalf("NextMaintenance %v not after now %v", res.NextMaintenance, e.clk.Now())
		}
		if res.IssuerChanged {
			rotations++
		}
		if !e.clk.Now().Before(e.a.Intermediate().NotAfter) {
			t.Fatalf("intermediate expired at %v", e.clk.Now())
		}
		e.clk.Set(res.NextMaintenance)
		if e.clk.Now().Sub(inter.NotBefore) > 5*365*24*time.Hour {
			break
		}
	}
	if rotations < 2 {
		t.Errorf("%d intermediate rotations in five years, want at least 2", rotations)
	}
}

func TestRotateRoot(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(o *Options) { o.RootOverlap = 30 * 24 * time.Hour })
	oldRoot, oldInter := e.a.Root(), e.a.Intermediate()
	oldFP := e.a.RootFingerprint()
	oldLeaf := mustIssue(t, e.a, IssueRequest{Client: true, Subject: "CN=old"})

	e.advance(24 * time.Hour)
	if err := e.a.RotateRoot(KeyECDSAP384); err != nil {
		t.Fatalf("RotateRoot: %v", err)
	}
	newRoot, newInter := e.a.Root(), e.a.Intermediate()
	if newRoot.Equal(oldRoot) || newInter.Equal(oldInter) || e.a.RootFingerprint() == oldFP {
		t.Fatal("root or intermediate not replaced")
	}
	if newRoot.PublicKeyAlgorithm != x509.ECDSA || newRoot.SignatureAlgorithm != x509.ECDSAWithSHA384 {
		t.Errorf("new root key %v signature %v, want P-384", newRoot.PublicKeyAlgorithm, newRoot.SignatureAlgorithm)
	}
	if err := newInter.CheckSignatureFrom(newRoot); err != nil {
		t.Errorf("new intermediate not from the new root: %v", err)
	}
	bundle := bundleCerts(t, e.a)
	if len(bundle) != 2 || !bundle[0].Equal(newRoot) || !bundle[1].Equal(oldRoot) {
		t.Fatalf("trust bundle = %d certificates, want the new root then the old", len(bundle))
	}
	now := e.clk.Now()
	if err := verifyIssued(oldLeaf, e.a.Pool(), now, x509.ExtKeyUsageClientAuth); err != nil {
		t.Errorf("leaf under the old root does not verify during the overlap: %v", err)
	}
	newLeaf := mustIssue(t, e.a, IssueRequest{Client: true, Subject: "CN=new"})
	if err := verifyIssued(newLeaf, e.a.Pool(), now, x509.ExtKeyUsageClientAuth); err != nil {
		t.Errorf("leaf under the new root does not verify: %v", err)
	}
	if iss := e.a.Issuers(); len(iss) != 2 || !iss[1].Root.Equal(oldRoot) || !iss[0].Root.Equal(newRoot) {
		t.Error("issuers do not name their roots")
	}
	if err := e.a.RotateRoot(""); !errors.Is(err, ErrRotationInProgress) {
		t.Errorf("second RotateRoot during the overlap: %v, want ErrRotationInProgress", err)
	}

	// Across a restart, still overlapping.
	e.reopen(t)
	if len(bundleCerts(t, e.a)) != 2 {
		t.Fatal("previous root lost across reopen")
	}

	// Just before the overlap ends, kept; then Maintain drops the old root
	// and the intermediate it signed.
	e.clk.Set(now.Add(30*24*time.Hour - time.Minute))
	if res := e.maintain(t); res.TrustBundleChanged {
		t.Fatal("old root dropped before the overlap ended")
	}
	e.clk.Set(now.Add(30 * 24 * time.Hour))
	res := e.maintain(t)
	if !res.TrustBundleChanged || res.IssuerChanged {
		t.Errorf("Maintain at the overlap's end = %+v, want TrustBundleChanged", res)
	}
	if bundle := bundleCerts(t, e.a); len(bundle) != 1 || !bundle[0].Equal(newRoot) {
		t.Error("old root still in the bundle after the overlap")
	}
	if len(e.a.Issuers()) != 1 {
		t.Error("old intermediate kept after its root left")
	}
	if err := verifyIssued(oldLeaf, e.a.Pool(), e.clk.Now(), x509.ExtKeyUsageClientAuth); err == nil {
		t.Error("leaf under the old root still verifies after the overlap")
	}
	if err := e.a.RotateRoot(""); err != nil {
		t.Errorf("RotateRoot after the overlap: %v", err)
	}
	if e.a.Root().PublicKeyAlgorithm != x509.ECDSA || e.a.Root().SignatureAlgorithm != x509.ECDSAWithSHA384 {
		t.Error("RotateRoot(\"\") did not keep the current key type")
	}
}

func TestFinishRootRotation(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	if err := e.a.FinishRootRotation(); err != nil {
		t.Fatalf("FinishRootRotation without a rotation: %v", err)
	}
	oldInter := e.a.Intermediate()
	if err := e.a.RotateRoot(""); err != nil {
		t.Fatal(err)
	}
	if _, ok := e.a.CRLByIssuerID(IssuerID(oldInter)); !ok {
		t.Fatal("old intermediate has no CRL during the overlap")
	}
	if err := e.a.FinishRootRotation(); err != nil {
		t.Fatal(err)
	}
	if len(bundleCerts(t, e.a)) != 1 || len(e.a.Issuers()) != 1 {
		t.Error("FinishRootRotation left the old root or intermediate")
	}
	if _, ok := e.a.CRLByIssuerID(IssuerID(oldInter)); ok {
		t.Error("CRL of the old intermediate kept")
	}
	e.reopen(t)
	if len(bundleCerts(t, e.a)) != 1 {
		t.Error("old root back after reopen")
	}
}

func TestMaintainReplacesExpiredRoot(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	root := e.a.Root()
	e.clk.Set(renewalTime(root).Add(time.Hour))
	res := e.maintain(t)
	if !res.RootRenewalDue {
		t.Error("RootRenewalDue not reported with a third of the root's life left")
	}
	if !e.a.Root().Equal(root) {
		t.Fatal("root replaced before it expired")
	}
	// Near the root's end, a new intermediate is capped at the root's
	// expiry; replacing it again would gain nothing, so it stays until the
	// root is replaced.
	e.clk.Set(root.NotAfter.Add(-200 * 24 * time.Hour))
	e.maintain(t)
	inter := e.a.Intermediate()
	if !inter.NotAfter.Equal(root.NotAfter) {
		t.Fatalf("intermediate ends %v, want with the root %v", inter.NotAfter, root.NotAfter)
	}
	e.clk.Set(root.NotAfter.Add(-time.Hour))
	if res := e.maintain(t); res.IssuerChanged || !e.a.Intermediate().Equal(inter) {
		t.Error("intermediate capped at the root's expiry replaced before the root")
	}

	e.clk.Set(root.NotAfter)
	res = e.maintain(t)
	if !res.TrustBundleChanged || !res.IssuerChanged || e.a.Root().Equal(root) {
		t.Fatalf("expired root not replaced: %+v", res)
	}
	if len(bundleCerts(t, e.a)) != 1 || len(e.a.Issuers()) != 1 {
		t.Error("expired root or its intermediate kept")
	}
	if e.a.Intermediate().CheckSignatureFrom(e.a.Root()) != nil {
		t.Error("new intermediate not from the new root")
	}
}

func TestMaintainClockBehind(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	inter := e.a.Intermediate()
	// A gateway without a real-time clock boots in 1970.
	e.clk.Set(time.Date(1970, 1, 1, 0, 0, 0, 0, time.UTC))
	e.maintain(t)
	if !e.a.Intermediate().Equal(inter) {
		t.Fatal("intermediate replaced by one made with a clock in 1970")
	}
	e.reopen(t)
	if !e.a.Intermediate().Equal(inter) {
		t.Fatal("intermediate replaced by Open with a clock in 1970")
	}
}
