package gateway

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"reflect"
	"slices"
	"sync"
	"time"

	"github.com/edgegate/edgegate/certs"
	"github.com/edgegate/edgegate/certs/tlsconf"
	"github.com/edgegate/edgegate/certs/trust"
	"github.com/edgegate/edgegate/certs/trustsync"
	"github.com/edgegate/edgegate/certs/vault"
	"github.com/edgegate/edgegate/gateway/config"
	"github.com/edgegate/edgegate/gateway/store"
)

// DeviceCertificateID is the certificate store id of the gateway's own
// client certificate, issued by the local CA with the device id as its
// common name. The gateway logs in to the vault with it (cert auth), so a
// fleet needs no shared secret.
const DeviceCertificateID = "device"

// clientCAPools sits between the certificate manager and the TLS listeners:
// it adds the applied trust list to the client-CA pools the manager
// publishes (the local CA and the store's client CAs), so a trust-list
// apply and a local CA change each republish the whole pool.
//
// Issuer-list certificates are added as anchors too. Validation admits one
// only when it chains to a trust-list anchor of the same version, so this
// lets a client that sends just its leaf connect (crypto/tls builds chains
// only from what the client sends) without trusting anything the trust
// list does not already vouch for; their CRLs are checked by the client
// check.
type clientCAPools struct {
	tls *tlsconf.Manager

	mu    sync.Mutex
	base  map[string]*x509.CertPool // by pool name, as the manager set them
	trust trust.Snapshot
}

func newClientCAPools(m *tlsconf.Manager) *clientCAPools {
	return &clientCAPools{tls: m, base: map[string]*x509.CertPool{}}
}

// SetCertificate passes the serving certificate through.
func (p *clientCAPools) SetCertificate(c *tls.Certificate) { p.tls.SetCertificate(c) }

// SetClientCAs records the manager's pool and publishes it with the trust
// list added.
func (p *clientCAPools) SetClientCAs(name string, pool *x509.CertPool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if pool == nil {
		delete(p.base, name)
		p.tls.SetClientCAs(name, nil)
		return
	}
	p.base[name] = pool
	p.publishLocked(name)
}

// SetTrust publishes every pool again with the applied trust snapshot s.
func (p *clientCAPools) SetTrust(s trust.Snapshot) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.trust = s
	for name := range p.base {
		p.publishLocked(name)
	}
}

// Trust returns the applied trust snapshot.
func (p *clientCAPools) Trust() trust.Snapshot {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.trust
}

func (p *clientCAPools) publishLocked(name string) {
	pool := p.base[name].Clone()
	for _, c := range p.trust.Anchors {
		pool.AddCert(c)
	}
	for _, c := range p.trust.Issuers {
		pool.AddCert(c)
	}
	p.tls.SetClientCAs(name, pool)
}

// checkClient is the client check of every TLS handshake and of the sweep
// over connected clients: the store's revocations and expiry, then the
// issuer list's CRLs.
func (g *Gateway) checkClient(chain []*x509.Certificate) error {
	if err := g.certs.CheckClient(chain); err != nil {
		return err
	}
	return g.pools.Trust().CheckRevocation(chain, time.Now())
}

// sessionsUsing counts the connected clients whose certificate chain runs
// through one of cas: those a trust version removing cas would lock out
// at their next connection.
func (g *Gateway) sessionsUsing(cas []*x509.Certificate) int {
	return g.broker.CountClientChains(func(chain []*x509.Certificate) bool {
		return slices.ContainsFunc(chain, func(c *x509.Certificate) bool {
			return slices.ContainsFunc(cas, func(ca *x509.Certificate) bool { return bytes.Equal(c.Raw, ca.Raw) })
		})
	})
}

// ensureDeviceCertificate issues the device certificate from the local CA
// when the store has none; auto-renewal keeps it current afterwards.
func (g *Gateway) ensureDeviceCertificate(deviceID string) error {
	if _, err := g.certs.Get(DeviceCertificateID); err == nil || !errors.Is(err, certs.ErrNotFound) {
		return err
	}
	_, err := g.certs.Create(certs.Meta{
		ID: DeviceCertificateID, Name: "Device identity", AutoRenew: true, Client: true,
		Description: "This gateway's own client certificate: it logs in to the vault with it.",
	}, certs.IssueParams{Subject: "CN=" + deviceID, Client: true})
	if err != nil {
		return fmt.Errorf("issue the device certificate: %w", err)
	}
	return nil
}

// deviceCertificate is the device certificate with its key, for vault
// cert auth; read at each connection, so a renewal applies at once.
func (g *Gateway) deviceCertificate() (*tls.Certificate, error) {
	c, err := g.certs.Get(DeviceCertificateID)
	if err != nil {
		return nil, fmt.Errorf("device certificate: %w", err)
	}
	key, err := g.certs.Key(DeviceCertificateID)
	if err != nil {
		return nil, fmt.Errorf("device certificate key: %w", err)
	}
	chain, err := certs.ParseChainPEM(c.Chain)
	if err != nil {
		return nil, fmt.Errorf("device certificate: %w", err)
	}
	tc := &tls.Certificate{PrivateKey: key, Leaf: chain[0]}
	for _, cert := range chain {
		tc.Certificate = append(tc.Certificate, cert.Raw)
	}
	return tc, nil
}

// openTrust opens the trust store, whose applied version (the last known
// good one, when the vault is out of reach) goes to the client-CA pools at
// once, and prepares the vault sync that Run starts.
func (g *Gateway) openTrust(st *store.Store, cfg config.Trust, deviceID string) error {
	log := g.log.With("component", "trust")
	g.trust = trustsync.New(deviceID, log)
	ts, err := trust.Open(trust.Options{
		DB: st.DB(), History: cfg.History, Logger: log,
		OnApply: g.pools.SetTrust, SessionsUsing: g.sessionsUsing, Publisher: g.trust,
	})
	if err != nil {
		return fmt.Errorf("trust lists: %w", err)
	}
	g.trust.SetStore(ts)
	// Settings are validated; a missing credentials or CA file is not a
	// reason to stop serving: the sync stays off and says why.
	syncCfg, err := g.trustSyncConfig(cfg)
	if err == nil {
		err = g.trust.Configure(syncCfg)
	}
	if err != nil {
		log.Error("vault sync off", "error", err)
	}
	return nil
}

// configureTrust restarts the vault sync with changed trust settings
// (trust.history applies at the next start: config.RestartOnly).
func (g *Gateway) configureTrust(old, next config.Trust) error {
	if reflect.DeepEqual(old, next) {
		return nil
	}
	cfg, err := g.trustSyncConfig(next)
	if err != nil {
		return err
	}
	return g.trust.Configure(cfg)
}

// trustSyncConfig turns the trust settings into the sync's configuration:
// the vault's credentials come from the credentials file, its HTTPS is
// trusted through the system roots, the CA file and the applied trust
// list, and cert auth presents the device certificate.
func (g *Gateway) trustSyncConfig(t config.Trust) (trustsync.Config, error) {
	v := t.Vault
	out := trustsync.Config{AutoApply: t.AutoApply, PollInterval: v.PollInterval.Std(), Publish: v.Publish, ReportStatus: v.ReportStatus}
	if !v.Enabled() {
		return out, nil
	}
	auth := vault.Auth{Method: vault.AuthMethod(v.AuthMethod), Mount: v.AuthMount, Role: v.CertRole}
	if v.CredentialsFile != "" {
		creds, err := readCredentials(v.CredentialsFile)
		if err != nil {
			return out, fmt.Errorf("trust.vault.credentials_file: %w", err)
		}
		auth.Token, auth.RoleID, auth.SecretID = creds["VAULT_TOKEN"], creds["VAULT_ROLE_ID"], creds["VAULT_SECRET_ID"]
	}
	var extra []*x509.Certificate
	if v.CAFile != "" {
		pem, err := os.ReadFile(v.CAFile)
		if err != nil {
			return out, fmt.Errorf("trust.vault.ca_file: %w", err)
		}
		if extra, err = certs.ParseChainPEM(string(pem)); err != nil {
			return out, fmt.Errorf("trust.vault.ca_file %s: %w", v.CAFile, err)
		}
	}
	roots := func() *x509.CertPool {
		pool, err := x509.SystemCertPool()
		if err != nil {
			pool = x509.NewCertPool()
		}
		for _, c := range slices.Concat(extra, g.pools.Trust().Anchors) {
			pool.AddCert(c)
		}
		return pool
	}
	out.Vault = &vault.Config{
		Address: v.Address, Namespace: v.Namespace, Mount: v.Mount, Prefix: v.Prefix, Field: v.Field,
		Auth: auth, RootCAs: roots, ClientCertificate: g.deviceCertificate, Logger: g.log.With("component", "vault"),
	}
	return out, nil
}
