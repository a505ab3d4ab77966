package acme

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
	"time"

	"github.com/go-acme/lego/v4/acme/api"
	"github.com/go-acme/lego/v4/certcrypto"
	"github.com/go-acme/lego/v4/certificate"
	"github.com/go-acme/lego/v4/lego"
)

// Certificate is an issued certificate and its key.
type Certificate struct {
	// ChainPEM is the leaf followed by the intermediates the CA sent.
	ChainPEM []byte
	// KeyPEM is the certificate's private key as PKCS#8 ("PRIVATE KEY"). It is
	// a secret.
	KeyPEM []byte
	// Leaf is the parsed first certificate of ChainPEM.
	Leaf *x509.Certificate
	// Issuer is the certificate that signed Leaf, the second of ChainPEM; nil
	// if the CA sent no chain.
	Issuer *x509.Certificate
	// ARICertID identifies Leaf to the CA's renewal information (RFC 9773,
	// section 4.1); empty if Leaf has no authority key identifier.
	ARICertID string
	// URL is where the CA serves the certificate.
	URL string
}

// RenewalInfo is the CA's suggested renewal window for a certificate (ACME
// Renewal Information, RFC 9773).
type RenewalInfo struct {
	// WindowStart and WindowEnd bound the time in which the CA wants the
	// certificate renewed; pick a random time in between. A window in the past
	// means: renew now.
	WindowStart, WindowEnd time.Time
	// RetryAfter is how long to wait before asking again; zero if the CA did
	// not say.
	RetryAfter time.Duration
	// ExplanationURL, if set, explains an unusual window (e.g. a mass
	// revocation); show it to the operator.
	ExplanationURL string
}

// Obtain orders a certificate for names (DNS names, wildcards with dns-01,
// or IP addresses) with a new key of [Config.KeyType]; the first name is
// requested as the common name, which a CA may drop. The account is loaded or
// registered first; if the CA no longer knows a stored account, a new one is
// registered and the order retried once.
func (c *Client) Obtain(ctx context.Context, names []string) (*Certificate, error) {
	return c.obtain(ctx, names, nil)
}

// Renew orders a certificate for names, with a new key, to replace old. It
// differs from Obtain only in telling the CA which certificate is replaced
// (RFC 9773, section 5), which Let's Encrypt exempts from rate limits; a CA
// without renewal information ignores it, and lego drops it if the CA says
// old was already replaced.
//
// The key is never reused: a new key per certificate costs nothing with ACME
// and limits what a leaked key exposes to one certificate's lifetime.
func (c *Client) Renew(ctx context.Context, names []string, old *x509.Certificate) (*Certificate, error) {
	return c.obtain(ctx, names, old)
}

func (c *Client) obtain(ctx context.Context, names []string, old *x509.Certificate) (*Certificate, error) {
	names, err := c.checkNames(names)
	if err != nil {
		return nil, fmt.Errorf("acme: obtain %v: %w", names, err)
	}
	ctx, cancel := c.opContext(ctx)
	defer cancel()
	if err := c.acquire(ctx); err != nil {
		return nil, fmt.Errorf("acme: obtain %v: %w", names, err)
	}
	defer c.release()

	key, err := newCertKey(c.cfg.KeyType)
	if err != nil {
		return nil, fmt.Errorf("acme: obtain %v: %w", names, err)
	}
	var replaces string
	if old != nil && len(old.AuthorityKeyId) > 0 {
		replaces, _ = certificate.MakeARICertID(old)
	}

	res, err := c.order(ctx, names, key, replaces)
	if accountGone(err) && c.acct != nil {
		c.log.Warn("acme account no longer exists at the CA; registering a new one",
			"directory", c.cfg.DirectoryURL, "account", c.acct.reg.URI)
		c.acct = nil
		a, rerr := c.register(ctx)
		if rerr != nil {
			return nil, fmt.Errorf("acme: obtain %v: register account at %s: %w", names, c.cfg.DirectoryURL, rerr)
		}
		c.acct = a
		// old was issued to the vanished account; a new account cannot
		// claim to replace it.
		res, err = c.order(ctx, names, key, "")
	}
	if err != nil {
		return nil, fmt.Errorf("acme: obtain %v: %w", names, err)
	}
	cert, err := parseIssued(res, key, names)
	if err != nil {
		return nil, fmt.Errorf("acme: obtain %v: %w", names, err)
	}
	c.log.Info("acme certificate obtained", "names", names,
		"serial", cert.Leaf.SerialNumber.Text(16), "not_after", cert.Leaf.NotAfter)
	return cert, nil
}

// order runs one ACME order with the client's account. The caller holds c.sem.
func (c *Client) order(ctx context.Context, names []string, key crypto.Signer, replaces string) (*certificate.Resource, error) {
	acct, err := c.account(ctx)
	if err != nil {
		return nil, err
	}
	lc, err := c.legoClient(ctx, acct)
	if err != nil {
		return nil, err
	}
	if err := c.setSolvers(ctx, lc); err != nil {
		return nil, err
	}
	return lc.Certificate.Obtain(certificate.ObtainRequest{
		Domains:        names,
		PrivateKey:     key,
		Bundle:         true,
		ReplacesCertID: replaces,
	})
}

// legoClient returns a lego client for one operation: its HTTP requests are
// bound to ctx. Creating it fetches the CA's directory.
func (c *Client) legoClient(ctx context.Context, a *account) (*lego.Client, error) {
	kt, err := certKeyType(c.cfg.KeyType)
	if err != nil {
		return nil, err
	}
	return lego.NewClient(&lego.Config{
		CADirURL:   c.cfg.DirectoryURL,
		User:       a,
		UserAgent:  "edgegate",
		HTTPClient: newOpClient(ctx, c.acmeTransport),
		Certificate: lego.CertificateConfig{
			KeyType: kt,
			// How long lego waits for a finalized order's certificate.
			Timeout: c.cfg.Timeout,
		},
	})
}

func (c *Client) setSolvers(ctx context.Context, lc *lego.Client) error {
	for _, ch := range c.cfg.Challenges {
		var err error
		switch ch {
		case HTTP01:
			err = lc.Challenge.SetHTTP01Provider(c.http01)
		case TLSALPN01:
			err = lc.Challenge.SetTLSALPN01Provider(c.tlsALPN)
		case DNS01:
			var s *dnsSolver
			if s, err = c.dns.solver(ctx, c.dnsTransport, c.log); err == nil {
				err = lc.Challenge.SetDNS01Provider(s, c.dns.preCheck(ctx))
			}
		}
		if err != nil {
			return fmt.Errorf("set up %s: %w", ch, err)
		}
	}
	return nil
}

// checkNames returns names lower-cased, without trailing dots and
// duplicates, in their order.
func (c *Client) checkNames(names []string) ([]string, error) {
	if len(names) == 0 {
		return nil, errors.New("no names")
	}
	out := make([]string, 0, len(names))
	for _, n := range names {
		n = strings.ToLower(strings.TrimSuffix(strings.TrimSpace(n), "."))
		if n == "" {
			return names, errors.New("empty name")
		}
		if strings.HasPrefix(n, "*.") && !slices.Contains(c.cfg.Challenges, DNS01) {
			return names, fmt.Errorf("wildcard name %q needs the dns-01 challenge", n)
		}
		if !slices.Contains(out, n) {
			out = append(out, n)
		}
	}
	return out, nil
}

// parseIssued checks what the CA returned: a chain of certificates whose
// leaf holds key's public key and covers every name.
func parseIssued(res *certificate.Resource, key crypto.Signer, names []string) (*Certificate, error) {
	var (
		chain []*x509.Certificate
		buf   bytes.Buffer
		rest  = res.Certificate
	)
	for {
		var block *pem.Block
		if block, rest = pem.Decode(rest); block == nil {
			break
		}
		if block.Type != "CERTIFICATE" {
			return nil, fmt.Errorf("the CA returned a %q PEM block in the chain", block.Type)
		}
		cert, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("parse issued certificate: %w", err)
		}
		chain = append(chain, cert)
		// Re-encoded so that ChainPEM holds nothing but the certificates.
		_ = pem.Encode(&buf, &pem.Block{Type: "CERTIFICATE", Bytes: block.Bytes})
	}
	if len(chain) == 0 {
		return nil, errors.New("the CA returned no certificate")
	}
	leaf := chain[0]
	if pub, ok := leaf.PublicKey.(interface{ Equal(crypto.PublicKey) bool }); !ok || !pub.Equal(key.Public()) {
		return nil, errors.New("the issued certificate does not hold the requested key")
	}
	for _, n := range names {
		if !covers(leaf, n) {
			return nil, fmt.Errorf("the issued certificate does not cover %q", n)
		}
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("encode certificate key: %w", err)
	}
	cert := &Certificate{
		ChainPEM: buf.Bytes(),
		KeyPEM:   pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}),
		Leaf:     leaf,
		URL:      res.CertURL,
	}
	if len(chain) > 1 {
		cert.Issuer = chain[1]
	}
	if len(leaf.AuthorityKeyId) > 0 {
		cert.ARICertID, _ = certificate.MakeARICertID(leaf)
	}
	return cert, nil
}

// covers reports whether leaf names n exactly, as an ACME CA issues it.
func covers(leaf *x509.Certificate, n string) bool {
	if ip := net.ParseIP(n); ip != nil {
		return slices.ContainsFunc(leaf.IPAddresses, ip.Equal)
	}
	return slices.ContainsFunc(leaf.DNSNames, func(d string) bool { return strings.EqualFold(d, n) })
}

func certKeyType(kt KeyType) (certcrypto.KeyType, error) {
	switch kt {
	case KeyECP256, "":
		return certcrypto.EC256, nil
	case KeyECP384:
		return certcrypto.EC384, nil
	case KeyRSA2048:
		return certcrypto.RSA2048, nil
	case KeyRSA4096:
		return certcrypto.RSA4096, nil
	}
	return "", fmt.Errorf("unknown key type %q", kt)
}

func newCertKey(kt KeyType) (crypto.Signer, error) {
	var (
		key crypto.Signer
		err error
	)
	switch kt {
	case KeyECP256, "":
		key, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case KeyECP384:
		key, err = ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	case KeyRSA2048:
		key, err = rsa.GenerateKey(rand.Reader, 2048)
	case KeyRSA4096:
		key, err = rsa.GenerateKey(rand.Reader, 4096)
	default:
		return nil, fmt.Errorf("unknown key type %q", kt)
	}
	if err != nil {
		return nil, fmt.Errorf("generate %s key: %w", kt, err)
	}
	return key, nil
}

// RenewalInfo asks the CA when it wants leaf renewed (RFC 9773). It returns
// an error wrapping [ErrNoRenewalInfo] when the CA does not offer renewal
// information or leaf has no authority key identifier to look it up by; the
// caller then renews when a third of the lifetime is left. No account is
// needed or registered.
func (c *Client) RenewalInfo(ctx context.Context, leaf *x509.Certificate) (*RenewalInfo, error) {
	if leaf == nil {
		return nil, errors.New("acme: renewal info: nil certificate")
	}
	serial := leaf.SerialNumber.Text(16)
	if len(leaf.AuthorityKeyId) == 0 {
		return nil, fmt.Errorf("acme: renewal info for %s: certificate has no authority key id: %w", serial, ErrNoRenewalInfo)
	}
	ctx, cancel := c.opContext(ctx)
	defer cancel()

	// lego wants an account key for every client, though the renewal info
	// request is an unsigned GET: a throwaway key is never sent.
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("acme: renewal info for %s: %w", serial, err)
	}
	lc, err := c.legoClient(ctx, &account{key: key})
	if err != nil {
		return nil, fmt.Errorf("acme: renewal info for %s: %w", serial, err)
	}
	info, err := lc.Certificate.GetRenewalInfo(certificate.RenewalInfoRequest{Cert: leaf})
	if errors.Is(err, api.ErrNoARI) {
		return nil, fmt.Errorf("acme: renewal info for %s at %s: %w", serial, c.cfg.DirectoryURL, ErrNoRenewalInfo)
	}
	if err != nil {
		return nil, fmt.Errorf("acme: renewal info for %s: %w", serial, err)
	}
	// lego decodes the body whatever the status; an error document decodes
	// to a zero window.
	w := info.SuggestedWindow
	if w.Start.IsZero() || w.End.IsZero() || w.End.Before(w.Start) {
		return nil, fmt.Errorf("acme: renewal info for %s: the CA's answer has no valid suggested window", serial)
	}
	return &RenewalInfo{
		WindowStart:    w.Start,
		WindowEnd:      w.End,
		RetryAfter:     info.RetryAfter,
		ExplanationURL: info.ExplanationURL,
	}, nil
}

// Revoke asks the CA to revoke the certificate (the first of certPEM) for
// reason, one of the Reason constants. The client's account must be the one
// the certificate was issued to (or hold authorizations for all its names).
func (c *Client) Revoke(ctx context.Context, certPEM []byte, reason uint) error {
	block, _ := pem.Decode(certPEM)
	if block == nil || block.Type != "CERTIFICATE" {
		return errors.New("acme: revoke: not a PEM certificate")
	}
	leaf, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return fmt.Errorf("acme: revoke: %w", err)
	}
	serial := leaf.SerialNumber.Text(16)
	ctx, cancel := c.opContext(ctx)
	defer cancel()
	if err := c.acquire(ctx); err != nil {
		return fmt.Errorf("acme: revoke certificate %s: %w", serial, err)
	}
	defer c.release()

	acct, err := c.account(ctx)
	if err != nil {
		return fmt.Errorf("acme: revoke certificate %s: %w", serial, err)
	}
	lc, err := c.legoClient(ctx, acct)
	if err != nil {
		return fmt.Errorf("acme: revoke certificate %s: %w", serial, err)
	}
	r := reason
	if err := lc.Certificate.RevokeWithReason(pem.EncodeToMemory(block), &r); err != nil {
		return fmt.Errorf("acme: revoke certificate %s: %w", serial, err)
	}
	c.log.Info("acme certificate revoked", "serial", serial, "reason", reason)
	return nil
}
