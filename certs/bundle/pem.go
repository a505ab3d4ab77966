package bundle

import (
	"bytes"
	"crypto"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
)

// PEM block types ParsePEM accepts.
const (
	typeCertificate  = "CERTIFICATE"
	typePKCS8        = "PRIVATE KEY"
	typeEncrypted    = "ENCRYPTED PRIVATE KEY"
	typeRSA          = "RSA PRIVATE KEY"
	typeEC           = "EC PRIVATE KEY"
	typeECParameters = "EC PARAMETERS"
)

var pemBegin = []byte("-----BEGIN ")

// ParsePEM decodes a bundle from PEM: CERTIFICATE blocks and at most one
// private key, in any order, from one or several PEM files concatenated. Text
// outside the blocks (comments, openssl's "Bag Attributes" and -text output) is
// ignored; "EC PARAMETERS" blocks, which `openssl ecparam -genkey` writes
// before the key, are skipped; any other block type is an error that names it.
//
// The key may be PKCS#8 ("PRIVATE KEY"), PKCS#1 ("RSA PRIVATE KEY") or SEC1
// ("EC PRIVATE KEY"), and may be encrypted with password: PKCS#8 "ENCRYPTED
// PRIVATE KEY" with PBES2 (PBKDF2 with HMAC-SHA-1 or SHA-2, AES-CBC or
// 3DES-CBC), or the legacy OpenSSL "Proc-Type: 4,ENCRYPTED" headers. password
// is ignored when the key is not encrypted.
func ParsePEM(data []byte, password []byte) (*Bundle, error) {
	if len(data) > MaxInputSize {
		return nil, fmt.Errorf("%w: %d bytes, at most %d", ErrTooLarge, len(data), MaxInputSize)
	}

	var (
		certs    []*x509.Certificate
		keyBlock *pem.Block
		keyIndex int
	)
	// Windows editors start UTF-8 files with a byte order mark, which would
	// hide a BEGIN line at the very start.
	rest := bytes.TrimPrefix(data, []byte("\xef\xbb\xbf"))
	for index := 1; ; index++ {
		start := blockStart(rest)
		if start < 0 {
			break // what is left is text
		}
		rest = rest[start:]
		block, after := pem.Decode(rest)
		// pem.Decode skips a malformed block and returns the next good one,
		// which would silently drop the bad one: refuse when what it consumed
		// holds a second BEGIN line.
		if block == nil || bytes.Contains(rest[1:len(rest)-len(after)], []byte("\n-----BEGIN ")) {
			return nil, fmt.Errorf("PEM block %d %q: malformed: bad base64, headers or END line", index, beginType(rest))
		}
		rest = after

		switch block.Type {
		case typeCertificate:
			if isLegacyEncrypted(block) {
				return nil, fmt.Errorf("PEM block %d %q: encrypted certificates are not supported", index, block.Type)
			}
			if len(certs) == maxCertificates {
				return nil, fmt.Errorf("%w: more than %d certificates", ErrTooLarge, maxCertificates)
			}
			c, err := x509.ParseCertificate(block.Bytes)
			if err != nil {
				return nil, fmt.Errorf("PEM block %d %q: parse certificate: %w", index, block.Type, err)
			}
			certs = append(certs, c)
		case typePKCS8, typeEncrypted, typeRSA, typeEC:
			if keyBlock != nil {
				return nil, fmt.Errorf("PEM block %d %q: a second private key (the first is block %d); a bundle holds one key", index, block.Type, keyIndex)
			}
			keyBlock, keyIndex = block, index
		case typeECParameters:
			// The curve is named again inside the key itself.
		default:
			return nil, fmt.Errorf("PEM block %d %q: unsupported block type; expected CERTIFICATE and at most one private key", index, truncate(block.Type))
		}
	}
	if len(certs) == 0 {
		if len(data) > 0 && data[0] == 0x30 { // an ASN.1 SEQUENCE: DER or PKCS#12
			return nil, fmt.Errorf("%w: the input is binary (DER or PKCS#12?), not PEM", ErrNoCertificate)
		}
		return nil, fmt.Errorf("%w: the PEM input has no CERTIFICATE block", ErrNoCertificate)
	}

	// The key is decrypted only once every block is known to be well formed.
	var signer crypto.Signer
	if keyBlock != nil {
		key, err := parseKeyBlock(keyBlock, password)
		if err == nil {
			signer, err = supportedKey(key)
		}
		if err != nil {
			return nil, fmt.Errorf("PEM block %d %q: %w", keyIndex, keyBlock.Type, err)
		}
	}
	return newBundle(certs, signer)
}

// blockStart returns the offset of the first BEGIN line in data, or -1. Only a
// BEGIN at the start of a line counts, as for pem.Decode.
func blockStart(data []byte) int {
	if bytes.HasPrefix(data, pemBegin) {
		return 0
	}
	i := bytes.Index(data, []byte("\n-----BEGIN "))
	if i < 0 {
		return -1
	}
	return i + 1
}

// beginType returns the type named on the BEGIN line data starts with.
func beginType(data []byte) string {
	line := data[len(pemBegin):]
	if i := bytes.IndexAny(line, "\r\n"); i >= 0 {
		line = line[:i]
	}
	if i := bytes.Index(line, []byte("-----")); i >= 0 {
		line = line[:i]
	}
	return truncate(string(line))
}

// isLegacyEncrypted reports whether b carries RFC 1423 encryption headers.
func isLegacyEncrypted(b *pem.Block) bool {
	_, dek := b.Headers["DEK-Info"]
	return dek || b.Headers["Proc-Type"] == "4,ENCRYPTED"
}

// parseKeyBlock decrypts and parses a private key block.
func parseKeyBlock(b *pem.Block, password []byte) (any, error) {
	der := b.Bytes
	encrypted := false
	switch {
	case b.Type == typeEncrypted:
		if isLegacyEncrypted(b) {
			return nil, errors.New("both PKCS#8 and legacy PEM encryption")
		}
		if len(password) == 0 {
			return nil, fmt.Errorf("%w: the key is encrypted and no password was given", ErrBadPassword)
		}
		var err error
		if der, err = decryptPKCS8(der, password); err != nil {
			return nil, err
		}
		encrypted = true
	case isLegacyEncrypted(b):
		if len(password) == 0 {
			return nil, fmt.Errorf("%w: the key is encrypted and no password was given", ErrBadPassword)
		}
		var err error
		if der, err = decryptLegacy(b, password); err != nil {
			return nil, err
		}
		encrypted = true
	}

	var (
		key any
		err error
	)
	switch b.Type {
	case typeRSA:
		key, err = x509.ParsePKCS1PrivateKey(der)
	case typeEC:
		key, err = x509.ParseECPrivateKey(der)
	default: // PRIVATE KEY, and ENCRYPTED PRIVATE KEY once decrypted
		key, err = x509.ParsePKCS8PrivateKey(der)
	}
	if err != nil {
		if encrypted {
			// CBC padding catches most wrong passwords, but about one in 256
			// decrypts to valid padding and garbage.
			return nil, fmt.Errorf("%w: the decrypted key does not parse (or the key is corrupt)", ErrBadPassword)
		}
		return nil, fmt.Errorf("parse key: %w", err)
	}
	return key, nil
}

// decryptLegacy opens a key encrypted with OpenSSL's legacy PEM encryption
// (RFC 1423 headers, as `openssl ec -aes256` and `openssl rsa -traditional
// -aes256` still write). It is read so that such keys can be imported; it is
// never written.
func decryptLegacy(b *pem.Block, password []byte) ([]byte, error) {
	der, err := x509.DecryptPEMBlock(b, password) //nolint:staticcheck // SA1019: legacy PEM encryption is deprecated for writing; reading it is the point here.
	if errors.Is(err, x509.IncorrectPasswordError) {
		return nil, fmt.Errorf("%w: the key does not decrypt", ErrBadPassword)
	}
	if err != nil {
		return nil, fmt.Errorf("legacy PEM encryption (DEK-Info %q): %w", truncate(b.Headers["DEK-Info"]), err)
	}
	return der, nil
}
