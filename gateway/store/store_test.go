package store

import (
	"encoding/binary"
	"errors"
	"fmt"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

func TestOpenRecordsSchemaAndReopens(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir, Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	if v, err := s.Schema(); err != nil || v != SchemaVersion {
		t.Fatalf("schema = %d, %v", v, err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s, err = Open(dir, Options{NoSync: true})
	if err != nil {
		t.Fatalf("reopen: %v", err)
	}
	defer s.Close()
}

func TestOpenWhileLocked(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir, Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := Open(dir, Options{NoSync: true}); !errors.Is(err, ErrLocked) {
		t.Fatalf("second open: %v, want ErrLocked", err)
	}
}

func TestOpenRefusesNewerSchema(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir, Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	err = s.DB().Update(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketMeta).Put(keySchema, binary.BigEndian.AppendUint64(nil, SchemaVersion+1))
	})
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	if _, err := Open(dir, Options{NoSync: true}); !errors.Is(err, ErrNewerSchema) {
		t.Fatalf("open: %v, want ErrNewerSchema", err)
	}
}

func TestSettingsVersionsAndHistory(t *testing.T) {
	s, err := Open(t.TempDir(), Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if v, err := s.Settings(); err != nil || v.Version != 0 || v.Document != nil {
		t.Fatalf("fresh settings = %+v, %v", v, err)
	}
	now := time.Date(2026, 11, 23, 0, 0, 0, 0, time.UTC)
	for i := 1; i <= HistoryLimit+5; i++ {
		v, err := s.SaveSettings([]byte(fmt.Sprintf(`{"n":%d}`, i)), "test", now)
		if err != nil {
			t.Fatal(err)
		}
		if v.Version != uint64(i) {
			t.Fatalf("version = %d, want %d", v.Version, i)
		}
	}
	cur, err := s.Settings()
	if err != nil || cur.Version != HistoryLimit+5 || string(cur.Document) != fmt.Sprintf(`{"n":%d}`, HistoryLimit+5) {
		t.Fatalf("current = %+v, %v", cur, err)
	}
	hist, err := s.SettingsHistory()
	if err != nil {
		t.Fatal(err)
	}
	if len(hist) != HistoryLimit || hist[0].Version != HistoryLimit+5 || hist[len(hist)-1].Version != 6 {
		t.Fatalf("history: %d entries, newest %d, oldest %d", len(hist), hist[0].Version, hist[len(hist)-1].Version)
	}
}
