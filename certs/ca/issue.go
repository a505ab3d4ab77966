package ca

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
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
// at the intermediate's expiry. The returned chain is leaf + intermediate and
// Leaf is set. Nothing is stored: see [Authority.LoadOrIssueServer] for the
// listener certificate.
func (a *Authority) IssueServer(names []string, validity time.Duration) (*tls.Certificate, error) {
	leaf, key, err := a.issueServer(names, validity)
	if err != nil {
		return nil, err
	}
	return a.tlsCertificate(leaf, key), nil
}

func (a *Authority) issueServer(names []string, validity time.Duration) (*x509.Certificate, crypto.Signer, error) {
	sans, err := parseNames(names)
	if err != nil {
		return nil, nil, fmt.Errorf("ca: issue server certificate for %q: %w", names, err)
	}
	tmpl := &x509.Certificate{
		Subject:     pkix.Name{CommonName: sans.first},
		DNSNames:    sans.dns,
		IPAddresses: sans.ips,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	leaf, key, err := a.issueLeaf(tmpl, validity)
	if err != nil {
		return nil, nil, fmt.Errorf("ca: issue server certificate for %q: %w", names, err)
	}
	a.log.Info("issued server certificate",
		"names", sans.all, "serial", serialHex(leaf), "not_after", leaf.NotAfter)
	return leaf, key, nil
}

// IssueClient issues an ECDSA P-256 client certificate (ExtKeyUsage
// ClientAuth). certPEM holds the leaf followed by the intermediate, ready for a
// client to present; keyPEM is the PKCS#8 private key. Nothing is stored.
func (a *Authority) IssueClient(req ClientRequest) (certPEM, keyPEM []byte, err error) {
	if req.CommonName == "" && len(req.DNSNames) == 0 && len(req.URIs) == 0 {
		return nil, nil, errors.New("ca: issue client certificate: no CommonName, DNS name or URI")
	}
	if slices.Contains(req.URIs, nil) {
		return nil, nil, fmt.Errorf("ca: issue client certificate %q: nil URI", req.CommonName)
	}
	tmpl := &x509.Certificate{
		Subject: pkix.Name{
			CommonName:   req.CommonName,
			Organization: slices.Clone(req.Organization),
		},
		DNSNames:    slices.Clone(req.DNSNames),
		URIs:        slices.Clone(req.URIs),
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	leaf, key, err := a.issueLeaf(tmpl, req.Validity)
	if err != nil {
		return nil, nil, fmt.Errorf("ca: issue client certificate %q: %w", req.CommonName, err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, nil, fmt.Errorf("ca: issue client certificate %q: marshal key: %w", req.CommonName, err)
	}
	certPEM = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: leaf.Raw})
	certPEM = append(certPEM, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: a.intermediate.Raw})...)
	keyPEM = pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})
	a.log.Info("issued client certificate",
		"subject", leaf.Subject.String(), "serial", serialHex(leaf), "not_after", leaf.NotAfter)
	return certPEM, keyPEM, nil
}

// LoadOrIssueServer returns the listener certificate kept in the store (entry
// "server" of bucket "ca") when it covers exactly names (in any order, DNS
// names case-insensitively), was issued by the current intermediate and has
// more than a third of its lifetime left. Otherwise it issues a new one valid
// for ServerValidity and stores certificate and key in one transaction before
// returning it. A stored entry that cannot be decoded is logged and replaced:
// unlike the root, a listener certificate can always be re-issued.
func (a *Authority) LoadOrIssueServer(names []string) (*tls.Certificate, error) {
	sans, err := parseNames(names)
	if err != nil {
		return nil, fmt.Errorf("ca: load or issue server certificate for %q: %w", names, err)
	}
	a.serverMu.Lock()
	defer a.serverMu.Unlock()

	var stored *storedPair
	err = a.db.View(func(tx *bbolt.Tx) error {
		if b := tx.Bucket(bucketCA); b != nil {
			var err error
			stored, err = loadPair(b, keyServer)
			return err
		}
		return nil
	})
	var reason string
	switch {
	case errors.Is(err, ErrCorrupt):
		a.log.Warn("stored server certificate is unusable, issuing a new one", "error", err)
		reason = "corrupt"
	case err != nil:
		return nil, fmt.Errorf("ca: load server certificate: %w", err)
	case stored == nil:
		reason = "missing"
	default:
		reason = a.serverReissueReason(stored.cert, sans)
		if reason == "" {
			return a.tlsCertificate(stored.cert, stored.key), nil
		}
	}

	leaf, key, err := a.issueServer(names, ServerValidity)
	if err != nil {
		return nil, err
	}
	err = a.db.Update(func(tx *bbolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists(bucketCA)
		if err != nil {
			return err
		}
		return storePair(b, keyServer, leaf, key)
	})
	if err != nil {
		return nil, fmt.Errorf("ca: store server certificate: %w", err)
	}
	a.log.Info("stored server certificate", "reason", reason, "serial", serialHex(leaf))
	return a.tlsCertificate(leaf, key), nil
}

// serverReissueReason says why a stored listener certificate cannot be
// served, or "" when it can.
func (a *Authority) serverReissueReason(cert *x509.Certificate, want sanSet) string {
	switch {
	case !slices.Equal(certNames(cert), want.sorted()):
		return "names changed"
	case cert.CheckSignatureFrom(a.intermediate) != nil:
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
	lifetime := cert.NotAfter.Sub(cert.NotBefore)
	return cert.NotAfter.Sub(now) < lifetime/3
}

func (a *Authority) tlsCertificate(leaf *x509.Certificate, key crypto.Signer) *tls.Certificate {
	return &tls.Certificate{
		Certificate: [][]byte{leaf.Raw, a.intermediate.Raw},
		PrivateKey:  key,
		Leaf:        leaf,
	}
}

// issueLeaf fills in the parts common to all leaves and signs tmpl with the
// intermediate.
func (a *Authority) issueLeaf(tmpl *x509.Certificate, validity time.Duration) (*x509.Certificate, crypto.Signer, error) {
	if validity < 0 {
		return nil, nil, fmt.Errorf("negative validity %v", validity)
	}
	if validity == 0 {
		validity = DefaultLeafValidity
	}
	now := a.now()
	tmpl.NotBefore = now.Add(-backdate)
	tmpl.NotAfter = now.Add(validity)
	// ECDSA keys only sign; KeyEncipherment is for RSA key transport.
	tmpl.KeyUsage = x509.KeyUsageDigitalSignature
	tmpl.BasicConstraintsValid = true
	key, err := newKey()
	if err != nil {
		return nil, nil, err
	}
	leaf, err := sign(tmpl, a.intermediate, a.intermediateKey, key)
	if err != nil {
		return nil, nil, err
	}
	return leaf, key, nil
}

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

// createCA signs a CA template; a nil parent makes it self-signed.
func createCA(tmpl, parent *x509.Certificate, parentKey, key crypto.Signer) (*x509.Certificate, error) {
	if parent == nil {
		parent, parentKey = tmpl, key
	}
	return sign(tmpl, parent, parentKey, key)
}

// sign sets serial and subject key ID on tmpl, caps its lifetime at the
// parent's (a certificate cannot outlive its issuer usefully) and signs it.
func sign(tmpl, parent *x509.Certificate, parentKey, key crypto.Signer) (*x509.Certificate, error) {
	serial, err := randomSerial()
	if err != nil {
		return nil, err
	}
	skid, err := subjectKeyID(key.Public())
	if err != nil {
		return nil, err
	}
	tmpl.SerialNumber = serial
	tmpl.SubjectKeyId = skid
	if parent != tmpl && tmpl.NotAfter.After(parent.NotAfter) {
		tmpl.NotAfter = parent.NotAfter
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, key.Public(), parentKey)
	if err != nil {
		return nil, fmt.Errorf("sign certificate: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("parse new certificate: %w", err)
	}
	return cert, nil
}

func newKey() (crypto.Signer, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generate key: %w", err)
	}
	return key, nil
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
// any key type x509 can marshal, so RSA issuers need no change.
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

// sanSet is a list of requested server names split into SAN kinds.
type sanSet struct {
	first string   // CN
	all   []string // normalised, deduplicated, in request order
	dns   []string
	ips   []net.IP
}

// parseNames normalises names (DNS names lowercased, IPv4-mapped IPv6
// unmapped, duplicates dropped) and splits them into DNS and IP SANs.
func parseNames(names []string) (sanSet, error) {
	var s sanSet
	if len(names) == 0 {
		return s, errors.New("no names")
	}
	for _, n := range names {
		if n == "" || strings.ContainsAny(n, " \t\r\n") {
			return sanSet{}, fmt.Errorf("invalid name %q", n)
		}
		var norm string
		if ip, err := netip.ParseAddr(n); err == nil {
			if ip.Zone() != "" {
				return sanSet{}, fmt.Errorf("invalid name %q: IP address with zone", n)
			}
			ip = ip.Unmap()
			norm = ip.String()
			if !slices.Contains(s.all, norm) {
				s.ips = append(s.ips, net.IP(ip.AsSlice()))
			}
		} else {
			norm = strings.ToLower(strings.TrimSuffix(n, "."))
			if !slices.Contains(s.all, norm) {
				s.dns = append(s.dns, norm)
			}
		}
		if !slices.Contains(s.all, norm) {
			s.all = append(s.all, norm)
		}
	}
	s.first = s.all[0]
	return s, nil
}

func (s sanSet) sorted() []string {
	return slices.Sorted(slices.Values(s.all))
}

// certNames returns the SANs of cert normalised like parseNames, sorted.
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
