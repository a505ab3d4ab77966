package trustsync

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"log/slog"
	"math/big"
	"path/filepath"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/edgegate/edgegate/certs/trust"
	"github.com/edgegate/edgegate/certs/vault"
	"github.com/edgegate/edgegate/certs/vault/vaulttest"
)

// caPEM is a new self-signed CA certificate.
func caPEM(t *testing.T, cn string) string {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(now.UnixNano()), Subject: pkix.Name{CommonName: cn},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
}

// env is a service on a real trust store, syncing from a vault fake with
// its root token, running until the test ends.
type env struct {
	svc      *Service
	vault    *vaulttest.Server
	sessions int // what SessionsUsing answers
}

func newEnv(t *testing.T, cfg Config) *env {
	t.Helper()
	e := &env{vault: vaulttest.New(t, vaulttest.Options{})}
	cfg.Vault = &vault.Config{
		Address: e.vault.URL(), Auth: vault.Auth{Method: vault.AuthToken, Token: e.vault.RootToken()},
		RootCAs: e.vault.CAPool,
	}
	cfg.PollInterval = time.Hour
	db, err := bolt.Open(filepath.Join(t.TempDir(), "trust.db"), 0o600, &bolt.Options{Timeout: time.Second, NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	e.svc = New("dev-1", slog.New(slog.DiscardHandler))
	if err := e.svc.Configure(cfg); err != nil {
		t.Fatal(err)
	}
	st, err := trust.Open(trust.Options{
		DB: db, Publisher: e.svc, SessionsUsing: func([]*x509.Certificate) int { return e.sessions },
	})
	if err != nil {
		t.Fatal(err)
	}
	e.svc.SetStore(st)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		e.svc.Run(ctx)
	}()
	t.Cleanup(func() { cancel(); <-done })
	return e
}

func (e *env) applied(t *testing.T) trust.Version {
	t.Helper()
	v, err := e.svc.Applied()
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func TestSyncAutoApplies(t *testing.T) {
	t.Parallel()
	e := newEnv(t, Config{AutoApply: true, ReportStatus: true})
	e.vault.Put("edgegate/trust/sensors", map[string]string{"certificate": caPEM(t, "sensors")})
	if _, err := e.svc.SyncNow(t.Context()); err != nil {
		t.Fatal(err)
	}
	v := e.applied(t)
	if len(v.Entries) != 1 || v.Entries[0].Source != (trust.Source{Kind: trust.SourceVault, Name: "sensors", Version: 1}) {
		t.Fatalf("applied after sync: %+v", v.Entries)
	}
	// The report names this device and its applied set.
	devices, err := e.svc.Fleet(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if len(devices) != 1 || devices[0].DeviceID != "dev-1" || devices[0].AppliedVersion != v.Number ||
		len(devices[0].Fingerprints["trust"]) != 1 || devices[0].Fingerprints["trust"][0] != v.Entries[0].Fingerprint {
		t.Fatalf("fleet: %+v", devices)
	}
}

func TestSyncWaitsForConfirmation(t *testing.T) {
	t.Parallel()
	e := newEnv(t, Config{AutoApply: true})
	e.vault.Put("edgegate/trust/sensors", map[string]string{"certificate": caPEM(t, "sensors")})
	if _, err := e.svc.SyncNow(t.Context()); err != nil {
		t.Fatal(err)
	}
	// The CA is in use and leaves the vault: the sync stages, and waits.
	e.sessions = 2
	e.vault.Delete("edgegate/trust/sensors")
	if _, err := e.svc.SyncNow(t.Context()); err != nil {
		t.Fatal(err)
	}
	if v := e.applied(t); len(v.Entries) != 1 {
		t.Fatalf("auto-apply removed a CA in use: %+v", v.Entries)
	}
	staged, ok, err := e.svc.Staged()
	if err != nil || !ok || len(staged.Entries) != 0 {
		t.Fatalf("staged %+v %v %v, want the removal staged", staged, ok, err)
	}
}

func TestSyncWithoutAutoApplyStages(t *testing.T) {
	t.Parallel()
	e := newEnv(t, Config{})
	e.vault.Put("edgegate/issuer/x", map[string]string{"certificate": "not a certificate"})
	e.vault.Put("edgegate/trust/sensors", map[string]string{"certificate": caPEM(t, "sensors")})
	if _, err := e.svc.SyncNow(t.Context()); err != nil {
		t.Fatal(err)
	}
	if v := e.applied(t); v.Number != 0 {
		t.Fatalf("applied without auto-apply: %+v", v)
	}
	staged, ok, err := e.svc.Staged()
	if err != nil || !ok || len(staged.Entries) != 1 || len(staged.Rejected) != 1 || staged.Rejected[0].Name != "x" {
		t.Fatalf("staged %+v %v %v, want sensors with x rejected", staged, ok, err)
	}
}

func TestUploadPublishedOnApply(t *testing.T) {
	t.Parallel()
	for _, publish := range []bool{true, false} {
		e := newEnv(t, Config{Publish: publish})
		pemData := caPEM(t, "field")
		v, err := e.svc.StageUpload(trust.TrustList, "field", []byte(pemData), "test")
		if err != nil {
			t.Fatal(err)
		}
		if v, err = e.svc.Apply(t.Context(), v.Number, trust.ApplyOptions{By: "test"}); err != nil {
			t.Fatal(err)
		}
		fields, _ := e.vault.Get("edgegate/trust/field")
		src := v.Entries[0].Source
		switch {
		case publish && (fields["certificate"] != pemData || src.Kind != trust.SourceVault || src.Version != 1):
			t.Fatalf("publish on: vault %v, source %+v", fields, src)
		case !publish && (fields != nil || src.Kind != trust.SourceUpload):
			t.Fatalf("publish off: vault %v, source %+v", fields, src)
		}
	}
}

func TestVaultOff(t *testing.T) {
	t.Parallel()
	svc := New("dev-1", slog.New(slog.DiscardHandler))
	if _, err := svc.SyncNow(t.Context()); !errors.Is(err, ErrVaultOff) {
		t.Fatalf("SyncNow: %v", err)
	}
	if _, err := svc.Publish(t.Context(), trust.TrustList, "x", nil); !errors.Is(err, trust.ErrNotPublished) {
		t.Fatalf("Publish: %v", err)
	}
	if st := svc.Status(); st.Enabled || st.DeviceID != "dev-1" {
		t.Fatalf("status: %+v", st)
	}
}

func TestConfigureRestartsTheSync(t *testing.T) {
	t.Parallel()
	e := newEnv(t, Config{AutoApply: true})
	if err := e.svc.Configure(Config{}); err != nil {
		t.Fatal(err)
	}
	if e.svc.Status().Enabled {
		t.Fatal("sync still on after configuring it off")
	}
	other := vaulttest.New(t, vaulttest.Options{})
	other.Put("edgegate/trust/b", map[string]string{"certificate": caPEM(t, "b")})
	if err := e.svc.Configure(Config{AutoApply: true, PollInterval: time.Hour, Vault: &vault.Config{
		Address: other.URL(), Auth: vault.Auth{Method: vault.AuthToken, Token: other.RootToken()}, RootCAs: other.CAPool,
	}}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.svc.SyncNow(t.Context()); err != nil {
		t.Fatal(err)
	}
	if v := e.applied(t); len(v.Entries) != 1 || v.Entries[0].Name != "b" {
		t.Fatalf("after switching vaults: %+v", v.Entries)
	}
}
