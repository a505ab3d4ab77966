package cli

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/edgegate/edgegate/gateway/admin"
	"github.com/edgegate/edgegate/gateway/api"
	"github.com/edgegate/edgegate/gateway/auth"
	"github.com/edgegate/edgegate/gateway/config"
	"github.com/edgegate/edgegate/gateway/store"
	"github.com/edgegate/edgegate/provisioning"
)

func runProvisionCmd(t *testing.T, dataDir, stdin string, args ...string) result {
	t.Helper()
	var out, errOut bytes.Buffer
	code := Provision(t.Context(), dataDir, args, strings.NewReader(stdin), &out, &errOut)
	return result{code, out.String(), errOut.String()}
}

// writeBundle writes a bundle for device that adds an MQTT superuser and
// expires in a day.
func writeBundle(t *testing.T, dir, device string) string {
	t.Helper()
	doc := map[string]any{
		"version": 1, "device": device,
		"issued_at":  time.Now().UTC().Add(-time.Minute).Format(time.RFC3339),
		"expires_at": time.Now().UTC().Add(24 * time.Hour).Format(time.RFC3339),
		"mqtt_users": []any{map[string]any{"username": "dashboard", "superuser": true}},
	}
	data, err := json.MarshalIndent(doc, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	name := filepath.Join(dir, provisioning.BundleName)
	if err := os.WriteFile(name, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return name
}

// TestProvisionKeygenSignVerify: the operator's round trip, offline.
func TestProvisionKeygenSignVerify(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	key := filepath.Join(dir, "fleet.key")

	r := runProvisionCmd(t, "", "", "keygen", "--out", key)
	mustRun(t, r, 0, "-----BEGIN PUBLIC KEY-----")
	if fileMode(t, key) != 0o600 || fileMode(t, key+".pub") != 0o644 {
		t.Fatalf("modes %v %v", fileMode(t, key), fileMode(t, key+".pub"))
	}
	mustRun(t, runProvisionCmd(t, "", "", "keygen", "--out", key), 1, "exists; give --force")

	bundle := writeBundle(t, dir, "gw-0042")
	r = runProvisionCmd(t, "", "", "sign", "--key", key, bundle)
	mustRun(t, r, 0, "applies: MQTT user dashboard")
	sig, err := os.ReadFile(bundle + ".sig")
	if err != nil || len(sig) != provisioning.SignatureSize {
		t.Fatalf("signature file: %d bytes, %v", len(sig), err)
	}

	r = runProvisionCmd(t, "", "", "verify", "--pub", key+".pub", bundle)
	mustRun(t, r, 0, "is valid: signed by sha256:")
	mustRun(t, r, 0, "device:  gw-0042")
	// A directory of keys, as in the image.
	mustRun(t, runProvisionCmd(t, "", "", "verify", "--pub", dir, bundle), 0, "fleet.key.pub")
	mustRun(t, runProvisionCmd(t, "", "", "verify", "--pub", dir, "--device", "gw-0043", bundle), 1, "not this gateway")

	// A changed byte, a missing signature, another key: refused.
	data, err := os.ReadFile(bundle)
	if err != nil {
		t.Fatal(err)
	}
	tampered := filepath.Join(dir, "tampered.json")
	if err := os.WriteFile(tampered, bytes.Replace(data, []byte("dashboard"), []byte("dashbo4rd"), 1), 0o644); err != nil {
		t.Fatal(err)
	}
	mustRun(t, runProvisionCmd(t, "", "", "verify", "--pub", key+".pub", "--sig", bundle+".sig", tampered), 1, "does not verify")
	mustRun(t, runProvisionCmd(t, "", "", "verify", "--pub", key+".pub", tampered), 1, "no signature")
	other := filepath.Join(dir, "other.key")
	mustRun(t, runProvisionCmd(t, "", "", "keygen", "--out", other), 0, "wrote")
	mustRun(t, runProvisionCmd(t, "", "", "verify", "--pub", other+".pub", bundle), 1, "does not verify")

	// keygen --force replaces the key: the old signature no longer verifies.
	mustRun(t, runProvisionCmd(t, "", "", "keygen", "--out", key, "--force"), 0, "wrote")
	mustRun(t, runProvisionCmd(t, "", "", "verify", "--pub", key+".pub", bundle), 1, "does not verify")
}

func TestProvisionSignRefusesInvalidBundle(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	key := filepath.Join(dir, "k")
	mustRun(t, runProvisionCmd(t, "", "", "keygen", "--out", key), 0, "wrote")
	bundle := filepath.Join(dir, "b.json")
	if err := os.WriteFile(bundle, []byte("{\"version\": 1,\n \"mqtt_user\": []}"), 0o644); err != nil {
		t.Fatal(err)
	}
	mustRun(t, runProvisionCmd(t, "", "", "sign", "--key", key, bundle), 1, `line 2, column 2: unknown key "mqtt_user"; not signed`)
	if _, err := os.Stat(bundle + ".sig"); !os.IsNotExist(err) {
		t.Fatalf("a signature was written for an invalid bundle (%v)", err)
	}
	mustRun(t, runProvisionCmd(t, "", "", "sign", "--key", key+".pub", bundle), 1, "PRIVATE KEY")
}

func TestProvisionHashPassword(t *testing.T) {
	t.Parallel()
	mustRun(t, runProvisionCmd(t, "", "short\n", "hash-password"), 1, "too weak")
	mustRun(t, runProvisionCmd(t, "", "Long enough 1\n", "hash-password", "--iterations", "5000"), 1, "iterations")
	r := runProvisionCmd(t, "", "Long enough 1\n", "hash-password", "--iterations", "10000")
	mustRun(t, r, 0, "pbkdf2-sha256$10000$")
	h := strings.TrimSpace(r.stdout)
	if err := admin.CheckAdminPasswordHash(h); err != nil || !auth.VerifyPassword(h, "Long enough 1") {
		t.Fatalf("hash %q: %v", h, err)
	}
}

// TestProvisionApply: apply hands the bundle to the daemon on the admin
// socket and prints its report, or its refusal.
func TestProvisionApply(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	key := filepath.Join(dir, "fleet.key")
	mustRun(t, runProvisionCmd(t, "", "", "keygen", "--out", key), 0, "wrote")
	bundle := writeBundle(t, dir, "*")
	mustRun(t, runProvisionCmd(t, "", "", "sign", "--key", key, bundle), 0, "signed")

	dataDir := newDataDir(t)
	mustRun(t, runProvisionCmd(t, dataDir, "", "apply", bundle), 1, "edgegate is not running")

	st, err := store.Open(dataDir, store.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	users, err := auth.NewUsers(st.DB())
	if err != nil {
		t.Fatal(err)
	}
	eff, err := config.Load(config.Layers{})
	if err != nil {
		t.Fatal(err)
	}
	serveAPI(t, dataDir, api.New(api.Options{Users: users, Settings: testSettings{eff},
		Provision: api.ProvisionOptions{KeysPath: key + ".pub", DeviceID: "gw-0042"}}))

	mustRun(t, runProvisionCmd(t, dataDir, "", "apply", bundle), 0, "applied MQTT user dashboard")
	if u, err := users.Get("dashboard"); err != nil || !u.Superuser {
		t.Fatalf("user %+v, %v", u, err)
	}

	other := filepath.Join(dir, "other.key")
	mustRun(t, runProvisionCmd(t, "", "", "keygen", "--out", other), 0, "wrote")
	mustRun(t, runProvisionCmd(t, "", "", "sign", "--key", other, bundle), 0, "signed")
	mustRun(t, runProvisionCmd(t, dataDir, "", "apply", bundle), 1, "refused: the signature does not verify")
}

func TestProvisionUsage(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{
		nil, {"frobnicate"}, {"keygen"}, {"sign", "b.json"}, {"verify", "b.json"}, {"apply"}, {"hash-password", "x"},
		{"sign", "--key"},
	} {
		r := runProvisionCmd(t, "", "", args...)
		if r.code != 2 || !strings.Contains(r.stderr, "usage: edgegate provision") {
			t.Errorf("%q: exit %d, stderr %q; want 2 and the usage", args, r.code, r.stderr)
		}
	}
	mustRun(t, runProvisionCmd(t, "", "", "help"), 0, "hash-password")
}
