package auth

import (
	"crypto/md5" //nolint:gosec // verifying legacy EMQ password hashes users bring along, never for new ones
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha1" //nolint:gosec // verifying legacy EMQ password hashes users bring along, never for new ones
	"crypto/sha256"
	"crypto/sha512"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"strconv"
	"strings"

	"golang.org/x/crypto/bcrypt"

	"github.com/edgegate/edgegate/gateway/config"
)

// The stored hash format is described in the package documentation.

// DefaultPBKDF2Iterations is the PBKDF2 work factor NewHash uses when given
// none, and the one ImportHash uses to hash an imported plain password.
const DefaultPBKDF2Iterations = 100_000

// minNewPBKDF2Iterations keeps NewHash from making a hash that is cheap to
// brute-force by mistake (a caller passing 1).
const minNewPBKDF2Iterations = 1000

// Work-factor ceilings for verification: a stored hash is trusted data, but
// a CONNECT must not be able to cost the gateway minutes of CPU because of a
// typo in an imported value.
const (
	maxPBKDF2Iterations = 10_000_000
	maxBcryptCost       = 16
)

// Size limits of stored salts and derived keys.
const (
	maxSaltLen  = 1024
	maxPBKDF2DK = 128
)

// bcryptMaxPassword is bcrypt's key length; longer passwords are refused by
// NewHash rather than silently truncated.
const bcryptMaxPassword = 72

// ErrUnknownHashKind is returned by NewHash and ImportHash for a hash kind
// they do not know.
var ErrUnknownHashKind = errors.New("unknown password hash kind")

// ErrInvalidHash is returned by ImportHash, Users.Add and Users.SetPassword
// when a hash value is malformed.
var ErrInvalidHash = errors.New("invalid password hash")

// ErrInvalidPassword is returned by NewHash for an empty password, or for a
// bcrypt password longer than 72 bytes.
var ErrInvalidPassword = errors.New("invalid password")

// Salt positions of the digest kinds.
const (
	SaltNone   = "none"
	SaltPrefix = "prefix"
	SaltSuffix = "suffix"
)

// digests are the kinds with a plain digest, by stored name.
var digests = map[string]func() hash.Hash{
	"md5":    md5.New,
	"sha1":   sha1.New,
	"sha256": sha256.New,
	"sha512": sha512.New,
}

// pbkdf2MACs are PBKDF2's HMAC hash functions, by stored name suffix.
var pbkdf2MACs = map[string]func() hash.Hash{
	"sha1":   sha1.New,
	"sha256": sha256.New,
	"sha512": sha512.New,
}

// storedHash is a parsed stored hash.
type storedHash struct {
	kind    string // a digests key, "pbkdf2-<mac>" or "bcrypt"
	saltPos string // digest kinds
	salt    []byte // digest and pbkdf2 kinds
	sum     []byte // digest or derived key; the whole value for bcrypt
	iter    int    // pbkdf2
	mac     func() hash.Hash
}

// NewHash hashes password for storage with kind config.HashPBKDF2SHA256
// (iterations 0 means DefaultPBKDF2Iterations) or config.HashBcrypt (cost
// bcrypt.DefaultCost; iterations is ignored).
func NewHash(kind, password string, iterations int) (string, error) {
	if password == "" {
		return "", fmt.Errorf("%w: empty", ErrInvalidPassword)
	}
	switch kind {
	case config.HashPBKDF2SHA256:
		if iterations == 0 {
			iterations = DefaultPBKDF2Iterations
		}
		if iterations < minNewPBKDF2Iterations || iterations > maxPBKDF2Iterations {
			return "", fmt.Errorf("pbkdf2 iterations %d: must be between %d and %d", iterations, minNewPBKDF2Iterations, maxPBKDF2Iterations)
		}
		salt := make([]byte, 16)
		_, _ = rand.Read(salt) // crypto/rand.Read never fails
		dk, err := pbkdf2.Key(sha256.New, password, salt, iterations, sha256.Size)
		if err != nil {
			return "", fmt.Errorf("pbkdf2: %w", err)
		}
		return formatPBKDF2("sha256", iterations, salt, dk), nil
	case config.HashBcrypt:
		if len(password) > bcryptMaxPassword {
			return "", fmt.Errorf("%w: bcrypt takes at most %d bytes", ErrInvalidPassword, bcryptMaxPassword)
		}
		h, err := bcrypt.GenerateFromPassword([]byte(password), bcrypt.DefaultCost)
		if err != nil {
			return "", fmt.Errorf("bcrypt: %w", err)
		}
		return string(h), nil
	}
	return "", fmt.Errorf("%w %q for a new password: use %s or %s", ErrUnknownHashKind, kind, config.HashPBKDF2SHA256, config.HashBcrypt)
}

// ImportHash converts a password hash taken from an EMQ database (or any
// system using the same schemes) to the stored format. kind is EMQ's
// password_hash value:
//
//   - "plain": hash is the password itself; it is hashed with pbkdf2-sha256
//     and DefaultPBKDF2Iterations, so no plain text is stored.
//   - "md5", "sha" (or "sha1"), "sha256", "sha512": hash is the hex (or
//     base64) digest of salt+password (saltPos "prefix"), password+salt
//     ("suffix") or the password alone ("" or "none", salt must be empty).
//     EMQ's "salt sha256" and "sha256 salt" spellings are accepted too.
//   - "pbkdf2,<mac>,<iterations>[,<dklen>]" (EMQ's syntax, mac sha, sha1,
//     sha256 or sha512): hash is the hex (or base64) derived key.
//   - "bcrypt": hash is the $2a$/$2b$/$2y$ value; salt, when given, must be
//     its first 29 characters (EMQ keeps it in a separate column).
//   - "" or "pbkdf2-<mac>": hash is already in the stored format (an
//     edgegate export, or a hash made by NewHash elsewhere).
//
// salt is the salt column's value as it is (its bytes are hashed, it is not
// decoded).
func ImportHash(kind, hash, salt, saltPos string) (string, error) {
	kind = strings.ToLower(strings.TrimSpace(kind))
	saltPos = strings.ToLower(strings.TrimSpace(saltPos))
	hash = strings.TrimSpace(hash)
	if f := strings.Fields(kind); len(f) == 2 && saltPos == "" {
		switch {
		case f[0] == "salt":
			kind, saltPos = f[1], SaltPrefix
		case f[1] == "salt":
			kind, saltPos = f[0], SaltSuffix
		}
	}
	if len(salt) > maxSaltLen {
		return "", fmt.Errorf("%w: salt longer than %d bytes", ErrInvalidHash, maxSaltLen)
	}
	switch {
	case kind == "" || strings.HasPrefix(kind, "pbkdf2-"):
		h, err := parseStoredHash(hash)
		if err != nil {
			return "", err
		}
		if kind != "" && h.kind != kind {
			return "", fmt.Errorf("%w: %s hash given as %s", ErrInvalidHash, h.kind, kind)
		}
		return h.String(), nil
	case kind == "plain":
		if salt != "" {
			return "", fmt.Errorf("%w: a plain password has no salt", ErrInvalidHash)
		}
		return NewHash(config.HashPBKDF2SHA256, hash, DefaultPBKDF2Iterations)
	case kind == "bcrypt":
		h, err := parseBcrypt(hash)
		if err != nil {
			return "", err
		}
		if salt != "" && !strings.HasPrefix(hash, salt) {
			return "", fmt.Errorf("%w: bcrypt salt is not the hash's prefix", ErrInvalidHash)
		}
		return h.String(), nil
	case kind == "pbkdf2" || strings.HasPrefix(kind, "pbkdf2,"):
		return importPBKDF2(kind, hash, salt, saltPos)
	}
	if kind == "sha" {
		kind = "sha1"
	}
	newHash, ok := digests[kind]
	if !ok {
		return "", fmt.Errorf("%w %q", ErrUnknownHashKind, kind)
	}
	switch saltPos {
	case "", SaltNone:
		if salt != "" {
			return "", fmt.Errorf("%w: salt given without a salt position (prefix or suffix)", ErrInvalidHash)
		}
		saltPos = SaltNone
	case SaltPrefix, SaltSuffix:
	default:
		return "", fmt.Errorf("%w: salt position %q: must be prefix, suffix or none", ErrInvalidHash, saltPos)
	}
	sum, err := decodeDigest(hash, newHash().Size())
	if err != nil {
		return "", err
	}
	h := storedHash{kind: kind, saltPos: saltPos, salt: []byte(salt), sum: sum}
	return h.String(), nil
}

// importPBKDF2 imports EMQ's "pbkdf2,<mac>,<iterations>[,<dklen>]".
func importPBKDF2(kind, hash, salt, saltPos string) (string, error) {
	if saltPos != "" && saltPos != SaltNone {
		return "", fmt.Errorf("%w: pbkdf2 has no salt position", ErrInvalidHash)
	}
	f := strings.Split(kind, ",")
	if len(f) < 3 || len(f) > 4 {
		return "", fmt.Errorf("%w: pbkdf2 kind must be pbkdf2,<mac>,<iterations>[,<dklen>]", ErrUnknownHashKind)
	}
	mac := strings.TrimSpace(f[1])
	if mac == "sha" {
		mac = "sha1"
	}
	if _, ok := pbkdf2MACs[mac]; !ok {
		return "", fmt.Errorf("%w: pbkdf2 mac %q: must be sha1, sha256 or sha512", ErrUnknownHashKind, mac)
	}
	iter, err := strconv.Atoi(strings.TrimSpace(f[2]))
	if err != nil || iter < 1 || iter > maxPBKDF2Iterations {
		return "", fmt.Errorf("%w: pbkdf2 iterations %q", ErrInvalidHash, f[2])
	}
	dkLen := -1
	if len(f) == 4 {
		dkLen, err = strconv.Atoi(strings.TrimSpace(f[3]))
		if err != nil || dkLen < 1 || dkLen > maxPBKDF2DK {
			return "", fmt.Errorf("%w: pbkdf2 dklen %q", ErrInvalidHash, f[3])
		}
	}
	dk, err := decodeDigest(hash, dkLen)
	if err != nil {
		return "", err
	}
	if len(dk) > maxPBKDF2DK {
		return "", fmt.Errorf("%w: pbkdf2 key longer than %d bytes", ErrInvalidHash, maxPBKDF2DK)
	}
	return formatPBKDF2(mac, iter, []byte(salt), dk), nil
}

// decodeDigest decodes a hex or base64 digest of size bytes (any size when
// size < 0).
func decodeDigest(s string, size int) ([]byte, error) {
	if b, err := hex.DecodeString(s); err == nil && len(b) > 0 && (size < 0 || len(b) == size) {
		return b, nil
	}
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if b, err := enc.DecodeString(s); err == nil && len(b) > 0 && (size < 0 || len(b) == size) {
			return b, nil
		}
	}
	if size < 0 {
		return nil, fmt.Errorf("%w: digest is neither hex nor base64", ErrInvalidHash)
	}
	return nil, fmt.Errorf("%w: digest is not %d bytes in hex or base64", ErrInvalidHash, size)
}

func formatPBKDF2(mac string, iter int, salt, dk []byte) string {
	return "pbkdf2-" + mac + "$" + strconv.Itoa(iter) + "$" +
		base64.RawStdEncoding.EncodeToString(salt) + "$" + base64.RawStdEncoding.EncodeToString(dk)
}

// String returns h in the stored format.
func (h *storedHash) String() string {
	switch {
	case h.kind == "bcrypt":
		return string(h.sum)
	case strings.HasPrefix(h.kind, "pbkdf2-"):
		return formatPBKDF2(strings.TrimPrefix(h.kind, "pbkdf2-"), h.iter, h.salt, h.sum)
	}
	return h.kind + "$" + h.saltPos + "$" + hex.EncodeToString(h.salt) + "$" + hex.EncodeToString(h.sum)
}

// parseStoredHash parses a stored hash.
func parseStoredHash(s string) (*storedHash, error) {
	if strings.HasPrefix(s, "$2") {
		return parseBcrypt(s)
	}
	f := strings.Split(s, "$")
	if len(f) != 4 {
		return nil, fmt.Errorf("%w: not <kind>$…$…$…", ErrInvalidHash)
	}
	if mac, ok := strings.CutPrefix(f[0], "pbkdf2-"); ok {
		newMAC, ok := pbkdf2MACs[mac]
		if !ok {
			return nil, fmt.Errorf("%w: pbkdf2 mac %q", ErrUnknownHashKind, mac)
		}
		iter, err := strconv.Atoi(f[1])
		if err != nil || iter < 1 || iter > maxPBKDF2Iterations || strconv.Itoa(iter) != f[1] {
			return nil, fmt.Errorf("%w: pbkdf2 iterations", ErrInvalidHash)
		}
		salt, err1 := base64.RawStdEncoding.DecodeString(strings.TrimRight(f[2], "="))
		dk, err2 := base64.RawStdEncoding.DecodeString(strings.TrimRight(f[3], "="))
		if err1 != nil || err2 != nil || len(salt) > maxSaltLen || len(dk) == 0 || len(dk) > maxPBKDF2DK {
			return nil, fmt.Errorf("%w: pbkdf2 salt or key", ErrInvalidHash)
		}
		return &storedHash{kind: f[0], salt: salt, sum: dk, iter: iter, mac: newMAC}, nil
	}
	newHash, ok := digests[f[0]]
	if !ok {
		return nil, fmt.Errorf("%w %q", ErrUnknownHashKind, f[0])
	}
	h := &storedHash{kind: f[0], saltPos: f[1]}
	var err error
	if h.salt, err = hex.DecodeString(f[2]); err != nil || len(h.salt) > maxSaltLen {
		return nil, fmt.Errorf("%w: salt is not hex", ErrInvalidHash)
	}
	switch h.saltPos {
	case SaltNone:
		if len(h.salt) != 0 {
			return nil, fmt.Errorf("%w: salt with position none", ErrInvalidHash)
		}
	case SaltPrefix, SaltSuffix:
	default:
		return nil, fmt.Errorf("%w: salt position %q", ErrInvalidHash, h.saltPos)
	}
	if h.sum, err = hex.DecodeString(f[3]); err != nil || len(h.sum) != newHash().Size() {
		return nil, fmt.Errorf("%w: %s digest", ErrInvalidHash, h.kind)
	}
	h.mac = newHash
	return h, nil
}

// bcryptAlphabet is bcrypt's base64 alphabet.
const bcryptAlphabet = "./ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"

// parseBcrypt checks a bcrypt hash, including a cost verification can
// afford.
func parseBcrypt(s string) (*storedHash, error) {
	cost, err := bcrypt.Cost([]byte(s))
	if err != nil || len(s) != 60 || s[6] != '$' || strings.Trim(s[7:], bcryptAlphabet) != "" {
		return nil, fmt.Errorf("%w: not a bcrypt hash", ErrInvalidHash)
	}
	if cost > maxBcryptCost {
		return nil, fmt.Errorf("%w: bcrypt cost %d is above %d", ErrInvalidHash, cost, maxBcryptCost)
	}
	return &storedHash{kind: "bcrypt", sum: []byte(s)}, nil
}

// VerifyPassword reports whether password matches the stored hash. A
// malformed or empty stored value matches nothing. The comparison is
// constant-time in the password; what it costs depends only on the stored
// hash.
func VerifyPassword(stored, password string) bool {
	h, err := parseStoredHash(stored)
	if err != nil {
		return false
	}
	return h.verify(password)
}

func (h *storedHash) verify(password string) bool {
	var sum []byte
	switch {
	case h.kind == "bcrypt":
		return bcrypt.CompareHashAndPassword(h.sum, []byte(password)) == nil
	case strings.HasPrefix(h.kind, "pbkdf2-"):
		dk, err := pbkdf2.Key(h.mac, password, h.salt, h.iter, len(h.sum))
		if err != nil {
			return false
		}
		sum = dk
	default:
		d := h.mac()
		if h.saltPos == SaltPrefix {
			d.Write(h.salt)
		}
		d.Write([]byte(password))
		if h.saltPos == SaltSuffix {
			d.Write(h.salt)
		}
		sum = d.Sum(nil)
	}
	return subtle.ConstantTimeCompare(sum, h.sum) == 1
}
