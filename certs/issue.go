package certs

import (
	"context"
	"crypto"
	"crypto/x509"
	"errors"
	"fmt"
	"time"

	"github.com/edgegate/edgegate/certs/ca"
)

// IssueParams is how a certificate issued by the gateway was asked for
// (seed 004's "create from an existing CA"); a renewal asks again with the
// same parameters.
type IssueParams struct {
	// Subject is a DN like "CN=sensor-1,O=Acme".
	Subject string   `json:"subject,omitempty"`
	Hosts   []string `json:"hosts,omitempty"`
	CA      bool     `json:"ca,omitempty"`
	Client  bool     `json:"client,omitempty"`
	Server  bool     `json:"server,omitempty"`
	AIA     bool     `json:"aia,omitempty"`
	// KeyType is a ca.KeyType name ("ecdsa-p256", "rsa-2048", …); empty
	// means the default.
	KeyType string `json:"keyType,omitempty"`
	// SignatureAlgorithm is a ca.ParseSignatureAlgorithm name; empty means
	// the default for the issuer's key.
	SignatureAlgorithm string `json:"signatureAlgorithm,omitempty"`
	// ValiditySeconds is the lifetime; zero means the CA's default.
	ValiditySeconds int64 `json:"validitySeconds,omitempty"`
}

// Create issues a new certificate with p, signed by the CA entity
// meta.CARef (a CA of the store with its key) or, without one, by the
// gateway's local CA, and stores it with its key.
func (m *Manager) Create(meta Meta, p IssueParams) (Certificate, error) {
	issued, err := m.issue(meta.CARef, p)
	if err != nil {
		return Certificate{}, fmt.Errorf("certs: create: %w", err)
	}
	chain := append([]*x509.Certificate{issued.Cert}, issued.Chain...)
	r, err := m.newRecord(meta, chain, issued.Key, SourceLocal)
	if err != nil {
		return Certificate{}, err
	}
	r.Issue = &p
	err = m.update(func(t tx) error {
		if _, err := t.record(r.ID); err == nil {
			return fmt.Errorf("%w: id %q is taken", ErrInvalid, r.ID)
		}
		return t.put(r, issued.Key, false)
	})
	if err != nil {
		return Certificate{}, fmt.Errorf("certs: create %q: %w", r.ID, err)
	}
	if r.ClientCA {
		if err := m.publishClientCAs(); err != nil {
			return Certificate{}, err
		}
	}
	m.log.Info("certificate issued", "id", r.ID, "subject", issued.Cert.Subject.String(),
		"serial", issued.Cert.SerialNumber.Text(16), "ca_ref", meta.CARef)
	return m.Get(r.ID)
}

// issue has the right CA sign a certificate for p.
func (m *Manager) issue(caRef string, p IssueParams) (*ca.Issued, error) {
	req, err := m.issueRequest(caRef, p)
	if err != nil {
		return nil, err
	}
	return caResult(m.o.CA.Issue(req))
}

// caResult maps the CA's refusals of a request to ErrInvalid.
func caResult(issued *ca.Issued, err error) (*ca.Issued, error) {
	if errors.Is(err, ca.ErrInvalidRequest) || errors.Is(err, ca.ErrNotCA) || errors.Is(err, ca.ErrExpired) {
		return nil, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	return issued, err
}

// issueRequest turns p into the CA's request, with the CA entity caRef as
// issuer when set.
func (m *Manager) issueRequest(caRef string, p IssueParams) (ca.IssueRequest, error) {
	req := ca.IssueRequest{
		CA: p.CA, Client: p.Client, Server: p.Server, AIA: p.AIA, Subject: p.Subject, Hosts: p.Hosts,
		Validity: time.Duration(p.ValiditySeconds) * time.Second,
	}
	if !p.CA && !p.Client && !p.Server {
		return req, fmt.Errorf("%w: say what the certificate is for: ca, client and/or server", ErrInvalid)
	}
	var err error
	if p.KeyType != "" {
		if req.KeyType, err = ca.ParseKeyType(p.KeyType); err != nil {
			return req, fmt.Errorf("%w: %w", ErrInvalid, err)
		}
	}
	if p.SignatureAlgorithm != "" {
		if req.SignatureAlgorithm, err = ca.ParseSignatureAlgorithm(p.SignatureAlgorithm); err != nil {
			return req, fmt.Errorf("%w: %w", ErrInvalid, err)
		}
	}
	if caRef != "" {
		if req.Issuer, err = m.signer(caRef); err != nil {
			return req, err
		}
	}
	return req, nil
}

// SignCSR signs a certificate signing request (PEM or DER) with p, by the
// CA entity meta.CARef or the local CA, and stores the certificate without
// a key: the key stays with whoever made the CSR, so it is not renewed here.
func (m *Manager) SignCSR(meta Meta, csr []byte, p IssueParams) (Certificate, error) {
	if p.KeyType != "" {
		return Certificate{}, fmt.Errorf("%w: keyType is the CSR's", ErrInvalid)
	}
	req, err := m.issueRequest(meta.CARef, p)
	if err != nil {
		return Certificate{}, err
	}
	issued, err := caResult(m.o.CA.SignCSR(csr, req))
	if err != nil {
		return Certificate{}, fmt.Errorf("certs: sign CSR: %w", err)
	}
	meta.AutoRenew = false
	return m.Add(meta, append([]*x509.Certificate{issued.Cert}, issued.Chain...), nil, SourceLocal)
}

// ImportIssuer makes an enterprise CA (chain leaf first, with its key) the
// issuer of the local CA (seed 003's bring-your-own issuer), and re-issues
// the listener certificate from it.
func (m *Manager) ImportIssuer(chain []*x509.Certificate, key crypto.Signer) error {
	if err := m.o.CA.ImportIssuer(chain, key); err != nil {
		if errors.Is(err, ca.ErrInvalidRequest) || errors.Is(err, ca.ErrNotCA) || errors.Is(err, ca.ErrExpired) ||
			errors.Is(err, ca.ErrKeyMismatch) || errors.Is(err, ca.ErrChainInvalid) {
			return fmt.Errorf("%w: %w", ErrInvalid, err)
		}
		return err
	}
	m.afterCAChange(context.Background(), true, true)
	return nil
}

// UseLocalIssuer makes the local intermediate the issuer again (the
// imported one stays for its leaves) and re-issues the listener certificate.
func (m *Manager) UseLocalIssuer() error {
	if err := m.o.CA.UseLocalIssuer(); err != nil {
		return err
	}
	m.afterCAChange(context.Background(), true, true)
	return nil
}

// signer loads CA entity id as an issuer.
func (m *Manager) signer(id string) (*ca.Signer, error) {
	var s *ca.Signer
	err := m.view(func(t tx) error {
		r, err := t.record(id)
		if errors.Is(err, ErrNotFound) {
			return fmt.Errorf("%w: caRef %q: no such certificate", ErrInvalid, id)
		} else if err != nil {
			return err
		}
		key, err := t.key(id)
		if err != nil {
			return err
		}
		chain, err := ParseChainPEM(r.Chain)
		if err != nil {
			return fmt.Errorf("%w: %q: %w", ErrCorrupt, id, err)
		}
		if key == nil || !chain[0].IsCA || r.Revoked {
			return fmt.Errorf("%w: caRef %q is not a usable CA (a CA certificate with its key, not revoked)", ErrInvalid, id)
		}
		s = &ca.Signer{Cert: chain[0], Key: key, Chain: chain[1:]}
		return nil
	})
	return s, err
}
