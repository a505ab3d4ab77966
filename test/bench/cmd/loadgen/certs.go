package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"
)

// mosquittoPKI is the certificate mosquitto serves: ECDSA P-256 like
// edgegate's listener certificate, and with the same chain shape (root →
// intermediate → server; the server sends server + intermediate), so both
// brokers do the same signing and send the same number of certificates.
type mosquittoPKI struct {
	CAFile   string // the root, for the client and for mosquitto's cafile
	CertFile string // server certificate followed by the intermediate
	KeyFile  string
}

func newMosquittoPKI(dir string) (mosquittoPKI, error) {
	now := time.Now()
	rootKey, root, err := newCert(nil, nil, &x509.Certificate{
		Subject:               pkix.Name{CommonName: "bench root CA"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(48 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
	})
	if err != nil {
		return mosquittoPKI{}, fmt.Errorf("root: %w", err)
	}
	interKey, inter, err := newCert(root, rootKey, &x509.Certificate{
		Subject:               pkix.Name{CommonName: "bench intermediate CA"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(48 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	})
	if err != nil {
		return mosquittoPKI{}, fmt.Errorf("intermediate: %w", err)
	}
	leafKey, leaf, err := newCert(inter, interKey, &x509.Certificate{
		Subject:     pkix.Name{CommonName: "127.0.0.1"},
		NotBefore:   now.Add(-time.Hour),
		NotAfter:    now.Add(48 * time.Hour),
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		DNSNames:    []string{"localhost"},
	})
	if err != nil {
		return mosquittoPKI{}, fmt.Errorf("server: %w", err)
	}
	keyDER, err := x509.MarshalECPrivateKey(leafKey)
	if err != nil {
		return mosquittoPKI{}, err
	}
	p := mosquittoPKI{
		CAFile:   filepath.Join(dir, "ca.pem"),
		CertFile: filepath.Join(dir, "server.pem"),
		KeyFile:  filepath.Join(dir, "server.key"),
	}
	files := []struct {
		path string
		mode os.FileMode
		typ  string
		ders [][]byte
	}{
		{p.CAFile, 0o644, "CERTIFICATE", [][]byte{root.Raw}},
		{p.CertFile, 0o644, "CERTIFICATE", [][]byte{leaf.Raw, inter.Raw}},
		{p.KeyFile, 0o600, "EC PRIVATE KEY", [][]byte{keyDER}},
	}
	for _, f := range files {
		var data []byte
		for _, der := range f.ders {
			data = append(data, pem.EncodeToMemory(&pem.Block{Type: f.typ, Bytes: der})...)
		}
		if err := os.WriteFile(f.path, data, f.mode); err != nil {
			return mosquittoPKI{}, err
		}
	}
	return p, nil
}

// newCert makes an ECDSA P-256 key and a certificate for it from tmpl,
// signed by parent (self-signed when parent is nil).
func newCert(parent *x509.Certificate, parentKey *ecdsa.PrivateKey, tmpl *x509.Certificate) (*ecdsa.PrivateKey, *x509.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 126))
	if err != nil {
		return nil, nil, err
	}
	tmpl.SerialNumber = serial
	if parent == nil {
		parent, parentKey = tmpl, key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, &key.PublicKey, parentKey)
	if err != nil {
		return nil, nil, err
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, nil, err
	}
	return key, cert, nil
}
