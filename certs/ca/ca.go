// Package ca is the gateway's local certificate authority: a self-signed root
// and an intermediate issuer kept in the process's bbolt store, which issue the
// listener certificate and client certificates for sensors.
//
// The root is the gateway's trust anchor that sensors pin (see
// [Authority.RootFingerprint] and [Authority.TrustBundlePEM]); it only ever
// signs intermediates. Leaves are signed by the intermediate and served with it
// in their chain, so the root key is needed only when the intermediate is
// replaced.
//
// Keys are stored as plain PKCS#8 in bucket "ca" for now; the "certificate
// manager" issue adds encryption at rest with the device key. CRLs, RSA keys
// and a bring-your-own issuer are added by a later issue.
package ca

import (
	"crypto"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"go.etcd.io/bbolt"
)

// Lifetimes of the certificates the authority creates.
const (
	RootValidity         = 10 * 365 * 24 * time.Hour
	IntermediateValidity = 3 * 365 * 24 * time.Hour
	// ServerValidity is the lifetime of the listener certificate issued by
	// [Authority.LoadOrIssueServer].
	ServerValidity = 90 * 24 * time.Hour
	// DefaultLeafValidity is used when a leaf is requested with a zero validity.
	DefaultLeafValidity = 90 * 24 * time.Hour
)

// backdate is subtracted from NotBefore so that a peer whose clock is slightly
// behind the gateway's does not see a freshly issued certificate as not yet valid.
const backdate = 5 * time.Minute

// ErrCorrupt is returned (wrapped) when an entry of the "ca" bucket cannot be
// decoded or is inconsistent, e.g. a key that does not match its certificate.
var ErrCorrupt = errors.New("corrupt CA store entry")

// Options configures [Open].
type Options struct {
	// DeviceName goes into the subject of the root and the intermediate. It is
	// required the first time, when the CA is created; afterwards the stored
	// root is used whatever the name (renaming a device does not change its
	// trust anchor).
	DeviceName string
	// Now returns the current time; nil means time.Now. Tests use it to move
	// through certificate lifetimes.
	Now func() time.Time
	// Logger receives lifecycle events (CA created, certificate issued). Nil
	// discards them. Key material is never logged.
	Logger *slog.Logger
}

// Authority is the local CA loaded from the store. It is safe for concurrent use.
type Authority struct {
	db  *bbolt.DB
	now func() time.Time
	log *slog.Logger

	root, intermediate       *x509.Certificate
	rootKey, intermediateKey crypto.Signer
	rootFingerprint          string

	// serverMu serialises LoadOrIssueServer so that concurrent callers do not
	// each issue and store a listener certificate.
	serverMu sync.Mutex
}

// Open loads the CA from bucket "ca" of db, creating the root and the
// intermediate on first use. An intermediate that is missing or has less than
// a third of its lifetime left is replaced (signed by the stored root), so a
// gateway that runs for years keeps a valid issuer.
//
// Open does not close db; the caller owns it.
func Open(db *bbolt.DB, opts Options) (*Authority, error) {
	if db == nil {
		return nil, errors.New("ca: open: nil database")
	}
	a := &Authority{db: db, now: opts.Now, log: opts.Logger}
	if a.now == nil {
		a.now = time.Now
	}
	if a.log == nil {
		a.log = slog.New(slog.DiscardHandler)
	}

	var root, inter *storedPair
	err := db.View(func(tx *bbolt.Tx) error {
		var err error
		b := tx.Bucket(bucketCA)
		if b == nil {
			return nil
		}
		if root, err = loadPair(b, keyRoot); err != nil {
			return fmt.Errorf("load root: %w", err)
		}
		if inter, err = loadPair(b, keyIntermediate); err != nil {
			return fmt.Errorf("load intermediate: %w", err)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("ca: open: %w", err)
	}

	if root == nil {
		if inter != nil {
			// Creating a new root would silently orphan every certificate
			// issued so far; that needs a human.
			return nil, fmt.Errorf("ca: open: load root: %w: intermediate present without root", ErrCorrupt)
		}
		if err := a.create(opts.DeviceName); err != nil {
			return nil, err
		}
	} else {
		if err := checkRoot(root.cert); err != nil {
			return nil, fmt.Errorf("ca: open: load root: %w: %w", ErrCorrupt, err)
		}
		a.root, a.rootKey = root.cert, root.key
		if inter != nil {
			if err := checkIntermediate(inter.cert, root.cert); err != nil {
				return nil, fmt.Errorf("ca: open: load intermediate: %w: %w", ErrCorrupt, err)
			}
			a.intermediate, a.intermediateKey = inter.cert, inter.key
		}
		if inter == nil || needsRenewal(inter.cert, a.now()) {
			if err := a.replaceIntermediate(deviceNameOf(root.cert, opts.DeviceName)); err != nil {
				return nil, err
			}
		}
	}
	a.rootFingerprint = fingerprint(a.root.Raw)
	return a, nil
}

// create makes the root and the intermediate and stores both in one
// transaction, so a crash never leaves a root without an issuer.
func (a *Authority) create(device string) error {
	device = strings.TrimSpace(device)
	if device == "" {
		return errors.New("ca: create root: Options.DeviceName is required to create the CA")
	}
	now := a.now()
	rootKey, err := newKey()
	if err != nil {
		return fmt.Errorf("ca: create root: %w", err)
	}
	root, err := createCA(rootTemplate(device, now), nil, nil, rootKey)
	if err != nil {
		return fmt.Errorf("ca: create root: %w", err)
	}
	interKey, err := newKey()
	if err != nil {
		return fmt.Errorf("ca: create intermediate: %w", err)
	}
	inter, err := createCA(intermediateTemplate(device, now), root, rootKey, interKey)
	if err != nil {
		return fmt.Errorf("ca: create intermediate: %w", err)
	}
	err = a.db.Update(func(tx *bbolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists(bucketCA)
		if err != nil {
			return err
		}
		if b.Bucket(keyRoot) != nil || b.Get(keyRoot) != nil {
			// Another Open on the same DB won the race; refuse rather than
			// overwrite a trust anchor sensors may already pin.
			return errors.New("root created concurrently")
		}
		if err := storePair(b, keyRoot, root, rootKey); err != nil {
			return err
		}
		return storePair(b, keyIntermediate, inter, interKey)
	})
	if err != nil {
		return fmt.Errorf("ca: create root: store: %w", err)
	}
	a.root, a.rootKey = root, rootKey
	a.intermediate, a.intermediateKey = inter, interKey
	a.log.Info("created local CA",
		"root_subject", root.Subject.CommonName,
		"root_fingerprint", fingerprint(root.Raw),
		"root_not_after", root.NotAfter,
		"intermediate_not_after", inter.NotAfter)
	return nil
}

// replaceIntermediate issues a new intermediate from the loaded root and
// stores it. Certificates issued by the previous intermediate stay valid: they
// carry it in their chain and it still chains to the same root.
func (a *Authority) replaceIntermediate(device string) error {
	key, err := newKey()
	if err != nil {
		return fmt.Errorf("ca: create intermediate: %w", err)
	}
	inter, err := createCA(intermediateTemplate(device, a.now()), a.root, a.rootKey, key)
	if err != nil {
		return fmt.Errorf("ca: create intermediate: %w", err)
	}
	err = a.db.Update(func(tx *bbolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists(bucketCA)
		if err != nil {
			return err
		}
		return storePair(b, keyIntermediate, inter, key)
	})
	if err != nil {
		return fmt.Errorf("ca: create intermediate: store: %w", err)
	}
	old := a.intermediate
	a.intermediate, a.intermediateKey = inter, key
	attrs := []any{"intermediate_serial", serialHex(inter), "intermediate_not_after", inter.NotAfter}
	if old != nil {
		attrs = append(attrs, "previous_serial", serialHex(old), "previous_not_after", old.NotAfter)
	}
	a.log.Info("issued intermediate", attrs...)
	return nil
}

// Root returns the self-signed root certificate. Callers must not modify it.
func (a *Authority) Root() *x509.Certificate { return a.root }

// Intermediate returns the issuing intermediate certificate. Callers must not
// modify it.
func (a *Authority) Intermediate() *x509.Certificate { return a.intermediate }

// RootFingerprint returns the SHA-256 fingerprint of the root certificate as
// uppercase hex bytes separated by colons, the format of
// `openssl x509 -fingerprint -sha256`, for users to compare on a sensor.
func (a *Authority) RootFingerprint() string { return a.rootFingerprint }

// TrustBundlePEM returns the root certificate PEM-encoded: what a sensor
// installs to trust the gateway. The intermediate is not included; servers
// send it in their chain.
func (a *Authority) TrustBundlePEM() []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: a.root.Raw})
}

// Pool returns a new pool holding only the root, for verifying client
// certificates (whose chains carry the intermediate) or the gateway's own
// server certificate. Each call returns a fresh pool the caller may extend.
func (a *Authority) Pool() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(a.root)
	return p
}

func fingerprint(der []byte) string {
	sum := sha256.Sum256(der)
	h := strings.ToUpper(hex.EncodeToString(sum[:]))
	var b strings.Builder
	b.Grow(len(h) + len(h)/2)
	for i := 0; i < len(h); i += 2 {
		if i > 0 {
			b.WriteByte(':')
		}
		b.WriteString(h[i : i+2])
	}
	return b.String()
}

func serialHex(c *x509.Certificate) string { return c.SerialNumber.Text(16) }
