// Package keyseal encrypts private keys at rest with the device key, so that a
// copy of the store (a backup, a pulled SD card's data partition) does not
// hand out the gateway's CA and listener keys on its own: the device key lives
// in a separate owner-only file, which the image can keep on another
// partition or replace with a hardware-backed key later.
//
// A sealed value is "egk1" ‖ 12-byte nonce ‖ AES-256-GCM(ciphertext ‖ tag).
// The caller passes a label naming the slot the value is stored in (e.g.
// "ca/root"); it is authenticated, so a sealed key copied into another slot
// does not open.
package keyseal

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// KeySize is the length of a device key in bytes (AES-256).
const KeySize = 32

var magic = []byte("egk1")

// ErrOpen is returned (wrapped) when a sealed value does not decrypt: it was
// sealed with another device key or for another label, or it was altered.
var ErrOpen = errors.New("keyseal: cannot open sealed value")

// ErrNotSealed is returned when a value passed to [Sealer.Open] does not
// carry the sealed format's prefix.
var ErrNotSealed = errors.New("keyseal: value is not sealed")

// Sealer seals and opens values with one device key. It is safe for
// concurrent use.
type Sealer struct {
	aead     cipher.AEAD
	deviceID string
}

// New returns a Sealer for key, which must be [KeySize] bytes.
func New(key []byte) (*Sealer, error) {
	if len(key) != KeySize {
		return nil, fmt.Errorf("keyseal: device key is %d bytes, want %d", len(key), KeySize)
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("keyseal: %w", err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("keyseal: %w", err)
	}
	// The id is a MAC of a fixed string under the key: stable for the key,
	// unique per device, and revealing nothing about the key.
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte("edgegate device id"))
	return &Sealer{aead: aead, deviceID: hex.EncodeToString(mac.Sum(nil)[:6])}, nil
}

// DeviceID is the gateway's device id, 12 lowercase hex digits derived from
// the device key: it stays as long as the key does (a factory reset that
// keeps the key keeps it) and differs between gateways, including two data
// directories on one host.
func (s *Sealer) DeviceID() string { return s.deviceID }

// LoadOrCreate reads the device key from path, creating the file with a new
// random key (mode 0600, written and synced before it is used) when it does
// not exist. create=false refuses to create one: a store that already holds
// sealed keys must not silently get a new, useless device key.
func LoadOrCreate(path string, create bool) (*Sealer, error) {
	key, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) && create {
		key, err = createKeyFile(path)
	}
	if err != nil {
		return nil, fmt.Errorf("keyseal: device key: %w", err)
	}
	s, err := New(key)
	if err != nil {
		return nil, fmt.Errorf("%w (file %s)", err, path)
	}
	return s, nil
}

// createKeyFile writes a fresh key to path through a temporary file and a
// link, so a crash leaves either no key file or a complete one, and two
// processes racing end up with the same key.
func createKeyFile(path string) ([]byte, error) {
	key := make([]byte, KeySize)
	if _, err := rand.Read(key); err != nil {
		return nil, err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".device-key-*")
	if err != nil {
		return nil, err
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return nil, err
	}
	if _, err := tmp.Write(key); err != nil {
		tmp.Close()
		return nil, err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return nil, err
	}
	if err := tmp.Close(); err != nil {
		return nil, err
	}
	if err := os.Link(tmp.Name(), path); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return os.ReadFile(path)
		}
		return nil, err
	}
	if dir, err := os.Open(filepath.Dir(path)); err == nil {
		_ = dir.Sync()
		dir.Close()
	}
	return key, nil
}

// Seal encrypts plaintext for the slot named label.
func (s *Sealer) Seal(plaintext []byte, label string) ([]byte, error) {
	nonce := make([]byte, s.aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return nil, fmt.Errorf("keyseal: nonce: %w", err)
	}
	out := make([]byte, 0, len(magic)+len(nonce)+len(plaintext)+s.aead.Overhead())
	out = append(out, magic...)
	out = append(out, nonce...)
	return s.aead.Seal(out, nonce, plaintext, []byte(label)), nil
}

// Open decrypts a value sealed for label. The result does not alias sealed.
func (s *Sealer) Open(sealed []byte, label string) ([]byte, error) {
	if !IsSealed(sealed) {
		return nil, ErrNotSealed
	}
	rest := sealed[len(magic):]
	if len(rest) < s.aead.NonceSize()+s.aead.Overhead() {
		return nil, fmt.Errorf("%w: truncated", ErrOpen)
	}
	nonce, ct := rest[:s.aead.NonceSize()], rest[s.aead.NonceSize():]
	pt, err := s.aead.Open(nil, nonce, ct, []byte(label))
	if err != nil {
		return nil, fmt.Errorf("%w %q", ErrOpen, label)
	}
	return pt, nil
}

// IsSealed reports whether b carries the sealed format's prefix. Stores use
// it to read values written before sealing existed (plain PKCS#8 DER starts
// with 0x30, never with the prefix).
func IsSealed(b []byte) bool { return bytes.HasPrefix(b, magic) }
