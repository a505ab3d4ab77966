package ca

import (
	"bytes"
	"crypto/sha256"
	"crypto/x509"
	"maps"
	"math/big"
	"time"
)

// state is one consistent view of the authority: its CA certificates and
// keys, revocations and CRLs. A state is never modified once published
// (Authority.st); changes build a new one with clone and swap it in after
// the store holds it, so readers need no lock.
type state struct {
	root      *storedPair
	prevRoot  *previousRoot // during a root rotation's overlap
	inter     *storedPair   // the local issuer
	prevInter *storedPair   // the local issuer before the last rotation
	imported  *importedIssuer

	crls    map[string]*crlState // by issuer ID
	revoked map[string]*revList  // by issuer ID
}

// previousRoot is a root replaced by RotateRoot, still trusted until until.
type previousRoot struct {
	cert  *x509.Certificate
	until time.Time
}

// importedIssuer is an operator's CA (ImportIssuer) with its parents.
type importedIssuer struct {
	storedPair
	parents []*x509.Certificate // leaf-first, root included when given
	active  bool                // it issues new leaves instead of the local intermediate

	// Derived from the above by newImported.
	chain []*x509.Certificate // cert and its parents, roots excluded
	root  *x509.Certificate   // the self-signed top of the chain, or nil
}

func newImported(p *storedPair, parents []*x509.Certificate, active bool) *importedIssuer {
	imp := &importedIssuer{storedPair: *p, parents: parents, active: active}
	for _, c := range append([]*x509.Certificate{p.cert}, parents...) {
		if isSelfSigned(c) {
			imp.root = c
		} else {
			imp.chain = append(imp.chain, c)
		}
	}
	return imp
}

// crlState is an issuer's current CRL.
type crlState struct {
	der                    []byte
	number                 *big.Int
	thisUpdate, nextUpdate time.Time
}

// revList is the revocations of one issuer, by serial in hex. Like state,
// it is replaced, never modified, once published.
type revList struct {
	entries map[string]Revocation
}

// clone returns a copy of st whose maps can be changed; the values they
// hold are shared and must be replaced, not modified.
func (st *state) clone() *state {
	c := *st
	c.crls = maps.Clone(st.crls)
	c.revoked = maps.Clone(st.revoked)
	if c.crls == nil {
		c.crls = map[string]*crlState{}
	}
	if c.revoked == nil {
		c.revoked = map[string]*revList{}
	}
	return &c
}

// issuer is a CA that signs leaves for the authority and whose CRL it
// keeps: the local intermediate, the previous one, an imported issuer.
type issuer struct {
	*storedPair
	kind   IssuerKind
	active bool
	chain  []*x509.Certificate // cert and its parents, root excluded
	root   *x509.Certificate   // nil when unknown
}

// active returns the issuer of new leaves.
func (st *state) active() issuer {
	if st.imported != nil && st.imported.active {
		return st.importedIssuer()
	}
	return st.localIssuer()
}

func (st *state) localIssuer() issuer {
	return issuer{
		storedPair: st.inter, kind: IssuerLocal, active: st.imported == nil || !st.imported.active,
		chain: []*x509.Certificate{st.inter.cert}, root: st.root.cert,
	}
}

func (st *state) importedIssuer() issuer {
	imp := st.imported
	return issuer{storedPair: &imp.storedPair, kind: IssuerImported, active: imp.active, chain: imp.chain, root: imp.root}
}

// issuers lists every issuer the authority keeps CRLs for, the active one
// first.
func (st *state) issuers() []issuer {
	var out []issuer
	if st.inter != nil {
		out = append(out, st.localIssuer())
	}
	if st.prevInter != nil {
		root := st.root.cert
		if st.prevRoot != nil && st.prevInter.cert.CheckSignatureFrom(st.prevRoot.cert) == nil {
			root = st.prevRoot.cert
		}
		out = append(out, issuer{
			storedPair: st.prevInter, kind: IssuerLocalPrevious,
			chain: []*x509.Certificate{st.prevInter.cert}, root: root,
		})
	}
	if st.imported != nil {
		imp := st.importedIssuer()
		if imp.active {
			out = append([]issuer{imp}, out...)
		} else {
			out = append(out, imp)
		}
	}
	return out
}

// issuerByID returns the issuer with id.
func (st *state) issuerByID(id string) (issuer, bool) {
	for _, iss := range st.issuers() {
		if iss.id == id {
			return iss, true
		}
	}
	return issuer{}, false
}

// issuerOf returns the issuer that signed cert.
func (st *state) issuerOf(cert *x509.Certificate) (issuer, bool) {
	for _, iss := range st.issuers() {
		if len(cert.AuthorityKeyId) > 0 && len(iss.cert.SubjectKeyId) > 0 &&
			!bytes.Equal(cert.AuthorityKeyId, iss.cert.SubjectKeyId) {
			continue
		}
		if bytes.Equal(cert.RawIssuer, iss.cert.RawSubject) && cert.CheckSignatureFrom(iss.cert) == nil {
			return iss, true
		}
	}
	return issuer{}, false
}

// roots returns the trust anchors: the current root, the previous one
// during a rotation, the imported issuer's root when it came with one.
func (st *state) roots() []*x509.Certificate {
	out := []*x509.Certificate{st.root.cert}
	if st.prevRoot != nil {
		out = append(out, st.prevRoot.cert)
	}
	if st.imported != nil {
		if r := st.imported.root; r != nil && !r.Equal(st.root.cert) {
			out = append(out, r)
		}
	}
	return out
}

// IssuerID identifies a CA certificate's key: the lower-case hex SHA-256 of
// its SubjectPublicKeyInfo, truncated to 160 bits. It names the CA's
// revocations and CRL in the store, in [Revocation] and in the AIA URLs.
// Two certificates for the same key and name share their CRL, as RFC 5280
// has it.
func IssuerID(cert *x509.Certificate) string {
	sum := sha256.Sum256(cert.RawSubjectPublicKeyInfo)
	return issuerIDHex(sum[:20])
}

// isSelfSigned reports whether c is a self-issued certificate whose
// signature its own key verifies: a root.
func isSelfSigned(c *x509.Certificate) bool {
	return bytes.Equal(c.RawIssuer, c.RawSubject) && c.CheckSignatureFrom(c) == nil
}
