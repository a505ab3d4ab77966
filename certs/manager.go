package certs

import (
	"crypto"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.etcd.io/bbolt"

	"github.com/edgegate/edgegate/certs/ca"
	"github.com/edgegate/edgegate/certs/keyseal"
)

// ServerCertificateID is the id of the certificate the local CA issues for
// the listeners when no other one is served.
const ServerCertificateID = "local-server"

// ErrInUse is returned when deleting a certificate the gateway is using.
var ErrInUse = errors.New("certs: certificate is in use")

// ErrInvalid is returned (wrapped, with what is wrong) when a certificate or
// a change to one is refused: a chain that does not parse, a key that does
// not match its certificate, a bad id.
var ErrInvalid = errors.New("certs: invalid certificate")

// LocalCA is the part of the local CA (*ca.Authority) the manager uses.
type LocalCA interface {
	// IssueServer issues a listener certificate for names, chain included.
	IssueServer(names []string, validity time.Duration) (*tls.Certificate, error)
	// Issue signs a certificate as asked, by the local issuer or req.Issuer.
	Issue(req ca.IssueRequest) (*ca.Issued, error)
	// Pool holds the local CA's roots, the anchors of its leaves.
	Pool() *x509.CertPool
	// RevokeCertificate puts cert on its issuer's CRL (ca.ErrUnknownCertificate
	// when no issuer of the local CA signed it); IsRevoked asks.
	RevokeCertificate(cert *x509.Certificate, reason int, at time.Time) error
	IsRevoked(issuer *x509.Certificate, serial *big.Int) bool
	// Maintain rotates the intermediate and re-signs CRLs when due.
	Maintain() (ca.MaintenanceResult, error)
	// RotateRoot starts a root rotation; FinishRootRotation ends its overlap.
	RotateRoot(kt ca.KeyType) error
	FinishRootRotation() error
	// SignCSR signs a request; ImportIssuer and UseLocalIssuer switch the
	// issuer between an enterprise CA and the local intermediate.
	SignCSR(csr []byte, req ca.IssueRequest) (*ca.Issued, error)
	ImportIssuer(chain []*x509.Certificate, key crypto.Signer) error
	UseLocalIssuer() error
}

// TLSTarget receives what the TLS listeners serve (*tlsconf.Manager).
type TLSTarget interface {
	SetCertificate(c *tls.Certificate)
	SetClientCAs(name string, pool *x509.CertPool)
}

// Options configures [Open].
type Options struct {
	DB     *bbolt.DB
	Sealer *keyseal.Sealer
	CA     LocalCA
	TLS    TLSTarget
	// ServerNames are the names the local server certificate covers.
	ServerNames []string
	// ServerValidity is the lifetime of a local server certificate.
	ServerValidity time.Duration
	// ClientCAPool is the name under which the local CA plus the store's
	// client CAs are published to TLS (tlsconf pool name).
	ClientCAPool string
	// OnTrustBundleChange is called after the local CA's roots changed (a
	// root rotation began or ended), e.g. to rewrite a copy of the bundle.
	OnTrustBundleChange func()
	Now                 func() time.Time
	Logger              *slog.Logger
}

// Manager is the certificate store and what acts on it: issuance, import,
// revocation, renewal, and what the TLS listeners serve. It is safe for
// concurrent use.
type Manager struct {
	o   Options
	db  *bbolt.DB
	log *slog.Logger
	now func() time.Time

	// mu serialises changes that read, decide and write (serving role,
	// renewal), so that two renewals of one certificate do not race.
	mu sync.Mutex

	// revoked holds revocationKey of every revoked certificate of the
	// store, for CheckClient, which runs on every handshake.
	revoked sync.Map

	acme atomic.Pointer[acmeHolder]

	// wake tells Run that the store changed: a certificate stored since it
	// last looked (a new, short-lived one) may be due before its timer.
	wake chan struct{}
}

// Open loads the store and makes sure the listeners have a certificate to
// serve: the one recorded as serving, or a newly issued local one.
func Open(o Options) (*Manager, error) {
	if o.DB == nil || o.Sealer == nil || o.CA == nil || o.TLS == nil {
		return nil, errors.New("certs: open: DB, Sealer, CA and TLS are required")
	}
	m := &Manager{o: o, db: o.DB, log: o.Logger, now: o.Now, wake: make(chan struct{}, 1)}
	if m.log == nil {
		m.log = slog.New(slog.DiscardHandler)
	}
	if m.now == nil {
		m.now = time.Now
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.loadRevoked(); err != nil {
		return nil, fmt.Errorf("certs: open: %w", err)
	}
	if err := m.ensureServing(); err != nil {
		return nil, fmt.Errorf("certs: open: %w", err)
	}
	if err := m.publishClientCAs(); err != nil {
		return nil, fmt.Errorf("certs: open: %w", err)
	}
	return m, nil
}

// loadRevoked fills m.revoked from the store.
func (m *Manager) loadRevoked() error {
	return m.view(func(t tx) error {
		recs, err := t.records()
		if err != nil {
			return err
		}
		for _, r := range recs {
			if !r.Revoked {
				continue
			}
			chain, err := ParseChainPEM(r.Chain)
			if err != nil {
				return fmt.Errorf("%w: %q: %w", ErrCorrupt, r.ID, err)
			}
			m.revoked.Store(revocationKey(chain[0]), struct{}{})
		}
		return nil
	})
}

func (m *Manager) view(fn func(tx) error) error {
	return m.db.View(func(t *bbolt.Tx) error { return fn(tx{t, m.o.Sealer}) })
}

func (m *Manager) update(fn func(tx) error) error {
	err := m.db.Update(func(t *bbolt.Tx) error { return fn(tx{t, m.o.Sealer}) })
	if err == nil {
		select {
		case m.wake <- struct{}{}:
		default: // Run has a wake-up pending already
		}
	}
	return err
}

// List returns every certificate, ordered by id.
func (m *Manager) List() ([]Certificate, error) {
	var out []Certificate
	err := m.view(func(t tx) error {
		recs, err := t.records()
		if err != nil {
			return err
		}
		serving := t.serving()
		for _, r := range recs {
			c, err := m.entity(r, t.hasKey(r.ID), serving)
			if err != nil {
				return err
			}
			out = append(out, c)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("certs: list: %w", err)
	}
	slices.SortFunc(out, func(a, b Certificate) int { return strings.Compare(a.ID, b.ID) })
	return out, nil
}

// Get returns the certificate id; ErrNotFound if there is none.
func (m *Manager) Get(id string) (Certificate, error) {
	var c Certificate
	err := m.view(func(t tx) error {
		r, err := t.record(id)
		if err != nil {
			return err
		}
		c, err = m.entity(r, t.hasKey(id), t.serving())
		return err
	})
	return c, err
}

// Key returns the private key of id (nil for a trust-only entry). It is for
// exports that the caller has authorised explicitly.
func (m *Manager) Key(id string) (crypto.Signer, error) {
	var k crypto.Signer
	err := m.view(func(t tx) error {
		if _, err := t.record(id); err != nil {
			return err
		}
		var err error
		k, err = t.key(id)
		return err
	})
	return k, err
}

// entity builds the API view of a record.
func (m *Manager) entity(r record, hasKey bool, serving string) (Certificate, error) {
	chain, err := ParseChainPEM(r.Chain)
	if err != nil {
		return Certificate{}, fmt.Errorf("%w: %q: %w", ErrCorrupt, r.ID, err)
	}
	c := Certificate{
		ID: r.ID, Name: r.Name, Description: r.Description, Chain: r.Chain, CARef: r.CARef,
		Exposed: r.Exposed, AutoRenew: r.AutoRenew, Client: r.Client, ClientCA: r.ClientCA, Tags: r.Tags,
		Metadata: r.Metadata, Source: r.Source, Revoked: r.Revoked,
		RevocationReason: r.RevocationReason, RevokedAt: r.RevokedAt, Renewal: r.Renewal,
	}
	if c.Tags == nil {
		c.Tags = []string{}
	}
	if c.Metadata == nil {
		c.Metadata = map[string]string{}
	}
	c.derive(chain, hasKey)
	c.checkValid(chain, m.now())
	c.Usage = []Role{}
	if r.ID == serving {
		c.Usage = append(c.Usage, RoleServer)
	}
	if r.ClientCA {
		c.Usage = append(c.Usage, RoleClientCA)
	}
	return c, nil
}

// Meta is what a user sets on a certificate besides its chain and key.
type Meta struct {
	ID          string
	Name        string
	Description string
	CARef       string
	Exposed     bool
	AutoRenew   bool
	Client      bool
	// ClientCA makes a CA certificate trusted for client certificates on
	// listeners that use the local client-CA pool.
	ClientCA bool
	Tags     []string
	Metadata map[string]string
}

var idPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$`)

// Add stores a new certificate: chain leaf first, key nil for a trust-only
// entry. An empty meta.ID gets a generated one.
func (m *Manager) Add(meta Meta, chain []*x509.Certificate, key crypto.Signer, source Source) (Certificate, error) {
	r, err := m.newRecord(meta, chain, key, source)
	if err != nil {
		return Certificate{}, err
	}
	err = m.update(func(t tx) error {
		if _, err := t.record(r.ID); err == nil {
			return fmt.Errorf("%w: id %q is taken", ErrInvalid, r.ID)
		}
		return t.put(r, key, false)
	})
	if err != nil {
		return Certificate{}, fmt.Errorf("certs: add %q: %w", r.ID, err)
	}
	if r.ClientCA {
		if err := m.publishClientCAs(); err != nil {
			return Certificate{}, err
		}
	}
	m.log.Info("certificate added", "id", r.ID, "subject", chain[0].Subject.String(), "source", source)
	return m.Get(r.ID)
}

func (m *Manager) newRecord(meta Meta, chain []*x509.Certificate, key crypto.Signer, source Source) (record, error) {
	if meta.ID == "" {
		meta.ID = newID()
	}
	if !idPattern.MatchString(meta.ID) {
		return record{}, fmt.Errorf("%w: id %q: use 1-64 letters, digits, '_', '.' or '-'", ErrInvalid, meta.ID)
	}
	if err := checkPair(chain, key); err != nil {
		return record{}, err
	}
	if meta.ClientCA && !chain[0].IsCA {
		return record{}, fmt.Errorf("%w: only a CA certificate can be trusted for client certificates", ErrInvalid)
	}
	if meta.Name == "" {
		meta.Name = chain[0].Subject.CommonName
	}
	if meta.Name == "" {
		meta.Name = meta.ID
	}
	return record{
		ID: meta.ID, Name: meta.Name, Description: meta.Description, Chain: EncodeChainPEM(chain),
		CARef: meta.CARef, Exposed: meta.Exposed, AutoRenew: meta.AutoRenew, Client: meta.Client,
		ClientCA: meta.ClientCA, Tags: meta.Tags, Metadata: meta.Metadata, Source: source,
		Names: sans(chain[0]),
	}, nil
}

// checkPair verifies that chain is non-empty and linked, and that key (if
// any) belongs to its leaf.
func checkPair(chain []*x509.Certificate, key crypto.Signer) error {
	if len(chain) == 0 {
		return fmt.Errorf("%w: no certificate", ErrInvalid)
	}
	for i := 0; i+1 < len(chain); i++ {
		if err := chain[i].CheckSignatureFrom(chain[i+1]); err != nil {
			return fmt.Errorf("%w: certificate %d (%s) is not signed by certificate %d: %w",
				ErrInvalid, i+1, chain[i].Subject, i+2, err)
		}
	}
	if key != nil && !publicKeysEqual(chain[0].PublicKey, key.Public()) {
		return fmt.Errorf("%w: the private key does not match the certificate", ErrInvalid)
	}
	return nil
}

func publicKeysEqual(a, b crypto.PublicKey) bool {
	type equaler interface{ Equal(crypto.PublicKey) bool }
	ea, ok := a.(equaler)
	return ok && ea.Equal(b)
}

// Update changes the user-settable fields of id (PUT and PATCH). When chain
// is non-nil the certificate itself is replaced too, with key (which may be
// nil only if the stored key still matches the new leaf, e.g. a renewal
// done elsewhere with the same key).
func (m *Manager) Update(id string, meta Meta, chain []*x509.Certificate, key crypto.Signer) (Certificate, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var servingChanged, poolChanged bool
	err := m.update(func(t tx) error {
		old, err := t.record(id)
		if err != nil {
			return err
		}
		if meta.ID != "" && meta.ID != id {
			return fmt.Errorf("%w: the id cannot be changed (%q in the body, %q in the path)", ErrInvalid, meta.ID, id)
		}
		meta.ID = id
		replaced := chain != nil
		if !replaced {
			if chain, err = ParseChainPEM(old.Chain); err != nil {
				return fmt.Errorf("%w: %q: %w", ErrCorrupt, id, err)
			}
		} else {
			servingChanged = t.serving() == id
		}
		check := key
		if check == nil {
			if check, err = t.key(id); err != nil {
				return err
			}
		}
		// A chain someone uploads is theirs to renew: it is imported now,
		// whatever issued the one it replaces.
		source := old.Source
		if replaced {
			source = SourceImported
		}
		r, err := m.newRecord(meta, chain, check, source)
		if err != nil {
			return err
		}
		if !replaced {
			r.Names, r.Issue = old.Names, old.Issue // what a renewal asks for again
			r.Revoked, r.RevocationReason, r.RevokedAt = old.Revoked, old.RevocationReason, old.RevokedAt
		}
		r.Renewal = old.Renewal
		if servingChanged && check == nil {
			return fmt.Errorf("%w: the listeners serve %q, it needs a private key", ErrInvalid, id)
		}
		poolChanged = old.ClientCA || r.ClientCA
		return t.put(r, key, false)
	})
	if err != nil {
		return Certificate{}, fmt.Errorf("certs: update %q: %w", id, err)
	}
	if servingChanged {
		if err := m.publishServing(); err != nil {
			return Certificate{}, err
		}
	}
	if poolChanged {
		if err := m.publishClientCAs(); err != nil {
			return Certificate{}, err
		}
	}
	return m.Get(id)
}

// Delete removes id. The certificate the listeners serve cannot be deleted
// (ErrInUse): serve another one first.
func (m *Manager) Delete(id string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	var wasClientCA bool
	err := m.update(func(t tx) error {
		r, err := t.record(id)
		if err != nil {
			return err
		}
		if t.serving() == id {
			return fmt.Errorf("%w: the TLS listeners serve it", ErrInUse)
		}
		wasClientCA = r.ClientCA
		return t.delete(id)
	})
	if err != nil {
		return fmt.Errorf("certs: delete %q: %w", id, err)
	}
	m.log.Info("certificate deleted", "id", id)
	if wasClientCA {
		return m.publishClientCAs()
	}
	return nil
}

// Serve makes id the certificate of every TLS listener, from the next
// handshake on. It needs a private key and a valid chain.
func (m *Manager) Serve(id string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	err := m.update(func(t tx) error {
		r, err := t.record(id)
		if err != nil {
			return err
		}
		if !t.hasKey(id) {
			return fmt.Errorf("%w: %q has no private key", ErrInvalid, id)
		}
		c, err := m.entity(r, true, "")
		if err != nil {
			return err
		}
		if !c.Valid {
			return fmt.Errorf("%w: %q is not valid: %s", ErrInvalid, id, c.InvalidReason)
		}
		return t.setServing(id)
	})
	if err != nil {
		return fmt.Errorf("certs: serve %q: %w", id, err)
	}
	m.log.Info("listeners serve a new certificate", "id", id)
	return m.publishServing()
}

// ServeLocal goes back to the local CA's server certificate, issuing a new
// one if it is missing or due.
func (m *Manager) ServeLocal() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.update(func(t tx) error { return t.setServing(ServerCertificateID) }); err != nil {
		return fmt.Errorf("certs: serve local: %w", err)
	}
	return m.ensureServing()
}

// Serving returns the certificate the listeners serve.
func (m *Manager) Serving() (Certificate, error) {
	var id string
	if err := m.view(func(t tx) error { id = t.serving(); return nil }); err != nil {
		return Certificate{}, err
	}
	return m.Get(id)
}

// ensureServing checks the serving certificate and falls back to a local
// one (issued now if needed) when it is missing, has no key or is no longer
// valid. Callers hold m.mu.
func (m *Manager) ensureServing() error {
	var reason string
	err := m.view(func(t tx) error {
		id := t.serving()
		if id == "" {
			reason = "none recorded"
			return nil
		}
		r, err := t.record(id)
		if errors.Is(err, ErrNotFound) {
			reason = fmt.Sprintf("%q is gone", id)
			return nil
		} else if err != nil {
			return err
		}
		c, err := m.entity(r, t.hasKey(id), id)
		if err != nil {
			return err
		}
		switch {
		case !c.HasKey:
			reason = fmt.Sprintf("%q has no key", id)
		case !c.Valid:
			reason = fmt.Sprintf("%q is %s", id, c.InvalidReason)
		case id == ServerCertificateID && needsRenewal(c.From, c.To, m.now()):
			reason = "the local certificate is due for renewal"
		}
		return nil
	})
	if err != nil {
		return err
	}
	if reason != "" {
		m.log.Info("issuing a local server certificate", "reason", reason)
		if err := m.issueLocalServer(); err != nil {
			return err
		}
	}
	return m.publishServing()
}

// issueLocalServer issues the local server certificate and serves it.
func (m *Manager) issueLocalServer() error {
	chain, key, err := m.issueServerPair()
	if err != nil {
		return err
	}
	r, err := m.newRecord(Meta{
		ID: ServerCertificateID, Name: "Listener certificate (local CA)", AutoRenew: true,
		Description: "Issued by the gateway's local CA for its TLS listeners.",
	}, chain, key, SourceLocal)
	if err != nil {
		return err
	}
	return m.update(func(t tx) error {
		if old, err := t.record(ServerCertificateID); err == nil {
			r.Renewal = old.Renewal
		}
		if err := t.put(r, key, false); err != nil {
			return err
		}
		return t.setServing(ServerCertificateID)
	})
}

// issueServerPair has the local CA issue a listener certificate.
func (m *Manager) issueServerPair() ([]*x509.Certificate, crypto.Signer, error) {
	tc, err := m.o.CA.IssueServer(m.o.ServerNames, m.o.ServerValidity)
	if err != nil {
		return nil, nil, fmt.Errorf("issue local server certificate: %w", err)
	}
	chain, err := parseDERChain(tc.Certificate)
	if err != nil {
		return nil, nil, fmt.Errorf("issue local server certificate: %w", err)
	}
	key, ok := tc.PrivateKey.(crypto.Signer)
	if !ok {
		return nil, nil, fmt.Errorf("issue local server certificate: key of type %T", tc.PrivateKey)
	}
	return chain, key, nil
}

// publishServing hands the serving certificate to the TLS listeners.
func (m *Manager) publishServing() error {
	var tc *tls.Certificate
	err := m.view(func(t tx) error {
		id := t.serving()
		r, err := t.record(id)
		if err != nil {
			return err
		}
		key, err := t.key(id)
		if err != nil {
			return err
		}
		if key == nil {
			return fmt.Errorf("serving certificate %q has no key", id)
		}
		chain, err := ParseChainPEM(r.Chain)
		if err != nil {
			return fmt.Errorf("%w: %q: %w", ErrCorrupt, id, err)
		}
		tc = &tls.Certificate{PrivateKey: key, Leaf: chain[0]}
		for _, c := range chain {
			tc.Certificate = append(tc.Certificate, c.Raw)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("certs: publish serving certificate: %w", err)
	}
	m.o.TLS.SetCertificate(tc)
	return nil
}

// publishClientCAs hands the local CA's roots plus the store's client CAs
// to the TLS listeners.
func (m *Manager) publishClientCAs() error {
	if m.o.ClientCAPool == "" {
		return nil
	}
	pool := m.o.CA.Pool().Clone()
	err := m.view(func(t tx) error {
		recs, err := t.records()
		if err != nil {
			return err
		}
		for _, r := range recs {
			if !r.ClientCA || r.Revoked {
				continue
			}
			chain, err := ParseChainPEM(r.Chain)
			if err != nil {
				return fmt.Errorf("%w: %q: %w", ErrCorrupt, r.ID, err)
			}
			pool.AddCert(chain[0])
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("certs: publish client CAs: %w", err)
	}
	m.o.TLS.SetClientCAs(m.o.ClientCAPool, pool)
	return nil
}

func parseDERChain(ders [][]byte) ([]*x509.Certificate, error) {
	chain := make([]*x509.Certificate, 0, len(ders))
	for i, der := range ders {
		c, err := x509.ParseCertificate(der)
		if err != nil {
			return nil, fmt.Errorf("certificate %d: %w", i+1, err)
		}
		chain = append(chain, c)
	}
	return chain, nil
}

func newID() string {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	return "cert_" + hex.EncodeToString(b)
}
