package vault

import "errors"

// ErrForbidden is returned when the vault refuses a request (HTTP 403,
// "permission denied"), or refuses a login, after a relogin when the auth
// method allows one.
var ErrForbidden = errors.New("vault: permission denied")

// ErrReadOnly is returned when the vault refuses a write because the token's
// policy does not allow it. Errors matching it also match ErrForbidden.
var ErrReadOnly = errors.New("vault: write refused by policy")

// ErrNotFound is returned when a secret, or the requested version of it, does
// not exist or has been deleted.
var ErrNotFound = errors.New("vault: not found")

// ErrConflict is returned when a write lost a check-and-set race: the secret
// got a new version between reading its metadata and writing.
var ErrConflict = errors.New("vault: check-and-set conflict")

// ErrUnavailable is returned when the vault cannot be reached or cannot
// answer: connection refused, timeout, a 5xx status (503 when sealed) or 429.
var ErrUnavailable = errors.New("vault: unavailable")

// ErrBadResponse is returned when the vault answers something this package
// cannot use: a body that is not JSON, JSON not in the documented shape, a
// body over the size limit, too many list keys or an unexpected status.
var ErrBadResponse = errors.New("vault: bad response")
