package provisioning_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/edgegate/edgegate/gateway/auth"
	"github.com/edgegate/edgegate/gateway/config"
	"github.com/edgegate/edgegate/gateway/store"
	"github.com/edgegate/edgegate/provisioning"
)

// now is the gateway's clock in the tests.
var now = time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)

const (
	testDevice = "gw-0042"
	// adminPW and adminHash: a pbkdf2-sha256 hash at the lowest work
	// factor a bundle may carry.
	adminPW = "Fleet admin 2026"
	// apiSecret is the secret of the bundle's API key.
	apiSecret = "k3y-secret-made-by-the-fleet-operator-000000000"
	sensorPW  = "sensor pw"
)

var (
	adminHash     = mustHash(adminPW)
	apiSecretHash = sha256Hex(apiSecret)
	// fleetCA is a CA certificate the good bundle trusts for clients.
	fleetCA = newCert("Fleet Devices CA", true, now.Add(-time.Hour), now.Add(365*24*time.Hour))
)

func mustHash(pw string) string {
	h, err := auth.NewHash(config.HashPBKDF2SHA256, pw, 10_000)
	if err != nil {
		panic(err)
	}
	return h
}

func sha256Hex(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

// newCert makes a self-signed certificate, a CA or not, as PEM.
func newCert(cn string, isCA bool, from, to time.Time) string {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		panic(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: cn},
		NotBefore: from, NotAfter: to, BasicConstraintsValid: true, IsCA: isCA,
	}
	if isCA {
		tmpl.KeyUsage = x509.KeyUsageCertSign | x509.KeyUsageCRLSign
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		panic(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
}

// sensorHash is the sensor user's password hash in an EMQ import form.
func sensorHash() map[string]any {
	sum := sha256.Sum256([]byte("s4lt" + sensorPW))
	return map[string]any{"kind": "sha256", "hash": hex.EncodeToString(sum[:]), "salt": "s4lt", "salt_position": "prefix"}
}

// goodDoc is a bundle with every part, as a JSON object to vary.
func goodDoc() map[string]any {
	return map[string]any{
		"version":    1,
		"device":     testDevice,
		"issued_at":  "2026-11-20T09:00:00Z",
		"expires_at": "2026-12-20T09:00:00Z",
		"settings": map[string]any{
			"node": "plant-7",
			"sys":  map[string]any{"interval": "10s"},
		},
		"admin_password_hash": adminHash,
		"api_keys": []any{
			map[string]any{"id": "egk_fleet-monitor", "name": "fleet monitor", "scopes": []string{"broker"}, "secret_hash": apiSecretHash},
		},
		"mqtt_users": []any{
			map[string]any{"username": "sensor", "password_hash": sensorHash()},
			map[string]any{"username": "dashboard", "superuser": true},
		},
		"trust": []any{
			map[string]any{"name": "fleet devices", "certificate": fleetCA},
		},
	}
}

// encode writes a bundle document the way a person would: indented.
func encode(t testing.TB, doc map[string]any) []byte {
	t.Helper()
	b, err := json.MarshalIndent(doc, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// with returns goodDoc changed by f.
func with(f func(d map[string]any)) map[string]any {
	d := goodDoc()
	f(d)
	return d
}

// signer is a provisioning key pair for tests.
type signer struct {
	priv ed25519.PrivateKey
	pub  provisioning.PublicKey
}

func newSigner(t testing.TB) signer {
	t.Helper()
	priv, err := provisioning.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	return signer{priv: priv, pub: provisioning.PublicKey{Key: priv.Public().(ed25519.PublicKey), Source: "test.pub"}}
}

// writeKeys writes the public keys as a key directory and returns it.
func writeKeys(t testing.TB, signers ...signer) string {
	t.Helper()
	dir := t.TempDir()
	for i, s := range signers {
		pemKey, err := provisioning.EncodePublicKey(s.pub.Key)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, string(rune('a'+i))+".pub"), pemKey, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// fakeSettings is the settings service in memory: the real merge and
// validation (config.Load), as gateway.Settings does them, without a store.
type fakeSettings struct {
	mu       sync.Mutex
	file     []byte
	eff      config.Effective
	versions []store.SettingsVersion
	// applyErr is returned after saving, like a listener that cannot
	// restart.
	applyErr error
}

func newFakeSettings(t testing.TB, file string) *fakeSettings {
	t.Helper()
	s := &fakeSettings{file: []byte(file)}
	eff, err := config.Load(config.Layers{File: s.file})
	if err != nil {
		t.Fatal(err)
	}
	s.eff = eff
	return s
}

func (s *fakeSettings) Effective() config.Effective {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.eff
}

func (s *fakeSettings) Apply(_ context.Context, patch []byte, author string) (store.SettingsVersion, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var doc []byte
	if n := len(s.versions); n > 0 {
		doc = s.versions[n-1].Document
	}
	doc, err := config.MergePatch(doc, patch)
	if err != nil {
		return store.SettingsVersion{}, err
	}
	next, err := config.Load(config.Layers{Store: doc, File: s.file})
	if err != nil {
		return store.SettingsVersion{}, err
	}
	v := store.SettingsVersion{Version: uint64(len(s.versions) + 1), Author: author, Document: doc}
	s.versions = append(s.versions, v)
	s.eff = next
	return v, s.applyErr
}

func (s *fakeSettings) history() []store.SettingsVersion {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.versions)
}
