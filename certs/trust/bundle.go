package trust

import (
	"bytes"
	"crypto/x509"
	"encoding/pem"
	"fmt"
)

// MaxBundleSize bounds what ParseBundle reads: far more than any real set
// of CA certificates and CRLs, far less than would hurt the gateway.
const MaxBundleSize = 1 << 20

// ParseBundle reads certificates and CRLs from data: PEM with CERTIFICATE
// and X509 CRL blocks (other blocks, such as keys, are ignored; a
// CERTIFICATE or X509 CRL block that does not parse is an error), or a single
// DER certificate or CRL. Errors wrap ErrInvalid, or ErrTooLarge when data
// exceeds MaxBundleSize.
func ParseBundle(data []byte) ([]*x509.Certificate, []*x509.RevocationList, error) {
	if len(data) > MaxBundleSize {
		return nil, nil, fmt.Errorf("%w: %d bytes (at most %d)", ErrTooLarge, len(data), MaxBundleSize)
	}
	if len(bytes.TrimSpace(data)) == 0 {
		return nil, nil, fmt.Errorf("%w: empty bundle", ErrInvalid)
	}
	if !bytes.Contains(data, []byte("-----BEGIN")) {
		return parseDER(data)
	}
	var (
		certs []*x509.Certificate
		crls  []*x509.RevocationList
		rest  = data
		n     int // PEM blocks seen, for error positions
	)
	for {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			break
		}
		n++
		switch block.Type {
		case "CERTIFICATE":
			c, err := x509.ParseCertificate(block.Bytes)
			if err != nil {
				return nil, nil, fmt.Errorf("%w: PEM block %d (CERTIFICATE): %w", ErrInvalid, n, err)
			}
			certs = append(certs, c)
		case "X509 CRL":
			crl, err := x509.ParseRevocationList(block.Bytes)
			if err != nil {
				return nil, nil, fmt.Errorf("%w: PEM block %d (X509 CRL): %w", ErrInvalid, n, err)
			}
			crls = append(crls, crl)
		}
	}
	if len(certs) == 0 && len(crls) == 0 {
		if n == 0 {
			return nil, nil, fmt.Errorf("%w: no valid PEM block", ErrInvalid)
		}
		return nil, nil, fmt.Errorf("%w: no CERTIFICATE or X509 CRL block among %d PEM blocks", ErrInvalid, n)
	}
	return certs, crls, nil
}

func parseDER(data []byte) ([]*x509.Certificate, []*x509.RevocationList, error) {
	c, certErr := x509.ParseCertificate(data)
	if certErr == nil {
		return []*x509.Certificate{c}, nil, nil
	}
	crl, crlErr := x509.ParseRevocationList(data)
	if crlErr == nil {
		return nil, []*x509.RevocationList{crl}, nil
	}
	return nil, nil, fmt.Errorf("%w: neither PEM nor a DER certificate or CRL (as a certificate: %w)", ErrInvalid, certErr)
}
