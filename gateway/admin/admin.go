// Package admin keeps the gateway administrator's credentials in the
// process's bbolt database: the admin password, the one-time setup code
// that lets the first user set it, and the API keys scripts use instead of
// the password. Only hashes are stored; a setup code or API key secret is
// shown once, when it is made.
package admin

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base32"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"
	"unicode"
	"unicode/utf8"

	bolt "go.etcd.io/bbolt"

	"github.com/edgegate/edgegate/gateway/auth"
	"github.com/edgegate/edgegate/gateway/config"
)

// AdminUser is the Basic-auth username of the administrator.
const AdminUser = "admin"

// APIKeyPrefix starts every API key id, so an id is recognisable in a
// script or a log line and never mistaken for the admin username.
const APIKeyPrefix = "egk_"

// ErrSetupDone is returned by CompleteSetup when the admin password is
// already set.
var ErrSetupDone = errors.New("admin: setup already completed")

// ErrBadSetupCode is returned by CompleteSetup when the code is not the
// current setup code.
var ErrBadSetupCode = errors.New("admin: wrong setup code")

// ErrSetupRequired is returned by SetAdminPassword before the admin password
// was set with CompleteSetup.
var ErrSetupRequired = errors.New("admin: setup not completed yet")

// ErrWrongPassword is returned by SetAdminPassword when the current password
// given does not match.
var ErrWrongPassword = errors.New("admin: wrong password")

// ErrWeakPassword is returned (wrapped in a *WeakPasswordError carrying the
// reason) when a new admin password does not meet the password policy.
var ErrWeakPassword = errors.New("admin: password too weak")

// ErrAPIKeyNotFound is returned by DeleteAPIKey for an unknown key id.
var ErrAPIKeyNotFound = errors.New("admin: API key not found")

// ErrInvalidAPIKeyName is returned by CreateAPIKey for an empty, overlong or
// non-printable key name.
var ErrInvalidAPIKeyName = errors.New("admin: invalid API key name")

// WeakPasswordError says why a password was refused. It matches
// ErrWeakPassword with errors.Is. Reason is safe to show to the user.
type WeakPasswordError struct {
	Reason string
}

func (e *WeakPasswordError) Error() string { return "password too weak: " + e.Reason }

// Unwrap returns ErrWeakPassword.
func (e *WeakPasswordError) Unwrap() error { return ErrWeakPassword }

// Password policy bounds. The upper bound keeps a request from making
// PBKDF2 hash megabytes.
const (
	MinPasswordLen = 10
	MaxPasswordLen = 1024
)

// CheckPasswordPolicy returns a *WeakPasswordError when password is not an
// acceptable admin password: at least MinPasswordLen characters, at most
// MaxPasswordLen bytes, valid UTF-8 without control characters, not one
// character repeated, and not all from one class (lower case, upper case,
// digits, other).
func CheckPasswordPolicy(password string) error {
	weak := func(reason string) error { return &WeakPasswordError{Reason: reason} }
	switch {
	case !utf8.ValidString(password):
		return weak("it is not valid UTF-8")
	case len(password) > MaxPasswordLen:
		return weak(fmt.Sprintf("it is longer than %d bytes", MaxPasswordLen))
	case utf8.RuneCountInString(password) < MinPasswordLen:
		return weak(fmt.Sprintf("it must be at least %d characters long", MinPasswordLen))
	}
	classes := map[int]bool{}
	first, _ := utf8.DecodeRuneInString(password)
	same := true
	for _, r := range password {
		if unicode.IsControl(r) {
			return weak("it contains a control character")
		}
		if r != first {
			same = false
		}
		switch {
		case unicode.IsLower(r):
			classes[0] = true
		case unicode.IsUpper(r):
			classes[1] = true
		case unicode.IsDigit(r):
			classes[2] = true
		default:
			classes[3] = true
		}
	}
	if same {
		return weak("it repeats a single character")
	}
	if len(classes) < 2 {
		return weak("it must mix at least two of: lower-case letters, upper-case letters, digits, other characters")
	}
	return nil
}

// APIKey describes an API key. The secret is not part of it: it is shown
// once by CreateAPIKey and only its hash is kept.
type APIKey struct {
	ID      string    `json:"id"`
	Name    string    `json:"name"`
	Created time.Time `json:"created"`
	// Scopes limits what the key may do (see [Scopes]); empty means
	// everything the administrator may do.
	Scopes []string `json:"scopes,omitempty"`
	// LastUsed is when the key last authenticated a request, to the
	// minute; zero if never.
	LastUsed time.Time `json:"last_used,omitzero"`
}

// storedKey is an APIKey with its secret's hash, as kept in the bucket.
type storedKey struct {
	APIKey
	// SecretHash is the hex SHA-256 of the secret. The secret is 256 random
	// bits, so a slow hash would add cost to every request and no safety.
	SecretHash string `json:"secret_hash"`
}

// Options tune Open.
type Options struct {
	// Now returns the current time; nil means time.Now.
	Now func() time.Time
	// HashIterations is the PBKDF2-SHA256 work factor of the admin password
	// and setup code; 0 means auth.DefaultPBKDF2Iterations.
	HashIterations int
}

var (
	bucketAdmin   = []byte("admin")
	bucketAPIKeys = []byte("apikeys") // nested in bucketAdmin
	keyPassword   = []byte("password")
	keySetupCode  = []byte("setup_code")
)

// lastUsedResolution bounds how often CheckAPIKey writes to the database.
const lastUsedResolution = time.Minute

// Credentials is the administrator's credential store. It is safe for
// concurrent use.
type Credentials struct {
	db   *bolt.DB
	now  func() time.Time
	iter int

	mu sync.Mutex
	// setupCode is the code this process generated, kept so that
	// EnsureSetupCode can be asked again (for a banner reprint) without
	// invalidating what the console already shows.
	setupCode string
	setupHash string // the stored hash of setupCode
	// verified caches the last successful admin password check as an HMAC
	// under a per-process key, bound to the stored hash it matched: every
	// API request carries the password and PBKDF2 costs tens of
	// milliseconds on a small ARM board.
	cacheKey     [32]byte
	verifiedMAC  []byte
	verifiedHash string
}

// Open returns the credential store on db, creating its bucket.
func Open(db *bolt.DB, o Options) (*Credentials, error) {
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.HashIterations == 0 {
		o.HashIterations = auth.DefaultPBKDF2Iterations
	}
	err := db.Update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists(bucketAdmin)
		if err != nil {
			return err
		}
		_, err = b.CreateBucketIfNotExists(bucketAPIKeys)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("admin: create bucket: %w", err)
	}
	c := &Credentials{db: db, now: o.Now, iter: o.HashIterations}
	_, _ = rand.Read(c.cacheKey[:]) // crypto/rand.Read never fails
	return c, nil
}

func (c *Credentials) hash(secret string) (string, error) {
	h, err := auth.NewHash(config.HashPBKDF2SHA256, secret, c.iter)
	if err != nil {
		return "", fmt.Errorf("admin: hash: %w", err)
	}
	return h, nil
}

// setupAlphabet has no 0/O or 1/I, so a code read off a serial console is
// typed right. 32 symbols: a random byte masked to 5 bits is uniform.
const setupAlphabet = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"

// setupCodeLen is the number of symbols (60 bits).
const setupCodeLen = 12

func newSetupCode() string {
	var raw [setupCodeLen]byte
	_, _ = rand.Read(raw[:])
	var b strings.Builder
	for i, r := range raw {
		if i > 0 && i%4 == 0 {
			b.WriteByte('-')
		}
		b.WriteByte(setupAlphabet[r&31])
	}
	return b.String()
}

// normalizeSetupCode accepts the code as typed: any case, with or without
// the dashes or spaces.
func normalizeSetupCode(code string) string {
	code = strings.ToUpper(code)
	return strings.Map(func(r rune) rune {
		if r == '-' || r == ' ' {
			return -1
		}
		return r
	}, code)
}

// EnsureSetupCode returns the one-time setup code while no admin password is
// set, and "" after. The first call in a process generates a new code and
// stores its hash, replacing any code of an earlier run (fresh is true);
// later calls return the same code (fresh is false). The console prints it.
func (c *Credentials) EnsureSetupCode() (code string, fresh bool, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	var set bool
	if err := c.db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketAdmin)
		set = b.Get(keyPassword) != nil
		// Another Credentials on the same database (a test, never the
		// daemon) may have replaced the code this one remembers.
		if string(b.Get(keySetupCode)) != c.setupHash {
			c.setupCode, c.setupHash = "", ""
		}
		return nil
	}); err != nil {
		return "", false, fmt.Errorf("admin: read setup state: %w", err)
	}
	if set {
		c.setupCode, c.setupHash = "", ""
		return "", false, nil
	}
	if c.setupCode != "" {
		return c.setupCode, false, nil
	}
	code = newSetupCode()
	h, err := c.hash(normalizeSetupCode(code))
	if err != nil {
		return "", false, err
	}
	err = c.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketAdmin)
		if b.Get(keyPassword) != nil {
			set = true
			return nil
		}
		return b.Put(keySetupCode, []byte(h))
	})
	if err != nil {
		return "", false, fmt.Errorf("admin: store setup code: %w", err)
	}
	if set {
		return "", false, nil
	}
	c.setupCode, c.setupHash = code, h
	return code, true, nil
}

// CompleteSetup sets the first admin password if code is the current setup
// code, and consumes the code. It returns ErrSetupDone once a password is
// set, ErrBadSetupCode for a wrong code (or when no code was generated) and
// a *WeakPasswordError for a password the policy refuses.
func (c *Credentials) CompleteSetup(code, password string) error {
	if err := CheckPasswordPolicy(password); err != nil {
		return err
	}
	pwHash, err := c.hash(password)
	if err != nil {
		return err
	}
	// The check runs inside the write transaction, so two concurrent
	// requests with the right code cannot both succeed.
	err = c.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketAdmin)
		if b.Get(keyPassword) != nil {
			return ErrSetupDone
		}
		stored := b.Get(keySetupCode)
		// VerifyPassword compares in constant time; with no stored code
		// it still matches nothing.
		if !auth.VerifyPassword(string(stored), normalizeSetupCode(code)) {
			return ErrBadSetupCode
		}
		if err := b.Delete(keySetupCode); err != nil {
			return err
		}
		return b.Put(keyPassword, []byte(pwHash))
	})
	if errors.Is(err, ErrSetupDone) || errors.Is(err, ErrBadSetupCode) {
		return err
	}
	if err != nil {
		return fmt.Errorf("admin: complete setup: %w", err)
	}
	c.mu.Lock()
	c.setupCode, c.setupHash = "", ""
	c.mu.Unlock()
	return nil
}

// SetupDone reports whether the admin password is set.
func (c *Credentials) SetupDone() (bool, error) {
	var set bool
	err := c.db.View(func(tx *bolt.Tx) error {
		set = tx.Bucket(bucketAdmin).Get(keyPassword) != nil
		return nil
	})
	if err != nil {
		return false, fmt.Errorf("admin: read setup state: %w", err)
	}
	return set, nil
}

func (c *Credentials) passwordHash() (string, error) {
	var h string
	err := c.db.View(func(tx *bolt.Tx) error {
		h = string(tx.Bucket(bucketAdmin).Get(keyPassword))
		return nil
	})
	return h, err
}

// CheckAdmin reports whether password is the admin password. It is false
// before setup.
func (c *Credentials) CheckAdmin(password string) bool {
	stored, err := c.passwordHash()
	if err != nil || stored == "" {
		return false
	}
	mac := hmac.New(sha256.New, c.cacheKey[:])
	mac.Write([]byte(password))
	sum := mac.Sum(nil)
	c.mu.Lock()
	cached := c.verifiedHash == stored && hmac.Equal(sum, c.verifiedMAC)
	c.mu.Unlock()
	if cached {
		return true
	}
	if !auth.VerifyPassword(stored, password) {
		return false
	}
	c.mu.Lock()
	c.verifiedHash, c.verifiedMAC = stored, sum
	c.mu.Unlock()
	return true
}

// SetAdminPassword replaces the admin password after checking the current
// one. It returns ErrSetupRequired before setup, ErrWrongPassword and a
// *WeakPasswordError.
func (c *Credentials) SetAdminPassword(old, newPassword string) error {
	if err := CheckPasswordPolicy(newPassword); err != nil {
		return err
	}
	stored, err := c.passwordHash()
	if err != nil {
		return fmt.Errorf("admin: read password: %w", err)
	}
	if stored == "" {
		return ErrSetupRequired
	}
	if !auth.VerifyPassword(stored, old) {
		return ErrWrongPassword
	}
	h, err := c.hash(newPassword)
	if err != nil {
		return err
	}
	err = c.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketAdmin)
		// Refuse if someone else changed it between the check and now.
		if string(b.Get(keyPassword)) != stored {
			return ErrWrongPassword
		}
		return b.Put(keyPassword, []byte(h))
	})
	if errors.Is(err, ErrWrongPassword) {
		return err
	}
	if err != nil {
		return fmt.Errorf("admin: store password: %w", err)
	}
	return nil
}

// Scopes are the areas of the admin API a key can be limited to.
var Scopes = []string{ScopeBroker, ScopeCertificates}

// The scopes of API keys.
const (
	// ScopeBroker covers clients, subscriptions, retained messages,
	// listeners, publishing, statistics and traces.
	ScopeBroker = "broker"
	// ScopeCertificates covers the certificate store and the deployment
	// TLS API.
	ScopeCertificates = "certificates"
)

// ErrInvalidScope is returned by CreateAPIKey for a scope not in [Scopes].
var ErrInvalidScope = errors.New("admin: unknown API key scope")

// maxAPIKeyName bounds an API key's name.
const maxAPIKeyName = 100

var keyIDEncoding = base32.StdEncoding.WithPadding(base32.NoPadding)

// CreateAPIKey makes a new API key named name, limited to scopes (none:
// unlimited), and returns it with its secret, which is not kept: the caller
// shows it once. The key authenticates as HTTP Basic "<key.ID>:<secret>".
func (c *Credentials) CreateAPIKey(name string, scopes ...string) (APIKey, string, error) {
	name, err := checkKeyNameAndScopes(name, scopes)
	if err != nil {
		return APIKey{}, "", err
	}
	var idRaw [10]byte
	var secretRaw [32]byte
	_, _ = rand.Read(idRaw[:])
	_, _ = rand.Read(secretRaw[:])
	secret := base64.RawURLEncoding.EncodeToString(secretRaw[:])
	k := storedKey{
		APIKey: APIKey{
			ID:      APIKeyPrefix + strings.ToLower(keyIDEncoding.EncodeToString(idRaw[:])),
			Name:    name,
			Created: c.now().UTC().Truncate(time.Second),
			Scopes:  slices.Compact(slices.Sorted(slices.Values(scopes))),
		},
		SecretHash: secretHash(secret),
	}
	raw, err := json.Marshal(k)
	if err != nil {
		return APIKey{}, "", fmt.Errorf("admin: encode API key: %w", err)
	}
	err = c.db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketAdmin).Bucket(bucketAPIKeys).Put([]byte(k.ID), raw)
	})
	if err != nil {
		return APIKey{}, "", fmt.Errorf("admin: store API key: %w", err)
	}
	return k.APIKey, secret, nil
}

func secretHash(secret string) string {
	sum := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(sum[:])
}

// checkKeyNameAndScopes returns the trimmed name of a new key, or
// ErrInvalidAPIKeyName or ErrInvalidScope.
func checkKeyNameAndScopes(name string, scopes []string) (string, error) {
	for _, s := range scopes {
		if !slices.Contains(Scopes, s) {
			return "", fmt.Errorf("%w %q (known: %s)", ErrInvalidScope, s, strings.Join(Scopes, ", "))
		}
	}
	name = strings.TrimSpace(name)
	switch {
	case name == "":
		return "", fmt.Errorf("%w: name is empty", ErrInvalidAPIKeyName)
	case len(name) > maxAPIKeyName:
		return "", fmt.Errorf("%w: name is longer than %d bytes", ErrInvalidAPIKeyName, maxAPIKeyName)
	case !utf8.ValidString(name) || strings.IndexFunc(name, unicode.IsControl) >= 0:
		return "", fmt.Errorf("%w: name must be printable UTF-8", ErrInvalidAPIKeyName)
	}
	return name, nil
}

// ListAPIKeys returns the API keys, oldest first.
func (c *Credentials) ListAPIKeys() ([]APIKey, error) {
	out := []APIKey{}
	err := c.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketAdmin).Bucket(bucketAPIKeys).ForEach(func(k, v []byte) error {
			var sk storedKey
			if err := json.Unmarshal(v, &sk); err != nil {
				return fmt.Errorf("decode API key %q: %w", k, err)
			}
			out = append(out, sk.APIKey)
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("admin: list API keys: %w", err)
	}
	sort.SliceStable(out, func(i, j int) bool {
		if !out[i].Created.Equal(out[j].Created) {
			return out[i].Created.Before(out[j].Created)
		}
		return out[i].ID < out[j].ID
	})
	return out, nil
}

// DeleteAPIKey revokes an API key; it returns ErrAPIKeyNotFound for an
// unknown id.
func (c *Credentials) DeleteAPIKey(id string) error {
	err := c.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketAdmin).Bucket(bucketAPIKeys)
		if id == "" || b.Get([]byte(id)) == nil {
			return ErrAPIKeyNotFound
		}
		return b.Delete([]byte(id))
	})
	if errors.Is(err, ErrAPIKeyNotFound) {
		return err
	}
	if err != nil {
		return fmt.Errorf("admin: delete API key: %w", err)
	}
	return nil
}

// CheckAPIKey reports whether secret is the secret of the key id and returns
// the key. It records the use in LastUsed at most once a minute, so a busy
// script does not turn every request into a database write.
func (c *Credentials) CheckAPIKey(id, secret string) (APIKey, bool) {
	var sk storedKey
	var found bool
	err := c.db.View(func(tx *bolt.Tx) error {
		v := tx.Bucket(bucketAdmin).Bucket(bucketAPIKeys).Get([]byte(id))
		if id == "" || v == nil {
			return nil
		}
		found = true
		return json.Unmarshal(v, &sk)
	})
	want := sk.SecretHash
	if err != nil || !found {
		// Compare anyway, so an unknown id costs what a wrong secret does.
		want = strings.Repeat("0", sha256.Size*2)
	}
	ok := subtle.ConstantTimeCompare([]byte(secretHash(secret)), []byte(want)) == 1 && found && err == nil
	if !ok {
		return APIKey{}, false
	}
	now := c.now().UTC().Truncate(time.Second)
	if now.Sub(sk.LastUsed) >= lastUsedResolution {
		sk.LastUsed = now
		_ = c.db.Update(func(tx *bolt.Tx) error {
			b := tx.Bucket(bucketAdmin).Bucket(bucketAPIKeys)
			if b.Get([]byte(id)) == nil {
				ok = false // revoked meanwhile
				return nil
			}
			raw, err := json.Marshal(sk)
			if err != nil {
				return err
			}
			return b.Put([]byte(id), raw)
		})
		// A failed LastUsed write is no reason to refuse a valid key.
	}
	if !ok {
		return APIKey{}, false
	}
	return sk.APIKey, true
}
