package ca

import (
	"bytes"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"math/big"
	"strings"
	"sync"
	"testing"
	"time"

	"go.etcd.io/bbolt"
)

func TestRevoke(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	inter := e.a.Intermediate()
	crl0 := parseCRL(t, e.a.CRL(), inter)
	if len(crl0.RevokedCertificateEntries) != 0 || crl0.Number.Sign() <= 0 {
		t.Fatalf("initial CRL: %d entries, number %v", len(crl0.RevokedCertificateEntries), crl0.Number)
	}
	if got := crl0.NextUpdate.Sub(crl0.ThisUpdate); got != DefaultCRLValidity+backdate {
		t.Errorf("CRL validity %v, want %v", got, DefaultCRLValidity+backdate)
	}

	a := mustIssue(t, e.a, IssueRequest{Client: true, Subject: "CN=a"})
	b := mustIssue(t, e.a, IssueRequest{Client: true, Subject: "CN=b"})
	clientPEM, _, err := e.a.IssueClient(ClientRequest{CommonName: "c"})
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(clientPEM)
	c, _ := x509.ParseCertificate(block.Bytes)

	e.advance(time.Hour)
	at := e.clk.Now().Add(-30 * time.Minute)
	if err := e.a.Revoke(a.Cert.SerialNumber, ReasonKeyCompromise, at); err != nil {
		t.Fatalf("Revoke: %v", err)
	}
	if err := e.a.Revoke(c.SerialNumber, ReasonUnspecified, time.Time{}); err != nil { // IssueClient is recorded too
		t.Fatalf("Revoke IssueClient's certificate: %v", err)
	}
	if !e.a.IsRevoked(inter, a.Cert.SerialNumber) || !e.a.IsRevoked(inter, c.SerialNumber) || e.a.IsRevoked(inter, b.Cert.SerialNumber) {
		t.Error("IsRevoked does not match what was revoked")
	}
	if e.a.IsRevoked(e.a.Root(), a.Cert.SerialNumber) {
		t.Error("IsRevoked true for the serial under another issuer")
	}

	crl1 := parseCRL(t, e.a.CRL(), inter)
	if crl1.Number.Cmp(crl0.Number) <= 0 {
		t.Errorf("CRL number %v not above %v", crl1.Number, crl0.Number)
	}
	entries := map[string]x509.RevocationListEntry{}
	for _, en := range crl1.RevokedCertificateEntries {
		entries[en.SerialNumber.String()] = en
	}
	if en, ok := entries[a.Cert.SerialNumber.String()]; !ok || en.ReasonCode != ReasonKeyCompromise || !en.RevocationTime.Equal(at.Truncate(time.Second)) {
		t.Errorf("CRL entry for a = %+v, want keyCompromise at %v", en, at)
	}
	if en, ok := entries[c.SerialNumber.String()]; !ok || en.ReasonCode != 0 || !en.RevocationTime.Equal(e.clk.Now().Truncate(time.Second)) {
		t.Errorf("CRL entry for c = %+v, want unspecified at now", en)
	}
	if len(entries) != 2 {
		t.Errorf("CRL lists %d serials, want 2", len(entries))
	}

	// Idempotent: no new CRL, the first record stays.
	if err := e.a.Revoke(a.Cert.SerialNumber, ReasonSuperseded, time.Time{}); err != nil {
		t.Fatalf("Revoke again: %v", err)
	}
	if err := e.a.RevokeCertificate(a.Cert, ReasonSuperseded, time.Time{}); err != nil {
		t.Fatalf("RevokeCertificate of a revoked certificate: %v", err)
	}
	if again := parseCRL(t, e.a.CRL(), inter); again.Number.Cmp(crl1.Number) != 0 {
		t.Error("revoking again re-signed the CRL")
	}
	revs := e.a.RevokedSerials()
	if len(revs) != 2 || revs[0].Serial.Cmp(a.Cert.SerialNumber) != 0 || revs[0].Reason != ReasonKeyCompromise ||
		revs[0].IssuerID != IssuerID(inter) || !revs[0].NotAfter.Equal(a.Cert.NotAfter) {
		t.Errorf("RevokedSerials = %+v", revs)
	}

	// Persisted: a reopened authority knows, and publishes the same CRL.
	der := e.a.CRL()
	e.reopen(t)
	if !e.a.IsRevoked(inter, a.Cert.SerialNumber) || len(e.a.RevokedSerials()) != 2 {
		t.Error("revocations lost across reopen")
	}
	if !bytes.Equal(e.a.CRL(), der) {
		t.Error("CRL re-signed on reopen although nothing was due")
	}

	// CRLPEM holds the CRL.
	block, rest := pem.Decode(e.a.CRLPEM())
	if block == nil || block.Type != "X509 CRL" || !bytes.Equal(block.Bytes, der) || len(bytes.TrimSpace(rest)) != 0 {
		t.Error("CRLPEM is not the one issuer's CRL")
	}
}

func TestRevokeRejects(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	leaf := mustIssue(t, e.a, IssueRequest{Client: true, Subject: "CN=a"})
	foreignCA := makeCA(t, "foreign", nil, e.clk.Now(), &caOpts{maxPathLen: -1})
	foreign := mustIssue(t, e.a, IssueRequest{Client: true, Subject: "CN=f", Issuer: &Signer{Cert: foreignCA.cert, Key: foreignCA.key}})

	tests := []struct {
		name    string
		revoke  func() error
		want    error
		wantMsg string
	}{
		{"unknown serial", func() error { return e.a.Revoke(big.NewInt(12345), 0, time.Time{}) }, ErrUnknownCertificate, "no record"},
		{"foreign issuer's serial", func() error { return e.a.Revoke(foreign.Cert.SerialNumber, 0, time.Time{}) }, ErrUnknownCertificate, "no record"},
		{"foreign certificate", func() error { return e.a.RevokeCertificate(foreign.Cert, 0, time.Time{}) }, ErrUnknownCertificate, "not signed by any of its issuers"},
		{"zero serial", func() error { return e.a.Revoke(big.NewInt(0), 0, time.Time{}) }, ErrInvalidRequest, "positive"},
		{"nil serial", func() error { return e.a.Revoke(nil, 0, time.Time{}) }, ErrInvalidRequest, "positive"},
		{"nil certificate", func() error { return e.a.RevokeCertificate(nil, 0, time.Time{}) }, ErrInvalidRequest, "nil certificate"},
		{"reason 7", func() error { return e.a.Revoke(leaf.Cert.SerialNumber, 7, time.Time{}) }, ErrInvalidRequest, "reason 7"},
		{"removeFromCRL", func() error { return e.a.Revoke(leaf.Cert.SerialNumber, 8, time.Time{}) }, ErrInvalidRequest, "reason 8"},
		{"future", func() error { return e.a.Revoke(leaf.Cert.SerialNumber, 0, e.clk.Now().Add(time.Hour)) }, ErrInvalidRequest, "in the future"},
	}
	for _, tt := range tests {
		err := tt.revoke()
		if !errors.Is(err, tt.want) || !strings.Contains(err.Error(), tt.wantMsg) || !strings.HasPrefix(err.Error(), "ca: revoke") {
			t.Errorf("%s: error = %v, want %v containing %q", tt.name, err, tt.want, tt.wantMsg)
		}
	}
	if len(e.a.RevokedSerials()) != 0 {
		t.Error("a refused revocation was recorded")
	}
}

func TestCRLRefreshAndPrune(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(o *Options) { o.CRLValidity = 24 * time.Hour })
	inter := e.a.Intermediate()
	leaf := mustIssue(t, e.a, IssueRequest{Client: true, Subject: "CN=short", Validity: 48 * time.Hour})
	if err := e.a.Revoke(leaf.Cert.SerialNumber, ReasonCessationOfOperation, time.Time{}); err != nil {
		t.Fatal(err)
	}
	first := parseCRL(t, e.a.CRL(), inter)

	// Before half the validity: nothing to do, nothing written.
	e.advance(11 * time.Hour)
	res := e.maintain(t)
	if res.CRLsChanged || !bytes.Equal(e.a.CRL(), first.Raw) {
		t.Fatal("CRL re-signed before half its validity")
	}
	if !res.NextMaintenance.After(e.clk.Now()) || res.NextMaintenance.After(first.NextUpdate) {
		t.Errorf("NextMaintenance %v, want between now %v and the CRL's NextUpdate %v", res.NextMaintenance, e.clk.Now(), first.NextUpdate)
	}
	// Past half: re-signed with a higher number, same entries.
	e.clk.Set(res.NextMaintenance)
	res = e.maintain(t)
	second := parseCRL(t, e.a.CRL(), inter)
	if !res.CRLsChanged || second.Number.Cmp(first.Number) <= 0 || len(second.RevokedCertificateEntries) != 1 {
		t.Fatalf("CRL not refreshed past half its validity: changed=%v number %v→%v", res.CRLsChanged, first.Number, second.Number)
	}
	if !second.ThisUpdate.After(first.ThisUpdate) {
		t.Error("refreshed CRL has the old ThisUpdate")
	}

	// The revoked leaf expires; the entry stays for one more CRL period,
	// then leaves the CRL and the store.
	e.clk.Set(leaf.Cert.NotAfter.Add(time.Hour))
	e.maintain(t)
	if !e.a.IsRevoked(inter, leaf.Cert.SerialNumber) {
		t.Fatal("revocation dropped right after expiry")
	}
	e.clk.Set(leaf.Cert.NotAfter.Add(24*time.Hour + time.Minute))
	res = e.maintain(t)
	if e.a.IsRevoked(inter, leaf.Cert.SerialNumber) || len(e.a.RevokedSerials()) != 0 {
		t.Fatal("revocation of a long expired certificate kept")
	}
	if last := parseCRL(t, e.a.CRL(), inter); len(last.RevokedCertificateEntries) != 0 || !res.CRLsChanged {
		t.Error("pruned entry still on the CRL")
	}
	// Its issuance record went too.
	err := e.db.View(func(tx *bbolt.Tx) error {
		_, found, err := getIssued(tx.Bucket(bucketCA), leaf.Cert.SerialNumber)
		if found {
			t.Error("issuance record of a long expired certificate kept")
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	e.reopen(t)
	if len(e.a.RevokedSerials()) != 0 {
		t.Error("pruned revocation back after reopen")
	}
}

func TestRevokeConcurrentWithIssue(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	const n = 8
	var wg sync.WaitGroup
	issued := make(chan *Issued, n)
	for range n {
		wg.Go(func() {
			out, err := e.a.Issue(IssueRequest{Client: true, Subject: "CN=c"})
			if err != nil {
				t.Error(err)
				return
			}
			issued <- out
			if err := e.a.Revoke(out.Cert.SerialNumber, ReasonSuperseded, time.Time{}); err != nil {
				t.Error(err)
			}
			_ = e.a.CRLPEM()
			_, _ = e.a.Maintain()
		})
	}
	wg.Wait()
	close(issued)
	crl := parseCRL(t, e.a.CRL(), e.a.Intermediate())
	if len(crl.RevokedCertificateEntries) != n {
		t.Errorf("CRL lists %d serials, want %d", len(crl.RevokedCertificateEntries), n)
	}
	for out := range issued {
		if !e.a.IsRevoked(e.a.Intermediate(), out.Cert.SerialNumber) {
			t.Errorf("serial %x not revoked", out.Cert.SerialNumber)
		}
	}
}
