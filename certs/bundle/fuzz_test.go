package bundle

import (
	"testing"
)

// maxSeed keeps the "too large" rows out of the corpora: mutating a 1 MiB
// input is slow and teaches the fuzzer nothing the size check does not.
const maxSeed = 64 << 10

func FuzzParsePEM(f *testing.F) {
	for _, tc := range pemCases(f) {
		if len(tc.input) <= maxSeed {
			f.Add(tc.input, []byte(tc.password))
		}
	}
	f.Fuzz(func(t *testing.T, data, password []byte) {
		b, err := ParsePEM(data, password)
		if err != nil {
			return
		}
		checkRoundTrip(t, b)
	})
}

func FuzzParsePKCS12(f *testing.F) {
	for _, tc := range pkcs12Cases(f) {
		if len(tc.input) <= maxSeed {
			f.Add(tc.input, tc.password)
		}
	}
	f.Fuzz(func(t *testing.T, data []byte, password string) {
		b, err := ParsePKCS12(data, password)
		if err != nil {
			return
		}
		checkRoundTrip(t, b)
	})
}

// checkRoundTrip checks that a parsed bundle comes back the same from its own
// PEM: the chain alone, and the chain with the key.
func checkRoundTrip(t *testing.T, b *Bundle) {
	t.Helper()
	if len(b.Chain) == 0 || b.Leaf() != b.Chain[0] {
		t.Fatalf("parsed a bundle with chain %v", chainNames(b.Chain))
	}
	chain := b.ChainPEM()
	again, err := ParsePEM(chain, nil)
	if err != nil {
		t.Fatalf("ChainPEM does not parse: %v\n%s", err, chain)
	}
	if !sameChain(again.Chain, b.Chain) {
		t.Fatalf("ChainPEM parses to %v, want %v", chainNames(again.Chain), chainNames(b.Chain))
	}
	if b.Key == nil {
		return
	}
	keyPEM, err := b.KeyPEM()
	if err != nil {
		t.Fatalf("KeyPEM: %v", err)
	}
	again, err = ParsePEM(cat(chain, keyPEM), nil)
	if err != nil {
		t.Fatalf("ChainPEM+KeyPEM does not parse: %v", err)
	}
	if !sameChain(again.Chain, b.Chain) || !sameKey(again.Key, b.Key) {
		t.Fatalf("ChainPEM+KeyPEM parses to %v with %T", chainNames(again.Chain), again.Key)
	}
}
