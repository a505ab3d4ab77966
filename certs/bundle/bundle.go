// Package bundle is a certificate chain with its optional private key, decoded
// from and encoded to PEM and PKCS#12: the form in which the certificate
// manager and the API import and export certificates.
//
// Both parsers apply the same rules, so a bundle means the same whichever way
// it came in:
//
//   - The chain is ordered leaf first, then each issuer in turn, whatever the
//     input order. The order is found from the certificates themselves: a
//     certificate issued another when its subject is the other's issuer and its
//     key verifies the other's signature. Identical certificates given twice
//     count once. A certificate that is not on the path from the leaf upwards
//     is an error ([ErrNotAChain]) that names it, rather than being carried
//     along: a stray certificate in an import is almost always the wrong file,
//     and sending it to TLS peers would hide the mistake. The root may be left
//     out; the chain then ends at the last issuer given.
//   - Ordering is not validation: validity periods, CA constraints, name
//     constraints and trust are not checked here.
//   - With a private key, the leaf is the certificate whose public key is the
//     key's ([ErrKeyMismatch] if it is not at the bottom of the chain or no
//     certificate has it). Without one, the bundle is a trust-only entry (for
//     example a CA someone else owns) and the leaf is the one certificate that
//     issued none of the others.
//   - Private keys are ECDSA P-256 or P-384, RSA of at least 2048 bits, or
//     Ed25519 ([ErrUnsupportedKey] otherwise).
//   - Inputs are limited to [MaxInputSize] bytes and 16 certificates, and
//     password-based key derivations to 1,000,000 iterations, so that the work
//     an input can demand is bounded ([ErrTooLarge]).
//
// Errors about the input say what was wrong and where (the PEM block's number
// and type, the certificate's subject) and never include key material or
// passwords.
package bundle

import (
	"bytes"
	"crypto"
	"crypto/ecdh"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"strings"
)

// MaxInputSize is the largest PEM or PKCS#12 input the parsers accept. A chain
// with its key is a few KiB; the limit only keeps a mistaken upload (a disk
// image, a log file) from being read whole.
const MaxInputSize = 1 << 20

// maxCertificates bounds the certificates in a bundle: ordering them compares
// every pair, and a real chain has at most a handful.
const maxCertificates = 16

// minRSABits is the smallest RSA key the gateway accepts.
const minRSABits = 2048

var (
	// ErrTooLarge is returned when an input is larger than MaxInputSize, holds
	// more than 16 certificates, or asks for more than 1,000,000 iterations of
	// a password-based key derivation.
	ErrTooLarge = errors.New("input too large")

	// ErrNoCertificate is returned when an input holds no certificate (for
	// PEM: no CERTIFICATE block), or when a Bundle with an empty chain is
	// exported.
	ErrNoCertificate = errors.New("no certificate")

	// ErrBadPassword is returned when an encrypted private key or a PKCS#12
	// file cannot be opened with the password given: the password is wrong or
	// missing.
	ErrBadPassword = errors.New("wrong or missing password")

	// ErrKeyMismatch is returned when the private key does not belong to the
	// leaf certificate: no certificate of the chain has its public key, or the
	// one that has it issued another certificate of the chain.
	ErrKeyMismatch = errors.New("private key does not match the leaf certificate")

	// ErrNotAChain is returned when the certificates cannot be ordered into
	// one chain from a single leaf: a certificate is not on the path from the
	// leaf upwards, or no single leaf can be told apart.
	ErrNotAChain = errors.New("certificates do not form one chain")

	// ErrUnsupportedKey is returned when a private key is not ECDSA P-256 or
	// P-384, RSA of at least 2048 bits, or Ed25519.
	ErrUnsupportedKey = errors.New("unsupported private key")

	// ErrNoKey is returned by [Bundle.KeyPEM] when the bundle has no private
	// key.
	ErrNoKey = errors.New("bundle has no private key")
)

// Bundle is a certificate chain with its optional private key.
type Bundle struct {
	// Chain is the leaf first, then its issuers in order.
	Chain []*x509.Certificate
	// Key is the leaf's private key; nil for a trust-only entry.
	Key crypto.Signer
}

// Leaf returns the first certificate of the chain, or nil if it is empty.
func (b *Bundle) Leaf() *x509.Certificate {
	if len(b.Chain) == 0 {
		return nil
	}
	return b.Chain[0]
}

// ChainPEM encodes the chain as concatenated CERTIFICATE blocks, leaf first.
func (b *Bundle) ChainPEM() []byte {
	var buf bytes.Buffer
	for _, c := range b.Chain {
		// Writing to a bytes.Buffer cannot fail.
		_ = pem.Encode(&buf, &pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})
	}
	return buf.Bytes()
}

// KeyPEM encodes the private key as an unencrypted PKCS#8 "PRIVATE KEY" block.
func (b *Bundle) KeyPEM() ([]byte, error) {
	if b.Key == nil {
		return nil, ErrNoKey
	}
	if _, err := supportedKey(b.Key); err != nil {
		return nil, err
	}
	der, err := x509.MarshalPKCS8PrivateKey(b.Key)
	if err != nil {
		return nil, fmt.Errorf("encode %T private key as PKCS#8: %w", b.Key, err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

// check reports whether b is fit to export: a chain, and a supported key that
// belongs to its leaf.
func (b *Bundle) check() error {
	if len(b.Chain) == 0 {
		return ErrNoCertificate
	}
	for i, c := range b.Chain {
		if c == nil {
			return fmt.Errorf("chain certificate %d is nil", i)
		}
	}
	if b.Key == nil {
		return nil
	}
	if _, err := supportedKey(b.Key); err != nil {
		return err
	}
	if !samePublicKey(b.Chain[0].PublicKey, b.Key.Public()) {
		return fmt.Errorf("%w %s", ErrKeyMismatch, describe(b.Chain[0]))
	}
	return nil
}

// newBundle orders certs into a chain for key (nil for a trust-only entry).
func newBundle(certs []*x509.Certificate, key crypto.Signer) (*Bundle, error) {
	// Counted before dedupe, which compares every pair.
	if len(certs) > maxCertificates {
		return nil, fmt.Errorf("%w: %d certificates, at most %d", ErrTooLarge, len(certs), maxCertificates)
	}
	certs = dedupe(certs)
	if len(certs) == 0 {
		return nil, ErrNoCertificate
	}
	chain, err := orderChain(certs, key)
	if err != nil {
		return nil, err
	}
	return &Bundle{Chain: chain, Key: key}, nil
}

// dedupe drops certificates that are byte-for-byte repeats of an earlier one:
// concatenating a "fullchain" and a "chain" file repeats the intermediates.
func dedupe(certs []*x509.Certificate) []*x509.Certificate {
	out := make([]*x509.Certificate, 0, len(certs))
	for _, c := range certs {
		repeat := false
		for _, o := range out {
			if bytes.Equal(c.Raw, o.Raw) {
				repeat = true
				break
			}
		}
		if !repeat {
			out = append(out, c)
		}
	}
	return out
}

// orderChain returns certs ordered leaf first. See the package documentation
// for the rules.
func orderChain(certs []*x509.Certificate, key crypto.Signer) ([]*x509.Certificate, error) {
	n := len(certs)
	// issuer[i][j]: certs[j] issued certs[i]. Names are compared first so that
	// signatures are checked only between plausible pairs.
	issuer := make([][]bool, n)
	issuesOther := make([]bool, n)
	for i, child := range certs {
		issuer[i] = make([]bool, n)
		for j, parent := range certs {
			if i != j && issued(parent, child) {
				issuer[i][j] = true
				issuesOther[j] = true
			}
		}
	}

	var ends []int // certificates that issued none of the others
	for i := range certs {
		if !issuesOther[i] {
			ends = append(ends, i)
		}
	}

	leaf := -1
	if key != nil {
		pub := key.Public()
		for i, c := range certs {
			if !samePublicKey(c.PublicKey, pub) {
				continue
			}
			if issuesOther[i] {
				return nil, fmt.Errorf("%w: the key belongs to %s, which issued another certificate of the chain", ErrKeyMismatch, describe(c))
			}
			if leaf >= 0 {
				return nil, fmt.Errorf("%w: the private key matches both %s and %s", ErrNotAChain, describe(certs[leaf]), describe(c))
			}
			leaf = i
		}
		if leaf < 0 {
			if len(ends) == 1 {
				return nil, fmt.Errorf("%w %s", ErrKeyMismatch, describe(certs[ends[0]]))
			}
			return nil, fmt.Errorf("%w: no certificate has the key's public key", ErrKeyMismatch)
		}
	} else {
		switch len(ends) {
		case 0:
			return nil, fmt.Errorf("%w: every certificate issued another one, so none is the leaf", ErrNotAChain)
		case 1:
			leaf = ends[0]
		default:
			names := make([]string, len(ends))
			for k, i := range ends {
				names[k] = describe(certs[i])
			}
			return nil, fmt.Errorf("%w: %d certificates could each be the leaf: %s", ErrNotAChain, len(ends), strings.Join(names, ", "))
		}
	}

	used := make([]bool, n)
	used[leaf] = true
	order := []int{leaf}
	for {
		cur := order[len(order)-1]
		next := -1
		for j := range certs {
			if !used[j] && issuer[cur][j] {
				next = j
				break
			}
		}
		if next < 0 {
			break
		}
		used[next] = true
		order = append(order, next)
	}

	var stray []string
	for j, c := range certs {
		if !used[j] {
			stray = append(stray, describe(c))
		}
	}
	if len(stray) > 0 {
		return nil, fmt.Errorf("%w: %s not on the path from the leaf %s", ErrNotAChain, strings.Join(stray, ", "), describe(certs[leaf]))
	}

	chain := make([]*x509.Certificate, len(order))
	for k, i := range order {
		chain[k] = certs[i]
	}
	return chain, nil
}

// issued reports whether parent issued child. CheckSignature, unlike
// CheckSignatureFrom, neither applies CA constraints nor refuses SHA-1
// signatures: ordering an old chain is not the place to judge it.
func issued(parent, child *x509.Certificate) bool {
	return bytes.Equal(child.RawIssuer, parent.RawSubject) &&
		parent.CheckSignature(child.SignatureAlgorithm, child.RawTBSCertificate, child.Signature) == nil
}

// samePublicKey reports whether a and b are the same public key.
func samePublicKey(a, b crypto.PublicKey) bool {
	eq, ok := a.(interface{ Equal(crypto.PublicKey) bool })
	return ok && eq.Equal(b)
}

// supportedKey returns k as a crypto.Signer if it is a key the gateway uses.
func supportedKey(k any) (crypto.Signer, error) {
	switch k := k.(type) {
	case *rsa.PrivateKey:
		if k == nil || k.N == nil {
			return nil, fmt.Errorf("%w: empty RSA key", ErrUnsupportedKey)
		}
		if bits := k.N.BitLen(); bits < minRSABits {
			return nil, fmt.Errorf("%w: RSA key of %d bits, at least %d are required", ErrUnsupportedKey, bits, minRSABits)
		}
		return k, nil
	case *ecdsa.PrivateKey:
		if k == nil || k.Curve == nil {
			return nil, fmt.Errorf("%w: empty ECDSA key", ErrUnsupportedKey)
		}
		switch k.Curve {
		case elliptic.P256(), elliptic.P384():
			return k, nil
		}
		return nil, fmt.Errorf("%w: ECDSA key on curve %s, only P-256 and P-384 are supported", ErrUnsupportedKey, k.Curve.Params().Name)
	case ed25519.PrivateKey:
		if len(k) != ed25519.PrivateKeySize {
			return nil, fmt.Errorf("%w: Ed25519 key of %d bytes", ErrUnsupportedKey, len(k))
		}
		return k, nil
	case *ecdh.PrivateKey:
		if k == nil {
			return nil, fmt.Errorf("%w: empty X25519 key", ErrUnsupportedKey)
		}
		return nil, fmt.Errorf("%w: %s key-agreement key cannot sign", ErrUnsupportedKey, ecdhCurveName(k.Curve()))
	case nil:
		return nil, fmt.Errorf("%w: no key", ErrUnsupportedKey)
	default:
		return nil, fmt.Errorf("%w: key of type %T", ErrUnsupportedKey, k)
	}
}

func ecdhCurveName(c ecdh.Curve) string {
	if c == ecdh.X25519() {
		return "X25519"
	}
	return fmt.Sprint(c)
}

// describe names a certificate in an error message: its subject, or its serial
// number when the subject is empty. The subject is quoted because it comes from
// the input.
func describe(c *x509.Certificate) string {
	if s := c.Subject.String(); s != "" {
		return fmt.Sprintf("%q", truncate(s))
	}
	return fmt.Sprintf("(no subject, serial %x)", c.SerialNumber)
}

// truncate keeps error messages about hostile input readable.
func truncate(s string) string {
	const limit = 128
	if len(s) <= limit {
		return s
	}
	return s[:limit] + "…"
}
