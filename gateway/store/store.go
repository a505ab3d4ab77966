// Package store owns the one bbolt database of an edgegate process: it
// opens it, keeps the schema version, runs migrations and keeps the live
// settings document with its history. Domain packages keep their own
// buckets in the same database through DB.
package store

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"
)

// ErrLocked is returned by Open when another process holds the database.
var ErrLocked = errors.New("store: database is in use by another process (is edgegate running?)")

// ErrNewerSchema is returned by Open when the database was written by a
// newer edgegate whose schema this binary does not know.
var ErrNewerSchema = errors.New("store: database schema is newer than this binary")

// FileName is the database file inside the data directory.
const FileName = "edgegate.db"

var (
	bucketMeta     = []byte("meta")
	bucketSettings = []byte("settings")
	keySchema      = []byte("schema_version")
)

// Store is the process's database.
type Store struct {
	db *bolt.DB
}

// Options tune Open.
type Options struct {
	// NoSync skips fsync on commit. Only for tests.
	NoSync bool
}

// Open opens (creating if needed) the database in dataDir and brings its
// schema up to date. It waits at most one second for another process's
// lock, then returns ErrLocked.
func Open(dataDir string, o Options) (*Store, error) {
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return nil, fmt.Errorf("store: create data directory: %w", err)
	}
	path := filepath.Join(dataDir, FileName)
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second, NoSync: o.NoSync})
	if errors.Is(err, bolterrors.ErrTimeout) {
		return nil, ErrLocked
	}
	if err != nil {
		return nil, fmt.Errorf("store: open %s: %w", path, err)
	}
	s := &Store{db: db}
	if err := s.migrate(); err != nil {
		_ = db.Close()
		return nil, err
	}
	return s, nil
}

// DB returns the database for domain packages' buckets.
func (s *Store) DB() *bolt.DB { return s.db }

// Close closes the database.
func (s *Store) Close() error {
	if err := s.db.Close(); err != nil {
		return fmt.Errorf("store: close: %w", err)
	}
	return nil
}

// SchemaVersion is the schema this binary writes.
const SchemaVersion = 1

// migrations[i] brings a database from schema version i to i+1, inside the
// same transaction that records the new version.
var migrations = []func(tx *bolt.Tx) error{
	// 0 → 1: the initial layout.
	func(tx *bolt.Tx) error {
		_, err := tx.CreateBucketIfNotExists(bucketSettings)
		return err
	},
}

func (s *Store) migrate() error {
	return s.db.Update(func(tx *bolt.Tx) error {
		meta, err := tx.CreateBucketIfNotExists(bucketMeta)
		if err != nil {
			return fmt.Errorf("store: create meta bucket: %w", err)
		}
		current := uint64(0)
		if v := meta.Get(keySchema); len(v) == 8 {
			current = binary.BigEndian.Uint64(v)
		}
		if current > SchemaVersion {
			return fmt.Errorf("%w: database has %d, binary knows %d", ErrNewerSchema, current, SchemaVersion)
		}
		for v := current; v < SchemaVersion; v++ {
			if err := migrations[v](tx); err != nil {
				return fmt.Errorf("store: migrate schema %d to %d: %w", v, v+1, err)
			}
		}
		return meta.Put(keySchema, binary.BigEndian.AppendUint64(nil, SchemaVersion))
	})
}

// Schema returns the schema version recorded in the database.
func (s *Store) Schema() (uint64, error) {
	var v uint64
	err := s.db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketMeta).Get(keySchema)
		if len(b) != 8 {
			return errors.New("store: schema version missing")
		}
		v = binary.BigEndian.Uint64(b)
		return nil
	})
	return v, err
}
