// Package backup makes and restores encrypted backups of an edgegate data
// directory, and stages a restore or a factory reset for the next start.
//
// A backup holds the store (a consistent bbolt snapshot) and the device
// key, without which the private keys sealed in the store cannot be read;
// it is therefore encrypted as a whole, with AES-256-GCM under a key
// derived from the operator's passphrase with scrypt (see format.go).
// Inside the encryption it is a tar archive of the two files.
//
// Nothing replaces the live database while the gateway runs: a restore is
// decrypted, checked and staged as <data>/restore.pending, a factory reset
// as the marker <data>/reset.pending, and ApplyPending carries either out
// at the next start, before the store is opened.
package backup

import (
	"archive/tar"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/edgegate/edgegate/certs/keyseal"
	"github.com/edgegate/edgegate/gateway/store"
)

// MinPassphrase is the shortest passphrase a backup is made with.
const MinPassphrase = 10

var (
	// ErrWeakPassphrase is returned by Create for a passphrase shorter
	// than MinPassphrase.
	ErrWeakPassphrase = fmt.Errorf("backup: passphrase shorter than %d characters", MinPassphrase)
	// ErrPassphrase is returned when a backup does not open with the
	// passphrase given (or its header was altered).
	ErrPassphrase = errors.New("backup: wrong passphrase")
	// ErrDamaged is returned (wrapped) when a file is not an edgegate
	// backup, or was truncated or altered.
	ErrDamaged = errors.New("backup: not an edgegate backup, or damaged")
	// ErrUnsupported is returned (wrapped) for a backup made by a newer
	// edgegate: a newer file format or database schema.
	ErrUnsupported = errors.New("backup: made by a newer edgegate")
)

// Names in the data directory and in the archive.
const (
	// PendingRestore is the directory a checked restore waits in.
	PendingRestore = "restore.pending"
	// PendingReset is the marker file of a factory reset.
	PendingReset = "reset.pending"
	// BeforeRestore is the suffix the replaced database and device key
	// keep after a restore.
	BeforeRestore = ".before-restore"

	archiveDB  = "edgegate.db"
	archiveKey = "device.key"
	// maxKeyFile bounds the device key entry of an archive.
	maxKeyFile = 1 << 10
)

// Layout names the files of a data directory.
type Layout struct {
	Dir string
	// DeviceKey is the device key's file name in Dir.
	DeviceKey string
	// Derived are the files and directories in Dir that are made from the
	// store or by the running gateway (the CA bundle, trace files); a
	// factory reset removes them too.
	Derived []string
}

func (l Layout) path(name string) string { return filepath.Join(l.Dir, name) }

// Manager makes backups of a running gateway's store and stages restores
// and factory resets.
type Manager struct {
	db     *bolt.DB
	layout Layout
	// logN is the key derivation cost of new backups; tests lower it.
	logN byte
	mu   sync.Mutex // one staging at a time
}

// NewManager returns a Manager for the store db of the data directory l.
func NewManager(db *bolt.DB, l Layout) *Manager {
	return &Manager{db: db, layout: l, logN: scryptLogN}
}

// Create writes an encrypted backup to w. The database is first copied
// in one read transaction to a temporary file beside it, so a slow
// reader never holds the transaction open; until the first byte is
// written to w, a failure leaves w untouched.
func (m *Manager) Create(w io.Writer, passphrase string) error {
	if len(passphrase) < MinPassphrase {
		return ErrWeakPassphrase
	}
	key, err := os.ReadFile(m.layout.path(m.layout.DeviceKey))
	if err != nil {
		return fmt.Errorf("backup: read device key: %w", err)
	}
	snap, err := os.CreateTemp(m.layout.Dir, "backup-*.tmp")
	if err != nil {
		return fmt.Errorf("backup: snapshot: %w", err)
	}
	defer os.Remove(snap.Name())
	defer snap.Close()
	var size int64
	if err := m.db.View(func(tx *bolt.Tx) error {
		size, err = tx.WriteTo(snap)
		return err
	}); err != nil {
		return fmt.Errorf("backup: snapshot: %w", err)
	}
	if _, err := snap.Seek(0, io.SeekStart); err != nil {
		return fmt.Errorf("backup: snapshot: %w", err)
	}

	s, err := newSealer(w, passphrase, m.logN)
	if err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	tw := tar.NewWriter(s)
	now := time.Now()
	for _, e := range []struct {
		name string
		size int64
		r    io.Reader
	}{{archiveKey, int64(len(key)), nil}, {archiveDB, size, snap}} {
		hdr := &tar.Header{Name: e.name, Mode: 0o600, Size: e.size, ModTime: now, Typeflag: tar.TypeReg}
		if err := tw.WriteHeader(hdr); err != nil {
			return fmt.Errorf("backup: write: %w", err)
		}
		if e.r == nil {
			_, err = tw.Write(key)
		} else {
			_, err = io.Copy(tw, e.r)
		}
		if err != nil {
			return fmt.Errorf("backup: write %s: %w", e.name, err)
		}
	}
	if err := tw.Close(); err != nil {
		return fmt.Errorf("backup: write: %w", err)
	}
	if err := s.Close(); err != nil {
		return fmt.Errorf("backup: write: %w", err)
	}
	return nil
}

// Stage reads a backup from r, decrypts and checks all of it (the archive
// is complete and intact, the database opens and its schema is one this
// binary knows), and stages it to replace the store and the device key at
// the next start. On any error nothing is staged: ErrPassphrase,
// ErrDamaged or ErrUnsupported for a backup that does not do, or the
// error of r or of the disk.
func (m *Manager) Stage(r io.Reader, passphrase string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	tmp, err := os.MkdirTemp(m.layout.Dir, "restore-*.tmp")
	if err != nil {
		return fmt.Errorf("backup: stage restore: %w", err)
	}
	staged := false
	defer func() {
		if !staged {
			_ = os.RemoveAll(tmp)
		}
	}()
	if err := extract(r, passphrase, tmp); err != nil {
		return err
	}
	if err := checkExtracted(tmp); err != nil {
		return err
	}
	// A restore replaces a reset staged before it, and an older restore.
	if err := os.Remove(m.layout.path(PendingReset)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("backup: stage restore: %w", err)
	}
	if err := os.RemoveAll(m.layout.path(PendingRestore)); err != nil {
		return fmt.Errorf("backup: stage restore: %w", err)
	}
	if err := os.Rename(tmp, m.layout.path(PendingRestore)); err != nil {
		return fmt.Errorf("backup: stage restore: %w", err)
	}
	staged = true
	return syncDir(m.layout.Dir)
}

// extract decrypts the archive from r into dir, requiring exactly the
// database and the device key and reading through the final chunk.
func extract(r io.Reader, passphrase, dir string) error {
	o, err := newOpener(r, passphrase)
	if err != nil {
		return err
	}
	tr := tar.NewReader(o)
	seen := map[string]bool{}
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return archiveError(err)
		}
		if (hdr.Name != archiveDB && hdr.Name != archiveKey) || hdr.Typeflag != tar.TypeReg || seen[hdr.Name] {
			return fmt.Errorf("%w: unexpected entry %q", ErrDamaged, hdr.Name)
		}
		if hdr.Name == archiveKey && hdr.Size > maxKeyFile {
			return fmt.Errorf("%w: device key of %d bytes", ErrDamaged, hdr.Size)
		}
		seen[hdr.Name] = true
		if err := writeFile(filepath.Join(dir, hdr.Name), tr); err != nil { //nolint:gosec // G305: the name is one of the two constants checked above
			return archiveError(err)
		}
	}
	if !seen[archiveDB] || !seen[archiveKey] {
		return fmt.Errorf("%w: the database or the device key is missing", ErrDamaged)
	}
	// The rest is tar padding; reading it to EOF authenticates the final
	// chunk, so a cut-off file is refused.
	if _, err := io.Copy(io.Discard, o); err != nil {
		return archiveError(err)
	}
	return nil
}

// archiveError keeps ErrDamaged and read errors as they are, and reports a
// malformed archive inside intact encryption as damage too.
func archiveError(err error) error {
	var pathErr *fs.PathError
	if errors.Is(err, ErrDamaged) || errors.As(err, &pathErr) {
		return err
	}
	if errors.Is(err, tar.ErrHeader) || errors.Is(err, io.ErrUnexpectedEOF) {
		return fmt.Errorf("%w: %w", ErrDamaged, err)
	}
	return err
}

func writeFile(path string, r io.Reader) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, r); err != nil {
		_ = f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		_ = f.Close()
		return err
	}
	return f.Close()
}

// checkExtracted opens the extracted store as the gateway would (which
// also brings an older schema up to date) and checks the device key.
func checkExtracted(dir string) error {
	key, err := os.ReadFile(filepath.Join(dir, archiveKey))
	if err != nil {
		return fmt.Errorf("backup: check restore: %w", err)
	}
	if _, err := keyseal.New(key); err != nil {
		return fmt.Errorf("%w: %w", ErrDamaged, err)
	}
	st, err := store.Open(dir, store.Options{})
	if errors.Is(err, store.ErrNewerSchema) {
		return fmt.Errorf("%w: %w", ErrUnsupported, err)
	}
	if err != nil {
		return fmt.Errorf("%w: the database does not open: %w", ErrDamaged, err)
	}
	_, err = st.Schema()
	if cerr := st.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("%w: %w", ErrDamaged, err)
	}
	return nil
}

// resetMarker is the content of PendingReset.
type resetMarker struct {
	KeepDeviceKey bool `json:"keep_device_key"`
}

// StageReset stages a factory reset for the next start: the store is
// wiped (and the device key, unless keepDeviceKey), so the gateway starts
// as new and asks to be set up again. It cancels a staged restore.
func (m *Manager) StageReset(keepDeviceKey bool) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	data, _ := json.Marshal(resetMarker{KeepDeviceKey: keepDeviceKey})
	tmp := m.layout.path(PendingReset + ".tmp")
	if err := os.Remove(tmp); err != nil && !errors.Is(err, fs.ErrNotExist) { // left by a crash
		return fmt.Errorf("backup: stage factory reset: %w", err)
	}
	if err := writeFile(tmp, bytes.NewReader(data)); err != nil {
		return fmt.Errorf("backup: stage factory reset: %w", err)
	}
	if err := os.RemoveAll(m.layout.path(PendingRestore)); err != nil {
		return fmt.Errorf("backup: stage factory reset: %w", err)
	}
	if err := os.Rename(tmp, m.layout.path(PendingReset)); err != nil {
		return fmt.Errorf("backup: stage factory reset: %w", err)
	}
	return syncDir(m.layout.Dir)
}

// What ApplyPending did.
const (
	Nothing  = ""
	Restored = "restored"
	Reset    = "factory reset"
)

// ApplyPending carries out a staged factory reset or restore; call it at
// start, before the store is opened. A restore keeps the replaced database
// and device key beside the new ones, with the suffix BeforeRestore. Each
// step can be repeated, so a crash half-way is finished by the next start.
func ApplyPending(l Layout) (string, error) {
	raw, err := os.ReadFile(l.path(PendingReset))
	switch {
	case err == nil:
		var marker resetMarker
		if err := json.Unmarshal(raw, &marker); err != nil {
			return Nothing, fmt.Errorf("backup: %s: %w", PendingReset, err)
		}
		return Reset, applyReset(l, marker)
	case !errors.Is(err, fs.ErrNotExist):
		return Nothing, fmt.Errorf("backup: %w", err)
	}
	pending := l.path(PendingRestore)
	if _, err := os.Stat(pending); errors.Is(err, fs.ErrNotExist) {
		return Nothing, nil
	} else if err != nil {
		return Nothing, fmt.Errorf("backup: %w", err)
	}
	// The key first, the database last: the staged database is what
	// marks the restore as not done.
	for _, f := range []struct{ staged, live string }{{archiveKey, l.DeviceKey}, {archiveDB, store.FileName}} {
		staged := filepath.Join(pending, f.staged)
		if _, err := os.Stat(staged); errors.Is(err, fs.ErrNotExist) {
			continue // moved by an earlier, interrupted start
		}
		live := l.path(f.live)
		if err := os.Rename(live, live+BeforeRestore); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return Nothing, fmt.Errorf("backup: keep %s: %w", f.live, err)
		}
		if err := os.Rename(staged, live); err != nil {
			return Nothing, fmt.Errorf("backup: restore %s: %w", f.live, err)
		}
	}
	if err := syncDir(l.Dir); err != nil {
		return Nothing, err
	}
	if err := os.RemoveAll(pending); err != nil {
		return Nothing, fmt.Errorf("backup: %w", err)
	}
	return Restored, nil
}

func applyReset(l Layout, marker resetMarker) error {
	remove := []string{store.FileName, store.FileName + BeforeRestore, l.DeviceKey + BeforeRestore, PendingRestore}
	remove = append(remove, l.Derived...)
	if !marker.KeepDeviceKey {
		remove = append(remove, l.DeviceKey)
	}
	for _, name := range remove {
		if err := os.RemoveAll(l.path(name)); err != nil {
			return fmt.Errorf("backup: factory reset: %w", err)
		}
	}
	// The marker goes last: until then a restart repeats the reset.
	if err := syncDir(l.Dir); err != nil {
		return err
	}
	if err := os.Remove(l.path(PendingReset)); err != nil {
		return fmt.Errorf("backup: factory reset: %w", err)
	}
	return syncDir(l.Dir)
}

// syncDir makes renames and removals in dir durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("backup: sync %s: %w", dir, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("backup: sync %s: %w", dir, err)
	}
	return nil
}
