package bundle

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/des" //nolint:gosec // G502: 3DES-CBC is only read, for keys older tools encrypted with it.
	"crypto/pbkdf2"
	"crypto/sha1" //nolint:gosec // G505: HMAC-SHA-1 is PBKDF2's default PRF; reading such keys is required.
	"crypto/sha256"
	"crypto/sha512"
	"crypto/x509/pkix"
	"encoding/asn1"
	"errors"
	"fmt"
	"hash"
)

// maxIterations bounds password-based key derivations (PKCS#8 PBES2 and
// PKCS#12). Real files use 1 to 600,000 (OpenSSL 2048, Java 10,000, OWASP's
// advice for PBKDF2-HMAC-SHA-256 600,000); without a bound a crafted file
// names 2^31 and holds a core for hours. At the bound, a legacy PKCS#12 file
// (three derivations) takes about 0.7 s on an amd64 core.
const maxIterations = 1_000_000

var (
	oidPBES2  = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 5, 13}
	oidPBKDF2 = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 5, 12}
	oidScrypt = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 11591, 4, 11}

	oidHMACWithSHA1   = asn1.ObjectIdentifier{1, 2, 840, 113549, 2, 7}
	oidHMACWithSHA224 = asn1.ObjectIdentifier{1, 2, 840, 113549, 2, 8}
	oidHMACWithSHA256 = asn1.ObjectIdentifier{1, 2, 840, 113549, 2, 9}
	oidHMACWithSHA384 = asn1.ObjectIdentifier{1, 2, 840, 113549, 2, 10}
	oidHMACWithSHA512 = asn1.ObjectIdentifier{1, 2, 840, 113549, 2, 11}

	oidAES128CBC  = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 1, 2}
	oidAES192CBC  = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 1, 22}
	oidAES256CBC  = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 1, 42}
	oidDESEDE3CBC = asn1.ObjectIdentifier{1, 2, 840, 113549, 3, 7}

	// PKCS#5 v1 and PKCS#12 password-based encryption, named in errors.
	oidPKCS5v1 = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 5}
	oidPKCS12  = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 12, 1}
)

// encryptedPrivateKeyInfo is PKCS#8's EncryptedPrivateKeyInfo (RFC 5958).
type encryptedPrivateKeyInfo struct {
	Algorithm     pkix.AlgorithmIdentifier
	EncryptedData []byte
}

// pbes2Params is RFC 8018's PBES2-params.
type pbes2Params struct {
	KeyDerivationFunc pkix.AlgorithmIdentifier
	EncryptionScheme  pkix.AlgorithmIdentifier
}

// pbkdf2Params is RFC 8018's PBKDF2-params. Salt is a RawValue because the
// standard allows a CHOICE; only the OCTET STRING form is used in practice.
type pbkdf2Params struct {
	Salt           asn1.RawValue
	IterationCount int
	KeyLength      int                      `asn1:"optional"`
	PRF            pkix.AlgorithmIdentifier `asn1:"optional"`
}

// decryptPKCS8 opens a PKCS#8 EncryptedPrivateKeyInfo encrypted with PBES2
// and PBKDF2, what OpenSSL 1.1 and later write (`openssl pkcs8 -topk8 -v2`,
// `openssl genpkey -aes-256-cbc`), and returns the PrivateKeyInfo DER.
func decryptPKCS8(der, password []byte) ([]byte, error) {
	var info encryptedPrivateKeyInfo
	if err := unmarshalAll(der, &info); err != nil {
		return nil, fmt.Errorf("malformed PKCS#8 encrypted key: %w", err)
	}
	if !info.Algorithm.Algorithm.Equal(oidPBES2) {
		return nil, fmt.Errorf("PKCS#8 encryption %s is not supported; re-encrypt the key with `openssl pkcs8 -topk8 -v2 aes-256-cbc`", algorithmName(info.Algorithm.Algorithm))
	}
	var params pbes2Params
	if err := unmarshalAll(info.Algorithm.Parameters.FullBytes, &params); err != nil {
		return nil, fmt.Errorf("malformed PBES2 parameters: %w", err)
	}

	block, iv, err := pbes2Cipher(params, password)
	if err != nil {
		return nil, err
	}
	return decryptCBC(block, iv, info.EncryptedData)
}

// pbes2Cipher derives the key for params from password and returns the block
// cipher and its IV.
func pbes2Cipher(params pbes2Params, password []byte) (cipher.Block, []byte, error) {
	keyLen, newCipher, err := encryptionScheme(params.EncryptionScheme.Algorithm)
	if err != nil {
		return nil, nil, err
	}
	var iv []byte
	if err := unmarshalAll(params.EncryptionScheme.Parameters.FullBytes, &iv); err != nil {
		return nil, nil, fmt.Errorf("malformed PBES2 IV: %w", err)
	}

	kdf := params.KeyDerivationFunc
	if !kdf.Algorithm.Equal(oidPBKDF2) {
		return nil, nil, fmt.Errorf("PBES2 key derivation %s is not supported, only PBKDF2", algorithmName(kdf.Algorithm))
	}
	var kp pbkdf2Params
	if err := unmarshalAll(kdf.Parameters.FullBytes, &kp); err != nil {
		return nil, nil, fmt.Errorf("malformed PBKDF2 parameters: %w", err)
	}
	if kp.Salt.Class != asn1.ClassUniversal || kp.Salt.Tag != asn1.TagOctetString || kp.Salt.IsCompound {
		return nil, nil, errors.New("PBKDF2 salt is not an OCTET STRING")
	}
	if err := checkIterations(kp.IterationCount); err != nil {
		return nil, nil, err
	}
	if kp.KeyLength != 0 && kp.KeyLength != keyLen {
		return nil, nil, fmt.Errorf("PBKDF2 key length %d does not fit the cipher's %d", kp.KeyLength, keyLen)
	}
	prf, err := pbkdf2PRF(kp.PRF.Algorithm)
	if err != nil {
		return nil, nil, err
	}

	key, err := pbkdf2.Key(prf, string(password), kp.Salt.Bytes, kp.IterationCount, keyLen)
	if err != nil {
		return nil, nil, fmt.Errorf("PBKDF2: %w", err)
	}
	block, err := newCipher(key)
	if err != nil {
		return nil, nil, err
	}
	if len(iv) != block.BlockSize() {
		return nil, nil, fmt.Errorf("PBES2 IV of %d bytes, the cipher needs %d", len(iv), block.BlockSize())
	}
	return block, iv, nil
}

// checkIterations refuses iteration counts that are not positive or that would
// cost more than maxIterations.
func checkIterations(n int) error {
	if n < 1 {
		return fmt.Errorf("key derivation with %d iterations", n)
	}
	if n > maxIterations {
		return fmt.Errorf("%w: key derivation with %d iterations, at most %d", ErrTooLarge, n, maxIterations)
	}
	return nil
}

// encryptionScheme returns the key length and cipher for a PBES2 encryption
// scheme.
func encryptionScheme(oid asn1.ObjectIdentifier) (int, func([]byte) (cipher.Block, error), error) {
	switch {
	case oid.Equal(oidAES128CBC):
		return 16, aes.NewCipher, nil
	case oid.Equal(oidAES192CBC):
		return 24, aes.NewCipher, nil
	case oid.Equal(oidAES256CBC):
		return 32, aes.NewCipher, nil
	case oid.Equal(oidDESEDE3CBC):
		return 24, des.NewTripleDESCipher, nil
	}
	return 0, nil, fmt.Errorf("PBES2 cipher %s is not supported, only AES-CBC and 3DES-CBC", algorithmName(oid))
}

// pbkdf2PRF returns the hash for PBKDF2's PRF; an absent PRF means HMAC-SHA-1.
func pbkdf2PRF(oid asn1.ObjectIdentifier) (func() hash.Hash, error) {
	switch {
	case len(oid) == 0, oid.Equal(oidHMACWithSHA1):
		return sha1.New, nil
	case oid.Equal(oidHMACWithSHA224):
		return sha256.New224, nil
	case oid.Equal(oidHMACWithSHA256):
		return sha256.New, nil
	case oid.Equal(oidHMACWithSHA384):
		return sha512.New384, nil
	case oid.Equal(oidHMACWithSHA512):
		return sha512.New, nil
	}
	return nil, fmt.Errorf("PBKDF2 PRF %s is not supported", algorithmName(oid))
}

// decryptCBC decrypts ciphertext and removes its PKCS#7 padding. Bad padding
// means a wrong password: the ciphertext is not authenticated, so there is
// nothing else to tell it by.
func decryptCBC(block cipher.Block, iv, ciphertext []byte) ([]byte, error) {
	size := block.BlockSize()
	if len(ciphertext) == 0 || len(ciphertext)%size != 0 {
		return nil, fmt.Errorf("encrypted key of %d bytes is not a whole number of %d-byte blocks", len(ciphertext), size)
	}
	plain := make([]byte, len(ciphertext))
	cipher.NewCBCDecrypter(block, iv).CryptBlocks(plain, ciphertext)
	pad := int(plain[len(plain)-1])
	if pad == 0 || pad > size {
		return nil, fmt.Errorf("%w: the key does not decrypt", ErrBadPassword)
	}
	for _, b := range plain[len(plain)-pad:] {
		if int(b) != pad {
			return nil, fmt.Errorf("%w: the key does not decrypt", ErrBadPassword)
		}
	}
	return plain[:len(plain)-pad], nil
}

// unmarshalAll is asn1.Unmarshal that refuses trailing bytes.
func unmarshalAll(der []byte, out any) error {
	rest, err := asn1.Unmarshal(der, out)
	if err != nil {
		return err
	}
	if len(rest) != 0 {
		return fmt.Errorf("%d trailing bytes", len(rest))
	}
	return nil
}

// algorithmName names an algorithm OID in an error message.
func algorithmName(oid asn1.ObjectIdentifier) string {
	switch {
	case oid.Equal(oidScrypt):
		return "scrypt"
	case len(oid) == 7 && oid[:6].Equal(oidPKCS5v1) && oid[6] <= 11:
		return "PKCS#5 v1 (" + oid.String() + ")"
	case len(oid) == 8 && oid[:7].Equal(oidPKCS12):
		return "PKCS#12 PBE (" + oid.String() + ")"
	case len(oid) == 0:
		return "(none)"
	}
	return oid.String()
}
