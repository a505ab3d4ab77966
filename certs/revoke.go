package certs

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/edgegate/edgegate/certs/ca"
)

// reasonCodes are RFC 5280's CRL reason names and codes.
var reasonCodes = map[string]int{
	"unspecified":          ca.ReasonUnspecified,
	"keycompromise":        ca.ReasonKeyCompromise,
	"cacompromise":         ca.ReasonCACompromise,
	"affiliationchanged":   ca.ReasonAffiliationChanged,
	"superseded":           ca.ReasonSuperseded,
	"cessationofoperation": ca.ReasonCessationOfOperation,
	"certificatehold":      ca.ReasonCertificateHold,
	"privilegewithdrawn":   ca.ReasonPrivilegeWithdrawn,
	"aacompromise":         ca.ReasonAACompromise,
}

// ParseReason reads an RFC 5280 reason name ("keyCompromise", any case);
// empty means unspecified.
func ParseReason(s string) (int, error) {
	if s == "" {
		return ca.ReasonUnspecified, nil
	}
	code, ok := reasonCodes[strings.ToLower(s)]
	if !ok {
		return 0, fmt.Errorf("%w: unknown revocation reason %q (e.g. keyCompromise, superseded, cessationOfOperation)", ErrInvalid, s)
	}
	return code, nil
}

// Revoke revokes id for reason (an RFC 5280 reason name). A certificate the
// local CA issued goes on its CRL. From then on the TLS listeners refuse it
// as a client certificate, [Manager.CheckClient] reports it for live
// sessions, and if the listeners served it they go back to a local one.
func (m *Manager) Revoke(ctx context.Context, id, reason string) (Certificate, error) {
	code, err := ParseReason(reason)
	if err != nil {
		return Certificate{}, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.now()
	var r record
	if err := m.view(func(t tx) error {
		var err error
		r, err = t.record(id)
		return err
	}); err != nil {
		return Certificate{}, fmt.Errorf("certs: revoke %q: %w", id, err)
	}
	if r.Revoked {
		return m.Get(id)
	}
	chain, err := ParseChainPEM(r.Chain)
	if err != nil {
		return Certificate{}, fmt.Errorf("certs: revoke %q: %w: %w", id, ErrCorrupt, err)
	}
	leaf := chain[0]
	// The CA writes its CRL in its own transaction, first: a certificate on
	// the CRL but not yet marked here is refused all the same.
	if r.Source == SourceACME {
		c := m.acmeClient()
		if c == nil {
			return Certificate{}, fmt.Errorf("certs: revoke %q: %w", id, ErrNoACME)
		}
		if err := c.Revoke(ctx, []byte(r.Chain), uint(code)); err != nil { //nolint:gosec // G115: reason codes are 0-10
			return Certificate{}, fmt.Errorf("certs: revoke %q at the ACME CA: %w", id, err)
		}
	} else if err := m.o.CA.RevokeCertificate(leaf, code, now); err != nil && !errors.Is(err, ca.ErrUnknownCertificate) {
		return Certificate{}, fmt.Errorf("certs: revoke %q: %w", id, err)
	}
	var serving, clientCA bool
	err = m.update(func(t tx) error {
		r, err := t.record(id)
		if err != nil {
			return err
		}
		r.Revoked, r.RevocationReason, r.RevokedAt = true, reason, now.UnixMilli()
		if r.RevocationReason == "" {
			r.RevocationReason = "unspecified"
		}
		serving, clientCA = t.serving() == id, r.ClientCA
		return t.put(r, nil, false)
	})
	if err != nil {
		return Certificate{}, fmt.Errorf("certs: revoke %q: %w", id, err)
	}
	m.revoked.Store(revocationKey(leaf), struct{}{})
	m.log.Warn("certificate revoked", "id", id, "serial", leaf.SerialNumber.Text(16), "reason", reason)
	if serving {
		if err := m.ensureServing(); err != nil {
			return Certificate{}, err
		}
	}
	if clientCA {
		if err := m.publishClientCAs(); err != nil {
			return Certificate{}, err
		}
	}
	return m.Get(id)
}

// CheckClient judges a client certificate chain (leaf first, its issuer
// next) that verified against a listener's pool: it is refused when the
// leaf expired or was revoked, by the local CA or in the store. The TLS
// listeners run it at every handshake (certs/tlsconf) and the broker on
// live sessions.
func (m *Manager) CheckClient(chain []*x509.Certificate) error {
	leaf := chain[0]
	now := m.now()
	if now.After(leaf.NotAfter) {
		return fmt.Errorf("certificate %s expired at %s", leaf.SerialNumber.Text(16), leaf.NotAfter.UTC().Format(time.RFC3339))
	}
	if len(chain) > 1 && m.o.CA.IsRevoked(chain[1], leaf.SerialNumber) {
		return fmt.Errorf("certificate %s is revoked", leaf.SerialNumber.Text(16))
	}
	if _, ok := m.revoked.Load(revocationKey(leaf)); ok {
		return fmt.Errorf("certificate %s is revoked in the certificate store", leaf.SerialNumber.Text(16))
	}
	return nil
}

// revocationKey names a certificate by issuer and serial.
func revocationKey(c *x509.Certificate) string {
	return string(c.RawIssuer) + "\x00" + c.SerialNumber.Text(16)
}
