package trust

import (
	"bytes"
	"encoding/pem"
	"errors"
	"testing"
	"time"
)

// bundleCases are the ParseBundle table, also the fuzz seeds.
func bundleCases(t testing.TB) []struct {
	name        string
	data        []byte
	certs, crls int
	err         error
} {
	root := newCert(t, nil, "Root CA")
	inter := newCert(t, root, "Issuing CA")
	crl := inter.crl(t, testNow.Add(time.Hour))
	keyBlock := pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: []byte{1, 2, 3}})
	brokenCert := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: []byte("not DER")})
	brokenCRL := pem.EncodeToMemory(&pem.Block{Type: "X509 CRL", Bytes: []byte("not DER")})
	return []struct {
		name        string
		data        []byte
		certs, crls int
		err         error
	}{
		{name: "one PEM certificate", data: root.pem(), certs: 1},
		{name: "chain and CRL", data: concat([]byte("comment\n"), inter.pem(), root.pem(), crlPEM(crl)), certs: 2, crls: 1},
		{name: "other blocks ignored", data: concat(keyBlock, root.pem()), certs: 1},
		{name: "CRL only", data: crlPEM(crl), crls: 1},
		{name: "DER certificate", data: root.cert.Raw, certs: 1},
		{name: "DER CRL", data: crl, crls: 1},
		{name: "empty", data: nil, err: ErrInvalid},
		{name: "blank", data: []byte(" \n\t"), err: ErrInvalid},
		{name: "garbage", data: []byte("hello world"), err: ErrInvalid},
		{name: "broken PEM header", data: []byte("-----BEGIN CERTIFICATE-----\nAAAA"), err: ErrInvalid},
		{name: "broken certificate block", data: concat(root.pem(), brokenCert), err: ErrInvalid},
		{name: "broken CRL block", data: concat(root.pem(), brokenCRL), err: ErrInvalid},
		{name: "only a key", data: keyBlock, err: ErrInvalid},
		{name: "too large", data: bytes.Repeat([]byte("A"), MaxBundleSize+1), err: ErrTooLarge},
	}
}

func TestParseBundle(t *testing.T) {
	t.Parallel()
	for _, tt := range bundleCases(t) {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			certs, crls, err := ParseBundle(tt.data)
			if tt.err != nil {
				if !errors.Is(err, tt.err) {
					t.Fatalf("ParseBundle error = %v, want %v", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseBundle: %v", err)
			}
			if len(certs) != tt.certs || len(crls) != tt.crls {
				t.Errorf("ParseBundle = %d certificates, %d CRLs; want %d, %d", len(certs), len(crls), tt.certs, tt.crls)
			}
		})
	}
}

func FuzzParseBundle(f *testing.F) {
	for _, tt := range bundleCases(f) {
		if len(tt.data) <= MaxBundleSize {
			f.Add(tt.data)
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		certs, crls, err := ParseBundle(data)
		if err != nil {
			if !errors.Is(err, ErrInvalid) && !errors.Is(err, ErrTooLarge) {
				t.Fatalf("error %v wraps neither ErrInvalid nor ErrTooLarge", err)
			}
			if certs != nil || crls != nil {
				t.Fatal("results with an error")
			}
			return
		}
		if len(certs)+len(crls) == 0 {
			t.Fatal("no error and nothing parsed")
		}
		for _, c := range certs {
			if c == nil {
				t.Fatal("nil certificate")
			}
		}
		// What parsed goes through Validate without panicking.
		var entries []Entry
		for _, c := range certs {
			entries = append(entries, Entry{List: IssuerList, DER: c.Raw})
		}
		for _, crl := range crls {
			entries = append(entries, Entry{List: TrustList, DER: data, CRL: crl.Raw})
		}
		valid, rejected := Validate(entries, testNow)
		if len(valid)+len(rejected) != len(entries) {
			t.Fatalf("Validate: %d valid + %d rejected of %d", len(valid), len(rejected), len(entries))
		}
	})
}
