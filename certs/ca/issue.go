package ca

import (
	"bytes"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net/netip"
	"net/url"
	"slices"
	"strings"
	"time"

	"go.etcd.io/bbolt"
)

const (
	rootCNPrefix   = "edgegate Local Root CA — "
	issuerCNPrefix = "edgegate Local Issuer — "
	organization   = "edgegate"
)

// maxCSRSize bounds the input of SignCSR; a CSR is a few kilobytes at most.
const maxCSRSize = 64 << 10

// Signer is a CA certificate and its private key, the issuer of an
// [IssueRequest]: for instance a CA certificate from the certificate
// manager's store.
type Signer struct {
	Cert *x509.Certificate
	Key  crypto.Signer
	// Chain holds Cert's parents, leaf-first (Cert's issuer first). Each
	// must have signed the one before. A self-signed root among them is
	// left out of issued chains.
	Chain []*x509.Certificate
}

// IssueRequest describes a certificate to create "from an existing CA": the
// fields of the web UI's form.
type IssueRequest struct {
	// Issuer signs the certificate. Nil means the authority's active issuer
	// (see [Authority.Issuer]), the usual case; the issuance is then
	// recorded so that [Authority.Revoke] can find it by serial.
	Issuer *Signer
	// CA makes a CA certificate (keyCertSign, cRLSign). MaxPathLen is then
	// how many CA certificates may follow below it: 0 (the default) means
	// it signs only leaves, -1 no limit. Either must fit the issuer's own
	// limit.
	CA         bool
	MaxPathLen int
	// Client and Server set the extended key usages clientAuth and
	// serverAuth. At least one of CA, Client and Server must be set; on a CA
	// certificate they restrict what its leaves may be used for.
	Client, Server bool
	// AIA adds, for each of Options.AIABaseURLs, the issuer's certificate
	// URL and CRL distribution point. Only for the authority's own issuers.
	AIA bool
	// KeyType of the new key; empty means DefaultKeyType. Must be empty for
	// SignCSR, where the key is the CSR's.
	KeyType KeyType
	// SignatureAlgorithm the issuer signs with; zero means the default for
	// the issuer's key. It must suit the issuer's key (ECDSA or RSA).
	SignatureAlgorithm x509.SignatureAlgorithm
	// Validity is the certificate lifetime from now; zero means
	// DefaultLeafValidity (DefaultCAValidity for a CA). It is capped at the
	// issuer's expiry: a certificate is never valid longer than its issuer.
	Validity time.Duration
	// Subject is a distinguished name as ParseDN reads it, e.g.
	// "CN=sensor-1,O=Acme,C=FR". Empty means CN = the first DNS name or IP
	// address of Hosts (or an empty subject when there is none); a CA
	// certificate needs one.
	Subject string
	// Hosts become subject alternative names: DNS names (a leftmost "*"
	// label allowed), IP addresses, URIs (spiffe://…, urn:…) and e-mail
	// addresses. Every invalid one is named in the error.
	Hosts []string
}

// Issued is a certificate the authority signed, with its private key (nil
// when it signed a CSR) and its chain: its issuer and the issuer's parents
// up to, not including, the root.
type Issued struct {
	Cert  *x509.Certificate
	Key   crypto.Signer
	Chain []*x509.Certificate
}

// CertPEM returns the certificate followed by its chain, PEM-encoded: what a
// server or client presents.
func (i *Issued) CertPEM() []byte {
	out := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: i.Cert.Raw})
	for _, c := range i.Chain {
		out = append(out, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})...)
	}
	return out
}

// KeyPEM returns the private key as PKCS#8 PEM ("PRIVATE KEY"), or nil when
// there is none (a signed CSR).
func (i *Issued) KeyPEM() ([]byte, error) {
	if i.Key == nil {
		return nil, nil
	}
	der, err := x509.MarshalPKCS8PrivateKey(i.Key)
	if err != nil {
		return nil, fmt.Errorf("ca: marshal key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

// TLSCertificate returns the certificate, chain and key for a tls.Config,
// with Leaf set.
func (i *Issued) TLSCertificate() *tls.Certificate {
	c := &tls.Certificate{Certificate: [][]byte{i.Cert.Raw}, Leaf: i.Cert}
	for _, p := range i.Chain {
		c.Certificate = append(c.Certificate, p.Raw)
	}
	if i.Key != nil {
		c.PrivateKey = i.Key
	}
	return c
}

// Issue creates a key and a certificate as req describes. See
// [IssueRequest] for the fields and their defaults. Errors wrap
// ErrInvalidRequest (a malformed request), ErrNotCA, ErrExpired,
// ErrKeyMismatch or ErrChainInvalid (an unusable req.Issuer).
func (a *Authority) Issue(req IssueRequest) (*Issued, error) {
	spec, err := specFromRequest(req)
	if err != nil {
		return nil, fmt.Errorf("ca: issue certificate: %w", err)
	}
	iss, own, err := a.resolveIssuer(req.Issuer)
	if err != nil {
		return nil, fmt.Errorf("ca: issue certificate: %w", err)
	}
	out, err := a.issue(spec, iss, own, nil)
	if err != nil {
		return nil, fmt.Errorf("ca: issue certificate %q: %w", spec.name(), err)
	}
	return out, nil
}

// SignCSR signs a certificate signing request, PEM ("CERTIFICATE REQUEST")
// or DER, after checking its signature. The subject and subject alternative
// names are the CSR's unless req.Subject or req.Hosts are set, and go
// through the same checks as Issue's (attributes ParseDN does not know are
// refused); the CSR's other extensions are ignored — CA, usages and lifetime
// come from req only. req.KeyType must be empty. The returned Issued has no
// Key.
func (a *Authority) SignCSR(csr []byte, req IssueRequest) (*Issued, error) {
	r, err := parseCSR(csr)
	if err != nil {
		return nil, fmt.Errorf("ca: sign CSR: %w", err)
	}
	if req.KeyType != "" {
		return nil, fmt.Errorf("ca: sign CSR: %w: KeyType is set, but the key is the CSR's", ErrInvalidRequest)
	}
	if err := checkPublicKey(r.PublicKey); err != nil {
		return nil, fmt.Errorf("ca: sign CSR: %w", err)
	}
	if req.Subject == "" && len(r.Subject.Names) > 0 {
		req.Subject = r.Subject.String()
	}
	if len(req.Hosts) == 0 {
		req.Hosts = csrHosts(r)
	}
	spec, err := specFromRequest(req)
	if err != nil {
		return nil, fmt.Errorf("ca: sign CSR: %w", err)
	}
	spec.pub = r.PublicKey
	iss, own, err := a.resolveIssuer(req.Issuer)
	if err != nil {
		return nil, fmt.Errorf("ca: sign CSR: %w", err)
	}
	out, err := a.issue(spec, iss, own, nil)
	if err != nil {
		return nil, fmt.Errorf("ca: sign CSR for %q: %w", spec.name(), err)
	}
	return out, nil
}

// parseCSR decodes one CSR, PEM or DER, and checks its signature.
func parseCSR(data []byte) (*x509.CertificateRequest, error) {
	if len(data) > maxCSRSize {
		return nil, fmt.Errorf("%w: CSR larger than %d bytes", ErrInvalidRequest, maxCSRSize)
	}
	der := data
	if trimmed := bytes.TrimSpace(data); bytes.HasPrefix(trimmed, []byte("-----BEGIN")) {
		block, rest := pem.Decode(trimmed)
		switch {
		case block == nil:
			return nil, fmt.Errorf("%w: malformed PEM", ErrInvalidRequest)
		case block.Type != "CERTIFICATE REQUEST" && block.Type != "NEW CERTIFICATE REQUEST":
			return nil, fmt.Errorf("%w: PEM block is %q, want CERTIFICATE REQUEST", ErrInvalidRequest, block.Type)
		case len(bytes.TrimSpace(rest)) != 0:
			return nil, fmt.Errorf("%w: data after the CSR", ErrInvalidRequest)
		}
		der = block.Bytes
	}
	r, err := x509.ParseCertificateRequest(der)
	if err != nil {
		return nil, fmt.Errorf("%w: parse CSR: %w", ErrInvalidRequest, err)
	}
	if err := r.CheckSignature(); err != nil {
		return nil, fmt.Errorf("%w: CSR signature does not verify: %w", ErrInvalidRequest, err)
	}
	return r, nil
}

// csrHosts lists the subject alternative names of a CSR as hosts.
func csrHosts(r *x509.CertificateRequest) []string {
	var hosts []string
	hosts = append(hosts, r.DNSNames...)
	for _, ip := range r.IPAddresses {
		hosts = append(hosts, ip.String())
	}
	for _, u := range r.URIs {
		hosts = append(hosts, u.String())
	}
	return append(hosts, r.EmailAddresses...)
}

// leafSpec is a validated request: what goes into the certificate.
type leafSpec struct {
	subject        pkix.Name
	hosts          hostSet
	ca             bool
	maxPathLen     int
	client, server bool
	aia            bool
	keyType        KeyType
	pub            crypto.PublicKey // the CSR's key; nil means generate one of keyType
	sigAlg         x509.SignatureAlgorithm
	validity       time.Duration
}

// name names the certificate in messages: its subject, or its first host.
func (s leafSpec) name() string {
	if n := s.subject.String(); n != "" {
		return n
	}
	if len(s.hosts.all) > 0 {
		return s.hosts.all[0]
	}
	return ""
}

func specFromRequest(req IssueRequest) (leafSpec, error) {
	spec := leafSpec{
		ca: req.CA, maxPathLen: req.MaxPathLen, client: req.Client, server: req.Server, aia: req.AIA,
		keyType: req.KeyType, sigAlg: req.SignatureAlgorithm, validity: req.Validity,
	}
	if !req.CA && !req.Client && !req.Server {
		return leafSpec{}, fmt.Errorf("%w: say what the certificate is for: CA, Client and/or Server", ErrInvalidRequest)
	}
	if !req.CA && req.MaxPathLen != 0 {
		return leafSpec{}, fmt.Errorf("%w: MaxPathLen is only for CA certificates", ErrInvalidRequest)
	}
	if req.MaxPathLen < -1 {
		return leafSpec{}, fmt.Errorf("%w: MaxPathLen %d (want -1 for no limit, or 0 and more)", ErrInvalidRequest, req.MaxPathLen)
	}
	if req.Validity < 0 {
		return leafSpec{}, fmt.Errorf("%w: negative validity %v", ErrInvalidRequest, req.Validity)
	}
	if req.KeyType != "" {
		if err := req.KeyType.check(); err != nil {
			return leafSpec{}, err
		}
	}
	var err error
	if spec.hosts, err = parseHosts(req.Hosts); err != nil {
		return leafSpec{}, err
	}
	if strings.TrimSpace(req.Subject) != "" {
		if spec.subject, err = ParseDN(req.Subject); err != nil {
			return leafSpec{}, err
		}
	}
	switch {
	case req.CA && spec.subject.String() == "":
		return leafSpec{}, fmt.Errorf("%w: a CA certificate needs a Subject", ErrInvalidRequest)
	case spec.subject.String() == "" && spec.hosts.empty():
		return leafSpec{}, fmt.Errorf("%w: a certificate needs a Subject or at least one host", ErrInvalidRequest)
	case spec.subject.String() == "":
		spec.subject.CommonName = spec.hosts.firstNameForCN()
	}
	return spec, nil
}

// resolveIssuer returns the issuer for a request: the active issuer for
// nil, else s after checking that it can sign. own reports one of the
// authority's issuers, whose issuances are recorded.
func (a *Authority) resolveIssuer(s *Signer) (iss issuer, own bool, err error) {
	st := a.st.Load()
	if s == nil {
		return st.active(), true, nil
	}
	if s.Cert == nil || s.Key == nil {
		return issuer{}, false, fmt.Errorf("%w: Issuer needs both Cert and Key", ErrInvalidRequest)
	}
	if err := checkCA(s.Cert); err != nil {
		return issuer{}, false, err
	}
	if now := a.now(); !now.Before(s.Cert.NotAfter) {
		return issuer{}, false, fmt.Errorf("%w: issuer %q expired on %s", ErrExpired, s.Cert.Subject, s.Cert.NotAfter.UTC().Format(time.RFC3339))
	}
	if !publicKeysEqual(s.Cert.PublicKey, s.Key.Public()) {
		return issuer{}, false, fmt.Errorf("%w: issuer %q", ErrKeyMismatch, s.Cert.Subject)
	}
	if err := checkLinks(append([]*x509.Certificate{s.Cert}, s.Chain...)); err != nil {
		return issuer{}, false, err
	}
	if known, ok := st.issuerByID(IssuerID(s.Cert)); ok {
		return known, true, nil
	}
	imp := newImported(newPair(s.Cert, s.Key), s.Chain, true)
	return issuer{storedPair: &imp.storedPair, kind: IssuerImported, active: true, chain: imp.chain, root: imp.root}, false, nil
}

// checkCA refuses a certificate that cannot sign certificates.
func checkCA(c *x509.Certificate) error {
	switch {
	case !c.IsCA || !c.BasicConstraintsValid:
		return fmt.Errorf("%w: %q is not a CA certificate", ErrNotCA, c.Subject)
	case c.KeyUsage&x509.KeyUsageCertSign == 0:
		return fmt.Errorf("%w: %q lacks the keyCertSign key usage", ErrNotCA, c.Subject)
	}
	return nil
}

// checkLinks verifies that each certificate of chain was signed by the next.
func checkLinks(chain []*x509.Certificate) error {
	for i := 0; i+1 < len(chain); i++ {
		if chain[i] == nil || chain[i+1] == nil {
			return fmt.Errorf("%w: nil certificate in chain", ErrChainInvalid)
		}
		if err := chain[i].CheckSignatureFrom(chain[i+1]); err != nil {
			return fmt.Errorf("%w: %q is not signed by %q: %w", ErrChainInvalid, chain[i].Subject, chain[i+1].Subject, err)
		}
	}
	return nil
}

// issue signs spec with iss. For the authority's own issuers (own) it
// records the serial, together with extra's writes, in one transaction
// before returning.
func (a *Authority) issue(spec leafSpec, iss issuer, own bool, extra func(b *bbolt.Bucket, out *Issued) error) (*Issued, error) {
	now := a.now()
	if !now.Before(iss.cert.NotAfter) {
		return nil, fmt.Errorf("%w: issuer %q expired on %s", ErrExpired, iss.cert.Subject, iss.cert.NotAfter.UTC().Format(time.RFC3339))
	}
	if spec.ca {
		if err := checkPathLen(iss.cert, spec.maxPathLen); err != nil {
			return nil, err
		}
	}
	sigAlg, err := signatureAlgorithmFor(iss.key.Public(), spec.sigAlg)
	if err != nil {
		return nil, err
	}
	validity := spec.validity
	if validity == 0 {
		validity = DefaultLeafValidity
		if spec.ca {
			validity = DefaultCAValidity
		}
	}
	tmpl := &x509.Certificate{
		Subject:               spec.subject,
		DNSNames:              spec.hosts.dns,
		IPAddresses:           spec.hosts.ips,
		URIs:                  spec.hosts.uris,
		EmailAddresses:        spec.hosts.emails,
		NotBefore:             now.Add(-backdate),
		NotAfter:              now.Add(validity),
		BasicConstraintsValid: true,
		IsCA:                  spec.ca,
		SignatureAlgorithm:    sigAlg,
	}
	if spec.server {
		tmpl.ExtKeyUsage = append(tmpl.ExtKeyUsage, x509.ExtKeyUsageServerAuth)
	}
	if spec.client {
		tmpl.ExtKeyUsage = append(tmpl.ExtKeyUsage, x509.ExtKeyUsageClientAuth)
	}
	if spec.aia {
		if !own {
			return nil, fmt.Errorf("%w: AIA is only available for the authority's own issuers, whose CRLs it publishes", ErrInvalidRequest)
		}
		if len(a.aiaBases) == 0 {
			return nil, fmt.Errorf("%w: AIA requested, but no AIA base URL is configured", ErrInvalidRequest)
		}
		for _, base := range a.aiaBases {
			tmpl.IssuingCertificateURL = append(tmpl.IssuingCertificateURL, base+"/issuer/"+iss.id+".crt")
			tmpl.CRLDistributionPoints = append(tmpl.CRLDistributionPoints, base+"/crl/"+iss.id+".crl")
		}
	}

	var key crypto.Signer
	pub := spec.pub
	if pub == nil {
		if key, err = spec.keyType.generate(); err != nil {
			return nil, err
		}
		pub = key.Public()
	}
	switch {
	case spec.ca:
		tmpl.KeyUsage = x509.KeyUsageCertSign | x509.KeyUsageCRLSign
		switch spec.maxPathLen {
		case -1:
			tmpl.MaxPathLen = -1
		case 0:
			tmpl.MaxPathLenZero = true
		default:
			tmpl.MaxPathLen = spec.maxPathLen
		}
	default:
		tmpl.KeyUsage = x509.KeyUsageDigitalSignature
		if _, isRSA := pub.(*rsa.PublicKey); isRSA && spec.server {
			// TLS 1.2 RSA key exchange encrypts to the server's key. ECDSA
			// keys only sign.
			tmpl.KeyUsage |= x509.KeyUsageKeyEncipherment
		}
	}

	cert, err := sign(tmpl, iss.cert, iss.key, pub)
	if err != nil {
		return nil, err
	}
	out := &Issued{Cert: cert, Key: key, Chain: slices.Clone(iss.chain)}
	if own || extra != nil {
		err := a.db.Update(func(tx *bbolt.Tx) error {
			b, err := tx.CreateBucketIfNotExists(bucketCA)
			if err != nil {
				return err
			}
			if own {
				if err := putIssued(b, iss.id, cert); err != nil {
					return err
				}
			}
			if extra != nil {
				return extra(b, out)
			}
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("store: %w", err)
		}
	}
	a.log.Info("issued certificate",
		"subject", cert.Subject.String(), "serial", serialHex(cert), "not_after", cert.NotAfter,
		"ca", spec.ca, "server", spec.server, "client", spec.client,
		"key", describeKey(pub), "signature", sigAlg.String(), "issuer_id", iss.id, "csr", spec.pub != nil)
	return out, nil
}

// checkPathLen refuses a CA certificate with path length child below
// issuer when the issuer's own limit does not leave room for it.
func checkPathLen(issuer *x509.Certificate, child int) error {
	limited := issuer.MaxPathLen > 0 || issuer.MaxPathLenZero
	if !limited {
		return nil
	}
	if issuer.MaxPathLen == 0 {
		return fmt.Errorf("%w: %q has path length 0: it cannot sign CA certificates", ErrNotCA, issuer.Subject)
	}
	if child == -1 || child >= issuer.MaxPathLen {
		return fmt.Errorf("%w: MaxPathLen must be less than the issuer's (%d)", ErrInvalidRequest, issuer.MaxPathLen)
	}
	return nil
}

// ClientRequest describes a client certificate for [Authority.IssueClient].
// At least one of CommonName, DNSNames or URIs must be set: they are what the
// broker maps to a sensor identity.
type ClientRequest struct {
	CommonName   string
	DNSNames     []string
	URIs         []*url.URL // e.g. spiffe://trust-domain/sensor/42
	Organization []string
	// Validity is the certificate lifetime; zero means DefaultLeafValidity.
	Validity time.Duration
}

// IssueServer issues an ECDSA P-256 server certificate for names, each either a
// DNS name (wildcards allowed) or an IP address; the first name is also the
// subject CN. A zero validity means DefaultLeafValidity; the lifetime is capped
// at the issuer's expiry. The returned chain is leaf + issuer chain and
// Leaf is set. Only the issuance is recorded (for revocation by serial): see
// [Authority.LoadOrIssueServer] for the stored listener certificate.
func (a *Authority) IssueServer(names []string, validity time.Duration) (*tls.Certificate, error) {
	out, err := a.issueServer(names, validity, nil)
	if err != nil {
		return nil, err
	}
	return out.TLSCertificate(), nil
}

func (a *Authority) issueServer(names []string, validity time.Duration, extra func(*bbolt.Bucket, *Issued) error) (*Issued, error) {
	spec, err := serverSpec(names, validity)
	if err != nil {
		return nil, fmt.Errorf("ca: issue server certificate for %q: %w", names, err)
	}
	out, err := a.issue(spec, a.st.Load().active(), true, extra)
	if err != nil {
		return nil, fmt.Errorf("ca: issue server certificate for %q: %w", names, err)
	}
	return out, nil
}

func serverSpec(names []string, validity time.Duration) (leafSpec, error) {
	if len(names) == 0 {
		return leafSpec{}, fmt.Errorf("%w: no names", ErrInvalidRequest)
	}
	if validity < 0 {
		return leafSpec{}, fmt.Errorf("%w: negative validity %v", ErrInvalidRequest, validity)
	}
	hosts, err := parseHosts(names)
	if err != nil {
		return leafSpec{}, err
	}
	if !hosts.onlyServerNames() {
		return leafSpec{}, fmt.Errorf("%w: server names must be DNS names or IP addresses", ErrInvalidRequest)
	}
	return leafSpec{subject: pkix.Name{CommonName: hosts.firstNameForCN()}, hosts: hosts, server: true, validity: validity}, nil
}

// IssueClient issues an ECDSA P-256 client certificate (ExtKeyUsage
// ClientAuth) from the active issuer. DNSNames and URIs are checked and
// normalised like IssueRequest.Hosts. certPEM holds the leaf followed by the
// issuer chain, ready for a client to present; keyPEM is the PKCS#8 private
// key. Only the issuance is recorded (for revocation by serial).
func (a *Authority) IssueClient(req ClientRequest) (certPEM, keyPEM []byte, err error) {
	if req.CommonName == "" && len(req.DNSNames) == 0 && len(req.URIs) == 0 {
		return nil, nil, errors.New("ca: issue client certificate: no CommonName, DNS name or URI")
	}
	if slices.Contains(req.URIs, nil) {
		return nil, nil, fmt.Errorf("ca: issue client certificate %q: nil URI", req.CommonName)
	}
	if req.Validity < 0 {
		return nil, nil, fmt.Errorf("ca: issue client certificate %q: %w: negative validity %v", req.CommonName, ErrInvalidRequest, req.Validity)
	}
	names := slices.Clone(req.DNSNames)
	for _, u := range req.URIs {
		names = append(names, u.String())
	}
	hosts, err := parseHosts(names)
	if err != nil {
		return nil, nil, fmt.Errorf("ca: issue client certificate %q: %w", req.CommonName, err)
	}
	spec := leafSpec{
		subject:  pkix.Name{CommonName: req.CommonName, Organization: slices.Clone(req.Organization)},
		hosts:    hosts,
		client:   true,
		validity: req.Validity,
	}
	out, err := a.issue(spec, a.st.Load().active(), true, nil)
	if err != nil {
		return nil, nil, fmt.Errorf("ca: issue client certificate %q: %w", req.CommonName, err)
	}
	if keyPEM, err = out.KeyPEM(); err != nil {
		return nil, nil, fmt.Errorf("ca: issue client certificate %q: %w", req.CommonName, err)
	}
	return out.CertPEM(), keyPEM, nil
}

// LoadOrIssueServer returns the listener certificate kept in the store (entry
// "server" of bucket "ca") when it covers exactly names (in any order, DNS
// names case-insensitively), was issued by the active issuer and has
// more than a third of its lifetime left. Otherwise it issues a new one valid
// for ServerValidity and stores certificate and key in one transaction before
// returning it. A stored entry that cannot be decoded is logged and replaced:
// unlike the root, a listener certificate can always be re-issued.
func (a *Authority) LoadOrIssueServer(names []string) (*tls.Certificate, error) {
	spec, err := serverSpec(names, ServerValidity)
	if err != nil {
		return nil, fmt.Errorf("ca: load or issue server certificate for %q: %w", names, err)
	}
	a.serverMu.Lock()
	defer a.serverMu.Unlock()

	var stored *storedPair
	err = a.db.View(func(tx *bbolt.Tx) error {
		if b := tx.Bucket(bucketCA); b != nil {
			var err error
			stored, _, err = loadPair(b, keyServer, a.sealer)
			return err
		}
		return nil
	})
	iss := a.st.Load().active()
	var reason string
	switch {
	case errors.Is(err, ErrCorrupt) || errors.Is(err, ErrSealerRequired):
		a.log.Warn("stored server certificate is unusable, issuing a new one", "error", err)
		reason = "corrupt"
	case err != nil:
		return nil, fmt.Errorf("ca: load server certificate: %w", err)
	case stored == nil:
		reason = "missing"
	default:
		reason = a.serverReissueReason(stored.cert, spec.hosts, iss)
		if reason == "" {
			out := &Issued{Cert: stored.cert, Key: stored.key, Chain: slices.Clone(iss.chain)}
			return out.TLSCertificate(), nil
		}
	}

	out, err := a.issueServer(names, ServerValidity, func(b *bbolt.Bucket, out *Issued) error {
		_, err := storePair(b, keyServer, newPair(out.Cert, out.Key), a.sealer)
		return err
	})
	if err != nil {
		return nil, err
	}
	a.log.Info("stored server certificate", "reason", reason, "serial", serialHex(out.Cert))
	return out.TLSCertificate(), nil
}

// serverReissueReason says why a stored listener certificate cannot be
// served, or "" when it can.
func (a *Authority) serverReissueReason(cert *x509.Certificate, want hostSet, iss issuer) string {
	switch {
	case !slices.Equal(certNames(cert), want.sortedNames()):
		return "names changed"
	case cert.CheckSignatureFrom(iss.cert) != nil:
		return "issuer changed"
	case needsRenewal(cert, a.now()):
		return "renewal due"
	}
	return ""
}

// needsRenewal reports whether cert should be replaced at now: when less than
// a third of its lifetime is left, when it has expired, or when it is not yet
// valid (the clock went back; peers with the same clock would reject it).
func needsRenewal(cert *x509.Certificate, now time.Time) bool {
	if now.Before(cert.NotBefore) || !now.Before(cert.NotAfter) {
		return true
	}
	return cert.NotAfter.Sub(now) < lifetime(cert)/3
}

// renewalTime is when needsRenewal starts to report true for cert.
func renewalTime(cert *x509.Certificate) time.Time {
	return cert.NotAfter.Add(-lifetime(cert) / 3)
}

func lifetime(cert *x509.Certificate) time.Duration { return cert.NotAfter.Sub(cert.NotBefore) }

func rootTemplate(device string, now time.Time) *x509.Certificate {
	return &x509.Certificate{
		Subject:               pkix.Name{CommonName: rootCNPrefix + device, Organization: []string{organization}},
		NotBefore:             now.Add(-backdate),
		NotAfter:              now.Add(RootValidity),
		IsCA:                  true,
		BasicConstraintsValid: true,
		MaxPathLen:            1,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
}

func intermediateTemplate(device string, now time.Time) *x509.Certificate {
	return &x509.Certificate{
		Subject:               pkix.Name{CommonName: issuerCNPrefix + device, Organization: []string{organization}},
		NotBefore:             now.Add(-backdate),
		NotAfter:              now.Add(IntermediateValidity),
		IsCA:                  true,
		BasicConstraintsValid: true,
		MaxPathLen:            0,
		MaxPathLenZero:        true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
}

// newRoot creates a self-signed root with a new key of type kt.
func newRoot(device string, kt KeyType, now time.Time) (*storedPair, error) {
	key, err := kt.generate()
	if err != nil {
		return nil, err
	}
	tmpl := rootTemplate(device, now)
	if tmpl.SignatureAlgorithm, err = signatureAlgorithmFor(key.Public(), 0); err != nil {
		return nil, err
	}
	cert, err := sign(tmpl, tmpl, key, key.Public())
	if err != nil {
		return nil, err
	}
	return newPair(cert, key), nil
}

// newIntermediate creates an intermediate with a new key of type kt, signed
// by root.
func newIntermediate(device string, kt KeyType, root *storedPair, now time.Time) (*storedPair, error) {
	key, err := kt.generate()
	if err != nil {
		return nil, err
	}
	tmpl := intermediateTemplate(device, now)
	if tmpl.SignatureAlgorithm, err = signatureAlgorithmFor(root.key.Public(), 0); err != nil {
		return nil, err
	}
	cert, err := sign(tmpl, root.cert, root.key, key.Public())
	if err != nil {
		return nil, err
	}
	return newPair(cert, key), nil
}

// deviceNameOf returns name, or when it is empty the device name recorded in
// the root's CN, for naming a replacement intermediate.
func deviceNameOf(root *x509.Certificate, name string) string {
	if name = strings.TrimSpace(name); name != "" {
		return name
	}
	if d, ok := strings.CutPrefix(root.Subject.CommonName, rootCNPrefix); ok {
		return d
	}
	return root.Subject.CommonName
}

// sign sets serial and subject key ID on tmpl, caps its lifetime at the
// parent's (a certificate cannot outlive its issuer usefully) and signs it.
// parent == tmpl makes it self-signed.
func sign(tmpl, parent *x509.Certificate, parentKey crypto.Signer, pub crypto.PublicKey) (*x509.Certificate, error) {
	serial, err := randomSerial()
	if err != nil {
		return nil, err
	}
	skid, err := subjectKeyID(pub)
	if err != nil {
		return nil, err
	}
	tmpl.SerialNumber = serial
	tmpl.SubjectKeyId = skid
	if parent != tmpl && tmpl.NotAfter.After(parent.NotAfter) {
		tmpl.NotAfter = parent.NotAfter
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, pub, parentKey)
	if err != nil {
		return nil, fmt.Errorf("sign certificate: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("parse new certificate: %w", err)
	}
	return cert, nil
}

// randomSerial returns a positive 128-bit random serial number.
func randomSerial() (*big.Int, error) {
	var b [16]byte
	for {
		if _, err := rand.Read(b[:]); err != nil {
			return nil, fmt.Errorf("serial number: %w", err)
		}
		if n := new(big.Int).SetBytes(b[:]); n.Sign() > 0 {
			return n, nil
		}
	}
}

// subjectKeyID derives the key identifier from the subjectPublicKey bits with
// SHA-256 truncated to 160 bits (RFC 7093, section 2, method 1). It works for
// any key type x509 can marshal.
func subjectKeyID(pub crypto.PublicKey) ([]byte, error) {
	spkiDER, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return nil, fmt.Errorf("subject key id: %w", err)
	}
	var spki struct {
		Algorithm        pkix.AlgorithmIdentifier
		SubjectPublicKey asn1.BitString
	}
	if _, err := asn1.Unmarshal(spkiDER, &spki); err != nil {
		return nil, fmt.Errorf("subject key id: %w", err)
	}
	sum := sha256.Sum256(spki.SubjectPublicKey.Bytes)
	return sum[:20], nil
}

// certNames returns the DNS and IP SANs of cert normalised like parseHosts,
// sorted.
func certNames(cert *x509.Certificate) []string {
	var names []string
	for _, d := range cert.DNSNames {
		names = append(names, strings.ToLower(d))
	}
	for _, ip := range cert.IPAddresses {
		if a, ok := netip.AddrFromSlice(ip); ok {
			names = append(names, a.Unmap().String())
		}
	}
	slices.Sort(names)
	return slices.Compact(names)
}
