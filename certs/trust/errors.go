package trust

import (
	"errors"
	"fmt"
	"strings"
)

// ErrNotFound is returned when no version or entry has the requested
// number or id, or when there is no previous version to roll back to.
var ErrNotFound = errors.New("trust: not found")

// ErrNoStaged is returned by Apply and Discard when no version is staged.
var ErrNoStaged = errors.New("trust: no staged version")

// ErrInvalid is returned (wrapped, with what is wrong) when input is
// refused: a list name, a bundle that does not parse, an upload whose name
// is taken by a vault entry, a vault set that names a secret twice.
var ErrInvalid = errors.New("trust: invalid input")

// ErrStale is returned by Apply when the version asked for is not the
// staged one (it was replaced, discarded or applied meanwhile).
var ErrStale = errors.New("trust: version is not the staged one")

// ErrTooLarge is returned (wrapped) when a bundle exceeds MaxBundleSize.
var ErrTooLarge = errors.New("trust: bundle too large")

// ErrRevoked is returned (wrapped, naming the serial) by
// Snapshot.CheckRevocation when a certificate of the chain is revoked.
var ErrRevoked = errors.New("trust: certificate revoked")

// ErrNotPublished is returned by a Publisher that does not publish (vault
// publishing is off). Apply then keeps the entry upload-sourced and records
// no PublishError.
var ErrNotPublished = errors.New("trust: publishing to the vault is off")

// ErrCorrupt is returned (wrapped) when a stored version cannot be decoded.
var ErrCorrupt = errors.New("trust: corrupt store entry")

// ConfirmationError is returned by Apply and Rollback, without changing
// anything, when the version would remove CAs that authenticate connected
// sessions, or empty a trust list that is not empty now, and the caller did
// not set ApplyOptions.Confirm. Retrying with Confirm goes ahead.
type ConfirmationError struct {
	// Version is the version to apply (0 for a rollback not yet numbered).
	Version uint64
	// Sessions counts the connected sessions using the removed CAs.
	Sessions int
	// CAs names the removed CAs that connected sessions use.
	CAs []string
	// EmptiesTrustList is set when the trust list would become empty.
	EmptiesTrustList bool
}

func (e *ConfirmationError) Error() string {
	var why []string
	if e.Sessions > 0 {
		why = append(why, fmt.Sprintf("it removes CAs used by %d connected sessions (%s)", e.Sessions, strings.Join(e.CAs, ", ")))
	}
	if e.EmptiesTrustList {
		why = append(why, "it empties the trust list")
	}
	return "trust: applying needs confirmation: " + strings.Join(why, " and ")
}
