package auth

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"
	"unicode"
	"unicode/utf8"

	bolt "go.etcd.io/bbolt"
)

// ErrUserExists is returned by Users.Add for a username already stored.
var ErrUserExists = errors.New("user already exists")

// ErrUserNotFound is returned by the Users methods that need an existing
// user when there is none by that name.
var ErrUserNotFound = errors.New("user not found")

// ErrClientIDExists is returned by Users.AddClientID for a client id
// already stored.
var ErrClientIDExists = errors.New("client id entry already exists")

// ErrClientIDNotFound is returned by the Users methods that need an existing
// client id entry when there is none.
var ErrClientIDNotFound = errors.New("client id entry not found")

// ErrInvalidName is returned for a username or client id that is empty,
// longer than 256 bytes, not UTF-8 or containing control characters.
var ErrInvalidName = errors.New("invalid name")

// maxNameLen bounds usernames and client ids in the store.
const maxNameLen = 256

var (
	bucketUsers     = []byte("mqtt_users")
	bucketClientIDs = []byte("mqtt_clientids")
)

// User is an MQTT username/password account.
type User struct {
	Username string `json:"username"`
	// PasswordHash is a stored hash (see NewHash, ImportHash). Empty means
	// the user cannot log in with a password, which is useful to mark a
	// certificate identity as superuser.
	PasswordHash string    `json:"password_hash,omitempty"`
	Superuser    bool      `json:"superuser,omitempty"`
	Created      time.Time `json:"created"`
}

// ClientIDEntry lets a client log in with its client id and a password (EMQ's
// emq_auth_clientid).
type ClientIDEntry struct {
	ClientID     string    `json:"clientid"`
	PasswordHash string    `json:"password_hash,omitempty"`
	Created      time.Time `json:"created"`
}

// Users stores the username and client id accounts in the process's bbolt
// database. It keeps no cache, so the CLI can edit the same file while the
// daemon is stopped and the daemon sees every change at once.
type Users struct {
	db  *bolt.DB
	now func() time.Time
}

// NewUsers returns the account store on db, creating its buckets.
func NewUsers(db *bolt.DB) (*Users, error) {
	err := db.Update(func(tx *bolt.Tx) error {
		for _, b := range [][]byte{bucketUsers, bucketClientIDs} {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return fmt.Errorf("create bucket %s: %w", b, err)
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("auth: %w", err)
	}
	return &Users{db: db, now: time.Now}, nil
}

// validName checks a username or client id.
func validName(what, s string) error {
	switch {
	case s == "":
		return fmt.Errorf("%w: %s is empty", ErrInvalidName, what)
	case len(s) > maxNameLen:
		return fmt.Errorf("%w: %s is longer than %d bytes", ErrInvalidName, what, maxNameLen)
	case !utf8.ValidString(s):
		return fmt.Errorf("%w: %s is not valid UTF-8", ErrInvalidName, what)
	}
	for _, r := range s {
		if unicode.IsControl(r) {
			return fmt.Errorf("%w: %s contains a control character", ErrInvalidName, what)
		}
	}
	return nil
}

// validStoredHash accepts an empty hash (no password login) or a valid
// stored hash.
func validStoredHash(h string) error {
	if h == "" {
		return nil
	}
	_, err := parseStoredHash(h)
	return err
}

// Add stores a new user. A zero Created is set to now.
func (s *Users) Add(u User) error {
	if err := validName("username", u.Username); err != nil {
		return err
	}
	if err := validStoredHash(u.PasswordHash); err != nil {
		return fmt.Errorf("user %q: %w", u.Username, err)
	}
	if u.Created.IsZero() {
		u.Created = s.now().UTC().Truncate(time.Second)
	}
	return s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketUsers)
		if b.Get([]byte(u.Username)) != nil {
			return fmt.Errorf("add user %q: %w", u.Username, ErrUserExists)
		}
		return put(b, u.Username, u)
	})
}

// Get returns the user with the given name.
func (s *Users) Get(username string) (User, error) {
	var u User
	err := s.db.View(func(tx *bolt.Tx) error {
		return get(tx.Bucket(bucketUsers), username, &u, ErrUserNotFound)
	})
	return u, err
}

// SetPassword replaces a user's password hash; an empty hash disables
// password login.
func (s *Users) SetPassword(username, hash string) error {
	if err := validStoredHash(hash); err != nil {
		return fmt.Errorf("user %q: %w", username, err)
	}
	return s.updateUser(username, func(u *User) { u.PasswordHash = hash })
}

// SetSuperuser sets or clears a user's superuser flag.
func (s *Users) SetSuperuser(username string, superuser bool) error {
	return s.updateUser(username, func(u *User) { u.Superuser = superuser })
}

func (s *Users) updateUser(username string, change func(*User)) error {
	return s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketUsers)
		var u User
		if err := get(b, username, &u, ErrUserNotFound); err != nil {
			return err
		}
		change(&u)
		return put(b, username, u)
	})
}

// Delete removes a user.
func (s *Users) Delete(username string) error {
	return s.db.Update(func(tx *bolt.Tx) error {
		return del(tx.Bucket(bucketUsers), username, ErrUserNotFound)
	})
}

// List returns every user, sorted by username (bytewise).
func (s *Users) List() ([]User, error) {
	var us []User
	err := s.db.View(func(tx *bolt.Tx) error {
		return listAll(tx.Bucket(bucketUsers), &us)
	})
	return us, err
}

// AddClientID stores a new client id entry. A zero Created is set to now.
func (s *Users) AddClientID(e ClientIDEntry) error {
	if err := validName("client id", e.ClientID); err != nil {
		return err
	}
	if err := validStoredHash(e.PasswordHash); err != nil {
		return fmt.Errorf("client id %q: %w", e.ClientID, err)
	}
	if e.Created.IsZero() {
		e.Created = s.now().UTC().Truncate(time.Second)
	}
	return s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketClientIDs)
		if b.Get([]byte(e.ClientID)) != nil {
			return fmt.Errorf("add client id %q: %w", e.ClientID, ErrClientIDExists)
		}
		return put(b, e.ClientID, e)
	})
}

// GetClientID returns the client id entry for id.
func (s *Users) GetClientID(id string) (ClientIDEntry, error) {
	var e ClientIDEntry
	err := s.db.View(func(tx *bolt.Tx) error {
		return get(tx.Bucket(bucketClientIDs), id, &e, ErrClientIDNotFound)
	})
	return e, err
}

// SetClientIDPassword replaces a client id entry's password hash.
func (s *Users) SetClientIDPassword(id, hash string) error {
	if err := validStoredHash(hash); err != nil {
		return fmt.Errorf("client id %q: %w", id, err)
	}
	return s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketClientIDs)
		var e ClientIDEntry
		if err := get(b, id, &e, ErrClientIDNotFound); err != nil {
			return err
		}
		e.PasswordHash = hash
		return put(b, id, e)
	})
}

// DeleteClientID removes a client id entry.
func (s *Users) DeleteClientID(id string) error {
	return s.db.Update(func(tx *bolt.Tx) error {
		return del(tx.Bucket(bucketClientIDs), id, ErrClientIDNotFound)
	})
}

// ListClientIDs returns every client id entry, sorted by client id.
func (s *Users) ListClientIDs() ([]ClientIDEntry, error) {
	var es []ClientIDEntry
	err := s.db.View(func(tx *bolt.Tx) error {
		return listAll(tx.Bucket(bucketClientIDs), &es)
	})
	return es, err
}

func put(b *bolt.Bucket, key string, v any) error {
	data, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encode %q: %w", key, err)
	}
	if err := b.Put([]byte(key), data); err != nil {
		return fmt.Errorf("store %q: %w", key, err)
	}
	return nil
}

func get(b *bolt.Bucket, key string, v any, notFound error) error {
	if key == "" {
		return fmt.Errorf("%q: %w", key, notFound)
	}
	data := b.Get([]byte(key))
	if data == nil {
		return fmt.Errorf("%q: %w", key, notFound)
	}
	if err := json.Unmarshal(data, v); err != nil {
		return fmt.Errorf("decode %q: %w", key, err)
	}
	return nil
}

func del(b *bolt.Bucket, key string, notFound error) error {
	if key == "" || b.Get([]byte(key)) == nil {
		return fmt.Errorf("%q: %w", key, notFound)
	}
	if err := b.Delete([]byte(key)); err != nil {
		return fmt.Errorf("delete %q: %w", key, err)
	}
	return nil
}

// listAll decodes every value of b into *out, in key order.
func listAll[T any](b *bolt.Bucket, out *[]T) error {
	return b.ForEach(func(k, data []byte) error {
		var v T
		if err := json.Unmarshal(data, &v); err != nil {
			return fmt.Errorf("decode %q: %w", k, err)
		}
		*out = append(*out, v)
		return nil
	})
}
