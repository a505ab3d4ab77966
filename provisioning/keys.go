package provisioning

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
)

// DefaultKeysPath is where the image keeps the trusted provisioning keys:
// on the read-only root filesystem, so neither a bundle nor the settings
// can change who may sign bundles.
const DefaultKeysPath = "/etc/edgegate/provisioning-keys"

// PublicKey is a trusted provisioning key.
type PublicKey struct {
	Key ed25519.PublicKey
	// Source names the file it was read from.
	Source string
}

// Fingerprint names the key in reports and logs: "sha256:" and the first
// 16 hex digits of the SHA-256 of the raw 32-byte key.
func (k PublicKey) Fingerprint() string { return Fingerprint(k.Key) }

// Fingerprint returns the fingerprint of an Ed25519 public key.
func Fingerprint(pub ed25519.PublicKey) string {
	sum := sha256.Sum256(pub)
	return "sha256:" + hex.EncodeToString(sum[:8])
}

// GenerateKey makes a new signing key.
func GenerateKey() (ed25519.PrivateKey, error) {
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generate Ed25519 key: %w", err)
	}
	return priv, nil
}

// EncodePrivateKey returns the key as a PEM "PRIVATE KEY" block (PKCS #8),
// the form openssl genpkey -algorithm ed25519 writes.
func EncodePrivateKey(priv ed25519.PrivateKey) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return nil, fmt.Errorf("encode private key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

// EncodePublicKey returns the key as a PEM "PUBLIC KEY" block (PKIX), the
// form openssl pkey -pubout writes and the trusted keys are read in.
func EncodePublicKey(pub ed25519.PublicKey) ([]byte, error) {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return nil, fmt.Errorf("encode public key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), nil
}

// ParsePrivateKey reads a PEM "PRIVATE KEY" block holding an Ed25519 key.
func ParsePrivateKey(data []byte) (ed25519.PrivateKey, error) {
	block, _ := pem.Decode(data)
	if block == nil || block.Type != "PRIVATE KEY" {
		return nil, errors.New("not a PEM \"PRIVATE KEY\" block (PKCS #8)")
	}
	key, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("parse private key: %w", err)
	}
	priv, ok := key.(ed25519.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("the private key is %T, not Ed25519", key)
	}
	return priv, nil
}

// ParsePublicKeys reads the PEM "PUBLIC KEY" blocks of data, each an
// Ed25519 key; source names data in errors and in the keys. Anything but
// such blocks (and text around them) is an error, so a mistyped key file
// is noticed rather than skipped.
func ParsePublicKeys(data []byte, source string) ([]PublicKey, error) {
	var keys []PublicKey
	rest := data
	for {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			break
		}
		if block.Type != "PUBLIC KEY" {
			return nil, fmt.Errorf("%s: unexpected PEM block %q; want \"PUBLIC KEY\"", source, block.Type)
		}
		key, err := x509.ParsePKIXPublicKey(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("%s: key %d: %w", source, len(keys)+1, err)
		}
		pub, ok := key.(ed25519.PublicKey)
		if !ok {
			return nil, fmt.Errorf("%s: key %d is %T, not Ed25519", source, len(keys)+1, key)
		}
		keys = append(keys, PublicKey{Key: pub, Source: source})
	}
	if len(keys) == 0 {
		return nil, fmt.Errorf("%s: no PEM \"PUBLIC KEY\" block", source)
	}
	return keys, nil
}

// maxKeyFile bounds a key file: a PEM Ed25519 key is about 113 bytes.
const maxKeyFile = 64 << 10

// LoadPublicKeys reads the trusted keys from path: a key file, or a
// directory whose *.pub files are key files (other names are ignored, so a
// README can sit beside them). A missing path or one without keys is an
// error.
func LoadPublicKeys(path string) ([]PublicKey, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("provisioning keys: %w", err)
	}
	files := []string{path}
	if fi.IsDir() {
		if files, err = filepath.Glob(filepath.Join(path, "*.pub")); err != nil {
			return nil, fmt.Errorf("provisioning keys: %w", err)
		}
		slices.Sort(files)
	}
	var keys []PublicKey
	for _, f := range files {
		data, err := ReadFile(f, maxKeyFile)
		if err != nil {
			return nil, fmt.Errorf("provisioning keys: %w", err)
		}
		ks, err := ParsePublicKeys(data, f)
		if err != nil {
			return nil, fmt.Errorf("provisioning keys: %w", err)
		}
		keys = append(keys, ks...)
	}
	if len(keys) == 0 {
		return nil, fmt.Errorf("provisioning keys: no *.pub file in %s", path)
	}
	return keys, nil
}

// ReadFile reads a provisioning file (bundle, signature, key) of at most
// limit bytes, so a wrong path to a huge file fails instead of filling
// memory.
func ReadFile(name string, limit int64) ([]byte, error) {
	f, err := os.Open(name) //nolint:gosec // G304: provisioning files are named by the operator or the image
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", name, err)
	}
	if int64(len(data)) > limit {
		return nil, fmt.Errorf("%s is larger than %d bytes", name, limit)
	}
	return data, nil
}

// SignatureSize is the size of a signature file: the raw Ed25519
// signature, no encoding, as openssl pkeyutl -sign -rawin writes it.
const SignatureSize = ed25519.SignatureSize

// Sign returns the detached signature of a bundle's exact bytes.
func Sign(priv ed25519.PrivateKey, bundle []byte) []byte {
	return ed25519.Sign(priv, bundle)
}

// Verify returns the key among keys that made sig over bundle, or a
// *Refusal: unsigned, a bad signature, or no keys.
func Verify(bundle, sig []byte, keys []PublicKey) (PublicKey, error) {
	switch {
	case len(sig) == 0:
		return PublicKey{}, refuse(CodeUnsigned, "the bundle has no signature (%s)", SignatureName)
	case len(sig) != SignatureSize:
		hint := ""
		if isBase64ish(sig) {
			hint = " (it looks like text: the signature file holds the raw bytes, not base64)"
		}
		return PublicKey{}, refuse(CodeBadSignature, "the signature is %d bytes, not %d%s", len(sig), SignatureSize, hint)
	case len(keys) == 0:
		return PublicKey{}, refuse(CodeNoKeys, "this gateway has no trusted provisioning keys")
	}
	for _, k := range keys {
		if ed25519.Verify(k.Key, bundle, sig) {
			return k, nil
		}
	}
	return PublicKey{}, refuse(CodeBadSignature, "the signature does not verify with any of the %d trusted provisioning key(s): the bundle was changed after signing or signed with another key", len(keys))
}

func isBase64ish(b []byte) bool {
	for _, c := range b {
		if !(c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '+' || c == '/' || c == '=' || c == '\n' || c == '\r') {
			return false
		}
	}
	return true
}
