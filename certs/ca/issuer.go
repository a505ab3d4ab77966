package ca

import (
	"crypto"
	"crypto/x509"
	"fmt"
	"slices"
	"time"
)

// IssuerKind says where an issuer comes from.
type IssuerKind string

// The kinds of issuer the authority keeps.
const (
	// IssuerLocal is the local intermediate, signed by the local root.
	IssuerLocal IssuerKind = "local"
	// IssuerLocalPrevious is the local intermediate before the last
	// rotation, kept until it expires so that its leaves keep verifying
	// and get a CRL.
	IssuerLocalPrevious IssuerKind = "local-previous"
	// IssuerImported is an operator's CA brought with ImportIssuer.
	IssuerImported IssuerKind = "imported"
)

// IssuerInfo describes an issuer the authority keeps a CRL for.
type IssuerInfo struct {
	// ID is IssuerID(Cert): the name of its CRL and AIA URLs.
	ID   string
	Kind IssuerKind
	// Active is set for the one issuer that signs new leaves.
	Active bool
	Cert   *x509.Certificate
	// Chain is what follows a leaf of this issuer in a TLS handshake or a
	// PEM bundle: Cert and its parents, up to, not including, the root.
	Chain []*x509.Certificate
	// Root is the trust anchor of Chain; nil for an imported issuer whose
	// chain came without its root.
	Root *x509.Certificate
}

func (iss issuer) info() IssuerInfo {
	return IssuerInfo{ID: iss.id, Kind: iss.kind, Active: iss.active, Cert: iss.cert, Chain: slices.Clone(iss.chain), Root: iss.root}
}

// Issuer returns the active issuer: the one that signs new leaves (the
// local intermediate, or an imported issuer), with its chain.
func (a *Authority) Issuer() IssuerInfo { return a.st.Load().active().info() }

// Issuers returns every issuer the authority keeps: the active one first,
// then the others (previous intermediate, inactive imported issuer) whose
// leaves still verify and whose CRLs it still publishes.
func (a *Authority) Issuers() []IssuerInfo {
	var out []IssuerInfo
	for _, iss := range a.st.Load().issuers() {
		out = append(out, iss.info())
	}
	return out
}

// IssuerByID returns the issuer with IssuerID id, for the CA issuers URLs
// of Options.AIABaseURLs (serve IssuerInfo.Cert.Raw).
func (a *Authority) IssuerByID(id string) (IssuerInfo, bool) {
	iss, ok := a.st.Load().issuerByID(id)
	if !ok {
		return IssuerInfo{}, false
	}
	return iss.info(), true
}

// ChainFor returns the chain to serve after cert (its issuer and the
// issuer's parents, root excluded) when one of the authority's issuers
// signed it, so that leaves of a previous or imported issuer are served
// with the right chain. Otherwise the error wraps ErrUnknownCertificate.
func (a *Authority) ChainFor(cert *x509.Certificate) ([]*x509.Certificate, error) {
	iss, ok := a.st.Load().issuerOf(cert)
	if !ok {
		return nil, fmt.Errorf("ca: chain for %q: %w", cert.Subject, ErrUnknownCertificate)
	}
	return slices.Clone(iss.chain), nil
}

// ImportIssuer makes an operator's CA — typically an intermediate of an
// enterprise PKI — the issuer of new leaves. chain is leaf-first: the CA
// certificate key belongs to, then its parents; the root is optional and,
// when present, joins TrustBundlePEM and Pool. It is refused when the CA
// certificate is not a CA with the keyCertSign and cRLSign key usages and
// a subject key identifier (ErrNotCA; the authority signs its CRL), when a
// certificate of chain is expired or not yet valid (ErrExpired), when key
// does not match (ErrKeyMismatch), or when chain does not link up or, with
// a root, verify (ErrChainInvalid). Certificate, chain and sealed key are
// stored in one transaction, replacing an earlier imported issuer (whose
// revocations and CRL go with it, unless it has the same key). The local
// issuer stays available: see UseLocalIssuer.
func (a *Authority) ImportIssuer(chain []*x509.Certificate, key crypto.Signer) error {
	if err := a.importIssuer(chain, key); err != nil {
		return fmt.Errorf("ca: import issuer: %w", err)
	}
	return nil
}

func (a *Authority) importIssuer(chain []*x509.Certificate, key crypto.Signer) error {
	if len(chain) == 0 || key == nil || slices.Contains(chain, nil) {
		return fmt.Errorf("%w: need the CA certificate, its parents and its key", ErrInvalidRequest)
	}
	cert := chain[0]
	if err := checkCA(cert); err != nil {
		return err
	}
	switch {
	case cert.KeyUsage&x509.KeyUsageCRLSign == 0:
		return fmt.Errorf("%w: %q lacks the cRLSign key usage, so the gateway could not publish revocations", ErrNotCA, cert.Subject)
	case len(cert.SubjectKeyId) == 0:
		return fmt.Errorf("%w: %q has no subject key identifier, which its CRLs need", ErrNotCA, cert.Subject)
	}
	if err := checkPublicKey(cert.PublicKey); err != nil {
		return err
	}
	if !publicKeysEqual(cert.PublicKey, key.Public()) {
		return fmt.Errorf("%w: %q", ErrKeyMismatch, cert.Subject)
	}
	now := a.now()
	for _, c := range chain {
		if now.Before(c.NotBefore) || !now.Before(c.NotAfter) {
			return fmt.Errorf("%w: %q is valid from %s to %s", ErrExpired, c.Subject,
				c.NotBefore.UTC().Format(time.RFC3339), c.NotAfter.UTC().Format(time.RFC3339))
		}
	}
	if err := checkLinks(chain); err != nil {
		return err
	}
	// A leaf it signs has chain[:i] between itself and chain[i]: check the
	// path lengths for that, which verifying chain[0] alone would not.
	for i := 1; i < len(chain); i++ {
		if c := chain[i]; (c.MaxPathLen > 0 || c.MaxPathLenZero) && c.MaxPathLen < i {
			return fmt.Errorf("%w: %q allows %d CA certificates below it, its leaves would have %d",
				ErrChainInvalid, c.Subject, c.MaxPathLen, i)
		}
	}
	for _, c := range chain[:len(chain)-1] {
		if isSelfSigned(c) {
			return fmt.Errorf("%w: self-signed %q is not last: the chain is leaf-first", ErrChainInvalid, c.Subject)
		}
	}
	if root := chain[len(chain)-1]; isSelfSigned(root) {
		roots, inters := x509.NewCertPool(), x509.NewCertPool()
		roots.AddCert(root)
		for i := 1; i < len(chain)-1; i++ {
			inters.AddCert(chain[i])
		}
		_, err := cert.Verify(x509.VerifyOptions{
			Roots: roots, Intermediates: inters, CurrentTime: now, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny},
		})
		if err != nil {
			return fmt.Errorf("%w: %w", ErrChainInvalid, err)
		}
	}

	a.opMu.Lock()
	defer a.opMu.Unlock()
	prev := a.st.Load()
	id := IssuerID(cert)
	if id == prev.inter.id || (prev.prevInter != nil && id == prev.prevInter.id) || id == prev.root.id {
		return fmt.Errorf("%w: %q is the local CA", ErrInvalidRequest, cert.Subject)
	}
	next := prev.clone()
	next.imported = newImported(newPair(cert, key), slices.Clone(chain[1:]), true)
	a.pruneRevocations(next, now)
	if _, err := a.syncCRLs(next, now, nil); err != nil {
		return err
	}
	if err := a.commit(prev, next, nil); err != nil {
		return err
	}
	a.log.Info("imported issuer",
		"subject", cert.Subject.String(), "issuer_id", id, "not_after", cert.NotAfter,
		"fingerprint", fingerprint(cert.Raw), "with_root", next.imported.root != nil)
	return nil
}

// UseLocalIssuer makes the local intermediate the active issuer again. The
// imported issuer is kept, inactive, until it expires or
// RemoveImportedIssuer: its leaves keep their chain, CRL and trust anchor.
// Without an active imported issuer it does nothing.
func (a *Authority) UseLocalIssuer() error {
	return a.setImported("use local issuer", func(imp *importedIssuer) *importedIssuer {
		if !imp.active {
			return imp
		}
		c := *imp
		c.active = false
		return &c
	})
}

// RemoveImportedIssuer forgets the imported issuer: its key, chain,
// revocations and CRL, and its root in the trust bundle. If it was active,
// the local intermediate issues again. Without one it does nothing.
func (a *Authority) RemoveImportedIssuer() error {
	return a.setImported("remove imported issuer", func(*importedIssuer) *importedIssuer { return nil })
}

// setImported replaces the imported issuer with change(current) when there
// is one and the result differs.
func (a *Authority) setImported(op string, change func(*importedIssuer) *importedIssuer) error {
	a.opMu.Lock()
	defer a.opMu.Unlock()
	prev := a.st.Load()
	if prev.imported == nil {
		return nil
	}
	imp := change(prev.imported)
	if imp == prev.imported {
		return nil
	}
	now := a.now()
	next := prev.clone()
	next.imported = imp
	a.pruneRevocations(next, now)
	if _, err := a.syncCRLs(next, now, nil); err != nil {
		return fmt.Errorf("ca: %s: %w", op, err)
	}
	if err := a.commit(prev, next, nil); err != nil {
		return fmt.Errorf("ca: %s: %w", op, err)
	}
	a.log.Info("local issuer active", "operation", op, "imported_subject", prev.imported.cert.Subject.String())
	return nil
}
