package certs

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"math/big"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"go.etcd.io/bbolt"

	"github.com/edgegate/edgegate/certs/ca"
	"github.com/edgegate/edgegate/certs/keyseal"
)

// testCA is the real local CA, with IssueServer failing on demand.
type testCA struct {
	*ca.Authority
	fail error // when set, IssueServer fails with it
}

func (c *testCA) IssueServer(names []string, validity time.Duration) (*tls.Certificate, error) {
	if c.fail != nil {
		return nil, c.fail
	}
	return c.Authority.IssueServer(names, validity)
}

// tlsRecorder is a TLSTarget that keeps what it was given.
type tlsRecorder struct {
	mu    sync.Mutex
	cert  *tls.Certificate
	pools map[string]*x509.CertPool
	sets  int
}

func (r *tlsRecorder) SetCertificate(c *tls.Certificate) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.cert, r.sets = c, r.sets+1
}

func (r *tlsRecorder) SetClientCAs(name string, pool *x509.CertPool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.pools == nil {
		r.pools = map[string]*x509.CertPool{}
	}
	r.pools[name] = pool
}

func (r *tlsRecorder) leaf() *x509.Certificate {
	r.mu.Lock()
	defer r.mu.Unlock()
	c, _ := x509.ParseCertificate(r.cert.Certificate[0])
	return c
}

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

type env struct {
	db    *bbolt.DB
	seal  *keyseal.Sealer
	ca    *testCA
	tls   *tlsRecorder
	clock *clock
}

func newEnv(t *testing.T) *env {
	t.Helper()
	dir := t.TempDir()
	db, err := bbolt.Open(filepath.Join(dir, "test.db"), 0o600, &bbolt.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	seal, err := keyseal.LoadOrCreate(filepath.Join(dir, "device.key"), true)
	if err != nil {
		t.Fatal(err)
	}
	clk := &clock{t: time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)}
	authority, err := ca.Open(db, ca.Options{DeviceName: "test", Now: clk.Now, Sealer: seal})
	if err != nil {
		t.Fatal(err)
	}
	return &env{db: db, seal: seal, ca: &testCA{Authority: authority}, tls: &tlsRecorder{}, clock: clk}
}

func (e *env) open(t *testing.T) *Manager {
	t.Helper()
	m, err := Open(Options{
		DB: e.db, Sealer: e.seal, CA: e.ca, TLS: e.tls, ServerNames: []string{"localhost", "127.0.0.1"},
		ServerValidity: 90 * 24 * time.Hour, ClientCAPool: "local", Now: e.clock.Now,
	})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func mustKey(t testing.TB) crypto.Signer {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// selfSigned makes a certificate signed by its own key.
func selfSigned(t testing.TB, cn string, isCA bool, from, to time.Time) (*x509.Certificate, crypto.Signer) {
	t.Helper()
	key := mustKey(t)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: cn},
		DNSNames: []string{cn}, NotBefore: from, NotAfter: to,
		IsCA: isCA, BasicConstraintsValid: isCA,
	}
	if isCA {
		tmpl.KeyUsage = x509.KeyUsageCertSign
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	c, _ := x509.ParseCertificate(der)
	return c, key
}

func TestOpenIssuesAndServesLocalCertificate(t *testing.T) {
	e := newEnv(t)
	m := e.open(t)
	c, err := m.Serving()
	if err != nil {
		t.Fatal(err)
	}
	if c.ID != ServerCertificateID || c.Source != SourceLocal || !c.Valid || !c.HasKey || !c.AutoRenew {
		t.Fatalf("serving = %+v, want a valid local certificate with its key", c)
	}
	if !slices.Equal(c.Usage, []Role{RoleServer}) || !slices.Equal(c.SANs, []string{"localhost", "127.0.0.1"}) {
		t.Errorf("usage %v sans %v", c.Usage, c.SANs)
	}
	if got := e.tls.leaf(); got.SerialNumber.Text(16) != c.Serial {
		t.Errorf("listeners serve serial %x, store says %s", got.SerialNumber, c.Serial)
	}
	if e.tls.pools["local"] == nil {
		t.Error("client-CA pool not published")
	}

	// The key is sealed at rest: its DER never appears in the database.
	key, err := m.Key(c.ID)
	if err != nil {
		t.Fatal(err)
	}
	der, _ := x509.MarshalPKCS8PrivateKey(key)
	_ = e.db.View(func(tx *bbolt.Tx) error {
		return tx.Bucket(bucketCertificates).Bucket(bucketKeys).ForEach(func(_, v []byte) error {
			if bytes.Contains(v, der[len(der)-32:]) || !keyseal.IsSealed(v) {
				t.Error("a private key is stored unsealed")
			}
			return nil
		})
	})

	// A second start keeps the certificate.
	m2 := e.open(t)
	again, _ := m2.Serving()
	if again.Serial != c.Serial {
		t.Errorf("reopen issued a new certificate: %s → %s", c.Serial, again.Serial)
	}
}

func TestAddImportServeDelete(t *testing.T) {
	e := newEnv(t)
	m := e.open(t)
	now := e.clock.Now()
	cert, key := selfSigned(t, "gw.example.com", false, now.Add(-time.Hour), now.Add(30*24*time.Hour))

	if _, err := m.Add(Meta{}, []*x509.Certificate{cert}, mustKey(t), SourceImported); !errors.Is(err, ErrInvalid) {
		t.Errorf("mismatched key: error %v, want ErrInvalid", err)
	}
	if _, err := m.Add(Meta{ID: "bad id!"}, []*x509.Certificate{cert}, key, SourceImported); !errors.Is(err, ErrInvalid) {
		t.Errorf("bad id: error %v, want ErrInvalid", err)
	}
	c, err := m.Add(Meta{ID: "gw", Tags: []string{"prod"}}, []*x509.Certificate{cert}, key, SourceImported)
	if err != nil {
		t.Fatal(err)
	}
	if !c.Valid || !c.SelfSigned || c.Domain != "gw.example.com" || c.Name != "gw.example.com" {
		t.Errorf("derived fields wrong: %+v", c)
	}
	if _, err := m.Add(Meta{ID: "gw"}, []*x509.Certificate{cert}, key, SourceImported); !errors.Is(err, ErrInvalid) {
		t.Errorf("duplicate id: error %v", err)
	}

	if err := m.Serve("gw"); err != nil {
		t.Fatal(err)
	}
	if got := e.tls.leaf(); !got.Equal(cert) {
		t.Error("listeners do not serve the imported certificate")
	}
	if err := m.Delete("gw"); !errors.Is(err, ErrInUse) {
		t.Errorf("delete serving: error %v, want ErrInUse", err)
	}
	if err := m.ServeLocal(); err != nil {
		t.Fatal(err)
	}
	if got := e.tls.leaf(); got.Equal(cert) {
		t.Error("listeners still serve the imported certificate after ServeLocal")
	}
	if err := m.Delete("gw"); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Get("gw"); !errors.Is(err, ErrNotFound) {
		t.Errorf("get deleted: %v", err)
	}

	// A trust-only CA trusted for client certificates joins the pool.
	caCert, caKey := selfSigned(t, "Sensors CA", true, now.Add(-time.Hour), now.Add(time.Hour*24*365))
	if _, err := m.Add(Meta{ID: "sensors", ClientCA: true}, []*x509.Certificate{caCert}, nil, SourceImported); err != nil {
		t.Fatal(err)
	}
	leaf := signedBy(t, caCert, caKey, now)
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: e.tls.pools["local"], CurrentTime: now, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err != nil {
		t.Errorf("a leaf of the client CA does not verify against the published pool: %v", err)
	}
	if err := m.Serve("sensors"); !errors.Is(err, ErrInvalid) {
		t.Errorf("serve a certificate without key: %v", err)
	}
}

// signedBy issues a client leaf from parent.
func signedBy(t *testing.T, parent *x509.Certificate, parentKey crypto.Signer, now time.Time) *x509.Certificate {
	t.Helper()
	key := mustKey(t)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(now.UnixNano()), Subject: pkix.Name{CommonName: "sensor-1"},
		NotBefore: now.Add(-time.Minute), NotAfter: now.Add(time.Hour),
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, key.Public(), parentKey)
	if err != nil {
		t.Fatal(err)
	}
	c, _ := x509.ParseCertificate(der)
	return c
}

func TestRenewal(t *testing.T) {
	e := newEnv(t)
	m := e.open(t)
	first, _ := m.Serving()
	ctx := context.Background()

	if ids, err := m.RenewDue(ctx); err != nil || len(ids) != 0 {
		t.Fatalf("fresh certificate renewed: %v %v", ids, err)
	}
	// 90-day certificate: due after 60 days.
	e.clock.Add(59 * 24 * time.Hour)
	if ids, _ := m.RenewDue(ctx); len(ids) != 0 {
		t.Fatalf("renewed before two thirds of its life: %v", ids)
	}

	e.clock.Add(2 * 24 * time.Hour)
	e.ca.fail = errors.New("CA unreachable")
	if _, err := m.RenewDue(ctx); err == nil {
		t.Fatal("failed renewal reported no error")
	}
	c, _ := m.Get(ServerCertificateID)
	if c.Serial != first.Serial || c.Renewal.Failures != 1 || c.Renewal.LastError == "" || len(c.Renewal.History) != 1 {
		t.Fatalf("after a failure: serial %s renewal %+v", c.Serial, c.Renewal)
	}
	wait := time.UnixMilli(c.Renewal.NextAttempt).Sub(e.clock.Now())
	if wait < renewBackoffBase || wait > renewBackoffBase*11/10 {
		t.Errorf("first back-off %v, want %v + ≤10%%", wait, renewBackoffBase)
	}
	if ids, _ := m.RenewDue(ctx); len(ids) != 0 {
		t.Errorf("retried during the back-off: %v", ids)
	}

	// The back-off survives a restart, and the retry after it succeeds.
	e.ca.fail = nil
	m = e.open(t)
	e.clock.Add(wait)
	if ids, err := m.RenewDue(ctx); err != nil || len(ids) != 1 {
		t.Fatalf("retry after back-off: %v %v", ids, err)
	}
	c, _ = m.Get(ServerCertificateID)
	if c.Serial == first.Serial || c.Renewal.Failures != 0 || len(c.Renewal.History) != 2 || !c.Renewal.History[1].OK {
		t.Fatalf("after renewal: serial %s renewal %+v", c.Serial, c.Renewal)
	}
	if got := e.tls.leaf().SerialNumber.Text(16); got != c.Serial {
		t.Errorf("listeners serve %s, renewed certificate is %s", got, c.Serial)
	}
	if next := time.UnixMilli(c.Renewal.NextAttempt); next.Before(renewAt(c.From, c.To)) || next.After(renewAt(c.From, c.To).Add(renewJitter)) {
		t.Errorf("next attempt %v, want within jitter after %v", next, renewAt(c.From, c.To))
	}
}

func TestExpiredServingFallsBackOnStart(t *testing.T) {
	e := newEnv(t)
	m := e.open(t)
	now := e.clock.Now()
	cert, key := selfSigned(t, "short.example.com", false, now.Add(-time.Hour), now.Add(time.Hour))
	if _, err := m.Add(Meta{ID: "short"}, []*x509.Certificate{cert}, key, SourceImported); err != nil {
		t.Fatal(err)
	}
	if err := m.Serve("short"); err != nil {
		t.Fatal(err)
	}
	// The device is off for months.
	e.clock.Add(200 * 24 * time.Hour)
	m = e.open(t)
	c, err := m.Serving()
	if err != nil {
		t.Fatal(err)
	}
	if c.ID != ServerCertificateID || !c.Valid {
		t.Fatalf("after the served certificate expired: serving %s valid=%v", c.ID, c.Valid)
	}
	short, _ := m.Get("short")
	if short.Valid || short.InvalidReason != "expired" {
		t.Errorf("expired certificate: valid=%v reason=%q", short.Valid, short.InvalidReason)
	}
}

func TestBackoffDoublesToCap(t *testing.T) {
	noJitter := func(time.Duration) time.Duration { return 0 }
	for n, want := range map[int]time.Duration{1: time.Minute, 2: 2 * time.Minute, 5: 16 * time.Minute, 30: renewBackoffCap} {
		if got := backoff(n, noJitter); got != want {
			t.Errorf("backoff(%d) = %v, want %v", n, got, want)
		}
	}
}

func TestCreateFromCAsAndRenew(t *testing.T) {
	e := newEnv(t)
	m := e.open(t)
	ctx := context.Background()

	if _, err := m.Create(Meta{ID: "x"}, IssueParams{Hosts: []string{"a"}}); !errors.Is(err, ErrInvalid) {
		t.Errorf("no usage: %v, want ErrInvalid", err)
	}
	if _, err := m.Create(Meta{}, IssueParams{Client: true, Hosts: []string{"bad host!"}}); !errors.Is(err, ErrInvalid) {
		t.Errorf("bad host: %v, want ErrInvalid", err)
	}
	if _, err := m.Create(Meta{}, IssueParams{Client: true, KeyType: "dsa"}); !errors.Is(err, ErrInvalid) {
		t.Errorf("bad key type: %v, want ErrInvalid", err)
	}

	// The local intermediate signs leaves only.
	if _, err := m.Create(Meta{}, IssueParams{CA: true, Subject: "CN=Sub CA"}); !errors.Is(err, ErrInvalid) {
		t.Errorf("sub-CA from the local issuer: %v, want ErrInvalid", err)
	}
	// A CA of the store (imported with its key) issues a sensor certificate.
	now := e.clock.Now()
	sensorsCA, sensorsKey := selfSigned(t, "Sensors CA", true, now.Add(-time.Hour), now.Add(2*365*24*time.Hour))
	if _, err := m.Add(Meta{ID: "sensors-ca"}, []*x509.Certificate{sensorsCA}, sensorsKey, SourceImported); err != nil {
		t.Fatal(err)
	}
	sensor, err := m.Create(Meta{ID: "sensor-1", CARef: "sensors-ca", AutoRenew: true},
		IssueParams{Client: true, Subject: "CN=sensor-1", Hosts: []string{"spiffe://acme/sensor-1"}, KeyType: "rsa-2048", ValiditySeconds: 30 * 24 * 3600})
	if err != nil {
		t.Fatal(err)
	}
	chain, _ := ParseChainPEM(sensor.Chain)
	if sensor.KeyType != "rsa-2048" || !sensor.Client || len(chain) != 1 || chain[0].Issuer.CommonName != "Sensors CA" {
		t.Fatalf("sensor %+v, chain of %d", sensor, len(chain))
	}
	if _, err := chain[0].Verify(x509.VerifyOptions{
		Roots: poolOf(sensorsCA), CurrentTime: e.clock.Now(), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}); err != nil {
		t.Errorf("sensor certificate does not verify to its CA: %v", err)
	}
	local, err := m.Create(Meta{ID: "sensor-2"}, IssueParams{Client: true, Subject: "CN=sensor-2"})
	if err != nil {
		t.Fatal(err)
	}
	localChain, _ := ParseChainPEM(local.Chain)
	if _, err := localChain[0].Verify(x509.VerifyOptions{
		Roots: e.ca.Pool(), Intermediates: poolOf(localChain[1:]...), CurrentTime: e.clock.Now(),
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}); err != nil {
		t.Errorf("local sensor certificate does not verify to the local root: %v", err)
	}
	if _, err := m.Create(Meta{CARef: "sensor-1"}, IssueParams{Client: true}); !errors.Is(err, ErrInvalid) {
		t.Errorf("issuing from a leaf: %v, want ErrInvalid", err)
	}

	// Due after two thirds of 30 days: renewed with the same parameters.
	e.clock.Add(21 * 24 * time.Hour)
	ids, err := m.RenewDue(ctx)
	if err != nil || !slices.Equal(ids, []string{"sensor-1"}) {
		t.Fatalf("RenewDue = %v, %v; want sensor-1 only (sensor-2 is not auto-renewed)", ids, err)
	}
	renewed, _ := m.Get("sensor-1")
	if renewed.Serial == sensor.Serial || renewed.Subject != sensor.Subject || !slices.Equal(renewed.SANs, sensor.SANs) ||
		renewed.KeyType != "rsa-2048" || renewed.CARef != "sensors-ca" {
		t.Errorf("renewed %+v\\nwas %+v", renewed, sensor)
	}
}

func poolOf(certs ...*x509.Certificate) *x509.CertPool {
	p := x509.NewCertPool()
	for _, c := range certs {
		p.AddCert(c)
	}
	return p
}

func TestRevoke(t *testing.T) {
	e := newEnv(t)
	m := e.open(t)
	sensor, err := m.Create(Meta{ID: "sensor-1"}, IssueParams{Client: true, Subject: "CN=sensor-1"})
	if err != nil {
		t.Fatal(err)
	}
	chain, _ := ParseChainPEM(sensor.Chain)
	if err := m.CheckClient(chain); err != nil {
		t.Fatalf("valid client refused: %v", err)
	}
	if _, err := m.Revoke(context.Background(), "sensor-1", "no-such-reason"); !errors.Is(err, ErrInvalid) {
		t.Errorf("unknown reason: %v", err)
	}
	c, err := m.Revoke(context.Background(), "sensor-1", "keyCompromise")
	if err != nil {
		t.Fatal(err)
	}
	if !c.Revoked || c.Valid || c.RevocationReason != "keyCompromise" || c.InvalidReason != "revoked" {
		t.Fatalf("after revoke: %+v", c)
	}
	if err := m.CheckClient(chain); err == nil {
		t.Error("revoked client accepted")
	}
	if !e.ca.IsRevoked(chain[1], chain[0].SerialNumber) {
		t.Error("the local CA does not list the revoked certificate")
	}
	if _, err := m.Revoke(context.Background(), "sensor-1", ""); err != nil {
		t.Errorf("second revoke: %v", err)
	}

	// An imported client certificate is refused once revoked in the store,
	// also after a restart.
	now := e.clock.Now()
	ext, extKey := selfSigned(t, "external", true, now.Add(-time.Hour), now.Add(time.Hour*24*30))
	leaf := signedBy(t, ext, extKey, now)
	if _, err := m.Add(Meta{ID: "ext-leaf"}, []*x509.Certificate{leaf, ext}, nil, SourceImported); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Revoke(context.Background(), "ext-leaf", "superseded"); err != nil {
		t.Fatal(err)
	}
	m = e.open(t)
	if err := m.CheckClient([]*x509.Certificate{leaf, ext}); err == nil {
		t.Error("store-revoked client accepted after restart")
	}

	// Revoking the served certificate puts a fresh local one in place.
	before, _ := m.Serving()
	if _, err := m.Revoke(context.Background(), ServerCertificateID, "keyCompromise"); err != nil {
		t.Fatal(err)
	}
	after, _ := m.Serving()
	if after.Serial == before.Serial || !after.Valid || e.tls.leaf().SerialNumber.Text(16) != after.Serial {
		t.Errorf("serving after revoking it: %+v", after)
	}

	// Expired client certificates are refused.
	e.clock.Add(400 * 24 * time.Hour)
	if err := m.CheckClient([]*x509.Certificate{leaf, ext}); err == nil {
		t.Error("expired client accepted")
	}
}

// Editing an issued certificate's metadata keeps what its renewal needs;
// replacing its chain makes it an imported one.
func TestUpdateKeepsRenewal(t *testing.T) {
	e := newEnv(t)
	m := e.open(t)
	ctx := context.Background()
	c, err := m.Create(Meta{ID: "s", AutoRenew: true}, IssueParams{Client: true, Subject: "CN=s"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.Update("s", Meta{AutoRenew: true, Tags: []string{"prod"}}, nil, nil); err != nil {
		t.Fatal(err)
	}
	renewed, err := m.Renew(ctx, "s")
	if err != nil || renewed.Serial == c.Serial || renewed.Subject != "CN=s" || renewed.Tags[0] != "prod" {
		t.Fatalf("renew after a metadata edit: %+v, %v", renewed, err)
	}
	now := e.clock.Now()
	cert, key := selfSigned(t, "mine.example.com", false, now.Add(-time.Hour), now.Add(time.Hour*24*30))
	replaced, err := m.Update("s", Meta{AutoRenew: true}, []*x509.Certificate{cert}, key)
	if err != nil || replaced.Source != SourceImported {
		t.Fatalf("replaced chain: %+v, %v", replaced, err)
	}
	if _, err := m.Renew(ctx, "s"); !errors.Is(err, ErrNotRenewable) {
		t.Fatalf("renewing an uploaded chain: %v, want ErrNotRenewable", err)
	}
}
