package bundle

import (
	"bytes"
	"crypto"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"errors"
	"fmt"
	"testing"

	"software.sslmate.com/src/go-pkcs12"
)

// pkcs12Case is one ParsePKCS12 input and what it must give, as pemCase.
type pkcs12Case struct {
	name      string
	input     []byte
	password  string
	wantChain []*x509.Certificate
	wantKey   crypto.Signer
	wantErr   error
	wantText  string
}

// pkcs12Cases is the ParsePKCS12 table, shared with FuzzParsePKCS12 as its
// seeds. The inputs are written by go-pkcs12's encoders directly, not by
// Bundle.PKCS12, so that the order of the certificates can be shuffled.
func pkcs12Cases(t testing.TB) []pkcs12Case {
	f := fx(t)
	leaf, inter, root := f.p256.cert, f.inter.cert, f.root.cert
	full := []*x509.Certificate{leaf, inter, root}
	encode := func(enc *pkcs12.Encoder, key crypto.Signer, cert *x509.Certificate, cas []*x509.Certificate, password string) []byte {
		der, err := enc.Encode(key, cert, cas, password)
		if err != nil {
			t.Fatalf("encode PKCS#12: %v", err)
		}
		return der
	}
	trustStore := func(enc *pkcs12.Encoder, certs []*x509.Certificate, password string) []byte {
		der, err := enc.EncodeTrustStore(certs, password)
		if err != nil {
			t.Fatalf("encode PKCS#12 trust store: %v", err)
		}
		return der
	}
	modern := encode(pkcs12.Modern2023, f.p256.key, leaf, []*x509.Certificate{inter, root}, "pw")
	legacy := encode(pkcs12.LegacyDES, f.rsa2048.key, f.rsa2048.cert, []*x509.Certificate{inter}, "pw")
	store := trustStore(pkcs12.Modern2023, []*x509.Certificate{root, inter}, "pw")

	return []pkcs12Case{
		{name: "modern, leaf first", input: modern, password: "pw", wantChain: full, wantKey: f.p256.key},
		{name: "modern, shuffled", input: encode(pkcs12.Modern2023, f.p256.key, root, []*x509.Certificate{leaf, inter}, "pw"), password: "pw", wantChain: full, wantKey: f.p256.key},
		{name: "PBMAC1", input: encode(pkcs12.Modern2026, f.p384.key, f.p384.cert, []*x509.Certificate{inter}, "pw"), password: "pw", wantChain: []*x509.Certificate{f.p384.cert, inter}, wantKey: f.p384.key},
		{name: "legacy 3DES, RSA", input: legacy, password: "pw", wantChain: []*x509.Certificate{f.rsa2048.cert, inter}, wantKey: f.rsa2048.key},
		{name: "legacy RC2, Ed25519", input: encode(pkcs12.LegacyRC2, f.ed25519.key, f.ed25519.cert, []*x509.Certificate{root, inter}, "pw"), password: "pw", wantChain: []*x509.Certificate{f.ed25519.cert, inter, root}, wantKey: f.ed25519.key},
		{name: "passwordless", input: encode(pkcs12.Passwordless, f.p384.key, f.p384.cert, nil, ""), wantChain: []*x509.Certificate{f.p384.cert}, wantKey: f.p384.key},
		{name: "empty password", input: encode(pkcs12.Modern2023, f.p256.key, leaf, nil, ""), wantChain: []*x509.Certificate{leaf}, wantKey: f.p256.key},
		{name: "trust store", input: store, password: "pw", wantChain: []*x509.Certificate{inter, root}},
		{name: "passwordless trust store", input: trustStore(pkcs12.Passwordless, []*x509.Certificate{root}, ""), wantChain: []*x509.Certificate{root}},

		{name: "modern, wrong password", input: modern, password: "wrong", wantErr: ErrBadPassword},
		{name: "legacy, wrong password", input: legacy, password: "wrong", wantErr: ErrBadPassword},
		{name: "trust store, wrong password", input: store, password: "wrong", wantErr: ErrBadPassword},
		{name: "no password for a protected file", input: modern, wantErr: ErrBadPassword},
		{name: "key of another certificate", input: encode(pkcs12.Modern2023, f.second.key, leaf, []*x509.Certificate{inter}, "pw"), password: "pw", wantErr: ErrKeyMismatch},
		{name: "unrelated CA certificate", input: encode(pkcs12.Modern2023, f.p256.key, leaf, []*x509.Certificate{inter, f.other.cert}, "pw"), password: "pw", wantErr: ErrNotAChain, wantText: `"CN=Unrelated Root CA"`},
		{name: "RSA 1024", input: encode(pkcs12.Modern2023, f.rsa1024.key, f.rsa1024.cert, nil, "pw"), password: "pw", wantErr: ErrUnsupportedKey, wantText: "1024 bits"},
		{name: "P-521", input: encode(pkcs12.Modern2023, f.p521.key, f.p521.cert, nil, "pw"), password: "pw", wantErr: ErrUnsupportedKey},
		{name: "MAC iterations over the limit", input: tamperPKCS12(t, modern, maxIterations+1, 0, 0), password: "pw", wantErr: ErrTooLarge, wantText: "MAC"},
		{name: "content iterations over the limit", input: tamperPKCS12(t, modern, 0, maxIterations+1, 0), password: "pw", wantErr: ErrTooLarge, wantText: "encrypted contents"},
		{name: "key bag iterations over the limit", input: tamperPKCS12(t, modern, 0, 0, maxIterations+1), password: "pw", wantErr: ErrTooLarge, wantText: "key bag"},
		{name: "legacy content iterations over the limit", input: tamperPKCS12(t, legacy, 0, maxIterations+1, 0), password: "pw", wantErr: ErrTooLarge, wantText: "encrypted contents"},
		{name: "tampered without changing cost", input: tamperPKCS12(t, modern, 4096, 0, 0), password: "pw", wantErr: ErrBadPassword},
		{name: "garbage", input: []byte("not a PKCS#12 file"), password: "pw", wantText: "PKCS#12"},
		{name: "empty", input: nil, wantText: "PKCS#12"},
		{name: "PEM instead", input: certsPEM(leaf), password: "pw", wantText: "PKCS#12"},
		{name: "truncated", input: modern[:len(modern)/2], password: "pw", wantText: "PKCS#12"},
		{name: "too large", input: append(bytes.Clone(modern), make([]byte, MaxInputSize)...), password: "pw", wantErr: ErrTooLarge},
	}
}

func TestParsePKCS12(t *testing.T) {
	t.Parallel()
	for _, tc := range pkcs12Cases(t) {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			b, err := ParsePKCS12(tc.input, tc.password)
			checkResult(t, b, err, tc.wantChain, tc.wantKey, tc.wantErr, tc.wantText)
		})
	}
}

func TestPKCS12RoundTrip(t *testing.T) {
	t.Parallel()
	f := fx(t)
	bundles := map[string]*Bundle{
		"P-256 with chain": {Chain: []*x509.Certificate{f.p256.cert, f.inter.cert, f.root.cert}, Key: f.p256.key},
		"P-384":            {Chain: []*x509.Certificate{f.p384.cert, f.inter.cert}, Key: f.p384.key},
		"RSA":              {Chain: []*x509.Certificate{f.rsa2048.cert}, Key: f.rsa2048.key},
		"Ed25519":          {Chain: []*x509.Certificate{f.ed25519.cert, f.inter.cert}, Key: f.ed25519.key},
		"trust-only chain": {Chain: []*x509.Certificate{f.inter.cert, f.root.cert}},
		"trust-only root":  {Chain: []*x509.Certificate{f.root.cert}},
	}
	for name, b := range bundles {
		for _, enc := range []Encoding{Modern, Legacy} {
			for _, password := range []string{"pässwörd", ""} {
				t.Run(fmt.Sprintf("%s/%v/password %q", name, enc, password), func(t *testing.T) {
					t.Parallel()
					der, err := b.PKCS12(password, enc)
					if err != nil {
						t.Fatal(err)
					}
					got, err := ParsePKCS12(der, password)
					if err != nil {
						t.Fatal(err)
					}
					if !sameChain(got.Chain, b.Chain) || !sameKey(got.Key, b.Key) {
						t.Errorf("round trip gave %v with %T", chainNames(got.Chain), got.Key)
					}
					if _, err := ParsePKCS12(der, password+"x"); !errors.Is(err, ErrBadPassword) {
						t.Errorf("wrong password: %v, want ErrBadPassword", err)
					}
				})
			}
		}
	}
}

func TestPKCS12EncodeRefuses(t *testing.T) {
	t.Parallel()
	f := fx(t)
	for _, tc := range []struct {
		name    string
		b       *Bundle
		enc     Encoding
		wantErr error
	}{
		{"empty chain", &Bundle{Key: f.p256.key}, Modern, ErrNoCertificate},
		{"key of another certificate", &Bundle{Chain: []*x509.Certificate{f.p256.cert}, Key: f.second.key}, Modern, ErrKeyMismatch},
		{"key of the intermediate", &Bundle{Chain: []*x509.Certificate{f.p256.cert, f.inter.cert}, Key: f.inter.key}, Legacy, ErrKeyMismatch},
		{"RSA 1024", &Bundle{Chain: []*x509.Certificate{f.rsa1024.cert}, Key: f.rsa1024.key}, Modern, ErrUnsupportedKey},
		{"unknown encoding", &Bundle{Chain: []*x509.Certificate{f.p256.cert}, Key: f.p256.key}, Encoding(7), nil},
		{"nil certificate", &Bundle{Chain: []*x509.Certificate{nil}}, Modern, nil},
		{"nil key pointer", &Bundle{Chain: []*x509.Certificate{f.rsa2048.cert}, Key: (*rsa.PrivateKey)(nil)}, Modern, ErrUnsupportedKey},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			der, err := tc.b.PKCS12("pw", tc.enc)
			if err == nil {
				t.Fatalf("encoded %d bytes, want an error", len(der))
			}
			if tc.wantErr != nil && !errors.Is(err, tc.wantErr) {
				t.Errorf("error %q is not %q", err, tc.wantErr)
			}
		})
	}
	if got := Encoding(7).String(); got != "Encoding(7)" {
		t.Errorf("Encoding(7).String() = %q", got)
	}
}

// tamperPKCS12 rewrites the iteration counts of a PKCS#12 file written by
// go-pkcs12: of its MAC, of its encrypted contents and of its key bag (0
// keeps one). The MAC no longer matches, which is beside the point: the cost
// check must refuse the file before the MAC is verified.
func tamperPKCS12(t testing.TB, der []byte, macIter, contentIter, keyIter int) []byte {
	t.Helper()
	var pfx pfxPDU
	mustUnmarshal(t, der, &pfx)
	if macIter != 0 {
		pfx.MacData.Iterations = macIter
	}
	var content []byte
	mustUnmarshal(t, pfx.AuthSafe.Content.Bytes, &content)
	var safe []contentInfo
	mustUnmarshal(t, content, &safe)
	for i, ci := range safe {
		switch {
		case ci.ContentType.Equal(oidEncryptedData) && contentIter != 0:
			var ed encryptedData
			mustUnmarshal(t, ci.Content.Bytes, &ed)
			alg := &ed.EncryptedContentInfo.ContentEncryptionAlgorithm
			*alg = withIterations(t, *alg, contentIter)
			safe[i].Content = explicit0(mustMarshal(t, ed))
		case ci.ContentType.Equal(oidData) && keyIter != 0:
			var bagsDER []byte
			mustUnmarshal(t, ci.Content.Bytes, &bagsDER)
			var bags []safeBag
			mustUnmarshal(t, bagsDER, &bags)
			for j, bag := range bags {
				if !bag.ID.Equal(oidPKCS8ShroudedKeyBag) {
					continue
				}
				var info encryptedPrivateKeyInfo
				mustUnmarshal(t, bag.Value.Bytes, &info)
				info.Algorithm = withIterations(t, info.Algorithm, keyIter)
				bags[j].Value = explicit0(mustMarshal(t, info))
			}
			safe[i].Content = explicit0(mustMarshal(t, mustMarshal(t, bags)))
		}
	}
	pfx.AuthSafe.Content = explicit0(mustMarshal(t, mustMarshal(t, safe)))
	return mustMarshal(t, pfx)
}

// withIterations returns alg, a PBES2 or PKCS#12 PBE algorithm, with its
// iteration count set to n.
func withIterations(t testing.TB, alg pkix.AlgorithmIdentifier, n int) pkix.AlgorithmIdentifier {
	t.Helper()
	if !alg.Algorithm.Equal(oidPBES2) {
		var p pbeParams
		mustUnmarshal(t, alg.Parameters.FullBytes, &p)
		p.Iterations = n
		return pkix.AlgorithmIdentifier{Algorithm: alg.Algorithm, Parameters: asn1.RawValue{FullBytes: mustMarshal(t, p)}}
	}
	var p pbes2Params
	mustUnmarshal(t, alg.Parameters.FullBytes, &p)
	var kp pbkdf2Params
	mustUnmarshal(t, p.KeyDerivationFunc.Parameters.FullBytes, &kp)
	kp.IterationCount = n
	p.KeyDerivationFunc.Parameters = asn1.RawValue{FullBytes: mustMarshal(t, kp)}
	return pkix.AlgorithmIdentifier{Algorithm: oidPBES2, Parameters: asn1.RawValue{FullBytes: mustMarshal(t, p)}}
}

// explicit0 wraps der in an explicit [0] tag.
func explicit0(der []byte) asn1.RawValue {
	return asn1.RawValue{Class: asn1.ClassContextSpecific, Tag: 0, IsCompound: true, Bytes: der}
}

func mustUnmarshal(t testing.TB, der []byte, v any) {
	t.Helper()
	if err := unmarshalAll(der, v); err != nil {
		t.Fatalf("unmarshal %T: %v", v, err)
	}
}
