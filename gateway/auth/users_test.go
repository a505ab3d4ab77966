package auth

import (
	"errors"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

func openDB(t testing.TB, path string) *bolt.DB {
	t.Helper()
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	return db
}

func newTestUsers(t testing.TB) *Users {
	t.Helper()
	db := openDB(t, filepath.Join(t.TempDir(), "test.db"))
	t.Cleanup(func() { _ = db.Close() })
	u, err := NewUsers(db)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

const sha256Public = "sha256$none$$efa1f375d76194fa51a3556a97e641e61685f914d446979da50a551a4333ffd7"

func TestUsersCRUDAndReopen(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "users.db")
	db := openDB(t, path)
	users, err := NewUsers(db)
	if err != nil {
		t.Fatal(err)
	}
	created := time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC)
	users.now = func() time.Time { return created }

	for _, name := range []string{"zed", "alice", "bob", "ünïcode"} {
		if err := users.Add(User{Username: name, PasswordHash: sha256Public}); err != nil {
			t.Fatalf("Add(%q): %v", name, err)
		}
	}
	if err := users.Add(User{Username: "alice"}); !errors.Is(err, ErrUserExists) {
		t.Errorf("Add duplicate = %v, want ErrUserExists", err)
	}
	if err := users.SetSuperuser("bob", true); err != nil {
		t.Fatal(err)
	}
	if err := users.SetPassword("alice", "sha256$none$$00"); !errors.Is(err, ErrInvalidHash) {
		t.Errorf("SetPassword(garbage) = %v, want ErrInvalidHash", err)
	}
	if err := users.SetPassword("nobody", sha256Public); !errors.Is(err, ErrUserNotFound) {
		t.Errorf("SetPassword(nobody) = %v, want ErrUserNotFound", err)
	}
	if err := users.Delete("zed"); err != nil {
		t.Fatal(err)
	}
	if err := users.Delete("zed"); !errors.Is(err, ErrUserNotFound) {
		t.Errorf("Delete twice = %v, want ErrUserNotFound", err)
	}
	if err := users.AddClientID(ClientIDEntry{ClientID: "sensor-2", PasswordHash: sha256Public}); err != nil {
		t.Fatal(err)
	}
	if err := users.AddClientID(ClientIDEntry{ClientID: "sensor-1"}); err != nil {
		t.Fatal(err)
	}
	if err := users.AddClientID(ClientIDEntry{ClientID: "sensor-1"}); !errors.Is(err, ErrClientIDExists) {
		t.Errorf("AddClientID duplicate = %v", err)
	}
	if err := users.SetClientIDPassword("sensor-1", sha256Public); err != nil {
		t.Fatal(err)
	}
	if err := users.DeleteClientID("sensor-2"); err != nil {
		t.Fatal(err)
	}
	if err := users.DeleteClientID("sensor-2"); !errors.Is(err, ErrClientIDNotFound) {
		t.Errorf("DeleteClientID twice = %v", err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	// Reopen, as the CLI does with the daemon stopped.
	db = openDB(t, path)
	defer db.Close()
	users, err = NewUsers(db)
	if err != nil {
		t.Fatal(err)
	}
	list, err := users.List()
	if err != nil {
		t.Fatal(err)
	}
	want := []User{
		{Username: "alice", PasswordHash: sha256Public, Created: created},
		{Username: "bob", PasswordHash: sha256Public, Superuser: true, Created: created},
		{Username: "ünïcode", PasswordHash: sha256Public, Created: created},
	}
	if !reflect.DeepEqual(list, want) {
		t.Errorf("List = %+v\nwant %+v", list, want)
	}
	if u, err := users.Get("bob"); err != nil || !u.Superuser || !VerifyPassword(u.PasswordHash, "public") {
		t.Errorf("Get(bob) = %+v, %v", u, err)
	}
	if _, err := users.Get("zed"); !errors.Is(err, ErrUserNotFound) {
		t.Errorf("Get(zed) = %v", err)
	}
	ids, err := users.ListClientIDs()
	if err != nil || len(ids) != 1 || ids[0].ClientID != "sensor-1" || ids[0].PasswordHash != sha256Public || ids[0].Created != created {
		t.Errorf("ListClientIDs = %+v, %v", ids, err)
	}
	if _, err := users.GetClientID("sensor-2"); !errors.Is(err, ErrClientIDNotFound) {
		t.Errorf("GetClientID(sensor-2) = %v", err)
	}
}

func TestUsersNames(t *testing.T) {
	t.Parallel()
	users := newTestUsers(t)
	for _, c := range []struct {
		name string
		ok   bool
	}{
		{"a", true},
		{strings.Repeat("x", 256), true},
		{"with space/and:colon", true},
		{"", false},
		{strings.Repeat("x", 257), false},
		{"bad\xffutf8", false},
		{"tab\there", false},
		{"nul\x00", false},
		{"del\x7f", false},
		{"c1\u0085", false},
	} {
		err := users.Add(User{Username: c.name})
		if (err == nil) != c.ok || (!c.ok && !errors.Is(err, ErrInvalidName)) {
			t.Errorf("Add(%q) = %v, want ok=%v", c.name, err, c.ok)
		}
		err = users.AddClientID(ClientIDEntry{ClientID: c.name})
		if (err == nil) != c.ok {
			t.Errorf("AddClientID(%q) = %v, want ok=%v", c.name, err, c.ok)
		}
	}
	if err := users.Add(User{Username: "h", PasswordHash: "public"}); !errors.Is(err, ErrInvalidHash) {
		t.Errorf("Add with a plain password = %v, want ErrInvalidHash", err)
	}
}
