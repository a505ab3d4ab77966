package certs

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
)

// Source is where a certificate came from, which decides how it is renewed.
type Source string

// The sources of a certificate.
const (
	// SourceLocal: issued by the gateway's local CA (or by a CA entity of
	// the store, see Certificate.CARef); renewed by issuing again.
	SourceLocal Source = "local"
	// SourceACME: obtained from an ACME CA; renewed by a new order.
	SourceACME Source = "acme"
	// SourceImported: uploaded (PEM, PKCS#12, the deployment TLS API);
	// never renewed automatically — its owner replaces it.
	SourceImported Source = "imported"
)

// Role is a use of a certificate by the gateway.
type Role string

// The roles a certificate can hold.
const (
	// RoleServer: the certificate every TLS listener (MQTT TLS, WSS,
	// HTTPS) serves.
	RoleServer Role = "server"
	// RoleClientCA: an extra CA trusted for client certificates by
	// listeners whose client_ca is "local" (beside the local CA).
	RoleClientCA Role = "client-ca"
)

// Certificate is the certificate entity: the fields of seed 004's store
// (id … metadata, JSON names as there) and what the gateway needs on top
// (source, usage, key type, fingerprints, renewal state).
//
// Fields marked "derived" are computed from the chain or from the current
// time and revocation state each time a Certificate is read; writes ignore
// them. Seed 004's privateKey is not part of it: keys are write-only, read
// only through [Manager.Key] for an explicit export.
type Certificate struct {
	ID          string `json:"id"`
	Name        string `json:"name"`
	Description string `json:"description"`
	Chain       string `json:"chain"`
	CARef       string `json:"caRef,omitempty"`
	Exposed     bool   `json:"exposed"`
	AutoRenew   bool   `json:"autoRenew"`
	Client      bool   `json:"client"`
	// ClientCA makes a CA certificate trusted for client certificates by
	// listeners whose client_ca is "local" (beside the local CA).
	ClientCA bool              `json:"clientCA"`
	Tags     []string          `json:"tags"`
	Metadata map[string]string `json:"metadata"`
	Source   Source            `json:"source"`

	// Revocation state, set by Manager.Revoke.
	Revoked          bool   `json:"revoked"`
	RevocationReason string `json:"revocationReason,omitempty"`
	RevokedAt        int64  `json:"revokedAt,omitempty"`

	// Derived from the chain.
	Domain      string   `json:"domain"`
	SelfSigned  bool     `json:"selfSigned"`
	CA          bool     `json:"ca"`
	LetsEncrypt bool     `json:"letsEncrypt"`
	Keypair     bool     `json:"keypair"`
	Subject     string   `json:"subject"`
	Issuer      string   `json:"issuer"`
	Serial      string   `json:"serial"`
	From        int64    `json:"from"`
	To          int64    `json:"to"`
	SANs        []string `json:"sans"`
	KeyType     string   `json:"keyType"`
	SHA256      string   `json:"sha256"`
	HasKey      bool     `json:"hasKey"`

	// Derived from the time, the chain and revocation.
	Valid         bool   `json:"valid"`
	InvalidReason string `json:"invalidReason,omitempty"`
	Usage         []Role `json:"usage"`

	Renewal Renewal `json:"renewal"`
}

// Renewal is the persisted renewal state of a certificate, so that a reboot
// neither forgets a back-off nor restarts the clock.
type Renewal struct {
	// NextAttempt (ms) is when the scheduler tries next; zero means "when due".
	NextAttempt int64 `json:"nextAttempt,omitempty"`
	// Failures counts consecutive failed attempts (the back-off exponent).
	Failures  int    `json:"failures,omitempty"`
	LastError string `json:"lastError,omitempty"`
	// FellBack is set while an ACME certificate that could not be renewed
	// close to its expiry is replaced on the listeners by a local one.
	FellBack bool `json:"fellBack,omitempty"`
	// History lists the latest renewals and failures, newest last.
	History []RenewalEvent `json:"history,omitempty"`
}

// RenewalEvent is one entry of a renewal history.
type RenewalEvent struct {
	At    int64  `json:"at"`
	OK    bool   `json:"ok"`
	Error string `json:"error,omitempty"`
	// Serial of the certificate the renewal produced.
	Serial string `json:"serial,omitempty"`
}

// maxRenewalHistory bounds Renewal.History.
const maxRenewalHistory = 20

func (r *Renewal) record(e RenewalEvent) {
	r.History = append(r.History, e)
	if over := len(r.History) - maxRenewalHistory; over > 0 {
		r.History = slices.Delete(r.History, 0, over)
	}
}

// ParseChainPEM decodes the CERTIFICATE blocks of a PEM chain, leaf first.
func ParseChainPEM(chainPEM string) ([]*x509.Certificate, error) {
	var chain []*x509.Certificate
	rest := []byte(chainPEM)
	for {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			break
		}
		if block.Type != "CERTIFICATE" {
			return nil, fmt.Errorf("chain: unexpected PEM block %q", block.Type)
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("chain: certificate %d: %w", len(chain)+1, err)
		}
		chain = append(chain, c)
	}
	if len(chain) == 0 {
		return nil, errors.New("chain: no certificate")
	}
	return chain, nil
}

// EncodeChainPEM encodes chain as consecutive CERTIFICATE blocks.
func EncodeChainPEM(chain []*x509.Certificate) string {
	var b strings.Builder
	for _, c := range chain {
		b.Write(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw}))
	}
	return b.String()
}

// derive fills the fields computed from the chain. The chain must be
// non-empty.
func (c *Certificate) derive(chain []*x509.Certificate, hasKey bool) {
	leaf := chain[0]
	c.Subject = leaf.Subject.String()
	c.Issuer = leaf.Issuer.String()
	c.Serial = leaf.SerialNumber.Text(16)
	c.From = leaf.NotBefore.UnixMilli()
	c.To = leaf.NotAfter.UnixMilli()
	c.CA = leaf.IsCA
	c.SelfSigned = isSelfSigned(leaf)
	c.SANs = sans(leaf)
	c.Domain = leaf.Subject.CommonName
	if len(leaf.DNSNames) > 0 {
		c.Domain = leaf.DNSNames[0]
	}
	if c.Domain == "" {
		c.Domain = "--"
	}
	c.KeyType = keyType(leaf.PublicKey)
	sum := sha256.Sum256(leaf.Raw)
	c.SHA256 = hex.EncodeToString(sum[:])
	c.HasKey = hasKey
	c.Keypair = false
	c.LetsEncrypt = c.Source == SourceACME
	if !c.Client {
		c.Client = slices.Contains(leaf.ExtKeyUsage, x509.ExtKeyUsageClientAuth) &&
			!slices.Contains(leaf.ExtKeyUsage, x509.ExtKeyUsageServerAuth)
	}
}

// checkValid sets Valid and InvalidReason for the time now. roots are the
// anchors a certificate of the store may chain to (the local CA's roots and
// the CA entities of the store); a chain ending in an anchor that is not in
// roots is still valid if it is internally consistent and self-signed at the
// top, because an imported public certificate's root is not ours to know.
func (c *Certificate) checkValid(chain []*x509.Certificate, now time.Time) {
	c.Valid, c.InvalidReason = false, ""
	leaf := chain[0]
	switch {
	case c.Revoked:
		c.InvalidReason = "revoked"
	case now.Before(leaf.NotBefore):
		c.InvalidReason = "not yet valid"
	case !now.Before(leaf.NotAfter):
		c.InvalidReason = "expired"
	default:
		if err := checkChainLinks(chain, now); err != nil {
			c.InvalidReason = err.Error()
			return
		}
		c.Valid = true
	}
}

// checkChainLinks verifies that each certificate of chain is signed by the
// next one and that none has expired.
func checkChainLinks(chain []*x509.Certificate, now time.Time) error {
	for i, cert := range chain {
		if now.After(cert.NotAfter) {
			return fmt.Errorf("chain certificate %d (%s) expired", i+1, cert.Subject)
		}
		if i+1 < len(chain) {
			if err := cert.CheckSignatureFrom(chain[i+1]); err != nil {
				return fmt.Errorf("chain certificate %d (%s) is not signed by the next one: %w", i+1, cert.Subject, err)
			}
		}
	}
	return nil
}

// isSelfSigned checks the signature directly: CheckSignatureFrom refuses a
// parent that is not a CA, and a self-signed leaf is not one.
func isSelfSigned(c *x509.Certificate) bool {
	return bytes.Equal(c.RawSubject, c.RawIssuer) &&
		c.CheckSignature(c.SignatureAlgorithm, c.RawTBSCertificate, c.Signature) == nil
}

func sans(c *x509.Certificate) []string {
	out := slices.Clone(c.DNSNames)
	for _, ip := range c.IPAddresses {
		out = append(out, ip.String())
	}
	for _, u := range c.URIs {
		out = append(out, u.String())
	}
	out = append(out, c.EmailAddresses...)
	if out == nil {
		out = []string{}
	}
	return out
}

// keyType names a public key's algorithm and size, e.g. "ecdsa-p256".
func keyType(pub crypto.PublicKey) string {
	switch k := pub.(type) {
	case *ecdsa.PublicKey:
		return "ecdsa-" + strings.ToLower(strings.ReplaceAll(k.Curve.Params().Name, "-", ""))
	case *rsa.PublicKey:
		return fmt.Sprintf("rsa-%d", k.N.BitLen())
	case ed25519.PublicKey:
		return "ed25519"
	default:
		return fmt.Sprintf("%T", pub)
	}
}
