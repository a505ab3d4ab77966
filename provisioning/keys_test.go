package provisioning_test

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/edgegate/edgegate/provisioning"
)

func TestKeyFilesRoundTrip(t *testing.T) {
	t.Parallel()
	s := newSigner(t)
	privPEM, err := provisioning.EncodePrivateKey(s.priv)
	if err != nil {
		t.Fatal(err)
	}
	priv, err := provisioning.ParsePrivateKey(privPEM)
	if err != nil || !priv.Equal(s.priv) {
		t.Fatalf("ParsePrivateKey = %v", err)
	}
	pubPEM, err := provisioning.EncodePublicKey(s.pub.Key)
	if err != nil {
		t.Fatal(err)
	}
	keys, err := provisioning.ParsePublicKeys(pubPEM, "k.pub")
	if err != nil || len(keys) != 1 || !keys[0].Key.Equal(s.pub.Key) || keys[0].Source != "k.pub" {
		t.Fatalf("ParsePublicKeys = %+v, %v", keys, err)
	}
	if _, err := provisioning.ParsePrivateKey(pubPEM); err == nil {
		t.Fatal("a public key was read as a private key")
	}
	if fp := s.pub.Fingerprint(); !strings.HasPrefix(fp, "sha256:") || len(fp) != len("sha256:")+16 {
		t.Fatalf("fingerprint %q", fp)
	}
}

func TestLoadPublicKeys(t *testing.T) {
	t.Parallel()
	a, b := newSigner(t), newSigner(t)
	dir := writeKeys(t, a, b)
	if err := os.WriteFile(filepath.Join(dir, "README"), []byte("fleet keys"), 0o644); err != nil {
		t.Fatal(err)
	}
	keys, err := provisioning.LoadPublicKeys(dir)
	if err != nil || len(keys) != 2 || !keys[0].Key.Equal(a.pub.Key) || !keys[1].Key.Equal(b.pub.Key) {
		t.Fatalf("LoadPublicKeys(dir) = %+v, %v", keys, err)
	}
	one, err := provisioning.LoadPublicKeys(filepath.Join(dir, "b.pub"))
	if err != nil || len(one) != 1 || !one[0].Key.Equal(b.pub.Key) {
		t.Fatalf("LoadPublicKeys(file) = %+v, %v", one, err)
	}

	ecKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	ecDER, err := x509.MarshalPKIXPublicKey(&ecKey.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	bad := []struct{ name, content, msg string }{
		{"ecdsa.pub", string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: ecDER})), "not Ed25519"},
		{"cert.pub", fleetCA, `unexpected PEM block "CERTIFICATE"`},
		{"ssh.pub", "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIA fleet", "no PEM"},
		{"big.pub", strings.Repeat("x", 65<<10), "larger than"},
	}
	for _, tc := range bad {
		d := t.TempDir()
		if err := os.WriteFile(filepath.Join(d, tc.name), []byte(tc.content), 0o644); err != nil {
			t.Fatal(err)
		}
		if _, err := provisioning.LoadPublicKeys(d); err == nil || !strings.Contains(err.Error(), tc.msg) {
			t.Errorf("%s: LoadPublicKeys = %v; want %q", tc.name, err, tc.msg)
		}
	}
	if _, err := provisioning.LoadPublicKeys(t.TempDir()); err == nil || !strings.Contains(err.Error(), "no *.pub") {
		t.Errorf("empty directory: %v", err)
	}
	if _, err := provisioning.LoadPublicKeys(filepath.Join(dir, "missing")); err == nil {
		t.Error("a missing path gave keys")
	}
}

// TestOpenSSLInterop: a key made and a bundle signed with the openssl CLI
// alone verify here, and openssl verifies what Sign makes: the formats
// documented in the README are the standard ones.
func TestOpenSSLInterop(t *testing.T) {
	t.Parallel()
	bin, err := exec.LookPath("openssl")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("openssl not found (%v); scripts/install-test-deps.sh installs it", err)
		}
		t.Skipf("openssl not found: %v", err)
	}
	dir := t.TempDir()
	openssl := func(args ...string) []byte {
		t.Helper()
		cmd := exec.CommandContext(t.Context(), bin, args...)
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "OPENSSL_CONF="+os.DevNull)
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("openssl %s: %v", strings.Join(args, " "), err)
		}
		return out
	}
	data := encode(t, goodDoc())
	if err := os.WriteFile(filepath.Join(dir, "bundle.json"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	openssl("genpkey", "-algorithm", "ed25519", "-out", "key.pem")
	openssl("pkey", "-in", "key.pem", "-pubout", "-out", "key.pub")
	openssl("pkeyutl", "-sign", "-inkey", "key.pem", "-rawin", "-in", "bundle.json", "-out", "bundle.json.sig")
	keys, err := provisioning.LoadPublicKeys(filepath.Join(dir, "key.pub"))
	if err != nil {
		t.Fatal(err)
	}
	sig, err := os.ReadFile(filepath.Join(dir, "bundle.json.sig"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := provisioning.Open(data, sig, keys, now, testDevice); err != nil {
		t.Fatalf("openssl's signature: %v", err)
	}

	keyPEM, err := os.ReadFile(filepath.Join(dir, "key.pem"))
	if err != nil {
		t.Fatal(err)
	}
	priv, err := provisioning.ParsePrivateKey(keyPEM)
	if err != nil {
		t.Fatalf("openssl's private key: %v", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "ours.sig"), provisioning.Sign(priv, data), 0o644); err != nil {
		t.Fatal(err)
	}
	out := openssl("pkeyutl", "-verify", "-pubin", "-inkey", "key.pub", "-rawin", "-in", "bundle.json", "-sigfile", "ours.sig")
	if !bytes.Contains(out, []byte("Signature Verified Successfully")) {
		t.Fatalf("openssl verify said %q", out)
	}
}
