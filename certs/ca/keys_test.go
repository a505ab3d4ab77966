package ca

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"errors"
	"math/big"
	"strings"
	"testing"
)

func TestParseKeyType(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in      string
		want    KeyType
		wantErr bool
	}{
		{"", KeyECDSAP256, false},
		{"ecdsa-p256", KeyECDSAP256, false},
		{" ECDSA-P384 ", KeyECDSAP384, false},
		{"rsa-2048", KeyRSA2048, false},
		{"RSA-3072", KeyRSA3072, false},
		{"rsa-4096", KeyRSA4096, false},
		{"rsa-1024", "", true},
		{"ed25519", "", true},
		{"p256", "", true},
		{"ecdsa-p256\x00", "", true},
	}
	for _, tt := range tests {
		got, err := ParseKeyType(tt.in)
		if tt.wantErr {
			if err == nil || !errors.Is(err, ErrInvalidRequest) {
				t.Errorf("ParseKeyType(%q) error = %v, want ErrInvalidRequest", tt.in, err)
			} else if !strings.Contains(err.Error(), "ecdsa-p256, ecdsa-p384, rsa-2048, rsa-3072, rsa-4096") {
				t.Errorf("ParseKeyType(%q) error %q does not list the allowed key types", tt.in, err)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("ParseKeyType(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
		}
	}
}

func TestKeyTypeGenerate(t *testing.T) {
	t.Parallel()
	types := keyTypes
	if testing.Short() {
		types = []KeyType{KeyECDSAP256, KeyECDSAP384, KeyRSA2048}
	}
	for _, kt := range types {
		key, err := kt.generate()
		if err != nil {
			t.Fatalf("%s: %v", kt, err)
		}
		got, err := KeyTypeOf(key.Public())
		if err != nil || got != kt {
			t.Errorf("KeyTypeOf(generated %s) = %q, %v", kt, got, err)
		}
	}
	if _, err := KeyType("dsa-1024").generate(); !errors.Is(err, ErrInvalidRequest) {
		t.Errorf("generate unknown type: %v", err)
	}
	p521, _ := ecdsa.GenerateKey(elliptic.P521(), rand.Reader)
	if _, err := KeyTypeOf(p521.Public()); err == nil {
		t.Error("KeyTypeOf(P-521) succeeded; the authority does not generate P-521")
	}
}

func TestParseSignatureAlgorithm(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in      string
		want    x509.SignatureAlgorithm
		wantErr bool
	}{
		{"", x509.UnknownSignatureAlgorithm, false},
		{"ecdsa-sha256", x509.ECDSAWithSHA256, false},
		{"ECDSA-SHA384", x509.ECDSAWithSHA384, false},
		{"rsa-sha512", x509.SHA512WithRSA, false},
		{"SHA256-RSA", x509.SHA256WithRSA, false}, // x509's name
		{"rsa-pss-sha256", x509.SHA256WithRSAPSS, false},
		{"SHA384-RSAPSS", x509.SHA384WithRSAPSS, false},
		{"Ed25519", x509.PureEd25519, false},
		{"SHA1-RSA", 0, true},
		{"md5", 0, true},
		{"sha256", 0, true},
	}
	for _, tt := range tests {
		got, err := ParseSignatureAlgorithm(tt.in)
		if tt.wantErr {
			if !errors.Is(err, ErrInvalidRequest) || !strings.Contains(err.Error(), "rsa-pss-sha256") {
				t.Errorf("ParseSignatureAlgorithm(%q) error = %v, want ErrInvalidRequest listing the allowed names", tt.in, err)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("ParseSignatureAlgorithm(%q) = %v, %v; want %v", tt.in, got, err, tt.want)
		}
	}
}

func TestSignatureAlgorithmFor(t *testing.T) {
	t.Parallel()
	p256, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	p384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	rsaKey, _ := rsa.GenerateKey(rand.Reader, 2048)
	edPub, _, _ := ed25519.GenerateKey(rand.Reader)
	tests := []struct {
		name    string
		pub     any
		req     x509.SignatureAlgorithm
		want    x509.SignatureAlgorithm
		wantErr string
	}{
		{"P-256 default", p256.Public(), 0, x509.ECDSAWithSHA256, ""},
		{"P-384 default", p384.Public(), 0, x509.ECDSAWithSHA384, ""},
		{"RSA default", rsaKey.Public(), 0, x509.SHA256WithRSA, ""},
		{"Ed25519 default", edPub, 0, x509.PureEd25519, ""},
		{"P-256 with SHA-384", p256.Public(), x509.ECDSAWithSHA384, x509.ECDSAWithSHA384, ""},
		{"RSA with PSS", rsaKey.Public(), x509.SHA384WithRSAPSS, x509.SHA384WithRSAPSS, ""},
		{"RSA algorithm, ECDSA issuer", p256.Public(), x509.SHA256WithRSA, 0, "needs an RSA issuer key; the issuer's key is ECDSA P-256"},
		{"ECDSA algorithm, RSA issuer", rsaKey.Public(), x509.ECDSAWithSHA256, 0, "needs an ECDSA issuer key; the issuer's key is RSA 2048-bit"},
		{"SHA-1", rsaKey.Public(), x509.SHA1WithRSA, 0, "not supported"},
	}
	for _, tt := range tests {
		got, err := signatureAlgorithmFor(tt.pub, tt.req)
		if tt.wantErr != "" {
			if !errors.Is(err, ErrInvalidRequest) || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("%s: error = %v, want one containing %q", tt.name, err, tt.wantErr)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("%s: = %v, %v; want %v", tt.name, got, err, tt.want)
		}
	}
}

func TestCheckPublicKey(t *testing.T) {
	t.Parallel()
	// Go refuses to generate RSA keys under 2048 bits; a modulus will do.
	small := &rsa.PublicKey{N: new(big.Int).Lsh(big.NewInt(1), 1023), E: 65537}
	p521, _ := ecdsa.GenerateKey(elliptic.P521(), rand.Reader)
	if err := checkPublicKey(small); !errors.Is(err, ErrInvalidRequest) || !strings.Contains(err.Error(), "RSA 1024-bit") {
		t.Errorf("RSA-1024: %v, want refused naming the key", err)
	}
	if err := checkPublicKey(p521.Public()); err != nil {
		t.Errorf("P-521: %v", err)
	}
}

func FuzzParseAlgorithmNames(f *testing.F) {
	for _, kt := range keyTypes {
		f.Add(string(kt))
	}
	for _, a := range signatureAlgorithms {
		f.Add(a.name)
		f.Add(a.alg.String())
	}
	f.Add("")
	f.Add("RSA-4096 ")
	f.Fuzz(func(t *testing.T, s string) {
		if kt, err := ParseKeyType(s); err == nil {
			if again, err := ParseKeyType(kt.String()); err != nil || again != kt {
				t.Fatalf("key type %q does not round-trip: %q, %v", s, again, err)
			}
		}
		if alg, err := ParseSignatureAlgorithm(s); err == nil && alg != 0 {
			if again, err := ParseSignatureAlgorithm(alg.String()); err != nil || again != alg {
				t.Fatalf("signature algorithm %q does not round-trip: %v, %v", s, again, err)
			}
		}
	})
}
