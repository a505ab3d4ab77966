package ca

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"fmt"
	"strings"
)

// KeyType names the algorithm and size of a private key the authority
// generates, for its own CA certificates ([Options.KeyType]) and for issued
// certificates ([IssueRequest.KeyType]).
type KeyType string

// The key types the authority generates. ECDSA P-256 is the default: small,
// fast on the ARM boards the gateway runs on, and understood by every TLS
// stack the sensors use. RSA is there for peers that know nothing else.
const (
	KeyECDSAP256 KeyType = "ecdsa-p256"
	KeyECDSAP384 KeyType = "ecdsa-p384"
	KeyRSA2048   KeyType = "rsa-2048"
	KeyRSA3072   KeyType = "rsa-3072"
	KeyRSA4096   KeyType = "rsa-4096"

	// DefaultKeyType is used where a key type is left empty.
	DefaultKeyType = KeyECDSAP256
)

// keyTypes lists the valid key types in the order error messages name them.
var keyTypes = []KeyType{KeyECDSAP256, KeyECDSAP384, KeyRSA2048, KeyRSA3072, KeyRSA4096}

// ParseKeyType parses a key type name such as "ecdsa-p256" or "RSA-4096"
// (case and surrounding spaces do not matter). The empty string is
// [DefaultKeyType]. An unknown name is an error wrapping [ErrInvalidRequest]
// that lists the allowed ones.
func ParseKeyType(s string) (KeyType, error) {
	t := KeyType(strings.ToLower(strings.TrimSpace(s)))
	if t == "" {
		return DefaultKeyType, nil
	}
	if err := t.check(); err != nil {
		return "", err
	}
	return t, nil
}

// String returns the key type's name, as ParseKeyType accepts it.
func (t KeyType) String() string { return string(t) }

// check returns an error unless t is one of the generated key types.
func (t KeyType) check() error {
	for _, k := range keyTypes {
		if t == k {
			return nil
		}
	}
	names := make([]string, len(keyTypes))
	for i, k := range keyTypes {
		names[i] = string(k)
	}
	return fmt.Errorf("%w: unknown key type %q (allowed: %s)", ErrInvalidRequest, string(t), strings.Join(names, ", "))
}

// orDefault returns t, or DefaultKeyType when t is empty.
func (t KeyType) orDefault() KeyType {
	if t == "" {
		return DefaultKeyType
	}
	return t
}

// generate creates a new private key of type t ("" is the default type).
func (t KeyType) generate() (crypto.Signer, error) {
	t = t.orDefault()
	var (
		key crypto.Signer
		err error
	)
	switch t {
	case KeyECDSAP256:
		key, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case KeyECDSAP384:
		key, err = ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	case KeyRSA2048:
		key, err = rsa.GenerateKey(rand.Reader, 2048)
	case KeyRSA3072:
		key, err = rsa.GenerateKey(rand.Reader, 3072)
	case KeyRSA4096:
		key, err = rsa.GenerateKey(rand.Reader, 4096)
	default:
		return nil, t.check()
	}
	if err != nil {
		return nil, fmt.Errorf("generate %s key: %w", t, err)
	}
	return key, nil
}

// KeyTypeOf returns the key type of a public key, for renewing a certificate
// with a key like its current one. Keys of other kinds or sizes (ECDSA P-521,
// Ed25519, RSA of another size), which the authority accepts in CSRs and
// imported issuers but does not generate, are an error.
func KeyTypeOf(pub crypto.PublicKey) (KeyType, error) {
	switch k := pub.(type) {
	case *ecdsa.PublicKey:
		switch k.Curve {
		case elliptic.P256():
			return KeyECDSAP256, nil
		case elliptic.P384():
			return KeyECDSAP384, nil
		}
	case *rsa.PublicKey:
		switch k.N.BitLen() {
		case 2048:
			return KeyRSA2048, nil
		case 3072:
			return KeyRSA3072, nil
		case 4096:
			return KeyRSA4096, nil
		}
	}
	return "", fmt.Errorf("%w: %s key has no generated key type", ErrInvalidRequest, describeKey(pub))
}

// checkPublicKey refuses keys too weak or too exotic to certify: the kinds
// accepted from CSRs and for imported issuers.
func checkPublicKey(pub crypto.PublicKey) error {
	switch k := pub.(type) {
	case *ecdsa.PublicKey:
		switch k.Curve {
		case elliptic.P256(), elliptic.P384(), elliptic.P521():
			return nil
		}
	case *rsa.PublicKey:
		if n := k.N.BitLen(); n >= 2048 && n <= 8192 {
			return nil
		}
	case ed25519.PublicKey:
		return nil
	}
	return fmt.Errorf("%w: unsupported key %s (want ECDSA P-256/P-384/P-521, RSA 2048 to 8192 bits or Ed25519)",
		ErrInvalidRequest, describeKey(pub))
}

// describeKey names a public key's kind and size for messages.
func describeKey(pub crypto.PublicKey) string {
	switch k := pub.(type) {
	case *ecdsa.PublicKey:
		return "ECDSA " + k.Curve.Params().Name
	case *rsa.PublicKey:
		return fmt.Sprintf("RSA %d-bit", k.N.BitLen())
	case ed25519.PublicKey:
		return "Ed25519"
	}
	return fmt.Sprintf("%T", pub)
}

// keyFamily is the kind of key a signature algorithm needs.
type keyFamily int

const (
	familyNone keyFamily = iota
	familyECDSA
	familyRSA
	familyEd25519
)

func (f keyFamily) String() string {
	switch f {
	case familyECDSA:
		return "ECDSA"
	case familyRSA:
		return "RSA"
	case familyEd25519:
		return "Ed25519"
	}
	return "unsupported"
}

func familyOf(pub crypto.PublicKey) keyFamily {
	switch pub.(type) {
	case *ecdsa.PublicKey:
		return familyECDSA
	case *rsa.PublicKey:
		return familyRSA
	case ed25519.PublicKey:
		return familyEd25519
	}
	return familyNone
}

// signatureAlgorithms are the algorithms the authority signs with, under the
// names ParseSignatureAlgorithm accepts first (x509's own names, e.g.
// "SHA256-RSA", are accepted too). SHA-1 and MD5 are not among them.
var signatureAlgorithms = []struct {
	name   string
	alg    x509.SignatureAlgorithm
	family keyFamily
}{
	{"ecdsa-sha256", x509.ECDSAWithSHA256, familyECDSA},
	{"ecdsa-sha384", x509.ECDSAWithSHA384, familyECDSA},
	{"ecdsa-sha512", x509.ECDSAWithSHA512, familyECDSA},
	{"rsa-sha256", x509.SHA256WithRSA, familyRSA},
	{"rsa-sha384", x509.SHA384WithRSA, familyRSA},
	{"rsa-sha512", x509.SHA512WithRSA, familyRSA},
	{"rsa-pss-sha256", x509.SHA256WithRSAPSS, familyRSA},
	{"rsa-pss-sha384", x509.SHA384WithRSAPSS, familyRSA},
	{"rsa-pss-sha512", x509.SHA512WithRSAPSS, familyRSA},
	{"ed25519", x509.PureEd25519, familyEd25519},
}

// ParseSignatureAlgorithm parses a signature algorithm name: "ecdsa-sha256",
// "ecdsa-sha384", "ecdsa-sha512", "rsa-sha256", "rsa-sha384", "rsa-sha512",
// "rsa-pss-sha256", "rsa-pss-sha384", "rsa-pss-sha512", "ed25519", or the name
// x509.SignatureAlgorithm.String gives (e.g. "SHA384-RSAPSS"); case does not
// matter. The empty string returns x509.UnknownSignatureAlgorithm, which
// means "the default for the issuer's key" wherever the package takes an
// algorithm. An unknown name is an error wrapping [ErrInvalidRequest] that
// lists the allowed ones.
func ParseSignatureAlgorithm(s string) (x509.SignatureAlgorithm, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return x509.UnknownSignatureAlgorithm, nil
	}
	for _, a := range signatureAlgorithms {
		if strings.EqualFold(s, a.name) || strings.EqualFold(s, a.alg.String()) {
			return a.alg, nil
		}
	}
	names := make([]string, len(signatureAlgorithms))
	for i, a := range signatureAlgorithms {
		names[i] = a.name
	}
	return 0, fmt.Errorf("%w: unknown signature algorithm %q (allowed: %s)", ErrInvalidRequest, s, strings.Join(names, ", "))
}

// signatureAlgorithmFor returns the algorithm to sign with issuerPub's
// private key: requested when it suits the key's kind, or when requested is
// x509.UnknownSignatureAlgorithm the default for the key (the digest size
// matching an ECDSA curve, SHA-256 for RSA).
func signatureAlgorithmFor(issuerPub crypto.PublicKey, requested x509.SignatureAlgorithm) (x509.SignatureAlgorithm, error) {
	family := familyOf(issuerPub)
	if requested == x509.UnknownSignatureAlgorithm {
		switch k := issuerPub.(type) {
		case *ecdsa.PublicKey:
			switch k.Curve {
			case elliptic.P384():
				return x509.ECDSAWithSHA384, nil
			case elliptic.P521():
				return x509.ECDSAWithSHA512, nil
			}
			return x509.ECDSAWithSHA256, nil
		case *rsa.PublicKey:
			return x509.SHA256WithRSA, nil
		case ed25519.PublicKey:
			return x509.PureEd25519, nil
		}
		return 0, fmt.Errorf("%w: issuer key %s cannot sign", ErrInvalidRequest, describeKey(issuerPub))
	}
	for _, a := range signatureAlgorithms {
		if a.alg != requested {
			continue
		}
		if a.family != family {
			return 0, fmt.Errorf("%w: signature algorithm %s needs an %s issuer key; the issuer's key is %s",
				ErrInvalidRequest, requested, a.family, describeKey(issuerPub))
		}
		return requested, nil
	}
	return 0, fmt.Errorf("%w: signature algorithm %s is not supported", ErrInvalidRequest, requested)
}
