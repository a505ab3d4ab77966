package admin

import (
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/edgegate/edgegate/gateway/auth"
)

// Credentials made elsewhere, e.g. carried by a signed provisioning bundle,
// arrive as hashes: the password or secret itself never travels.

// ErrInvalidPasswordHash is returned by CheckAdminPasswordHash and
// SetAdminPasswordHash for a hash not in the form the admin password is
// stored in.
var ErrInvalidPasswordHash = errors.New("admin: invalid admin password hash")

// ErrInvalidAPIKey is returned by CheckAPIKeyImport and ImportAPIKey for an
// id or secret hash not in the form API keys are kept in.
var ErrInvalidAPIKey = errors.New("admin: invalid API key")

// Bounds of an imported admin password hash: at least the work factor the
// settings allow (auth.pbkdf2_iterations) and the salt NewHash makes, the
// derived key of SHA-256's size.
const (
	minImportIterations = 10_000
	maxImportIterations = 10_000_000
	minImportSalt       = 16
)

// CheckAdminPasswordHash returns an error wrapping ErrInvalidPasswordHash
// unless hash is what the admin password is stored as:
// "pbkdf2-sha256$<iterations>$<salt>$<key>" (unpadded standard base64),
// with 10000 to 10000000 iterations, a salt of at least 16 bytes and a
// 32-byte key. The password policy cannot be checked on a hash; whoever
// made it (edgegate provision hash-password) checked it.
func CheckAdminPasswordHash(hash string) error {
	bad := func(why string) error { return fmt.Errorf("%w: %s", ErrInvalidPasswordHash, why) }
	f := strings.Split(hash, "$")
	if len(f) != 4 || f[0] != "pbkdf2-sha256" {
		return bad("not pbkdf2-sha256$<iterations>$<salt>$<key>")
	}
	iter, err := strconv.Atoi(f[1])
	if err != nil || strconv.Itoa(iter) != f[1] || iter < minImportIterations || iter > maxImportIterations {
		return bad(fmt.Sprintf("iterations must be a number from %d to %d", minImportIterations, maxImportIterations))
	}
	salt, err := base64.RawStdEncoding.DecodeString(f[2])
	if err != nil || len(salt) < minImportSalt {
		return bad(fmt.Sprintf("the salt must be at least %d bytes in unpadded base64", minImportSalt))
	}
	key, err := base64.RawStdEncoding.DecodeString(f[3])
	if err != nil || len(key) != 32 {
		return bad("the key must be 32 bytes in unpadded base64")
	}
	// The verifier must accept what passed here.
	if _, err := auth.ImportHash("", hash, "", ""); err != nil {
		return bad(err.Error())
	}
	return nil
}

// SetAdminPasswordHash makes hash (see CheckAdminPasswordHash) the admin
// password. Before setup it completes the setup: the setup code is
// consumed, as by CompleteSetup.
func (c *Credentials) SetAdminPasswordHash(hash string) error {
	if err := CheckAdminPasswordHash(hash); err != nil {
		return err
	}
	err := c.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketAdmin)
		if err := b.Delete(keySetupCode); err != nil {
			return err
		}
		return b.Put(keyPassword, []byte(hash))
	})
	if err != nil {
		return fmt.Errorf("admin: store password hash: %w", err)
	}
	c.mu.Lock()
	c.setupCode, c.setupHash = "", ""
	c.mu.Unlock()
	return nil
}

// importedKeyID is the form of an imported key's id: the prefix and what
// CreateAPIKey's ids are made of, plus '_' and '-' so a fleet can name its
// keys ("egk_fleet-monitor").
var importedKeyID = regexp.MustCompile(`^` + APIKeyPrefix + `[a-z0-9_-]{1,60}$`)

// CheckAPIKeyImport validates a key for ImportAPIKey and returns it as it
// would be stored: the name trimmed, the scopes sorted. secretHash is the
// hex SHA-256 of the secret. It returns errors wrapping ErrInvalidAPIKey,
// ErrInvalidAPIKeyName or ErrInvalidScope.
func CheckAPIKeyImport(k APIKey, secretHash string) (APIKey, error) {
	if !importedKeyID.MatchString(k.ID) {
		return APIKey{}, fmt.Errorf("%w: id %q: must be %q and 1-60 of a-z, 0-9, '_', '-'", ErrInvalidAPIKey, k.ID, APIKeyPrefix)
	}
	if b, err := hex.DecodeString(secretHash); err != nil || len(b) != 32 {
		return APIKey{}, fmt.Errorf("%w: the secret hash must be the hex SHA-256 of the secret", ErrInvalidAPIKey)
	}
	name, err := checkKeyNameAndScopes(k.Name, k.Scopes)
	if err != nil {
		return APIKey{}, err
	}
	return APIKey{ID: k.ID, Name: name, Scopes: slices.Compact(slices.Sorted(slices.Values(k.Scopes)))}, nil
}

// ImportAPIKey stores a key whose secret was made elsewhere, given the hex
// SHA-256 of the secret. A key with the same id is replaced, keeping when
// it was created and last used, so importing the same key twice changes
// nothing.
func (c *Credentials) ImportAPIKey(k APIKey, secretHash string) error {
	k, err := CheckAPIKeyImport(k, secretHash)
	if err != nil {
		return err
	}
	sk := storedKey{APIKey: k, SecretHash: strings.ToLower(secretHash)}
	err = c.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketAdmin).Bucket(bucketAPIKeys)
		sk.Created = c.now().UTC().Truncate(time.Second)
		if old := b.Get([]byte(k.ID)); old != nil {
			var prev storedKey
			if err := json.Unmarshal(old, &prev); err != nil {
				return fmt.Errorf("decode API key %q: %w", k.ID, err)
			}
			sk.Created, sk.LastUsed = prev.Created, prev.LastUsed
		}
		raw, err := json.Marshal(sk)
		if err != nil {
			return err
		}
		return b.Put([]byte(k.ID), raw)
	})
	if err != nil {
		return fmt.Errorf("admin: import API key: %w", err)
	}
	return nil
}
