package bundle

import (
	"bytes"
	"crypto"
	"crypto/aes"
	"crypto/cipher"
	"crypto/ecdh"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/pem"
	"fmt"
	"hash"
	"math/big"
	"sync"
	"testing"
	"time"
)

// keyPair is a certificate with its private key.
type keyPair struct {
	cert *x509.Certificate
	key  crypto.Signer
}

// fixtures are the certificates and keys the tests share. They are made once
// per test binary: RSA key generation is slow, and the fuzz targets must not
// pay for it on every input.
type fixtures struct {
	root, inter keyPair
	// Leaves issued by inter, by key type.
	p256, p384, rsa2048, ed25519 keyPair
	// second is another P-256 leaf issued by inter.
	second keyPair
	// impostor has inter's subject but its own key: it did not issue the
	// leaves.
	impostor keyPair
	// other is an unrelated self-signed root.
	other keyPair
	// Leaves with keys the package refuses.
	rsa1024, p521 keyPair
	// x25519 is a PKCS#8 X25519 key, which cannot sign.
	x25519 []byte
}

var sharedFixtures = sync.OnceValues(makeFixtures)

// fx returns the shared fixtures.
func fx(t testing.TB) *fixtures {
	t.Helper()
	f, err := sharedFixtures()
	if err != nil {
		t.Fatalf("make fixtures: %v", err)
	}
	return f
}

func makeFixtures() (*fixtures, error) {
	var f fixtures
	var err error
	if f.root, err = newCert("Test Root CA", true, nil, mustECDSA(elliptic.P384())); err != nil {
		return nil, err
	}
	if f.inter, err = newCert("Test Intermediate CA", true, &f.root, mustECDSA(elliptic.P256())); err != nil {
		return nil, err
	}
	if f.impostor, err = newCert("Test Intermediate CA", true, nil, mustECDSA(elliptic.P256())); err != nil {
		return nil, err
	}
	if f.other, err = newCert("Unrelated Root CA", true, nil, mustECDSA(elliptic.P256())); err != nil {
		return nil, err
	}

	rsa2048, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, err
	}
	rsa1024, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		return nil, err
	}
	_, ed, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	leaves := []struct {
		dst  *keyPair
		name string
		key  crypto.Signer
	}{
		{&f.p256, "leaf-p256.test", mustECDSA(elliptic.P256())},
		{&f.p384, "leaf-p384.test", mustECDSA(elliptic.P384())},
		{&f.rsa2048, "leaf-rsa2048.test", rsa2048},
		{&f.ed25519, "leaf-ed25519.test", ed},
		{&f.second, "second-leaf.test", mustECDSA(elliptic.P256())},
		{&f.rsa1024, "leaf-rsa1024.test", rsa1024},
		{&f.p521, "leaf-p521.test", mustECDSA(elliptic.P521())},
	}
	for _, l := range leaves {
		if *l.dst, err = newCert(l.name, false, &f.inter, l.key); err != nil {
			return nil, err
		}
	}

	x, err := ecdh.X25519().GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	if f.x25519, err = x509.MarshalPKCS8PrivateKey(x); err != nil {
		return nil, err
	}
	return &f, nil
}

func mustECDSA(c elliptic.Curve) *ecdsa.PrivateKey {
	k, err := ecdsa.GenerateKey(c, rand.Reader)
	if err != nil {
		panic(err) // only on a broken crypto/rand
	}
	return k
}

// newCert makes a certificate for key named cn, issued by parent or, when
// parent is nil, self-signed.
func newCert(cn string, isCA bool, parent *keyPair, key crypto.Signer) (keyPair, error) {
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 64))
	if err != nil {
		return keyPair{}, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: cn},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(24 * time.Hour),
		BasicConstraintsValid: true,
		IsCA:                  isCA,
	}
	if isCA {
		tmpl.KeyUsage = x509.KeyUsageCertSign | x509.KeyUsageCRLSign
	} else {
		tmpl.KeyUsage = x509.KeyUsageDigitalSignature
		tmpl.DNSNames = []string{cn}
	}
	issuer, signer := tmpl, key
	if parent != nil {
		issuer, signer = parent.cert, parent.key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, issuer, key.Public(), signer)
	if err != nil {
		return keyPair{}, fmt.Errorf("create %s: %w", cn, err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return keyPair{}, err
	}
	return keyPair{cert: cert, key: key}, nil
}

// pemOf encodes one PEM block.
func pemOf(typ string, der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der})
}

// certsPEM encodes certificates as CERTIFICATE blocks.
func certsPEM(certs ...*x509.Certificate) []byte {
	var out []byte
	for _, c := range certs {
		out = append(out, pemOf("CERTIFICATE", c.Raw)...)
	}
	return out
}

// pkcs8PEM encodes key as a PKCS#8 PRIVATE KEY block.
func pkcs8PEM(t testing.TB, key crypto.Signer) []byte {
	t.Helper()
	return pemOf("PRIVATE KEY", pkcs8DER(t, key))
}

func pkcs8DER(t testing.TB, key any) []byte {
	t.Helper()
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatalf("marshal PKCS#8: %v", err)
	}
	return der
}

// sec1PEM encodes an ECDSA key as an EC PRIVATE KEY block.
func sec1PEM(t testing.TB, key crypto.Signer) []byte {
	t.Helper()
	return pemOf("EC PRIVATE KEY", sec1DER(t, key))
}

func sec1DER(t testing.TB, key crypto.Signer) []byte {
	t.Helper()
	der, err := x509.MarshalECPrivateKey(key.(*ecdsa.PrivateKey))
	if err != nil {
		t.Fatalf("marshal SEC1: %v", err)
	}
	return der
}

func mustMarshal(t testing.TB, v any) []byte {
	t.Helper()
	der, err := asn1.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return der
}

// pkixAlg is an algorithm identifier with NULL parameters.
func pkixAlg(oid asn1.ObjectIdentifier) pkix.AlgorithmIdentifier {
	return pkix.AlgorithmIdentifier{Algorithm: oid, Parameters: asn1.NullRawValue}
}

// cat concatenates PEM inputs.
func cat(parts ...[]byte) []byte { return bytes.Join(parts, nil) }

// pbes2Spec describes an encrypted PKCS#8 key for encryptPKCS8.
type pbes2Spec struct {
	cipher     asn1.ObjectIdentifier // AES-CBC OID; default AES-256-CBC
	prf        asn1.ObjectIdentifier // nil: omitted (HMAC-SHA-1)
	iterations int
}

// encryptPKCS8 encrypts a PKCS#8 key as OpenSSL's `pkcs8 -topk8 -v2` does. It
// is the test's own encoder, independent of the code under test; the openssl
// tests check the real thing.
func encryptPKCS8(t testing.TB, key crypto.Signer, password string, spec pbes2Spec) []byte {
	t.Helper()
	if spec.cipher == nil {
		spec.cipher = oidAES256CBC
	}
	if spec.iterations == 0 {
		spec.iterations = 2048
	}
	keyLen := map[string]int{oidAES128CBC.String(): 16, oidAES192CBC.String(): 24, oidAES256CBC.String(): 32}[spec.cipher.String()]
	prf := map[string]func() hash.Hash{
		"":                         sha1.New, // absent: the default, HMAC-SHA-1
		oidHMACWithSHA1.String():   sha1.New,
		oidHMACWithSHA256.String(): sha256.New,
		oidHMACWithSHA512.String(): sha512.New,
	}[oidString(spec.prf)]
	salt := make([]byte, 16)
	iv := make([]byte, aes.BlockSize)
	_, _ = rand.Read(salt)
	_, _ = rand.Read(iv)
	dk, err := pbkdf2.Key(prf, password, salt, spec.iterations, keyLen)
	if err != nil {
		t.Fatal(err)
	}
	block, err := aes.NewCipher(dk)
	if err != nil {
		t.Fatal(err)
	}
	plain := pkcs8DER(t, key)
	pad := aes.BlockSize - len(plain)%aes.BlockSize
	plain = append(plain, bytes.Repeat([]byte{byte(pad)}, pad)...)
	ct := make([]byte, len(plain))
	cipher.NewCBCEncrypter(block, iv).CryptBlocks(ct, plain)
	return pemOf("ENCRYPTED PRIVATE KEY", marshalEncryptedPKCS8(t, salt, spec.iterations, spec.prf, spec.cipher, iv, ct))
}

func oidString(oid asn1.ObjectIdentifier) string {
	if oid == nil {
		return ""
	}
	return oid.String()
}

// marshalEncryptedPKCS8 builds an EncryptedPrivateKeyInfo with PBES2 and
// PBKDF2 from its parts.
func marshalEncryptedPKCS8(t testing.TB, salt []byte, iterations int, prf, cipherOID asn1.ObjectIdentifier, iv, ciphertext []byte) []byte {
	t.Helper()
	must := func(b []byte, err error) []byte {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	kp := pbkdf2Params{Salt: asn1.RawValue{FullBytes: must(asn1.Marshal(salt))}, IterationCount: iterations}
	if prf != nil {
		kp.PRF = pkix.AlgorithmIdentifier{Algorithm: prf, Parameters: asn1.NullRawValue}
	}
	params := pbes2Params{
		KeyDerivationFunc: pkix.AlgorithmIdentifier{Algorithm: oidPBKDF2, Parameters: asn1.RawValue{FullBytes: must(asn1.Marshal(kp))}},
		EncryptionScheme:  pkix.AlgorithmIdentifier{Algorithm: cipherOID, Parameters: asn1.RawValue{FullBytes: must(asn1.Marshal(iv))}},
	}
	info := encryptedPrivateKeyInfo{
		Algorithm:     pkix.AlgorithmIdentifier{Algorithm: oidPBES2, Parameters: asn1.RawValue{FullBytes: must(asn1.Marshal(params))}},
		EncryptedData: ciphertext,
	}
	return must(asn1.Marshal(info))
}

// legacyPEM encrypts a key block with OpenSSL's legacy PEM encryption, as
// `openssl ec -aes256` does.
func legacyPEM(t testing.TB, typ string, der []byte, password string, alg x509.PEMCipher) []byte {
	t.Helper()
	block, err := x509.EncryptPEMBlock(rand.Reader, typ, der, []byte(password), alg) //nolint:staticcheck // SA1019: the test needs legacy-encrypted input.
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(block)
}

// sameKey reports whether a and b are the same private key (both nil counts).
func sameKey(a, b crypto.Signer) bool {
	if a == nil || b == nil {
		return a == nil && b == nil
	}
	eq, ok := a.(interface{ Equal(crypto.PrivateKey) bool })
	return ok && eq.Equal(b)
}

// sameChain reports whether a and b hold the same certificates in the same
// order.
func sameChain(a, b []*x509.Certificate) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if !a[i].Equal(b[i]) {
			return false
		}
	}
	return true
}

// chainNames lists subjects for failure messages.
func chainNames(chain []*x509.Certificate) []string {
	names := make([]string, len(chain))
	for i, c := range chain {
		names[i] = c.Subject.CommonName
	}
	return names
}
