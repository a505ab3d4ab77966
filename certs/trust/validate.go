package trust

import (
	"bytes"
	"crypto/x509"
	"fmt"
	"time"
)

// Validate checks entries as a version's content at time now and returns
// those that may be applied, with their derived facts recomputed, and the
// rest with the reason each is left out. It is pure; valid entries keep
// their input order, and of two entries holding the same certificate (within
// or across lists) the first is kept.
//
// Both lists require a CA certificate (basic constraints CA:TRUE, key usage
// allowing certificate signing when a key usage is present) within its
// validity period, and a CRL, when present, that this certificate signed and
// whose next update has not passed. An issuer must moreover chain to a
// trust-list anchor of the same entries (x509 verification with the other
// issuers as intermediates, which enforces path length and name constraints)
// with room left below it to sign certificates.
func Validate(entries []Entry, now time.Time) (valid []Entry, rejected []Rejection) {
	type candidate struct {
		entry Entry
		cert  *x509.Certificate
		ok    bool
	}
	var (
		cands []*candidate
		seen  = make(map[string]Entry)
	)
	for _, e := range entries {
		if e.List != TrustList && e.List != IssuerList {
			rejected = append(rejected, reject(e, "unknown list %q", e.List))
			continue
		}
		c, err := x509.ParseCertificate(e.DER)
		if err != nil {
			if len(e.DER) > 0 {
				e.Fingerprint = fingerprint(e.DER)
			}
			rejected = append(rejected, reject(e, "certificate does not parse: %v", err))
			continue
		}
		var crl *x509.RevocationList
		if len(e.CRL) > 0 {
			if crl, err = x509.ParseRevocationList(e.CRL); err != nil {
				e = e.withFacts(c, nil)
				rejected = append(rejected, reject(e, "CRL does not parse: %v", err))
				continue
			}
		}
		e = e.withFacts(c, crl)
		if first, dup := seen[e.Fingerprint]; dup {
			rejected = append(rejected, reject(e, "duplicate of %s-list entry %q (same certificate)", first.List, first.Name))
			continue
		}
		seen[e.Fingerprint] = e
		if reason := caProblem(c, now); reason != "" {
			rejected = append(rejected, reject(e, "%s", reason))
			continue
		}
		if crl != nil {
			if reason := crlProblem(c, crl, now); reason != "" {
				rejected = append(rejected, reject(e, "%s", reason))
				continue
			}
		}
		cands = append(cands, &candidate{entry: e, cert: c, ok: true})
	}

	roots := x509.NewCertPool()
	anchors := 0
	for _, c := range cands {
		if c.entry.List == TrustList {
			roots.AddCert(c.cert)
			anchors++
		}
	}
	// An issuer may chain through another issuer; one rejected issuer can
	// strand those below it, so verify until nothing more falls out.
	reasons := make(map[*candidate]string)
	for changed := true; changed; {
		changed = false
		for _, c := range cands {
			if !c.ok || c.entry.List != IssuerList {
				continue
			}
			inter := x509.NewCertPool()
			for _, o := range cands {
				if o != c && o.ok && o.entry.List == IssuerList {
					inter.AddCert(o.cert)
				}
			}
			reason := ""
			if anchors == 0 {
				reason = "does not chain to a trust-list anchor: the trust list is empty"
			} else {
				reason = chainProblem(c.cert, roots, inter, now)
			}
			if reason != "" {
				c.ok = false
				reasons[c] = reason
				changed = true
			}
		}
	}

	for _, c := range cands {
		if c.ok {
			valid = append(valid, c.entry)
		} else {
			rejected = append(rejected, reject(c.entry, "%s", reasons[c]))
		}
	}
	return valid, rejected
}

// caProblem says why c cannot be a trust anchor or issuer at now; "" if it can.
func caProblem(c *x509.Certificate, now time.Time) string {
	switch {
	case !c.BasicConstraintsValid:
		return "not a CA certificate (no basic constraints)"
	case !c.IsCA:
		return "not a CA certificate (basic constraints CA:FALSE)"
	case c.KeyUsage != 0 && c.KeyUsage&x509.KeyUsageCertSign == 0:
		return "key usage does not allow signing certificates (no keyCertSign)"
	case now.Before(c.NotBefore):
		return fmt.Sprintf("not valid yet (valid from %s)", c.NotBefore.UTC().Format(time.RFC3339))
	case now.After(c.NotAfter):
		return fmt.Sprintf("expired on %s", c.NotAfter.UTC().Format(time.RFC3339))
	}
	return ""
}

// crlProblem says why crl cannot be used as c's CRL at now; "" if it can.
func crlProblem(c *x509.Certificate, crl *x509.RevocationList, now time.Time) string {
	if !bytes.Equal(crl.RawIssuer, c.RawSubject) {
		return fmt.Sprintf("CRL issuer %q is not this certificate's subject", crl.Issuer.String())
	}
	if err := crl.CheckSignatureFrom(c); err != nil {
		return fmt.Sprintf("CRL is not signed by this certificate: %v", err)
	}
	if !crl.NextUpdate.IsZero() && now.After(crl.NextUpdate) {
		return fmt.Sprintf("CRL expired (next update was due %s)", crl.NextUpdate.UTC().Format(time.RFC3339))
	}
	return ""
}

// chainProblem says why issuer does not chain to roots at now, through
// intermediates, with room below it to sign certificates; "" if it does.
func chainProblem(issuer *x509.Certificate, roots, intermediates *x509.CertPool, now time.Time) string {
	chains, err := issuer.Verify(x509.VerifyOptions{
		Roots:         roots,
		Intermediates: intermediates,
		CurrentTime:   now,
		KeyUsages:     []x509.ExtKeyUsage{x509.ExtKeyUsageAny},
	})
	if err != nil {
		return fmt.Sprintf("does not chain to a trust-list anchor: %v", err)
	}
	// x509 checks the chain with issuer as its leaf; the issuer is there to
	// sign certificates, so each CA above it must allow one more
	// intermediate than that.
	var reason string
	for _, chain := range chains {
		reason = ""
		for k := 1; k < len(chain) && reason == ""; k++ {
			if p := chain[k]; p.BasicConstraintsValid && p.MaxPathLen >= 0 && k > p.MaxPathLen {
				reason = fmt.Sprintf("path length constraint of %q (pathlen %d) leaves no room for this issuer to sign certificates", commonName(p), p.MaxPathLen)
			}
		}
		if reason == "" {
			return ""
		}
	}
	return reason
}
