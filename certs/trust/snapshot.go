package trust

import (
	"bytes"
	"crypto/x509"
	"fmt"
	"log/slog"
	"time"
)

// Snapshot is the applied content of both lists, parsed, as the TLS
// configuration uses it. It is shared, never changed once published: callers
// must not modify its slices or certificates.
type Snapshot struct {
	Version uint64
	Anchors []*x509.Certificate // trust list
	Issuers []*x509.Certificate // issuer-list entries, each chaining to an anchor
	CRLs    []*x509.RevocationList

	// crlIssuers[i] is the entry certificate that signed CRLs[i]; nil for a
	// Snapshot built by hand, when CheckRevocation falls back to the chain.
	crlIssuers []*x509.Certificate
}

// AnchorPool returns a new pool of the anchors, for RootCAs or ClientCAs.
func (s Snapshot) AnchorPool() *x509.CertPool {
	p := x509.NewCertPool()
	for _, c := range s.Anchors {
		p.AddCert(c)
	}
	return p
}

// IssuerPool returns a new pool of the issuers, for VerifyOptions.Intermediates.
func (s Snapshot) IssuerPool() *x509.CertPool {
	p := x509.NewCertPool()
	for _, c := range s.Issuers {
		p.AddCert(c)
	}
	return p
}

// CheckRevocation returns an error wrapping ErrRevoked, naming the serial,
// when a certificate of chain (leaf first) is on a CRL of its issuer: the
// next certificate of the chain, or an entry certificate with the same
// subject and key as the one that signed it. A CRL whose next update has
// passed still counts: what it revoked stays revoked. Revocations dated
// after now do not count yet.
func (s Snapshot) CheckRevocation(chain []*x509.Certificate, now time.Time) error {
	for i, c := range chain {
		var parent *x509.Certificate
		if i+1 < len(chain) {
			parent = chain[i+1]
		}
		for j, crl := range s.CRLs {
			if !bytes.Equal(crl.RawIssuer, c.RawIssuer) || !s.crlCovers(j, c, parent) {
				continue
			}
			for _, r := range crl.RevokedCertificateEntries {
				if r.SerialNumber == nil || r.SerialNumber.Cmp(c.SerialNumber) != 0 {
					continue
				}
				if !r.RevocationTime.IsZero() && r.RevocationTime.After(now) {
					continue
				}
				return fmt.Errorf("%w: certificate serial %s (%s) revoked on %s by %s",
					ErrRevoked, c.SerialNumber.Text(16), c.Subject, r.RevocationTime.UTC().Format(time.RFC3339), crl.Issuer)
			}
		}
	}
	return nil
}

// crlCovers reports whether CRL j was issued by the key that signed c:
// parent's key, or (without parent) the key that verifies c's signature.
func (s Snapshot) crlCovers(j int, c, parent *x509.Certificate) bool {
	if j < len(s.crlIssuers) && s.crlIssuers[j] != nil {
		issuer := s.crlIssuers[j]
		if parent != nil {
			return bytes.Equal(issuer.RawSubjectPublicKeyInfo, parent.RawSubjectPublicKeyInfo)
		}
		return c.CheckSignatureFrom(issuer) == nil
	}
	return parent != nil && s.CRLs[j].CheckSignatureFrom(parent) == nil
}

// buildSnapshot parses v's entries. Entries were validated when v was
// applied; one that no longer parses (a damaged store) is left out and
// logged rather than costing the gateway all its trust.
func buildSnapshot(v Version, log *slog.Logger) *Snapshot {
	s := &Snapshot{Version: v.Number}
	for _, e := range v.Entries {
		c, err := e.Certificate()
		if err != nil {
			log.Error("trust: stored entry left out of the live pools", "version", v.Number, "list", e.List, "name", e.Name, "error", err)
			continue
		}
		switch e.List {
		case TrustList:
			s.Anchors = append(s.Anchors, c)
		case IssuerList:
			s.Issuers = append(s.Issuers, c)
		}
		crl, err := e.revocationList()
		if err != nil {
			log.Error("trust: stored CRL left out of the live pools", "version", v.Number, "list", e.List, "name", e.Name, "error", err)
			continue
		}
		if crl != nil {
			s.CRLs = append(s.CRLs, crl)
			s.crlIssuers = append(s.crlIssuers, c)
		}
	}
	return s
}
