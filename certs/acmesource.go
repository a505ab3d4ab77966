package certs

import (
	"bytes"
	"context"
	"crypto"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"time"

	"go.etcd.io/bbolt"

	"github.com/edgegate/edgegate/certs/acme"
	"github.com/edgegate/edgegate/certs/bundle"
)

// ACMEClient is the part of *acme.Client the manager uses.
type ACMEClient interface {
	Obtain(ctx context.Context, names []string) (*acme.Certificate, error)
	Renew(ctx context.Context, names []string, old *x509.Certificate) (*acme.Certificate, error)
	RenewalInfo(ctx context.Context, leaf *x509.Certificate) (*acme.RenewalInfo, error)
	Revoke(ctx context.Context, certPEM []byte, reason uint) error
	HTTPHandler(next http.Handler) http.Handler
	ChallengeCertificate(hello *tls.ClientHelloInfo) (*tls.Certificate, bool)
}

// ErrNoACME is returned when an ACME operation is asked of a gateway whose
// settings configure no ACME CA.
var ErrNoACME = errors.New("certs: no ACME CA configured (settings acme.directory_url)")

// acmeFallbackBefore is how close to expiry a served ACME certificate that
// cannot be renewed is replaced by one from the local CA.
const acmeFallbackBefore = 7 * 24 * time.Hour

// acmeHolder boxes the client so that nil can be stored atomically.
type acmeHolder struct{ c ACMEClient }

// SetACME sets the ACME client used from now on; nil turns ACME off.
// Certificates already obtained stay and are renewed once a client is set.
func (m *Manager) SetACME(c ACMEClient) {
	m.acme.Store(&acmeHolder{c})
}

func (m *Manager) acmeClient() ACMEClient {
	if h := m.acme.Load(); h != nil {
		return h.c
	}
	return nil
}

// ACMEHTTPHandler answers http-01 challenges under
// /.well-known/acme-challenge/ for the current ACME client (404 otherwise).
func (m *Manager) ACMEHTTPHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if c := m.acmeClient(); c != nil {
			c.HTTPHandler(http.NotFoundHandler()).ServeHTTP(w, r)
			return
		}
		http.NotFound(w, r)
	})
}

// ACMEChallengeCertificate answers a tls-alpn-01 challenge handshake; false
// when hello is not one.
func (m *Manager) ACMEChallengeCertificate(hello *tls.ClientHelloInfo) (*tls.Certificate, bool) {
	if c := m.acmeClient(); c != nil {
		return c.ChallengeCertificate(hello)
	}
	return nil, false
}

// ObtainACME orders a certificate for names from the ACME CA, stores it as
// auto-renewed, and with serve makes the TLS listeners serve it.
func (m *Manager) ObtainACME(ctx context.Context, meta Meta, names []string, serve bool) (Certificate, error) {
	c := m.acmeClient()
	if c == nil {
		return Certificate{}, ErrNoACME
	}
	if len(names) == 0 {
		return Certificate{}, fmt.Errorf("%w: no host name to order a certificate for", ErrInvalid)
	}
	got, err := c.Obtain(ctx, names)
	if err != nil {
		return Certificate{}, fmt.Errorf("certs: obtain %v: %w", names, err)
	}
	chain, key, err := parseACME(got)
	if err != nil {
		return Certificate{}, err
	}
	if meta.ID == "" {
		meta.ID = "acme-" + idFromName(names[0])
	}
	meta.AutoRenew = true
	r, err := m.newRecord(meta, chain, key, SourceACME)
	if err != nil {
		return Certificate{}, err
	}
	r.Names = names
	r.Renewal.NextAttempt = m.nextACMEAttempt(ctx, c, chain[0]).UnixMilli()
	err = m.update(func(t tx) error {
		if old, err := t.record(r.ID); err == nil && old.Source != SourceACME {
			return fmt.Errorf("%w: id %q is taken", ErrInvalid, r.ID)
		}
		return t.put(r, key, false)
	})
	if err != nil {
		return Certificate{}, fmt.Errorf("certs: store ACME certificate %q: %w", r.ID, err)
	}
	m.log.Info("ACME certificate obtained", "id", r.ID, "names", names, "serial", chain[0].SerialNumber.Text(16))
	if serve {
		if err := m.Serve(r.ID); err != nil {
			return Certificate{}, err
		}
	}
	return m.Get(r.ID)
}

// idFromName makes a certificate id from a host name.
func idFromName(name string) string {
	out := []byte(name)
	for i, b := range out {
		if !(b >= 'a' && b <= 'z' || b >= 'A' && b <= 'Z' || b >= '0' && b <= '9' || b == '.' || b == '-') {
			out[i] = '_'
		}
	}
	return string(out)
}

// parseACME decodes an ACME order's chain and key.
func parseACME(got *acme.Certificate) ([]*x509.Certificate, crypto.Signer, error) {
	bd, err := bundle.ParsePEM(bytes.Join([][]byte{got.ChainPEM, got.KeyPEM}, []byte("\n")), nil)
	if err != nil {
		return nil, nil, fmt.Errorf("certs: ACME certificate: %w", err)
	}
	if bd.Key == nil {
		return nil, nil, errors.New("certs: ACME certificate came without its key")
	}
	return bd.Chain, bd.Key, nil
}

// renewACME renews r with the ACME CA.
func (m *Manager) renewACME(ctx context.Context, r record) ([]*x509.Certificate, crypto.Signer, error) {
	c := m.acmeClient()
	if c == nil {
		return nil, nil, ErrNoACME
	}
	old, err := ParseChainPEM(r.Chain)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: %q: %w", ErrCorrupt, r.ID, err)
	}
	got, err := c.Renew(ctx, r.Names, old[0])
	if err != nil {
		return nil, nil, err
	}
	return parseACME(got)
}

// nextACMEAttempt is when to renew leaf: a random time in the CA's ARI
// window when it offers one, else when a third of its life is left.
func (m *Manager) nextACMEAttempt(ctx context.Context, c ACMEClient, leaf *x509.Certificate) time.Time {
	ri, err := c.RenewalInfo(ctx, leaf)
	if err == nil && ri.WindowEnd.After(ri.WindowStart) {
		// A window reaching to the expiry (a short-lived certificate) is cut
		// a tenth of the lifetime before it: the order itself takes time.
		end := ri.WindowEnd
		if latest := leaf.NotAfter.Add(-leaf.NotAfter.Sub(leaf.NotBefore) / 10); latest.Before(end) {
			end = latest
		}
		if end.After(ri.WindowStart) {
			return ri.WindowStart.Add(randomJitter(end.Sub(ri.WindowStart)))
		}
		return ri.WindowStart
	}
	if err != nil && !errors.Is(err, acme.ErrNoRenewalInfo) {
		m.log.Warn("ACME renewal information", "serial", leaf.SerialNumber.Text(16), "error", err)
	}
	return dueWithJitter(leaf)
}

// Layout of the ACME accounts, beside the certificates:
//
//	certificates/acme-accounts/<directory URL + email>  account, sealed
var bucketACMEAccounts = []byte("acme-accounts")

// ACMEAccounts keeps ACME accounts (their keys are secrets) sealed in the
// store; it implements acme.AccountStore.
func (m *Manager) ACMEAccounts() acme.AccountStore { return accountStore{m} }

type accountStore struct{ m *Manager }

func (s accountStore) LoadAccount(_ context.Context, key string) ([]byte, error) {
	var data []byte
	err := s.m.view(func(t tx) error {
		b := t.bucket(bucketACMEAccounts)
		if b == nil || b.Get([]byte(key)) == nil {
			return acme.ErrAccountNotFound
		}
		var err error
		data, err = t.sealer.Open(bytes.Clone(b.Get([]byte(key))), "acme-account/"+key)
		return err
	})
	return data, err
}

func (s accountStore) SaveAccount(_ context.Context, key string, data []byte) error {
	return s.m.db.Update(func(bt *bbolt.Tx) error {
		t := tx{bt, s.m.o.Sealer}
		b, err := t.writable(bucketACMEAccounts)
		if err != nil {
			return err
		}
		sealed, err := t.sealer.Seal(data, "acme-account/"+key)
		if err != nil {
			return err
		}
		return b.Put([]byte(key), sealed)
	})
}
