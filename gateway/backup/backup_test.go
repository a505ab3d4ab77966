package backup

import (
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	bolt "go.etcd.io/bbolt"

	"github.com/edgegate/edgegate/gateway/store"
)

const passphrase = "correct horse battery"

var testBucket = []byte("test")

// dataDir is a data directory with a store holding value under "k" (with
// enough filler to span several chunks) and a device key.
type dataDir struct {
	layout Layout
	st     *store.Store
	key    []byte
}

func newDataDir(t *testing.T, value string) *dataDir {
	t.Helper()
	dir := t.TempDir()
	st, err := store.Open(dir, store.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	filler := bytes.Repeat([]byte("x"), 3*chunkSize)
	if err := st.DB().Update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists(testBucket)
		if err != nil {
			return err
		}
		if err := b.Put([]byte("filler"), filler); err != nil {
			return err
		}
		return b.Put([]byte("k"), []byte(value))
	}); err != nil {
		t.Fatal(err)
	}
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	l := Layout{Dir: dir, DeviceKey: "device.key", Derived: []string{"ca.pem", "traces"}}
	if err := os.WriteFile(l.path(l.DeviceKey), key, 0o600); err != nil {
		t.Fatal(err)
	}
	return &dataDir{layout: l, st: st, key: key}
}

// manager makes backups at the lowest cost a restore accepts, for speed.
func (d *dataDir) manager() *Manager {
	m := NewManager(d.st.DB(), d.layout)
	m.logN = minScryptLogN
	return m
}

func (d *dataDir) backup(t *testing.T) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := d.manager().Create(&buf, passphrase); err != nil {
		t.Fatalf("Create: %v", err)
	}
	return buf.Bytes()
}

// readValue opens the store of dir and returns the value under "k".
func readValue(t *testing.T, dir string) string {
	t.Helper()
	st, err := store.Open(dir, store.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	var v string
	if err := st.DB().View(func(tx *bolt.Tx) error {
		if b := tx.Bucket(testBucket); b != nil {
			v = string(b.Get([]byte("k")))
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return v
}

func exists(t *testing.T, path string) bool {
	t.Helper()
	_, err := os.Stat(path)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		t.Fatal(err)
	}
	return err == nil
}

// assertNothingStaged checks that a refused restore left no trace.
func assertNothingStaged(t *testing.T, l Layout) {
	t.Helper()
	entries, err := os.ReadDir(l.Dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), "restore") {
			t.Errorf("%s left in the data directory", e.Name())
		}
	}
}

func TestBackupRestoreRoundTrip(t *testing.T) {
	src := newDataDir(t, "from the backup")
	file := src.backup(t)
	if bytes.Contains(file, []byte("from the backup")) || bytes.Contains(file, src.key) {
		t.Fatal("the backup holds plaintext")
	}

	dst := newDataDir(t, "replaced")
	if err := dst.manager().Stage(bytes.NewReader(file), passphrase); err != nil {
		t.Fatalf("Stage: %v", err)
	}
	if err := dst.st.Close(); err != nil { // the gateway stops before the restart
		t.Fatal(err)
	}
	if v := readValue(t, dst.layout.Dir); v != "replaced" {
		t.Fatalf("staging changed the live store: %q", v)
	}
	did, err := ApplyPending(dst.layout)
	if err != nil || did != Restored {
		t.Fatalf("ApplyPending = %q, %v", did, err)
	}
	if v := readValue(t, dst.layout.Dir); v != "from the backup" {
		t.Errorf("restored value %q", v)
	}
	if key, _ := os.ReadFile(dst.layout.path("device.key")); !bytes.Equal(key, src.key) {
		t.Error("device key not restored")
	}
	if key, _ := os.ReadFile(dst.layout.path("device.key" + BeforeRestore)); !bytes.Equal(key, dst.key) {
		t.Error("replaced device key not kept")
	}
	if !exists(t, dst.layout.path(store.FileName+BeforeRestore)) {
		t.Error("replaced database not kept")
	}
	if exists(t, dst.layout.path(PendingRestore)) {
		t.Error("restore.pending left behind")
	}
	// Done once: the next start has nothing to do.
	if did, err := ApplyPending(dst.layout); err != nil || did != Nothing {
		t.Errorf("second ApplyPending = %q, %v", did, err)
	}
}

func TestApplyPendingFinishesAnInterruptedRestore(t *testing.T) {
	src := newDataDir(t, "from the backup")
	dst := newDataDir(t, "replaced")
	if err := dst.manager().Stage(bytes.NewReader(src.backup(t)), passphrase); err != nil {
		t.Fatal(err)
	}
	_ = dst.st.Close()
	// A crash after the key moved, before the database did.
	l := dst.layout
	_ = os.Rename(l.path("device.key"), l.path("device.key"+BeforeRestore))
	if err := os.Rename(filepath.Join(l.path(PendingRestore), archiveKey), l.path("device.key")); err != nil {
		t.Fatal(err)
	}
	if did, err := ApplyPending(l); err != nil || did != Restored {
		t.Fatalf("ApplyPending = %q, %v", did, err)
	}
	if v := readValue(t, l.Dir); v != "from the backup" {
		t.Errorf("restored value %q", v)
	}
	if key, _ := os.ReadFile(l.path("device.key" + BeforeRestore)); !bytes.Equal(key, dst.key) {
		t.Error("replaced device key lost")
	}
}

func TestRestoreRefusesBadFiles(t *testing.T) {
	src := newDataDir(t, "v")
	file := src.backup(t)
	sealedChunk := chunkSize + 16
	if len(file) < headerSize+2*sealedChunk {
		t.Fatalf("backup of %d bytes spans fewer than 3 chunks", len(file))
	}
	flip := func(i int) []byte {
		b := bytes.Clone(file)
		b[i] ^= 1
		return b
	}
	newer := bytes.Clone(file)
	newer[len(magic)] = formatVersion + 1
	cases := []struct {
		name       string
		file       []byte
		passphrase string
		want       error
	}{
		{"wrong passphrase", file, "wrong horse battery", ErrPassphrase},
		{"empty", nil, passphrase, ErrDamaged},
		{"not a backup", bytes.Repeat([]byte("SQLite format 3\x00"), 100), passphrase, ErrDamaged},
		{"cut in the header", file[:headerSize-1], passphrase, ErrDamaged},
		{"header only", file[:headerSize], passphrase, ErrDamaged},
		{"cut in a chunk", file[:headerSize+sealedChunk+100], passphrase, ErrDamaged},
		{"cut at a chunk boundary", file[:headerSize+2*sealedChunk], passphrase, ErrDamaged},
		{"last byte missing", file[:len(file)-1], passphrase, ErrDamaged},
		{"appended", append(bytes.Clone(file), 0), passphrase, ErrDamaged},
		{"salt altered", flip(len(magic) + 6), passphrase, ErrPassphrase},
		{"check altered", flip(headerSize - 1), passphrase, ErrPassphrase},
		{"first chunk altered", flip(headerSize + 10), passphrase, ErrDamaged},
		{"last chunk altered", flip(len(file) - 20), passphrase, ErrDamaged},
		{"newer format", newer, passphrase, ErrUnsupported},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dst := newDataDir(t, "kept")
			err := dst.manager().Stage(bytes.NewReader(c.file), c.passphrase)
			if !errors.Is(err, c.want) {
				t.Fatalf("Stage = %v, want %v", err, c.want)
			}
			assertNothingStaged(t, dst.layout)
			_ = dst.st.Close()
			if did, err := ApplyPending(dst.layout); err != nil || did != Nothing {
				t.Errorf("ApplyPending = %q, %v", did, err)
			}
			if v := readValue(t, dst.layout.Dir); v != "kept" {
				t.Errorf("store changed: %q", v)
			}
		})
	}
}

func TestRestoreRefusesNewerSchema(t *testing.T) {
	src := newDataDir(t, "v")
	if err := src.st.DB().Update(func(tx *bolt.Tx) error {
		return tx.Bucket([]byte("meta")).Put([]byte("schema_version"), binary.BigEndian.AppendUint64(nil, store.SchemaVersion+1))
	}); err != nil {
		t.Fatal(err)
	}
	dst := newDataDir(t, "kept")
	err := dst.manager().Stage(bytes.NewReader(src.backup(t)), passphrase)
	if !errors.Is(err, ErrUnsupported) {
		t.Fatalf("Stage = %v, want ErrUnsupported", err)
	}
	assertNothingStaged(t, dst.layout)
}

func TestCreateRefusesShortPassphrase(t *testing.T) {
	d := newDataDir(t, "v")
	var buf bytes.Buffer
	if err := d.manager().Create(&buf, "short"); !errors.Is(err, ErrWeakPassphrase) {
		t.Fatalf("Create = %v", err)
	}
	if buf.Len() != 0 {
		t.Error("wrote a backup anyway")
	}
}

func TestFactoryReset(t *testing.T) {
	for _, keep := range []bool{true, false} {
		d := newDataDir(t, "old")
		l := d.layout
		for _, name := range []string{"ca.pem", "traces/a.log"} {
			_ = os.MkdirAll(filepath.Dir(l.path(name)), 0o700)
			if err := os.WriteFile(l.path(name), []byte("x"), 0o600); err != nil {
				t.Fatal(err)
			}
		}
		// A reset replaces a restore staged before it.
		if err := d.manager().Stage(bytes.NewReader(d.backup(t)), passphrase); err != nil {
			t.Fatal(err)
		}
		if err := d.manager().StageReset(keep); err != nil {
			t.Fatal(err)
		}
		if exists(t, l.path(PendingRestore)) {
			t.Error("the staged restore survived the reset")
		}
		_ = d.st.Close()
		if did, err := ApplyPending(l); err != nil || did != Reset {
			t.Fatalf("ApplyPending = %q, %v", did, err)
		}
		for _, name := range []string{store.FileName, "ca.pem", "traces", PendingReset} {
			if exists(t, l.path(name)) {
				t.Errorf("keep=%v: %s not removed", keep, name)
			}
		}
		if got := exists(t, l.path("device.key")); got != keep {
			t.Errorf("keep=%v: device key exists: %v", keep, got)
		}
		if v := readValue(t, l.Dir); v != "" {
			t.Errorf("keep=%v: store not wiped: %q", keep, v)
		}
	}
}

func TestNewBackupsUseTheFullKeyDerivationCost(t *testing.T) {
	d := newDataDir(t, "v")
	var buf bytes.Buffer
	if err := NewManager(d.st.DB(), d.layout).Create(&buf, passphrase); err != nil {
		t.Fatal(err)
	}
	if h := buf.Bytes()[len(magic):]; h[2] != scryptLogN || h[3] != scryptR || h[4] != scryptP {
		t.Errorf("scrypt logN, r, p = %d, %d, %d; want %d, %d, %d", h[2], h[3], h[4], scryptLogN, scryptR, scryptP)
	}
}
