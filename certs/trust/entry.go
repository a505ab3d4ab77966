// Package trust keeps the gateway's trust list (CA certificates the broker
// accepts client certificates from, and the gateway trusts as servers) and
// issuer list (intermediate certificates, optionally with their CRLs, used to
// build chains and check revocation for clients whose issuer is not itself a
// trust anchor).
//
// Every change — a vault sync, a local upload, a delete — first lands as a
// staged version that can be inspected (diff, details, rejected entries with
// reasons) before it is applied. Apply switches the live pools atomically:
// one bbolt transaction moves the applied pointer, and only after it commits
// does the in-memory snapshot change and Options.OnApply run. Applied versions
// are kept, with a bounded history, and Rollback returns to the previous one.
package trust

import (
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"strings"
	"time"
)

// ListName names one of the two lists.
type ListName string

const (
	// TrustList holds trust anchors: CA certificates whose client
	// certificates the broker accepts and which the gateway trusts as
	// servers.
	TrustList ListName = "trust"
	// IssuerList holds issuer certificates that chain to an anchor of the
	// trust list, optionally with their CRLs.
	IssuerList ListName = "issuer"
)

// ParseListName returns the list named s ("trust" or "issuer").
func ParseListName(s string) (ListName, error) {
	switch l := ListName(strings.ToLower(strings.TrimSpace(s))); l {
	case TrustList, IssuerList:
		return l, nil
	}
	return "", fmt.Errorf("%w: unknown list %q (want %q or %q)", ErrInvalid, s, TrustList, IssuerList)
}

// rank orders the lists: trust anchors first, as issuers depend on them.
func (l ListName) rank() int {
	if l == TrustList {
		return 0
	}
	return 1
}

// SourceKind says which way an entry came in.
type SourceKind string

const (
	// SourceVault marks an entry synced from (or published to) the vault.
	SourceVault SourceKind = "vault"
	// SourceUpload marks an entry uploaded locally and not (yet) in the vault.
	SourceUpload SourceKind = "upload"
)

// Source says where an entry came from.
type Source struct {
	Kind SourceKind `json:"kind"`
	// Name is the vault secret name within its list, or the upload's name.
	Name string `json:"name,omitempty"`
	// Version is the vault secret's version (vault entries only).
	Version int `json:"version,omitempty"`
}

// Entry is one certificate of a list, with the facts shown before apply.
// The facts (ID to SelfSigned, HasCRL, CRLNextUpdate) are derived from DER
// and CRL; Validate recomputes them.
type Entry struct {
	ID            string    `json:"id"` // first 16 hex chars of the SHA-256 fingerprint
	List          ListName  `json:"list"`
	Name          string    `json:"name"` // vault secret name, upload name, or the subject CN
	Source        Source    `json:"source"`
	Fingerprint   string    `json:"fingerprint"` // SHA-256 of DER, lowercase hex
	Subject       string    `json:"subject"`
	Issuer        string    `json:"issuer"`
	Serial        string    `json:"serial"` // lowercase hex
	NotBefore     time.Time `json:"notBefore"`
	NotAfter      time.Time `json:"notAfter"`
	IsCA          bool      `json:"isCA"`
	MaxPathLen    int       `json:"maxPathLen"` // -1 when unlimited
	SelfSigned    bool      `json:"selfSigned"`
	HasCRL        bool      `json:"hasCRL"`
	CRLNextUpdate time.Time `json:"crlNextUpdate,omitzero"`
	AddedAt       time.Time `json:"addedAt"`
	AddedBy       string    `json:"addedBy"`
	DER           []byte    `json:"der"`
	CRL           []byte    `json:"crl,omitempty"` // DER CRL issued by this certificate
}

// Certificate parses the entry's certificate.
func (e Entry) Certificate() (*x509.Certificate, error) {
	c, err := x509.ParseCertificate(e.DER)
	if err != nil {
		return nil, fmt.Errorf("trust: %s entry %q: parse certificate: %w", e.List, e.Name, err)
	}
	return c, nil
}

// revocationList parses the entry's CRL; nil when it has none.
func (e Entry) revocationList() (*x509.RevocationList, error) {
	if len(e.CRL) == 0 {
		return nil, nil
	}
	crl, err := x509.ParseRevocationList(e.CRL)
	if err != nil {
		return nil, fmt.Errorf("trust: %s entry %q: parse CRL: %w", e.List, e.Name, err)
	}
	return crl, nil
}

// PEM returns the certificate as a CERTIFICATE block, followed by an
// X509 CRL block when the entry has a CRL.
func (e Entry) PEM() []byte {
	out := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: e.DER})
	if len(e.CRL) > 0 {
		out = append(out, pem.EncodeToMemory(&pem.Block{Type: "X509 CRL", Bytes: e.CRL})...)
	}
	return out
}

// fingerprint is the SHA-256 of der, lowercase hex.
func fingerprint(der []byte) string {
	sum := sha256.Sum256(der)
	return hex.EncodeToString(sum[:])
}

// withFacts returns e with every derived field recomputed from c and crl.
func (e Entry) withFacts(c *x509.Certificate, crl *x509.RevocationList) Entry {
	e.DER = c.Raw
	e.Fingerprint = fingerprint(c.Raw)
	e.ID = e.Fingerprint[:16]
	e.Subject = c.Subject.String()
	e.Issuer = c.Issuer.String()
	e.Serial = c.SerialNumber.Text(16)
	e.NotBefore = c.NotBefore.UTC()
	e.NotAfter = c.NotAfter.UTC()
	e.IsCA = c.BasicConstraintsValid && c.IsCA
	e.MaxPathLen = -1
	if c.BasicConstraintsValid && (c.MaxPathLen > 0 || c.MaxPathLenZero) {
		e.MaxPathLen = c.MaxPathLen
	}
	e.SelfSigned = selfSigned(c)
	e.HasCRL = crl != nil
	e.CRLNextUpdate = time.Time{}
	if crl != nil {
		e.CRL = crl.Raw
		e.CRLNextUpdate = crl.NextUpdate.UTC()
	}
	if e.Name == "" {
		e.Name = commonName(c)
	}
	return e
}

func selfSigned(c *x509.Certificate) bool {
	return string(c.RawSubject) == string(c.RawIssuer) && c.CheckSignatureFrom(c) == nil
}

// commonName is the subject CN, or the whole subject when it has none.
func commonName(c *x509.Certificate) string {
	if c.Subject.CommonName != "" {
		return c.Subject.CommonName
	}
	return c.Subject.String()
}

// compareEntries orders entries by list (trust first), name, then ID.
func compareEntries(a, b Entry) int {
	if d := a.List.rank() - b.List.rank(); d != 0 {
		return d
	}
	if d := strings.Compare(a.Name, b.Name); d != 0 {
		return d
	}
	return strings.Compare(a.ID, b.ID)
}

// Rejection is an entry a version leaves out, with why.
type Rejection struct {
	List        ListName `json:"list"`
	Name        string   `json:"name"`
	Source      Source   `json:"source"`
	Fingerprint string   `json:"fingerprint,omitempty"`
	// Reason is a human sentence, e.g. "not a CA certificate (basic
	// constraints CA:FALSE)".
	Reason string `json:"reason"`
}

func reject(e Entry, format string, args ...any) Rejection {
	return Rejection{List: e.List, Name: e.Name, Source: e.Source, Fingerprint: e.Fingerprint, Reason: fmt.Sprintf(format, args...)}
}
