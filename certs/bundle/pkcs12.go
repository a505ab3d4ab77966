package bundle

import (
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"errors"
	"fmt"

	"software.sslmate.com/src/go-pkcs12"
)

// Encoding selects the algorithms of a PKCS#12 file written by
// [Bundle.PKCS12].
type Encoding int

const (
	// Modern encrypts with AES-256-CBC (PBES2, PBKDF2-HMAC-SHA-256) and
	// authenticates with HMAC-SHA-256, as OpenSSL 3 does by default
	// (go-pkcs12's Modern2023). Read by OpenSSL 1.1.1 and later, Java 12 and
	// later, and Windows Server 2019 / Windows 10 1709 and later.
	Modern Encoding = iota

	// Legacy encrypts certificates and key with 3DES-CBC under the PKCS#12
	// SHA-1 key derivation and authenticates with HMAC-SHA-1, as `openssl
	// pkcs12 -export -descert` does (go-pkcs12's LegacyDES), for older devices,
	// Windows and Java versions. The RC2 variant older OpenSSL wrote is not
	// offered: OpenSSL 3 reads it only with -legacy, and 3DES is read by
	// everything that reads RC2.
	Legacy
)

// String names the encoding.
func (e Encoding) String() string {
	switch e {
	case Modern:
		return "modern"
	case Legacy:
		return "legacy"
	}
	return fmt.Sprintf("Encoding(%d)", int(e))
}

// ParsePKCS12 decodes a bundle from a PKCS#12 (.p12, .pfx) file opened with
// password: its certificates and private key, or, for a trust store without a
// key (what [Bundle.PKCS12] writes for a trust-only bundle), its certificates.
// The chain is ordered as for ParsePEM, whatever the file's order. An empty
// password also opens files written without one.
//
// A file that holds certificates but neither a key nor the Java trust marks
// (`openssl pkcs12 -export -nokeys`) cannot be read by go-pkcs12, and so is
// refused; such certificates are imported as PEM instead.
func ParsePKCS12(data []byte, password string) (*Bundle, error) {
	if len(data) > MaxInputSize {
		return nil, fmt.Errorf("%w: %d bytes, at most %d", ErrTooLarge, len(data), MaxInputSize)
	}
	if err := checkPKCS12Cost(data); err != nil {
		return nil, fmt.Errorf("PKCS#12: %w", err)
	}

	key, leaf, cas, err := pkcs12.DecodeChain(data, password)
	if err != nil {
		if errors.Is(err, pkcs12.ErrIncorrectPassword) || errors.Is(err, pkcs12.ErrDecryption) {
			return nil, fmt.Errorf("PKCS#12: %w", ErrBadPassword)
		}
		// DecodeChain insists on a key; a trust store has none.
		certs, tsErr := pkcs12.DecodeTrustStore(data, password)
		if tsErr != nil {
			return nil, fmt.Errorf("PKCS#12: %w", err)
		}
		b, err := newBundle(certs, nil)
		if err != nil {
			return nil, fmt.Errorf("PKCS#12: %w", err)
		}
		return b, nil
	}

	signer, err := supportedKey(key)
	if err != nil {
		return nil, fmt.Errorf("PKCS#12: %w", err)
	}
	b, err := newBundle(append([]*x509.Certificate{leaf}, cas...), signer)
	if err != nil {
		return nil, fmt.Errorf("PKCS#12: %w", err)
	}
	return b, nil
}

// PKCS12 encodes the bundle as a PKCS#12 file protected by password with enc's
// algorithms. A bundle with a key gives the usual file of key, leaf and CA
// certificates. A trust-only bundle gives a trust store: the certificates
// alone, each marked trusted for any purpose in Java's way (go-pkcs12's
// EncodeTrustStore), which OpenSSL and Java read and ParsePKCS12 reads back.
func (b *Bundle) PKCS12(password string, enc Encoding) ([]byte, error) {
	if err := b.check(); err != nil {
		return nil, fmt.Errorf("encode PKCS#12: %w", err)
	}
	var encoder *pkcs12.Encoder
	switch enc {
	case Modern:
		encoder = pkcs12.Modern2023
	case Legacy:
		encoder = pkcs12.LegacyDES
	default:
		return nil, fmt.Errorf("encode PKCS#12: unknown %v", enc)
	}

	var (
		der []byte
		err error
	)
	if b.Key == nil {
		der, err = encoder.EncodeTrustStore(b.Chain, password)
	} else {
		der, err = encoder.Encode(b.Key, b.Chain[0], b.Chain[1:], password)
	}
	if err != nil {
		return nil, fmt.Errorf("encode PKCS#12 (%v): %w", enc, err)
	}
	return der, nil
}

// The PKCS#12 structures below mirror go-pkcs12's, so that checkPKCS12Cost
// reads a file the way go-pkcs12 will.

type pfxPDU struct {
	Version  int
	AuthSafe contentInfo
	MacData  macData `asn1:"optional"`
}

type contentInfo struct {
	ContentType asn1.ObjectIdentifier
	Content     asn1.RawValue `asn1:"tag:0,explicit,optional"`
}

type macData struct {
	Mac        digestInfo
	MacSalt    []byte
	Iterations int `asn1:"optional,default:1"`
}

type digestInfo struct {
	Algorithm pkix.AlgorithmIdentifier
	Digest    []byte
}

type pbmac1Params struct {
	KDF    pkix.AlgorithmIdentifier
	MacAlg pkix.AlgorithmIdentifier
}

type encryptedData struct {
	Version              int
	EncryptedContentInfo encryptedContentInfo
}

type encryptedContentInfo struct {
	ContentType                asn1.ObjectIdentifier
	ContentEncryptionAlgorithm pkix.AlgorithmIdentifier
	EncryptedContent           []byte `asn1:"tag:0,optional"`
}

type safeBag struct {
	ID         asn1.ObjectIdentifier
	Value      asn1.RawValue     `asn1:"tag:0,explicit"`
	Attributes []pkcs12Attribute `asn1:"set,optional"`
}

type pkcs12Attribute struct {
	ID    asn1.ObjectIdentifier
	Value asn1.RawValue `asn1:"set"`
}

type pbeParams struct {
	Salt       []byte
	Iterations int
}

var (
	oidData                = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 7, 1}
	oidEncryptedData       = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 7, 6}
	oidPBMAC1              = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 5, 14}
	oidPKCS8ShroudedKeyBag = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 12, 10, 1, 2}
)

// checkPKCS12Cost refuses a file whose key derivations, in its MAC and in the
// parts readable before decryption, ask for more than maxIterations: go-pkcs12
// runs whatever count the file names. Structure it cannot read is left for
// go-pkcs12 to report, since go-pkcs12 stops at the same place before deriving
// any further key. Key bags inside encrypted contents are reached only with
// the right password, that is by whoever made the file.
func checkPKCS12Cost(data []byte) error {
	var pfx pfxPDU
	if unmarshalAll(data, &pfx) != nil {
		return nil
	}
	if mac := pfx.MacData.Mac.Algorithm; len(mac.Algorithm) > 0 {
		if mac.Algorithm.Equal(oidPBMAC1) {
			var p pbmac1Params
			if unmarshalAll(mac.Parameters.FullBytes, &p) != nil {
				return nil
			}
			if err := checkPBKDF2Cost(p.KDF); err != nil {
				return fmt.Errorf("MAC: %w", err)
			}
		} else if err := checkIterations(pfx.MacData.Iterations); err != nil {
			return fmt.Errorf("MAC: %w", err)
		}
	}

	if !pfx.AuthSafe.ContentType.Equal(oidData) {
		return nil
	}
	var content []byte
	if unmarshalAll(pfx.AuthSafe.Content.Bytes, &content) != nil {
		return nil
	}
	var safe []contentInfo
	if unmarshalAll(content, &safe) != nil {
		return nil
	}
	for _, ci := range safe {
		switch {
		case ci.ContentType.Equal(oidEncryptedData):
			var ed encryptedData
			if unmarshalAll(ci.Content.Bytes, &ed) != nil {
				return nil
			}
			if err := checkPBECost(ed.EncryptedContentInfo.ContentEncryptionAlgorithm); err != nil {
				return fmt.Errorf("encrypted contents: %w", err)
			}
		case ci.ContentType.Equal(oidData):
			var bagsDER []byte
			if unmarshalAll(ci.Content.Bytes, &bagsDER) != nil {
				return nil
			}
			var bags []safeBag
			if unmarshalAll(bagsDER, &bags) != nil {
				return nil
			}
			for _, bag := range bags {
				if !bag.ID.Equal(oidPKCS8ShroudedKeyBag) {
					continue
				}
				var info encryptedPrivateKeyInfo
				if unmarshalAll(bag.Value.Bytes, &info) != nil {
					return nil
				}
				if err := checkPBECost(info.Algorithm); err != nil {
					return fmt.Errorf("key bag: %w", err)
				}
			}
		}
	}
	return nil
}

// checkPBECost checks the iteration count of a PKCS#12 PBE or PBES2 algorithm.
func checkPBECost(alg pkix.AlgorithmIdentifier) error {
	switch {
	case alg.Algorithm.Equal(oidPBES2):
		var p pbes2Params
		if unmarshalAll(alg.Parameters.FullBytes, &p) != nil {
			return nil
		}
		return checkPBKDF2Cost(p.KeyDerivationFunc)
	case len(alg.Algorithm) == 8 && alg.Algorithm[:7].Equal(oidPKCS12):
		var p pbeParams
		if unmarshalAll(alg.Parameters.FullBytes, &p) != nil {
			return nil
		}
		return checkIterations(p.Iterations)
	}
	return nil
}

// checkPBKDF2Cost checks the iteration count of a PBKDF2 algorithm identifier.
func checkPBKDF2Cost(kdf pkix.AlgorithmIdentifier) error {
	if !kdf.Algorithm.Equal(oidPBKDF2) {
		return nil
	}
	var p pbkdf2Params
	if unmarshalAll(kdf.Parameters.FullBytes, &p) != nil {
		return nil
	}
	return checkIterations(p.IterationCount)
}
