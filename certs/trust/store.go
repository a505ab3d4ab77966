package trust

import (
	"context"
	"crypto/x509"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"go.etcd.io/bbolt"
)

// Layout of the "trust" bucket:
//
//	trust/versions/<number>  JSON Version, number big-endian uint64
//	trust/states/<number>    its State, so pruning need not decode versions
//	trust/meta/applied       number of the applied version (absent: none)
//	trust/meta/staged        number of the staged version (absent: none)
//
// Every change of state is one transaction.
var (
	bucketTrust    = []byte("trust")
	bucketVersions = []byte("versions")
	bucketStates   = []byte("states")
	bucketMeta     = []byte("meta")
	keyApplied     = []byte("applied")
	keyStaged      = []byte("staged")
)

// DefaultHistory is how many applied versions are kept when
// Options.History is not set.
const DefaultHistory = 20

// Publisher writes an entry to the vault, so the fleet receives it.
type Publisher interface {
	// Publish stores pemData as secret name of list and returns the
	// secret's new version.
	Publish(ctx context.Context, list ListName, name string, pemData []byte) (version int, err error)
}

// Options configures Open.
type Options struct {
	DB *bbolt.DB
	// History is how many applied versions (the current one included) are
	// kept, and how many discarded ones; older ones are pruned. Default
	// DefaultHistory; below 2 it is raised to 2, so that Rollback has a
	// version to return to.
	History int
	Now     func() time.Time
	Logger  *slog.Logger
	// OnApply receives the applied snapshot: at Open (the last-known-good
	// set, so a gateway that boots offline keeps its trust; an empty
	// snapshot with Version 0 when nothing was ever applied) and after every
	// apply or rollback. It must not block long.
	OnApply func(Snapshot)
	// SessionsUsing counts the live client sessions whose verified chain
	// ends at (or passes through) one of certs; it flags a version that
	// would remove a CA in use. nil counts 0.
	SessionsUsing func(certs []*x509.Certificate) int
	// Publisher, when set, writes uploaded entries to the vault on apply.
	Publisher Publisher
}

// RemoteKey names a vault secret: its list and name.
type RemoteKey struct {
	List ListName
	Name string
}

// Remote is one certificate secret of the vault's current set, as the
// syncer saw it.
type Remote struct {
	List    ListName
	Name    string
	Version int
	// Data is PEM or DER: a certificate, optionally with an X509 CRL
	// block. nil means unchanged: the store already holds Name at Version
	// (see Store.Known).
	Data []byte
}

// ApplyOptions says who applies and whether they confirmed.
type ApplyOptions struct {
	By string
	// Confirm goes ahead although the version removes CAs in use or
	// empties the trust list (see ConfirmationError).
	Confirm bool
}

// Store keeps the versions of the trust and issuer lists in the process's
// database and the applied snapshot in memory. It is safe for concurrent
// use.
type Store struct {
	o       Options
	db      *bbolt.DB
	log     *slog.Logger
	now     func() time.Time
	history int

	// mu serialises changes: each reads the staged or applied version,
	// decides, and writes.
	mu   sync.Mutex
	snap atomic.Pointer[Snapshot]
}

// Open prepares the store's buckets, loads the applied version as the live
// snapshot and hands it to OnApply.
func Open(o Options) (*Store, error) {
	if o.DB == nil {
		return nil, errors.New("trust: open: DB is required")
	}
	s := &Store{o: o, db: o.DB, log: o.Logger, now: o.Now, history: o.History}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.now == nil {
		s.now = time.Now
	}
	if s.history == 0 {
		s.history = DefaultHistory
	}
	s.history = max(s.history, 2)
	err := s.db.Update(func(btx *bbolt.Tx) error {
		root, err := btx.CreateBucketIfNotExists(bucketTrust)
		if err != nil {
			return err
		}
		for _, name := range [][]byte{bucketVersions, bucketStates, bucketMeta} {
			if _, err := root.CreateBucketIfNotExists(name); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("trust: open: create buckets: %w", err)
	}
	applied, err := s.Applied()
	if err != nil {
		return nil, fmt.Errorf("trust: open: %w", err)
	}
	s.publishSnapshot(applied)
	if applied.Number != 0 {
		s.log.Info("trust: last applied version loaded", "version", applied.Number,
			"trust", applied.Counts.Trust, "issuer", applied.Counts.Issuer)
	}
	return s, nil
}

// publishSnapshot makes v the live snapshot and tells OnApply.
func (s *Store) publishSnapshot(v Version) {
	snap := buildSnapshot(v, s.log)
	s.snap.Store(snap)
	if s.o.OnApply != nil {
		s.o.OnApply(*snap)
	}
}

// Snapshot returns what is applied now.
func (s *Store) Snapshot() Snapshot {
	if p := s.snap.Load(); p != nil {
		return *p
	}
	return Snapshot{}
}

// Applied returns the applied version; Number 0 and no entries when
// nothing was ever applied.
func (s *Store) Applied() (Version, error) {
	var v Version
	err := s.view(func(t tx) error {
		var err error
		v, err = t.versionOrEmpty(t.meta(keyApplied))
		return err
	})
	if err != nil {
		return Version{}, fmt.Errorf("trust: applied version: %w", err)
	}
	return v, nil
}

// Staged returns the staged version, and false when there is none.
func (s *Store) Staged() (Version, bool, error) {
	var v Version
	err := s.view(func(t tx) error {
		var err error
		v, err = t.versionOrEmpty(t.meta(keyStaged))
		return err
	})
	if err != nil {
		return Version{}, false, fmt.Errorf("trust: staged version: %w", err)
	}
	return v, v.Number != 0, nil
}

// Version returns version n; ErrNotFound when there is none (or it was
// pruned).
func (s *Store) Version(n uint64) (Version, error) {
	var v Version
	err := s.view(func(t tx) error {
		var err error
		v, err = t.version(n)
		return err
	})
	if err != nil {
		return Version{}, fmt.Errorf("trust: version %d: %w", n, err)
	}
	return v, nil
}

// Versions returns every kept version, newest first, as summaries: Entries,
// Rejected and Removed are left out (nil); Counts says how many there are.
// Version(n) returns one in full.
func (s *Store) Versions() ([]Version, error) {
	var out []Version
	err := s.view(func(t tx) error {
		c := t.bucket(bucketVersions).Cursor()
		for k, raw := c.Last(); k != nil; k, raw = c.Prev() {
			v, err := decodeVersion(k, raw)
			if err != nil {
				return err
			}
			out = append(out, v.summary())
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("trust: versions: %w", err)
	}
	return out, nil
}

// Diff compares version from with version to; 0 stands for the empty
// version before the first.
func (s *Store) Diff(from, to uint64) (Diff, error) {
	var a, b Version
	err := s.view(func(t tx) error {
		var err error
		if a, err = t.versionOrEmpty(from); err != nil {
			return err
		}
		b, err = t.versionOrEmpty(to)
		return err
	})
	if err != nil {
		return Diff{}, fmt.Errorf("trust: diff %d..%d: %w", from, to, err)
	}
	return DiffVersions(a, b), nil
}

// Entry returns the entry id (or full fingerprint) of list in the applied
// version; ErrNotFound when it has none.
func (s *Store) Entry(list ListName, id string) (Entry, error) {
	v, err := s.Applied()
	if err != nil {
		return Entry{}, err
	}
	if e, ok := findEntry(v, list, id); ok {
		return e, nil
	}
	return Entry{}, fmt.Errorf("trust: %s entry %q: %w", list, id, ErrNotFound)
}

func findEntry(v Version, list ListName, id string) (Entry, bool) {
	i := slices.IndexFunc(v.Entries, func(e Entry) bool {
		return e.List == list && (e.ID == id || e.Fingerprint == id)
	})
	if i < 0 {
		return Entry{}, false
	}
	return v.Entries[i], true
}

// Known returns the vault secrets the store holds — the vault-sourced
// entries of the staged version if any, else of the applied one, with their
// versions — and the tombstoned names with the version they had when
// deleted. A syncer passes Data nil for a secret whose version matches.
// Rejected secrets are not listed, so they are fetched again. On a read
// error it logs and returns an empty map: the syncer then fetches all.
func (s *Store) Known() map[RemoteKey]int {
	known := make(map[RemoteKey]int)
	err := s.view(func(t tx) error {
		base, err := t.base()
		if err != nil {
			return err
		}
		for _, e := range base.Entries {
			if e.Source.Kind == SourceVault {
				known[RemoteKey{e.List, e.Source.Name}] = e.Source.Version
			}
		}
		for _, ts := range base.Removed {
			known[RemoteKey{ts.List, ts.Name}] = ts.Version
		}
		return nil
	})
	if err != nil {
		s.log.Error("trust: read known vault secrets", "error", err)
		return map[RemoteKey]int{}
	}
	return known
}

// Discard marks the staged version discarded; ErrNoStaged when none is.
func (s *Store) Discard() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	var n uint64
	err := s.update(func(t tx) error {
		n = t.meta(keyStaged)
		if n == 0 {
			return ErrNoStaged
		}
		if err := t.setState(n, StateDiscarded); err != nil {
			return err
		}
		if err := t.setMeta(keyStaged, 0); err != nil {
			return err
		}
		return t.prune(s.history)
	})
	if err != nil {
		return fmt.Errorf("trust: discard: %w", err)
	}
	s.log.Info("trust: staged version discarded", "version", n)
	return nil
}

func (s *Store) view(fn func(tx) error) error {
	return s.db.View(func(btx *bbolt.Tx) error { return fn(tx{btx}) })
}

func (s *Store) update(fn func(tx) error) error {
	return s.db.Update(func(btx *bbolt.Tx) error { return fn(tx{btx}) })
}

// tx is one bbolt transaction with the store's layout rules.
type tx struct{ *bbolt.Tx }

func (t tx) bucket(name []byte) *bbolt.Bucket {
	return t.Bucket(bucketTrust).Bucket(name)
}

func key(n uint64) []byte { return binary.BigEndian.AppendUint64(nil, n) }

func (t tx) meta(k []byte) uint64 {
	if raw := t.bucket(bucketMeta).Get(k); len(raw) == 8 {
		return binary.BigEndian.Uint64(raw)
	}
	return 0
}

// setMeta records n under k; 0 deletes it.
func (t tx) setMeta(k []byte, n uint64) error {
	b := t.bucket(bucketMeta)
	if n == 0 {
		return b.Delete(k)
	}
	return b.Put(k, key(n))
}

func decodeVersion(k, raw []byte) (Version, error) {
	var v Version
	if err := json.Unmarshal(raw, &v); err != nil {
		return Version{}, fmt.Errorf("%w: version %x: %w", ErrCorrupt, k, err)
	}
	return v, nil
}

func (t tx) version(n uint64) (Version, error) {
	raw := t.bucket(bucketVersions).Get(key(n))
	if raw == nil {
		return Version{}, ErrNotFound
	}
	v, err := decodeVersion(key(n), raw)
	if err != nil {
		return Version{}, err
	}
	if v.Entries == nil {
		v.Entries = []Entry{}
	}
	return v, nil
}

// versionOrEmpty is version n, or the empty version when n is 0.
func (t tx) versionOrEmpty(n uint64) (Version, error) {
	if n == 0 {
		return Version{Entries: []Entry{}}, nil
	}
	return t.version(n)
}

// base is what a new staged version builds on: the staged version, else
// the applied one, else the empty one.
func (t tx) base() (Version, error) {
	if n := t.meta(keyStaged); n != 0 {
		return t.version(n)
	}
	return t.versionOrEmpty(t.meta(keyApplied))
}

func (t tx) put(v Version) error {
	v.normalize()
	raw, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encode version %d: %w", v.Number, err)
	}
	if err := t.bucket(bucketVersions).Put(key(v.Number), raw); err != nil {
		return fmt.Errorf("put version %d: %w", v.Number, err)
	}
	if err := t.bucket(bucketStates).Put(key(v.Number), []byte(v.State)); err != nil {
		return fmt.Errorf("put state of version %d: %w", v.Number, err)
	}
	return nil
}

func (t tx) setState(n uint64, st State) error {
	v, err := t.version(n)
	if err != nil {
		return fmt.Errorf("version %d: %w", n, err)
	}
	v.State = st
	return t.put(v)
}

func (t tx) nextNumber() (uint64, error) {
	n, err := t.bucket(bucketVersions).NextSequence()
	if err != nil {
		return 0, fmt.Errorf("number a new version: %w", err)
	}
	return n, nil
}

// prune deletes the oldest superseded versions beyond history-1 (the
// applied one makes history) and the oldest discarded beyond history. The
// applied and the staged version are always kept.
func (t tx) prune(history int) error {
	applied, staged := t.meta(keyApplied), t.meta(keyStaged)
	var superseded, discarded [][]byte
	c := t.bucket(bucketStates).Cursor()
	for k, st := c.Last(); k != nil; k, st = c.Prev() {
		n := binary.BigEndian.Uint64(k)
		if n == applied || n == staged {
			continue
		}
		if State(st) == StateSuperseded {
			superseded = append(superseded, slices.Clone(k))
		} else {
			discarded = append(discarded, slices.Clone(k))
		}
	}
	var drop [][]byte
	if len(superseded) > history-1 {
		drop = append(drop, superseded[history-1:]...)
	}
	if len(discarded) > history {
		drop = append(drop, discarded[history:]...)
	}
	for _, k := range drop {
		if err := t.bucket(bucketVersions).Delete(k); err != nil {
			return fmt.Errorf("prune version %x: %w", k, err)
		}
		if err := t.bucket(bucketStates).Delete(k); err != nil {
			return fmt.Errorf("prune version %x: %w", k, err)
		}
	}
	return nil
}
