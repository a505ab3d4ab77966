package webui

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"go.etcd.io/bbolt"

	"github.com/edgegate/edgegate/certs/trust"
	"github.com/edgegate/edgegate/certs/trustsync"
	"github.com/edgegate/edgegate/certs/vault"
)

// trustFake is the Trust of the page tests: a real trust store on a
// temporary database (so diffs, rejections and confirmations are the real
// ones) with a scripted vault. The vault is off until vaultOn is set.
type trustFake struct {
	*trust.Store

	mu       sync.Mutex
	vaultOn  bool
	status   trustsync.Status
	sessions int // what SessionsUsing answers for any CA set
	// The vault: secrets with their PEM by "list/name", and errors.
	secrets    []vault.Ref
	data       map[string][]byte
	secretsErr error
	fleet      []vault.DeviceStatus
	fleetErr   error
	syncErr    error
	synced     int // SyncNow calls
}

var _ Trust = (*trustFake)(nil)

func newTrustFake(t *testing.T) *trustFake {
	t.Helper()
	db, err := bbolt.Open(filepath.Join(t.TempDir(), "trust.db"), 0o600, &bbolt.Options{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	f := &trustFake{data: map[string][]byte{}, status: trustsync.Status{DeviceID: "gw-test"}}
	f.Store, err = trust.Open(trust.Options{DB: db, SessionsUsing: func([]*x509.Certificate) int {
		f.mu.Lock()
		defer f.mu.Unlock()
		return f.sessions
	}})
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// turnVaultOn makes the vault answer, with the sync state shown as st.
func (f *trustFake) turnVaultOn(st trustsync.Status) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.vaultOn = true
	st.Enabled, st.DeviceID = true, "gw-test"
	f.status = st
}

// putSecret adds a certificate secret to the vault.
func (f *trustFake) putSecret(list trust.ListName, name string, version int, pemData []byte) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.secrets = append(f.secrets, vault.Ref{List: string(list), Name: name, Version: version})
	f.data[string(list)+"/"+name] = pemData
}

func (f *trustFake) setSessions(n int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.sessions = n
}

func (f *trustFake) Status() trustsync.Status {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.status
}

func (f *trustFake) SyncNow(context.Context) (vault.SyncResult, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.synced++
	if !f.vaultOn {
		return vault.SyncResult{}, trustsync.ErrVaultOff
	}
	if f.syncErr != nil {
		return vault.SyncResult{}, f.syncErr
	}
	return vault.SyncResult{Listed: len(f.secrets)}, nil
}

func (f *trustFake) VaultSecrets(context.Context) ([]vault.Ref, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.vaultOn {
		return nil, trustsync.ErrVaultOff
	}
	return slices.Clone(f.secrets), f.secretsErr
}

func (f *trustFake) AddFromVault(_ context.Context, list trust.ListName, name, by string) (trust.Version, error) {
	f.mu.Lock()
	if !f.vaultOn {
		f.mu.Unlock()
		return trust.Version{}, trustsync.ErrVaultOff
	}
	i := slices.IndexFunc(f.secrets, func(r vault.Ref) bool { return r.List == string(list) && r.Name == name })
	if i < 0 {
		f.mu.Unlock()
		return trust.Version{}, fmt.Errorf("%w: no secret %q in the vault's %s list", trust.ErrNotFound, name, list)
	}
	ref, data := f.secrets[i], f.data[string(list)+"/"+name]
	f.mu.Unlock()
	return f.StageAdd(list, trust.Remote{List: list, Name: name, Version: ref.Version, Data: data}, by)
}

func (f *trustFake) Fleet(context.Context) ([]vault.DeviceStatus, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.vaultOn {
		return nil, trustsync.ErrVaultOff
	}
	return slices.Clone(f.fleet), f.fleetErr
}

// trustTestCert is a certificate with its key, able to sign more.
type trustTestCert struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pem  []byte
}

// newTrustTestCert makes a CA certificate for cn, self-signed when parent
// is nil; leaf makes an end-entity client certificate instead.
func newTrustTestCert(t *testing.T, cn string, parent *trustTestCert, leaf bool) *trustTestCert {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serial, err := rand.Int(rand.Reader, big.NewInt(1<<62))
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: serial, Subject: pkix.Name{CommonName: cn},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(30 * 24 * time.Hour),
		IsCA: !leaf, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	if leaf {
		tmpl.KeyUsage = x509.KeyUsageDigitalSignature
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
	}
	signer, signerKey := tmpl, key
	if parent != nil {
		signer, signerKey = parent.cert, parent.key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, signer, &key.PublicKey, signerKey)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return &trustTestCert{cert: cert, key: key, pem: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}
}

// crlPEM is an empty CRL of c, next update in a week.
func (c *trustTestCert) crlPEM(t *testing.T) ([]byte, time.Time) {
	t.Helper()
	now := time.Now()
	next := now.Add(7 * 24 * time.Hour).UTC().Truncate(time.Second)
	der, err := x509.CreateRevocationList(rand.Reader, &x509.RevocationList{
		Number: big.NewInt(1), ThisUpdate: now.Add(-time.Minute), NextUpdate: next,
	}, c.cert, c.key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "X509 CRL", Bytes: der}), next
}
