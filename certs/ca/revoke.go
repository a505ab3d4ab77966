package ca

import (
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"maps"
	"math/big"
	"slices"
	"strings"
	"time"

	"go.etcd.io/bbolt"
)

// Revocation reasons (RFC 5280, section 5.3.1) accepted by Revoke. 7 is
// unused and removeFromCRL (8) belongs to delta CRLs, which the authority
// does not publish. There is no un-revoking: certificateHold is final too.
const (
	ReasonUnspecified          = 0
	ReasonKeyCompromise        = 1
	ReasonCACompromise         = 2
	ReasonAffiliationChanged   = 3
	ReasonSuperseded           = 4
	ReasonCessationOfOperation = 5
	ReasonCertificateHold      = 6
	ReasonPrivilegeWithdrawn   = 9
	ReasonAACompromise         = 10
)

// Revocation is a revoked certificate.
type Revocation struct {
	// IssuerID is the IssuerID of the CA that issued the certificate.
	IssuerID string
	Serial   *big.Int
	// Reason is one of the Reason constants.
	Reason int
	// RevokedAt is the revocation date the CRL carries (whole seconds).
	RevokedAt time.Time
	// NotAfter is the certificate's expiry when known. The entry leaves the
	// CRL (and the store) one CRL validity after it, once a CRL issued past
	// the expiry has carried it (RFC 5280, section 3.3).
	NotAfter time.Time
}

func checkReason(reason int) error {
	switch reason {
	case ReasonUnspecified, ReasonKeyCompromise, ReasonCACompromise, ReasonAffiliationChanged,
		ReasonSuperseded, ReasonCessationOfOperation, ReasonCertificateHold,
		ReasonPrivilegeWithdrawn, ReasonAACompromise:
		return nil
	}
	return fmt.Errorf("%w: revocation reason %d (want 0-6, 9 or 10, RFC 5280 CRLReason)", ErrInvalidRequest, reason)
}

// Revoke revokes the certificate with serial, found in the authority's
// record of what its issuers signed (anything issued by this package with the
// active issuer). reason is a Reason constant; at is the revocation date
// (zero means now; not in the future). The revocation is stored and the
// issuer's CRL re-signed in one transaction. Revoking a revoked serial again
// changes nothing and is not an error. A serial with no record (a
// certificate issued before records were kept) wraps
// ErrUnknownCertificate: use RevokeCertificate with the certificate.
func (a *Authority) Revoke(serial *big.Int, reason int, at time.Time) error {
	if serial == nil || serial.Sign() <= 0 {
		return fmt.Errorf("ca: revoke: %w: serial must be positive", ErrInvalidRequest)
	}
	var (
		rec   issuedRecord
		found bool
	)
	err := a.db.View(func(tx *bbolt.Tx) error {
		b := tx.Bucket(bucketCA)
		if b == nil {
			return nil
		}
		var err error
		rec, found, err = getIssued(b, serial)
		return err
	})
	if err != nil {
		return fmt.Errorf("ca: revoke %s: %w", serial.Text(16), err)
	}
	if !found {
		return fmt.Errorf("ca: revoke %s: %w: no record of this serial", serial.Text(16), ErrUnknownCertificate)
	}
	if err := a.revoke(rec.Issuer, serial, rec.NotAfter, reason, at); err != nil {
		return fmt.Errorf("ca: revoke %s: %w", serial.Text(16), err)
	}
	return nil
}

// RevokeCertificate revokes cert, which one of the authority's issuers
// (current or previous local intermediate, imported issuer) must have
// signed; otherwise the error wraps ErrUnknownCertificate. Otherwise it is
// Revoke.
func (a *Authority) RevokeCertificate(cert *x509.Certificate, reason int, at time.Time) error {
	if cert == nil {
		return fmt.Errorf("ca: revoke: %w: nil certificate", ErrInvalidRequest)
	}
	iss, ok := a.st.Load().issuerOf(cert)
	if !ok {
		return fmt.Errorf("ca: revoke %s: %w: %q is not signed by any of its issuers",
			serialHex(cert), ErrUnknownCertificate, cert.Subject)
	}
	if err := a.revoke(iss.id, cert.SerialNumber, cert.NotAfter, reason, at); err != nil {
		return fmt.Errorf("ca: revoke %s: %w", serialHex(cert), err)
	}
	return nil
}

func (a *Authority) revoke(issuerID string, serial *big.Int, notAfter time.Time, reason int, at time.Time) error {
	if err := checkReason(reason); err != nil {
		return err
	}
	now := a.now()
	switch {
	case at.IsZero():
		at = now
	case at.After(now.Add(time.Minute)):
		return fmt.Errorf("%w: revocation date %s is in the future", ErrInvalidRequest, at.UTC().Format(time.RFC3339))
	}
	at = at.UTC().Truncate(time.Second)

	a.opMu.Lock()
	defer a.opMu.Unlock()
	prev := a.st.Load()
	iss, ok := prev.issuerByID(issuerID)
	if !ok {
		return fmt.Errorf("%w: its issuer %s is no longer kept", ErrUnknownCertificate, issuerID)
	}
	key := serial.Text(16)
	if l := prev.revoked[issuerID]; l != nil {
		if _, done := l.entries[key]; done {
			return nil
		}
	}
	next := prev.clone()
	list := &revList{entries: map[string]Revocation{}}
	if l := prev.revoked[issuerID]; l != nil {
		list.entries = maps.Clone(l.entries)
	}
	list.entries[key] = Revocation{
		IssuerID: issuerID, Serial: new(big.Int).Set(serial), Reason: reason, RevokedAt: at, NotAfter: notAfter.UTC(),
	}
	next.revoked[issuerID] = list
	crl, err := a.signCRL(iss, list, prev.crls[issuerID], now)
	if err != nil {
		return err
	}
	next.crls[issuerID] = crl
	if err := a.commit(prev, next, nil); err != nil {
		return err
	}
	a.log.Info("revoked certificate", "serial", key, "issuer_id", issuerID, "reason", reason,
		"revoked_at", at, "crl_number", crl.number.String())
	return nil
}

// IsRevoked reports whether the certificate with serial, issued by issuer,
// is revoked. It reads memory only, for callers that check every handshake
// or live session.
func (a *Authority) IsRevoked(issuer *x509.Certificate, serial *big.Int) bool {
	if issuer == nil || serial == nil {
		return false
	}
	l := a.st.Load().revoked[IssuerID(issuer)]
	if l == nil {
		return false
	}
	_, ok := l.entries[serial.Text(16)]
	return ok
}

// RevokedSerials returns every revocation still listed on a CRL, by issuer
// ID and then revocation date.
func (a *Authority) RevokedSerials() []Revocation {
	var out []Revocation
	for _, l := range a.st.Load().revoked {
		for _, r := range l.entries {
			r.Serial = new(big.Int).Set(r.Serial)
			out = append(out, r)
		}
	}
	slices.SortFunc(out, func(x, y Revocation) int {
		if c := strings.Compare(x.IssuerID, y.IssuerID); c != 0 {
			return c
		}
		if c := x.RevokedAt.Compare(y.RevokedAt); c != 0 {
			return c
		}
		return x.Serial.Cmp(y.Serial)
	})
	return out
}

// CRL returns the DER CRL of the active issuer (see Issuer).
func (a *Authority) CRL() []byte {
	st := a.st.Load()
	if c := st.crls[st.active().id]; c != nil {
		return slices.Clone(c.der)
	}
	return nil
}

// CRLPEM returns the CRLs of all issuers ("X509 CRL" blocks), the active
// issuer's first: what GET /pki/crl serves and what a peer loads to check
// every certificate the gateway's issuers signed.
func (a *Authority) CRLPEM() []byte {
	st := a.st.Load()
	var out []byte
	for _, iss := range st.issuers() {
		if c := st.crls[iss.id]; c != nil {
			out = append(out, pem.EncodeToMemory(&pem.Block{Type: "X509 CRL", Bytes: c.der})...)
		}
	}
	return out
}

// CRLByIssuerID returns the DER CRL of the issuer with IssuerID id, for
// the CRL distribution points of Options.AIABaseURLs.
func (a *Authority) CRLByIssuerID(id string) ([]byte, bool) {
	if c := a.st.Load().crls[id]; c != nil {
		return slices.Clone(c.der), true
	}
	return nil, false
}

// signCRL signs a new CRL for iss listing list, numbered one above prev.
func (a *Authority) signCRL(iss issuer, list *revList, prev *crlState, now time.Time) (*crlState, error) {
	number := big.NewInt(1)
	if prev != nil {
		number.Add(prev.number, number)
	}
	var entries []x509.RevocationListEntry
	if list != nil {
		for _, r := range list.entries {
			entries = append(entries, x509.RevocationListEntry{
				SerialNumber: r.Serial, RevocationTime: r.RevokedAt, ReasonCode: r.Reason,
			})
		}
	}
	slices.SortFunc(entries, func(x, y x509.RevocationListEntry) int { return x.SerialNumber.Cmp(y.SerialNumber) })
	sigAlg, err := signatureAlgorithmFor(iss.key.Public(), 0)
	if err != nil {
		return nil, err
	}
	tmpl := &x509.RevocationList{
		SignatureAlgorithm:        sigAlg,
		RevokedCertificateEntries: entries,
		Number:                    number,
		ThisUpdate:                now.Add(-backdate).UTC().Truncate(time.Second),
		NextUpdate:                now.Add(a.crlValidity).UTC().Truncate(time.Second),
	}
	der, err := x509.CreateRevocationList(rand.Reader, tmpl, iss.cert, iss.key)
	if err != nil {
		return nil, fmt.Errorf("sign CRL of %q: %w", iss.cert.Subject, err)
	}
	return &crlState{der: der, number: number, thisUpdate: tmpl.ThisUpdate, nextUpdate: tmpl.NextUpdate}, nil
}

// crlRefreshTime is when an issuer's CRL is re-signed: half its validity
// before NextUpdate.
func (a *Authority) crlRefreshTime(c *crlState) time.Time {
	return c.nextUpdate.Add(-a.crlValidity / 2)
}
