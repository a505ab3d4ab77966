package store

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"
)

// SettingsVersion is one saved version of the live settings document.
type SettingsVersion struct {
	Version  uint64          `json:"version"`
	Saved    time.Time       `json:"saved"`
	Author   string          `json:"author"`
	Document json.RawMessage `json:"document"`
}

// HistoryLimit is how many settings versions are kept.
const HistoryLimit = 50

var keyCurrent = []byte("current")

// Settings returns the live settings document, or a zero SettingsVersion
// (Version 0, no document) when none was ever saved.
func (s *Store) Settings() (SettingsVersion, error) {
	var v SettingsVersion
	err := s.db.View(func(tx *bolt.Tx) error {
		raw := tx.Bucket(bucketSettings).Get(keyCurrent)
		if raw == nil {
			return nil
		}
		return json.Unmarshal(raw, &v)
	})
	if err != nil {
		return SettingsVersion{}, fmt.Errorf("store: read settings: %w", err)
	}
	return v, nil
}

// SaveSettings stores doc as the new live settings document and keeps the
// previous ones as history, all in one transaction. The caller validates
// doc first. It returns the new version.
func (s *Store) SaveSettings(doc []byte, author string, now time.Time) (SettingsVersion, error) {
	var saved SettingsVersion
	err := s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketSettings)
		var cur SettingsVersion
		if raw := b.Get(keyCurrent); raw != nil {
			if err := json.Unmarshal(raw, &cur); err != nil {
				return err
			}
		}
		saved = SettingsVersion{Version: cur.Version + 1, Saved: now.UTC(), Author: author, Document: json.RawMessage(doc)}
		raw, err := json.Marshal(saved)
		if err != nil {
			return err
		}
		if err := b.Put(keyCurrent, raw); err != nil {
			return err
		}
		hist, err := b.CreateBucketIfNotExists([]byte("history"))
		if err != nil {
			return err
		}
		if err := hist.Put(binary.BigEndian.AppendUint64(nil, saved.Version), raw); err != nil {
			return err
		}
		return trimHistory(hist)
	})
	if err != nil {
		return SettingsVersion{}, fmt.Errorf("store: save settings: %w", err)
	}
	return saved, nil
}

// trimHistory deletes the oldest versions beyond HistoryLimit. Keys are
// collected first: deleting under a moving cursor skips entries.
func trimHistory(hist *bolt.Bucket) error {
	var keys [][]byte
	c := hist.Cursor()
	for k, _ := c.First(); k != nil; k, _ = c.Next() {
		keys = append(keys, k)
	}
	for len(keys) > HistoryLimit {
		if err := hist.Delete(keys[0]); err != nil {
			return err
		}
		keys = keys[1:]
	}
	return nil
}

// SettingsHistory returns the kept settings versions, newest first.
func (s *Store) SettingsHistory() ([]SettingsVersion, error) {
	var out []SettingsVersion
	err := s.db.View(func(tx *bolt.Tx) error {
		hist := tx.Bucket(bucketSettings).Bucket([]byte("history"))
		if hist == nil {
			return nil
		}
		c := hist.Cursor()
		for k, raw := c.Last(); k != nil; k, raw = c.Prev() {
			var v SettingsVersion
			if err := json.Unmarshal(raw, &v); err != nil {
				return err
			}
			out = append(out, v)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("store: read settings history: %w", err)
	}
	return out, nil
}
