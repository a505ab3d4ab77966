package keyseal

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"sync"
	"testing"
)

func TestSealOpen(t *testing.T) {
	s, err := LoadOrCreate(filepath.Join(t.TempDir(), "device.key"), true)
	if err != nil {
		t.Fatal(err)
	}
	secret := []byte("-----BEGIN PRIVATE KEY----- not really")
	sealed, err := s.Seal(secret, "ca/root")
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(sealed, secret) || !IsSealed(sealed) {
		t.Fatalf("sealed value leaks the plaintext or lacks the prefix: %q", sealed)
	}
	got, err := s.Open(sealed, "ca/root")
	if err != nil || !bytes.Equal(got, secret) {
		t.Fatalf("Open = %q, %v; want the plaintext", got, err)
	}
	again, _ := s.Seal(secret, "ca/root")
	if bytes.Equal(again, sealed) {
		t.Error("two seals of the same value are equal: nonce reused")
	}

	other, err := New(bytes.Repeat([]byte{7}, KeySize))
	if err != nil {
		t.Fatal(err)
	}
	tampered := bytes.Clone(sealed)
	tampered[len(tampered)-1] ^= 1
	for name, tc := range map[string]struct {
		s      *Sealer
		sealed []byte
		label  string
		want   error
	}{
		"other slot":       {s, sealed, "ca/intermediate", ErrOpen},
		"other device key": {other, sealed, "ca/root", ErrOpen},
		"tampered":         {s, tampered, "ca/root", ErrOpen},
		"truncated":        {s, sealed[:len(magic)+5], "ca/root", ErrOpen},
		"plain DER":        {s, []byte{0x30, 0x82, 0x01}, "ca/root", ErrNotSealed},
	} {
		if _, err := tc.s.Open(tc.sealed, tc.label); !errors.Is(err, tc.want) {
			t.Errorf("%s: Open error = %v, want %v", name, err, tc.want)
		}
	}
}

func TestLoadOrCreate(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "device.key")
	if _, err := LoadOrCreate(path, false); err == nil {
		t.Fatal("LoadOrCreate(create=false) of a missing file succeeded")
	}

	// Concurrent first starts agree on one key.
	var wg sync.WaitGroup
	sealers := make([]*Sealer, 4)
	for i := range sealers {
		wg.Go(func() {
			s, err := LoadOrCreate(path, true)
			if err != nil {
				t.Error(err)
			}
			sealers[i] = s
		})
	}
	wg.Wait()
	sealed, err := sealers[0].Seal([]byte("k"), "x")
	if err != nil {
		t.Fatal(err)
	}
	for i, s := range sealers {
		if _, err := s.Open(sealed, "x"); err != nil {
			t.Errorf("sealer %d has another key: %v", i, err)
		}
	}

	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 || fi.Size() != KeySize {
		t.Errorf("key file mode %v size %d, want 0600 and %d", fi.Mode().Perm(), fi.Size(), KeySize)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Errorf("data dir holds %d entries, want only the key file", len(entries))
	}

	if err := os.WriteFile(path, []byte("short"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadOrCreate(path, true); err == nil {
		t.Error("a key file of the wrong size was accepted")
	}
}

func TestDeviceIDStableAndPerKey(t *testing.T) {
	a1, err := New(bytes.Repeat([]byte{1}, KeySize))
	if err != nil {
		t.Fatal(err)
	}
	a2, _ := New(bytes.Repeat([]byte{1}, KeySize))
	b, _ := New(bytes.Repeat([]byte{2}, KeySize))
	if a1.DeviceID() != a2.DeviceID() || a1.DeviceID() == b.DeviceID() {
		t.Fatalf("device ids %q %q %q: want equal for one key, different for two", a1.DeviceID(), a2.DeviceID(), b.DeviceID())
	}
	if !regexp.MustCompile(`^[0-9a-f]{12}$`).MatchString(a1.DeviceID()) {
		t.Fatalf("device id %q is not 12 hex digits", a1.DeviceID())
	}
}
