package ca

import (
	"bytes"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"go.etcd.io/bbolt"
)

// clock is a settable time source for Options.Now.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = t
}

func openDB(t *testing.T, path string) *bbolt.DB {
	t.Helper()
	db, err := bbolt.Open(path, 0o600, &bbolt.Options{Timeout: time.Second})
	if err != nil {
		t.Fatalf("open bbolt: %v", err)
	}
	t.Cleanup(func() { _ = db.Close() })
	return db
}

func closeDB(t *testing.T, db *bbolt.DB) {
	t.Helper()
	if err := db.Close(); err != nil {
		t.Fatalf("close bbolt: %v", err)
	}
}

// newAuthority opens a CA on a fresh database with a settable clock.
func newAuthority(t *testing.T) (*Authority, *bbolt.DB, *clock) {
	t.Helper()
	clk := newClock()
	db := openDB(t, filepath.Join(t.TempDir(), "edgegate.db"))
	a, err := Open(db, Options{DeviceName: "gw-test", Now: clk.Now})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	return a, db, clk
}

var fingerprintRE = regexp.MustCompile(`^([0-9A-F]{2}:){31}[0-9A-F]{2}$`)

func TestOpenCreatesThenLoads(t *testing.T) {
	t.Parallel()
	clk := newClock()
	path := filepath.Join(t.TempDir(), "edgegate.db")

	db := openDB(t, path)
	a, err := Open(db, Options{DeviceName: "gw-7", Now: clk.Now})
	if err != nil {
		t.Fatalf("first Open: %v", err)
	}
	root, inter := a.Root(), a.Intermediate()

	if got, want := root.Subject.CommonName, "edgegate Local Root CA — gw-7"; got != want {
		t.Errorf("root CN = %q, want %q", got, want)
	}
	if !root.IsCA || root.MaxPathLen != 1 || root.MaxPathLenZero {
		t.Errorf("root IsCA=%v MaxPathLen=%d MaxPathLenZero=%v, want CA with path length 1",
			root.IsCA, root.MaxPathLen, root.MaxPathLenZero)
	}
	if root.KeyUsage != x509.KeyUsageCertSign|x509.KeyUsageCRLSign {
		t.Errorf("root KeyUsage = %v, want CertSign|CRLSign", root.KeyUsage)
	}
	if len(root.SubjectKeyId) == 0 {
		t.Error("root has no SubjectKeyId")
	}
	if root.PublicKeyAlgorithm != x509.ECDSA {
		t.Errorf("root key algorithm = %v, want ECDSA", root.PublicKeyAlgorithm)
	}
	if got := root.NotAfter.Sub(clk.Now()); got != RootValidity {
		t.Errorf("root validity from now = %v, want %v", got, RootValidity)
	}
	if err := root.CheckSignatureFrom(root); err != nil {
		t.Errorf("root not self-signed: %v", err)
	}

	if got, want := inter.Subject.CommonName, "edgegate Local Issuer — gw-7"; got != want {
		t.Errorf("intermediate CN = %q, want %q", got, want)
	}
	if !inter.IsCA || inter.MaxPathLen != 0 || !inter.MaxPathLenZero {
		t.Errorf("intermediate IsCA=%v MaxPathLen=%d MaxPathLenZero=%v, want CA with path length 0",
			inter.IsCA, inter.MaxPathLen, inter.MaxPathLenZero)
	}
	if got := inter.NotAfter.Sub(clk.Now()); got != IntermediateValidity {
		t.Errorf("intermediate validity from now = %v, want %v", got, IntermediateValidity)
	}
	if err := inter.CheckSignatureFrom(root); err != nil {
		t.Errorf("intermediate not signed by root: %v", err)
	}
	if !bytes.Equal(inter.AuthorityKeyId, root.SubjectKeyId) {
		t.Error("intermediate AuthorityKeyId does not match root SubjectKeyId")
	}
	for _, c := range []*x509.Certificate{root, inter} {
		if c.SerialNumber.Sign() <= 0 || c.SerialNumber.BitLen() > 128 {
			t.Errorf("%s serial %v is not a positive 128-bit number", c.Subject.CommonName, c.SerialNumber)
		}
	}

	fp := a.RootFingerprint()
	if !fingerprintRE.MatchString(fp) {
		t.Errorf("RootFingerprint() = %q, want openssl style AA:BB:…", fp)
	}
	sum := sha256.Sum256(root.Raw)
	if got := strings.ReplaceAll(fp, ":", ""); got != fmt.Sprintf("%X", sum) {
		t.Errorf("RootFingerprint() = %q, want SHA-256 %X", fp, sum)
	}

	block, rest := pem.Decode(a.TrustBundlePEM())
	if block == nil || block.Type != "CERTIFICATE" || !bytes.Equal(block.Bytes, root.Raw) || len(bytes.TrimSpace(rest)) != 0 {
		t.Error("TrustBundlePEM() is not exactly the root certificate")
	}

	// Reopen the same file, as after a reboot; the device name is not
	// needed any more and a different one does not replace the root.
	closeDB(t, db)
	db = openDB(t, path)
	b, err := Open(db, Options{DeviceName: "renamed", Now: clk.Now})
	if err != nil {
		t.Fatalf("second Open: %v", err)
	}
	if b.RootFingerprint() != fp {
		t.Errorf("fingerprint after reopen = %s, want %s", b.RootFingerprint(), fp)
	}
	if !b.Intermediate().Equal(inter) {
		t.Error("intermediate changed across reopen")
	}
}

func TestOpenNeedsDeviceNameToCreate(t *testing.T) {
	t.Parallel()
	db := openDB(t, filepath.Join(t.TempDir(), "edgegate.db"))
	_, err := Open(db, Options{})
	if err == nil || !strings.Contains(err.Error(), "DeviceName") {
		t.Fatalf("Open without DeviceName: err = %v, want one naming DeviceName", err)
	}
	// Nothing half-created.
	err = db.View(func(tx *bbolt.Tx) error {
		if b := tx.Bucket(bucketCA); b != nil && b.Bucket(keyRoot) != nil {
			return errors.New("root stored")
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestOpenCorruptEntry(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		corrupt func(b *bbolt.Bucket) error
		wantMsg string
	}{
		{
			name:    "root certificate garbage",
			corrupt: func(b *bbolt.Bucket) error { return b.Bucket(keyRoot).Put(fieldCert, []byte("garbage")) },
			wantMsg: "load root",
		},
		{
			name:    "root certificate truncated",
			corrupt: truncate(keyRoot, fieldCert),
			wantMsg: "parse certificate",
		},
		{
			name:    "root key garbage",
			corrupt: func(b *bbolt.Bucket) error { return b.Bucket(keyRoot).Put(fieldKey, []byte{0x30, 0x03, 0x02, 0x01}) },
			wantMsg: "parse key",
		},
		{
			name:    "root key missing",
			corrupt: func(b *bbolt.Bucket) error { return b.Bucket(keyRoot).Delete(fieldKey) },
			wantMsg: "key missing",
		},
		{
			name: "root key of another certificate",
			corrupt: func(b *bbolt.Bucket) error {
				return b.Bucket(keyRoot).Put(fieldKey, bytes.Clone(b.Bucket(keyIntermediate).Get(fieldKey)))
			},
			wantMsg: "key does not match certificate",
		},
		{
			name: "root is a plain value",
			corrupt: func(b *bbolt.Bucket) error {
				if err := b.DeleteBucket(keyRoot); err != nil {
					return err
				}
				return b.Put(keyRoot, []byte("x"))
			},
			wantMsg: "want a bucket",
		},
		{
			name:    "root missing, intermediate present",
			corrupt: func(b *bbolt.Bucket) error { return b.DeleteBucket(keyRoot) },
			wantMsg: "intermediate present without root",
		},
		{
			name: "root replaced by the intermediate",
			corrupt: func(b *bbolt.Bucket) error {
				ib := b.Bucket(keyIntermediate)
				rb := b.Bucket(keyRoot)
				if err := rb.Put(fieldCert, bytes.Clone(ib.Get(fieldCert))); err != nil {
					return err
				}
				return rb.Put(fieldKey, bytes.Clone(ib.Get(fieldKey)))
			},
			wantMsg: "not self-signed",
		},
		{
			name:    "intermediate certificate garbage",
			corrupt: func(b *bbolt.Bucket) error { return b.Bucket(keyIntermediate).Put(fieldCert, []byte{0x30, 0x00}) },
			wantMsg: "load intermediate",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			path := filepath.Join(t.TempDir(), "edgegate.db")
			db := openDB(t, path)
			if _, err := Open(db, Options{DeviceName: "gw"}); err != nil {
				t.Fatalf("Open: %v", err)
			}
			if err := db.Update(func(tx *bbolt.Tx) error { return tt.corrupt(tx.Bucket(bucketCA)) }); err != nil {
				t.Fatalf("corrupt: %v", err)
			}
			_, err := Open(db, Options{DeviceName: "gw"})
			if err == nil {
				t.Fatal("Open on corrupt store succeeded")
			}
			if !errors.Is(err, ErrCorrupt) {
				t.Errorf("error %q does not wrap ErrCorrupt", err)
			}
			if !strings.HasPrefix(err.Error(), "ca: open: ") || !strings.Contains(err.Error(), tt.wantMsg) {
				t.Errorf("error = %q, want prefix %q and mention of %q", err, "ca: open: ", tt.wantMsg)
			}
		})
	}
}

func truncate(entry, field []byte) func(b *bbolt.Bucket) error {
	return func(b *bbolt.Bucket) error {
		v := bytes.Clone(b.Bucket(entry).Get(field))
		return b.Bucket(entry).Put(field, v[:len(v)/2])
	}
}

func TestOpenReplacesAgeingIntermediate(t *testing.T) {
	t.Parallel()
	clk := newClock()
	path := filepath.Join(t.TempDir(), "edgegate.db")
	db := openDB(t, path)
	a, err := Open(db, Options{DeviceName: "gw-9", Now: clk.Now})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	oldInter := a.Intermediate()
	srv, err := a.LoadOrIssueServer([]string{"gw.local"})
	if err != nil {
		t.Fatalf("LoadOrIssueServer: %v", err)
	}

	// Two and a half years later, less than a third of the intermediate's
	// lifetime is left: Open replaces it, keeping the root.
	clk.Set(clk.Now().Add(IntermediateValidity * 5 / 6))
	closeDB(t, db)
	db = openDB(t, path)
	b, err := Open(db, Options{Now: clk.Now})
	if err != nil {
		t.Fatalf("Open later: %v", err)
	}
	if b.RootFingerprint() != a.RootFingerprint() {
		t.Error("root changed when the intermediate was replaced")
	}
	inter := b.Intermediate()
	if inter.Equal(oldInter) {
		t.Fatal("intermediate not replaced")
	}
	if got, want := inter.Subject.CommonName, "edgegate Local Issuer — gw-9"; got != want {
		t.Errorf("replacement intermediate CN = %q, want %q", got, want)
	}
	if err := inter.CheckSignatureFrom(b.Root()); err != nil {
		t.Errorf("replacement intermediate not signed by root: %v", err)
	}

	// The listener certificate from the old intermediate is re-issued.
	srv2, err := b.LoadOrIssueServer([]string{"gw.local"})
	if err != nil {
		t.Fatalf("LoadOrIssueServer: %v", err)
	}
	if srv2.Leaf.SerialNumber.Cmp(srv.Leaf.SerialNumber) == 0 {
		t.Error("server certificate from the replaced intermediate still served")
	}
	if err := srv2.Leaf.CheckSignatureFrom(inter); err != nil {
		t.Errorf("new server certificate not issued by the new intermediate: %v", err)
	}
}

func TestLogsCarryNoKeyMaterial(t *testing.T) {
	t.Parallel()
	var logs bytes.Buffer
	db := openDB(t, filepath.Join(t.TempDir(), "edgegate.db"))
	a, err := Open(db, Options{
		DeviceName: "gw",
		Logger:     slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	if _, err := a.LoadOrIssueServer([]string{"gw.local"}); err != nil {
		t.Fatalf("LoadOrIssueServer: %v", err)
	}
	_, keyPEM, err := a.IssueClient(ClientRequest{CommonName: "sensor-1"})
	if err != nil {
		t.Fatalf("IssueClient: %v", err)
	}
	if logs.Len() == 0 {
		t.Fatal("nothing logged")
	}

	var secrets [][]byte
	block, _ := pem.Decode(keyPEM)
	secrets = append(secrets, block.Bytes)
	err = db.View(func(tx *bbolt.Tx) error {
		for _, e := range [][]byte{keyRoot, keyIntermediate, keyServer} {
			secrets = append(secrets, bytes.Clone(tx.Bucket(bucketCA).Bucket(e).Get(fieldKey)))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	out := logs.String()
	if strings.Contains(out, "PRIVATE KEY") {
		t.Error("log contains a PEM private key")
	}
	for _, s := range secrets {
		// Any 32-byte window of the key encoded as base64 or hex would leak it.
		for _, enc := range []string{base64.StdEncoding.EncodeToString(s), fmt.Sprintf("%x", s), fmt.Sprintf("%X", s)} {
			if strings.Contains(out, enc[len(enc)/2:len(enc)/2+32]) {
				t.Errorf("log contains key material: %s", out)
			}
		}
	}
}

func TestRandomSerial(t *testing.T) {
	t.Parallel()
	seen := map[string]bool{}
	limit := new(big.Int).Lsh(big.NewInt(1), 128)
	for range 64 {
		s, err := randomSerial()
		if err != nil {
			t.Fatal(err)
		}
		if s.Sign() <= 0 || s.Cmp(limit) >= 0 {
			t.Fatalf("serial %v out of range", s)
		}
		if seen[s.String()] {
			t.Fatalf("serial %v repeated", s)
		}
		seen[s.String()] = true
	}
}
