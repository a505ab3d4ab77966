package bundle

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/x509"
	"encoding/asn1"
	"errors"
	"strings"
	"testing"
)

// pemCase is one ParsePEM input and what it must give: a chain and key, or
// an error that is wantErr (if set) and mentions wantText (if set).
type pemCase struct {
	name      string
	input     []byte
	password  string
	wantChain []*x509.Certificate
	wantKey   crypto.Signer
	wantErr   error
	wantText  string
}

// pemCases is the ParsePEM table, shared with FuzzParsePEM as its seeds.
func pemCases(t testing.TB) []pemCase {
	f := fx(t)
	leaf, inter, root := f.p256.cert, f.inter.cert, f.root.cert
	key := pkcs8PEM(t, f.p256.key)
	full := []*x509.Certificate{leaf, inter, root}

	ecParams, err := asn1.Marshal(asn1.ObjectIdentifier{1, 2, 840, 10045, 3, 1, 7}) // prime256v1
	if err != nil {
		t.Fatal(err)
	}
	crlf := bytes.ReplaceAll(cat(certsPEM(leaf, inter), key), []byte("\n"), []byte("\r\n"))
	badBase64 := bytes.Replace(certsPEM(inter), []byte("MII"), []byte("M!I"), 1)
	seventeen := bytes.Repeat(certsPEM(leaf), maxCertificates+1)
	tooLarge := cat(certsPEM(leaf), key, bytes.Repeat([]byte("#"), MaxInputSize))
	encrypted := func(spec pbes2Spec) []byte { return encryptPKCS8(t, f.p256.key, "s3cret", spec) }
	legacyEC := legacyPEM(t, "EC PRIVATE KEY", sec1DER(t, f.p256.key), "s3cret", x509.PEMCipherAES256)
	legacyRSA := legacyPEM(t, "RSA PRIVATE KEY", x509.MarshalPKCS1PrivateKey(f.rsa2048.key.(*rsa.PrivateKey)), "s3cret", x509.PEMCipher3DES)
	hugeIterations := pemOf("ENCRYPTED PRIVATE KEY", marshalEncryptedPKCS8(t, make([]byte, 16), maxIterations+1, oidHMACWithSHA256, oidAES256CBC, make([]byte, 16), make([]byte, 64)))
	scrypt := pemOf("ENCRYPTED PRIVATE KEY", mustMarshal(t, encryptedPrivateKeyInfo{
		Algorithm:     pkixAlg(oidScrypt),
		EncryptedData: make([]byte, 32),
	}))

	return []pemCase{
		// Accepted inputs.
		{name: "ordered chain with PKCS#8 key", input: cat(certsPEM(leaf, inter, root), key), wantChain: full, wantKey: f.p256.key},
		{name: "shuffled, key in the middle", input: cat(certsPEM(root), key, certsPEM(inter, leaf)), wantChain: full, wantKey: f.p256.key},
		{name: "root left out", input: cat(certsPEM(inter, leaf), key), wantChain: []*x509.Certificate{leaf, inter}, wantKey: f.p256.key},
		{name: "leaf alone with key", input: cat(key, certsPEM(leaf)), wantChain: []*x509.Certificate{leaf}, wantKey: f.p256.key},
		{name: "self-signed with its key", input: cat(certsPEM(root), pkcs8PEM(t, f.root.key)), wantChain: []*x509.Certificate{root}, wantKey: f.root.key},
		{
			name:      "text outside blocks",
			input:     cat([]byte("# exported by hand\nsubject=CN = leaf\n"), certsPEM(leaf), []byte("Bag Attributes\n    localKeyID: 01\n"), key, []byte("trailing -----END nothing\n")),
			wantChain: []*x509.Certificate{leaf}, wantKey: f.p256.key,
		},
		{name: "UTF-8 byte order mark", input: cat([]byte("\xef\xbb\xbf"), certsPEM(leaf), key), wantChain: []*x509.Certificate{leaf}, wantKey: f.p256.key},
		{name: "CRLF line ends", input: crlf, wantChain: []*x509.Certificate{leaf, inter}, wantKey: f.p256.key},
		{name: "repeated intermediate", input: cat(certsPEM(leaf, inter, root, inter), key), wantChain: full, wantKey: f.p256.key},
		{name: "PKCS#1 RSA key", input: cat(certsPEM(f.rsa2048.cert, inter), pemOf("RSA PRIVATE KEY", x509.MarshalPKCS1PrivateKey(f.rsa2048.key.(*rsa.PrivateKey)))), wantChain: []*x509.Certificate{f.rsa2048.cert, inter}, wantKey: f.rsa2048.key},
		{name: "PKCS#8 RSA key", input: cat(certsPEM(f.rsa2048.cert), pkcs8PEM(t, f.rsa2048.key)), wantChain: []*x509.Certificate{f.rsa2048.cert}, wantKey: f.rsa2048.key},
		{name: "SEC1 EC key after EC PARAMETERS", input: cat(pemOf("EC PARAMETERS", ecParams), sec1PEM(t, f.p256.key), certsPEM(leaf)), wantChain: []*x509.Certificate{leaf}, wantKey: f.p256.key},
		{name: "P-384 key", input: cat(certsPEM(f.p384.cert, inter), pkcs8PEM(t, f.p384.key)), wantChain: []*x509.Certificate{f.p384.cert, inter}, wantKey: f.p384.key},
		{name: "Ed25519 key", input: cat(certsPEM(f.ed25519.cert, inter), pkcs8PEM(t, f.ed25519.key)), wantChain: []*x509.Certificate{f.ed25519.cert, inter}, wantKey: f.ed25519.key},
		{name: "trust-only root", input: certsPEM(root), wantChain: []*x509.Certificate{root}},
		{name: "trust-only intermediate and root, shuffled", input: certsPEM(root, inter), wantChain: []*x509.Certificate{inter, root}},
		{name: "trust-only chain without key", input: certsPEM(root, leaf, inter), wantChain: full},
		{name: "password ignored for a plain key", input: cat(certsPEM(leaf), key), password: "unused", wantChain: []*x509.Certificate{leaf}, wantKey: f.p256.key},

		// Encrypted keys.
		{name: "PKCS#8 AES-256 HMAC-SHA-256", input: cat(certsPEM(leaf), encrypted(pbes2Spec{prf: oidHMACWithSHA256})), password: "s3cret", wantChain: []*x509.Certificate{leaf}, wantKey: f.p256.key},
		{name: "PKCS#8 AES-128 default PRF", input: cat(certsPEM(leaf), encrypted(pbes2Spec{cipher: oidAES128CBC})), password: "s3cret", wantChain: []*x509.Certificate{leaf}, wantKey: f.p256.key},
		{name: "PKCS#8 AES-192 HMAC-SHA-512", input: cat(certsPEM(leaf), encrypted(pbes2Spec{cipher: oidAES192CBC, prf: oidHMACWithSHA512})), password: "s3cret", wantChain: []*x509.Certificate{leaf}, wantKey: f.p256.key},
		{name: "PKCS#8 wrong password", input: cat(certsPEM(leaf), encrypted(pbes2Spec{prf: oidHMACWithSHA256})), password: "wrong", wantErr: ErrBadPassword, wantText: `PEM block 2 "ENCRYPTED PRIVATE KEY"`},
		{name: "PKCS#8 no password", input: cat(certsPEM(leaf), encrypted(pbes2Spec{})), wantErr: ErrBadPassword, wantText: "no password"},
		{name: "PKCS#8 iterations over the limit", input: cat(certsPEM(leaf), hugeIterations), password: "s3cret", wantErr: ErrTooLarge, wantText: "iterations"},
		{name: "PKCS#8 scrypt", input: cat(certsPEM(leaf), scrypt), password: "s3cret", wantText: "scrypt is not supported"},
		{name: "legacy PEM EC AES-256", input: cat(certsPEM(leaf), legacyEC), password: "s3cret", wantChain: []*x509.Certificate{leaf}, wantKey: f.p256.key},
		{name: "legacy PEM RSA 3DES", input: cat(certsPEM(f.rsa2048.cert), legacyRSA), password: "s3cret", wantChain: []*x509.Certificate{f.rsa2048.cert}, wantKey: f.rsa2048.key},
		{name: "legacy PEM wrong password", input: cat(certsPEM(leaf), legacyEC), password: "wrong", wantErr: ErrBadPassword, wantText: `"EC PRIVATE KEY"`},
		{name: "legacy PEM no password", input: cat(certsPEM(leaf), legacyEC), wantErr: ErrBadPassword, wantText: "no password"},

		// Refused: keys.
		{name: "key of another certificate", input: cat(certsPEM(leaf, inter), pkcs8PEM(t, f.second.key)), wantErr: ErrKeyMismatch, wantText: `"CN=leaf-p256.test"`},
		{name: "key of the intermediate", input: cat(certsPEM(leaf, inter), pkcs8PEM(t, f.inter.key)), wantErr: ErrKeyMismatch, wantText: `belongs to "CN=Test Intermediate CA"`},
		{name: "two keys", input: cat(certsPEM(leaf), key, sec1PEM(t, f.p256.key)), wantText: `PEM block 3 "EC PRIVATE KEY": a second private key (the first is block 2)`},
		{name: "RSA 1024", input: cat(certsPEM(f.rsa1024.cert), pkcs8PEM(t, f.rsa1024.key)), wantErr: ErrUnsupportedKey, wantText: "1024 bits"},
		{name: "P-521", input: cat(certsPEM(f.p521.cert), pkcs8PEM(t, f.p521.key)), wantErr: ErrUnsupportedKey, wantText: "P-521"},
		{name: "X25519", input: cat(certsPEM(leaf), pemOf("PRIVATE KEY", f.x25519)), wantErr: ErrUnsupportedKey, wantText: "X25519"},
		{name: "malformed key", input: cat(certsPEM(leaf), pemOf("PRIVATE KEY", []byte("not a key"))), wantText: `PEM block 2 "PRIVATE KEY": parse key`},

		// Refused: certificates and chains.
		{name: "key only", input: key, wantErr: ErrNoCertificate},
		{name: "empty", input: nil, wantErr: ErrNoCertificate},
		{name: "text only", input: []byte("hello\n"), wantErr: ErrNoCertificate},
		{name: "DER, not PEM", input: leaf.Raw, wantErr: ErrNoCertificate, wantText: "binary"},
		{name: "unrelated certificate", input: cat(certsPEM(leaf, f.other.cert, inter), key), wantErr: ErrNotAChain, wantText: `"CN=Unrelated Root CA" not on the path from the leaf "CN=leaf-p256.test"`},
		{name: "impostor intermediate", input: cat(certsPEM(leaf, f.impostor.cert), key), wantErr: ErrNotAChain, wantText: `"CN=Test Intermediate CA" not on the path`},
		{name: "two leaves without key", input: certsPEM(leaf, f.second.cert, inter), wantErr: ErrNotAChain, wantText: "2 certificates could each be the leaf"},
		{name: "too many certificates", input: seventeen, wantErr: ErrTooLarge, wantText: "more than 16 certificates"},
		{name: "too large", input: tooLarge, wantErr: ErrTooLarge},
		{name: "malformed certificate", input: pemOf("CERTIFICATE", []byte("garbage")), wantText: `PEM block 1 "CERTIFICATE": parse certificate`},

		// Refused: PEM structure.
		{name: "unknown block type", input: cat(certsPEM(leaf), pemOf("CERTIFICATE REQUEST", []byte{1})), wantText: `PEM block 2 "CERTIFICATE REQUEST": unsupported block type`},
		{name: "bad base64 in block 2", input: cat(certsPEM(leaf), badBase64, key), wantText: `PEM block 2 "CERTIFICATE": malformed`},
		{name: "bad block before a good one", input: cat(badBase64, certsPEM(leaf)), wantText: `PEM block 1 "CERTIFICATE": malformed`},
		{name: "END type differs", input: bytes.Replace(certsPEM(leaf), []byte("END CERTIFICATE"), []byte("END X509 CRL"), 1), wantText: `PEM block 1 "CERTIFICATE": malformed`},
		{name: "no END line", input: certsPEM(leaf)[:200], wantText: `PEM block 1 "CERTIFICATE": malformed`},
		{name: "encrypted certificate", input: []byte("-----BEGIN CERTIFICATE-----\nProc-Type: 4,ENCRYPTED\nDEK-Info: AES-256-CBC,00000000000000000000000000000000\n\nAAAA\n-----END CERTIFICATE-----\n"), wantText: "encrypted certificates are not supported"},
	}
}

func TestParsePEM(t *testing.T) {
	t.Parallel()
	for _, tc := range pemCases(t) {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			b, err := ParsePEM(tc.input, []byte(tc.password))
			checkResult(t, b, err, tc.wantChain, tc.wantKey, tc.wantErr, tc.wantText)
		})
	}
}

// checkResult compares a parse result with a table row's expectations.
func checkResult(t *testing.T, b *Bundle, err error, wantChain []*x509.Certificate, wantKey crypto.Signer, wantErr error, wantText string) {
	t.Helper()
	if wantChain == nil {
		if err == nil {
			t.Fatalf("parsed %v, want an error", chainNames(b.Chain))
		}
		if wantErr != nil && !errors.Is(err, wantErr) {
			t.Errorf("error %q is not %q", err, wantErr)
		}
		if wantText != "" && !strings.Contains(err.Error(), wantText) {
			t.Errorf("error %q does not mention %q", err, wantText)
		}
		return
	}
	if err != nil {
		t.Fatalf("error: %v", err)
	}
	if !sameChain(b.Chain, wantChain) {
		t.Errorf("chain %v, want %v", chainNames(b.Chain), chainNames(wantChain))
	}
	if !sameKey(b.Key, wantKey) {
		t.Errorf("key %T, want %T (or not the same key)", b.Key, wantKey)
	}
	if b.Leaf() != b.Chain[0] {
		t.Errorf("Leaf() is not Chain[0]")
	}
}

// TestErrorsHoldNoSecrets checks that refusing a key never echoes the
// password or the key's bytes.
func TestErrorsHoldNoSecrets(t *testing.T) {
	t.Parallel()
	f := fx(t)
	const password = "correct horse battery staple"
	keyPEM := encryptPKCS8(t, f.p256.key, password, pbes2Spec{prf: oidHMACWithSHA256})
	plainDER := pkcs8DER(t, f.second.key)
	inputs := map[string][]byte{
		"wrong password": cat(certsPEM(f.p256.cert), keyPEM),
		"mismatch":       cat(certsPEM(f.p256.cert), pemOf("PRIVATE KEY", plainDER)),
	}
	for name, in := range inputs {
		_, err := ParsePEM(in, []byte(password+"!"))
		if err == nil {
			t.Fatalf("%s: no error", name)
		}
		msg := err.Error()
		if strings.Contains(msg, password) || strings.Contains(msg, string(plainDER[len(plainDER)-16:])) {
			t.Errorf("%s: error %q holds a secret", name, msg)
		}
	}
}

func TestBundleEncode(t *testing.T) {
	t.Parallel()
	f := fx(t)
	for _, kp := range []keyPair{f.p256, f.p384, f.rsa2048, f.ed25519} {
		t.Run(kp.cert.Subject.CommonName, func(t *testing.T) {
			t.Parallel()
			b := &Bundle{Chain: []*x509.Certificate{kp.cert, f.inter.cert, f.root.cert}, Key: kp.key}
			keyPEM, err := b.KeyPEM()
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.HasPrefix(keyPEM, []byte("-----BEGIN PRIVATE KEY-----\n")) {
				t.Errorf("KeyPEM is not a PKCS#8 PRIVATE KEY block:\n%s", keyPEM)
			}
			got, err := ParsePEM(cat(b.ChainPEM(), keyPEM), nil)
			if err != nil {
				t.Fatal(err)
			}
			if !sameChain(got.Chain, b.Chain) || !sameKey(got.Key, b.Key) {
				t.Errorf("round trip gave %v with %T", chainNames(got.Chain), got.Key)
			}
		})
	}

	trust := &Bundle{Chain: []*x509.Certificate{f.root.cert}}
	if _, err := trust.KeyPEM(); !errors.Is(err, ErrNoKey) {
		t.Errorf("KeyPEM of a trust-only bundle: %v, want ErrNoKey", err)
	}
	for name, key := range map[string]crypto.Signer{
		"RSA 1024":      f.rsa1024.key,
		"P-521":         f.p521.key,
		"nil RSA":       (*rsa.PrivateKey)(nil),
		"nil ECDSA":     (*ecdsa.PrivateKey)(nil),
		"empty Ed25519": ed25519.PrivateKey{},
	} {
		if _, err := (&Bundle{Chain: []*x509.Certificate{f.root.cert}, Key: key}).KeyPEM(); !errors.Is(err, ErrUnsupportedKey) {
			t.Errorf("KeyPEM with %s key: %v, want ErrUnsupportedKey", name, err)
		}
	}
	if got := (&Bundle{}).Leaf(); got != nil {
		t.Errorf("Leaf of an empty bundle: %v", got)
	}
	if got := (&Bundle{}).ChainPEM(); len(got) != 0 {
		t.Errorf("ChainPEM of an empty bundle: %q", got)
	}
}

func TestCheckIterations(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		n       int
		wantErr bool
	}{{1, false}, {2048, false}, {maxIterations, false}, {0, true}, {-1, true}, {maxIterations + 1, true}} {
		if err := checkIterations(tc.n); (err != nil) != tc.wantErr {
			t.Errorf("checkIterations(%d) = %v", tc.n, err)
		}
	}
}

func TestAlgorithmName(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		oid  asn1.ObjectIdentifier
		want string
	}{
		{oidScrypt, "scrypt"},
		{asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 5, 3}, "PKCS#5 v1 (1.2.840.113549.1.5.3)"},
		{asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 12, 1, 3}, "PKCS#12 PBE (1.2.840.113549.1.12.1.3)"},
		{oidPBMAC1, "1.2.840.113549.1.5.14"},
		{nil, "(none)"},
	} {
		if got := algorithmName(tc.oid); got != tc.want {
			t.Errorf("algorithmName(%v) = %q, want %q", tc.oid, got, tc.want)
		}
	}
}
