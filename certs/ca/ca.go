// Package ca is the gateway's local certificate authority: a self-signed root
// and an intermediate issuer kept in the process's bbolt store, which issue the
// listener certificate and certificates for sensors, sign CSRs, revoke and
// publish CRLs.
//
// The root is the gateway's trust anchor that sensors pin (see
// [Authority.RootFingerprint] and [Authority.TrustBundlePEM]); it only ever
// signs intermediates. Leaves are signed by the intermediate and served with it
// in their chain, so the root key is needed only when the intermediate is
// replaced.
//
// Lifecycle, driven by [Authority.Maintain] (and once by [Open]):
//
//   - The intermediate is replaced when a third of its lifetime is left. The
//     previous one is kept until it expires: its leaves keep verifying, it
//     keeps its CRL, and [Authority.ChainFor] still finds their chain.
//   - The root lives ten years and is replaced only by
//     [Authority.RotateRoot]; the old root stays in the trust bundle for an
//     overlap ([Options.RootOverlap]) or until
//     [Authority.FinishRootRotation]. Maintain reports when it is due.
//   - An operator can bring an enterprise intermediate
//     ([Authority.ImportIssuer]); it then issues new leaves until
//     [Authority.UseLocalIssuer] or its expiry.
//   - Every issuer has a CRL, re-signed on each revocation and before half
//     of its validity has passed.
//
// Private keys are sealed at rest with the device key ([Options.Sealer]).
package ca

import (
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.etcd.io/bbolt"

	"github.com/edgegate/edgegate/certs/keyseal"
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
	// DefaultCAValidity is used when a CA certificate is requested with a
	// zero validity (IssueRequest with CA set).
	DefaultCAValidity = IntermediateValidity
	// DefaultCRLValidity is the default time between a CRL's ThisUpdate and
	// NextUpdate. A CRL is re-signed when less than half of it is left.
	DefaultCRLValidity = 7 * 24 * time.Hour
	// DefaultRootOverlap is how long a root replaced by RotateRoot stays in
	// the trust bundle by default: the default leaf lifetime, so that every
	// default leaf issued under the old root expires before its anchor goes.
	DefaultRootOverlap = DefaultLeafValidity
)

// backdate is subtracted from NotBefore (and a CRL's ThisUpdate) so that a
// peer whose clock is slightly behind the gateway's does not see a freshly
// issued certificate as not yet valid.
const backdate = 5 * time.Minute

// ErrCorrupt is returned (wrapped) when an entry of the "ca" bucket cannot be
// decoded or is inconsistent, e.g. a key that does not match its certificate
// or a sealed key that does not open with the device key.
var ErrCorrupt = errors.New("corrupt CA store entry")

// ErrSealerRequired is returned (wrapped) by Open when the store holds
// sealed private keys and Options.Sealer is nil.
var ErrSealerRequired = errors.New("store holds sealed keys: Options.Sealer is required")

// ErrInvalidRequest is returned (wrapped, with what is wrong) when a
// request is malformed: a bad subject DN, host, key type, signature
// algorithm, validity, path length, CSR or revocation reason. Its message
// names the offending input and may be shown to the user who sent it.
var ErrInvalidRequest = errors.New("invalid request")

// ErrNotCA is returned (wrapped) when a certificate given as an issuer
// cannot sign what is asked: it is not a CA, lacks the certSign (or, for an
// imported issuer, cRLSign) key usage, or its path length forbids signing a
// CA certificate.
var ErrNotCA = errors.New("issuer is not a usable CA")

// ErrExpired is returned (wrapped) when an issuer, or a certificate of a
// chain to import, is outside its validity period.
var ErrExpired = errors.New("certificate expired or not yet valid")

// ErrKeyMismatch is returned (wrapped) when a private key does not belong
// to the certificate it comes with.
var ErrKeyMismatch = errors.New("key does not match certificate")

// ErrChainInvalid is returned (wrapped) when a certificate chain does not
// link up (each certificate signed by the next) or does not verify to its
// root.
var ErrChainInvalid = errors.New("certificate chain does not verify")

// ErrUnknownCertificate is returned (wrapped) when a revocation or a chain
// lookup names a certificate none of the authority's current issuers signed,
// or a serial it has no record of issuing.
var ErrUnknownCertificate = errors.New("certificate not issued by this authority")

// ErrRotationInProgress is returned by RotateRoot while the previous root
// rotation's overlap has not ended.
var ErrRotationInProgress = errors.New("a root rotation is in progress")

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
	// Logger receives lifecycle events (CA created, certificate issued,
	// revoked, rotated). Nil discards them. Key material is never logged.
	Logger *slog.Logger
	// Sealer seals the private keys the authority stores (label
	// "ca/<entry>"). Keys found unsealed — written before sealing existed —
	// are sealed in place by Open, once, in one transaction. Nil stores
	// keys as plain PKCS#8: for tests only; Open logs a warning, and refuses
	// a store whose keys are already sealed (ErrSealerRequired).
	Sealer *keyseal.Sealer
	// KeyType is the key type of the CA keys the authority generates (root,
	// intermediates). Empty keeps the type of the current root and
	// intermediate, and is ECDSA P-256 for a new CA.
	KeyType KeyType
	// CRLValidity is the time from a CRL's ThisUpdate to its NextUpdate;
	// zero means DefaultCRLValidity. At least an hour.
	CRLValidity time.Duration
	// RootOverlap is how long a root replaced by RotateRoot stays trusted
	// (in TrustBundlePEM and Pool), unless FinishRootRotation ends the
	// overlap sooner; zero means DefaultRootOverlap.
	RootOverlap time.Duration
	// AIABaseURLs are the base URLs under which the gateway publishes its
	// CA certificates and CRLs, e.g. "http://gw.local:8080/pki". A
	// certificate issued with IssueRequest.AIA gets, for each base,
	// <base>/issuer/<id>.crt as CA issuers URL and <base>/crl/<id>.crl as
	// CRL distribution point, where <id> is the IssuerID of its issuer;
	// the HTTP side serves them from IssuerByID and CRLByIssuerID (DER).
	// http or https only.
	AIABaseURLs []string
}

// Authority is the local CA loaded from the store. It is safe for concurrent use.
type Authority struct {
	db          *bbolt.DB
	now         func() time.Time
	log         *slog.Logger
	sealer      *keyseal.Sealer
	keyType     KeyType
	crlValidity time.Duration
	rootOverlap time.Duration
	aiaBases    []string
	device      string

	// st is the current state; see state. Readers load it; changes are
	// made under opMu and published after the store holds them.
	st   atomic.Pointer[state]
	opMu sync.Mutex

	// serverMu serialises LoadOrIssueServer so that concurrent callers do not
	// each issue and store a listener certificate.
	serverMu sync.Mutex
}

// Open loads the CA from bucket "ca" of db, creating the root and the
// intermediate on first use, sealing keys stored unsealed (when
// Options.Sealer is set), and then runs [Authority.Maintain] once: an
// intermediate that is missing or has less than a third of its lifetime
// left is replaced (signed by the stored root), so a gateway that runs for
// years keeps a valid issuer.
//
// Open does not close db; the caller owns it.
func Open(db *bbolt.DB, opts Options) (*Authority, error) {
	a, err := fromOptions(db, opts)
	if err != nil {
		return nil, fmt.Errorf("ca: open: %w", err)
	}

	var (
		st       *state
		plain    [][]byte
		warnings []string
	)
	err = db.View(func(tx *bbolt.Tx) error {
		b := tx.Bucket(bucketCA)
		if b == nil {
			st = &state{}
			return nil
		}
		var err error
		if st, plain, warnings, err = loadState(b, a.sealer); err != nil {
			return err
		}
		// The listener key is not part of the state (a corrupt listener
		// entry is not fatal: LoadOrIssueServer replaces it), but it is
		// sealed with the others.
		if eb := b.Bucket(keyServer); eb != nil {
			if v := eb.Get(fieldKey); v != nil && !keyseal.IsSealed(v) {
				plain = append(plain, keyServer)
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("ca: open: %w", err)
	}
	for _, w := range warnings {
		a.log.Warn("CA store: " + w)
	}
	if err := checkLoaded(st); err != nil {
		return nil, fmt.Errorf("ca: open: %w", err)
	}
	if len(plain) > 0 && a.sealer != nil {
		err := db.Update(func(tx *bbolt.Tx) error { return sealPlainKeys(tx.Bucket(bucketCA), plain, a.sealer) })
		if err != nil {
			return nil, fmt.Errorf("ca: open: seal stored keys: %w", err)
		}
		a.log.Info("sealed CA keys stored before sealing", "entries", len(plain))
	}
	if a.sealer == nil {
		a.log.Warn("CA private keys are stored unsealed: no device key configured")
	}

	if st.root == nil {
		if st.inter != nil || st.prevInter != nil {
			// Creating a new root would silently orphan every certificate
			// issued so far; that needs a human.
			return nil, fmt.Errorf("ca: open: load root: %w: intermediate present without root", ErrCorrupt)
		}
		a.st.Store(st)
		if err := a.create(opts.DeviceName); err != nil {
			return nil, err
		}
	} else {
		a.device = deviceNameOf(st.root.cert, opts.DeviceName)
		a.st.Store(st)
	}

	a.opMu.Lock()
	defer a.opMu.Unlock()
	if _, err := a.maintainLocked(); err != nil {
		return nil, fmt.Errorf("ca: open: %w", err)
	}
	return a, nil
}

func fromOptions(db *bbolt.DB, opts Options) (*Authority, error) {
	if db == nil {
		return nil, errors.New("nil database")
	}
	a := &Authority{
		db: db, now: opts.Now, log: opts.Logger, sealer: opts.Sealer,
		keyType: opts.KeyType, crlValidity: opts.CRLValidity, rootOverlap: opts.RootOverlap,
	}
	if a.now == nil {
		a.now = time.Now
	}
	if a.log == nil {
		a.log = slog.New(slog.DiscardHandler)
	}
	if a.keyType != "" {
		if err := a.keyType.check(); err != nil {
			return nil, fmt.Errorf("Options.KeyType: %w", err)
		}
	}
	switch {
	case a.crlValidity == 0:
		a.crlValidity = DefaultCRLValidity
	case a.crlValidity < time.Hour:
		return nil, fmt.Errorf("Options.CRLValidity %v is shorter than an hour", a.crlValidity)
	}
	switch {
	case a.rootOverlap == 0:
		a.rootOverlap = DefaultRootOverlap
	case a.rootOverlap < 0:
		return nil, fmt.Errorf("Options.RootOverlap %v is negative", a.rootOverlap)
	}
	for _, base := range opts.AIABaseURLs {
		u, err := url.Parse(base)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" ||
			u.RawQuery != "" || u.Fragment != "" || u.User != nil {
			return nil, fmt.Errorf("Options.AIABaseURLs: %q is not an http(s) URL without query, fragment or user", base)
		}
		a.aiaBases = append(a.aiaBases, strings.TrimSuffix(u.String(), "/"))
	}
	return a, nil
}

// checkLoaded verifies the relations between the loaded CA certificates.
func checkLoaded(st *state) error {
	if st.root == nil {
		return nil
	}
	if err := checkRoot(st.root.cert); err != nil {
		return fmt.Errorf("load root: %w: %w", ErrCorrupt, err)
	}
	if st.inter != nil {
		if err := checkIntermediate(st.inter.cert, st.root.cert); err != nil {
			return fmt.Errorf("load intermediate: %w: %w", ErrCorrupt, err)
		}
	}
	if st.prevRoot != nil {
		if err := checkRoot(st.prevRoot.cert); err != nil {
			return fmt.Errorf("load previous root: %w: %w", ErrCorrupt, err)
		}
	}
	if st.prevInter != nil {
		err := checkIntermediate(st.prevInter.cert, st.root.cert)
		if err != nil && st.prevRoot != nil {
			err = checkIntermediate(st.prevInter.cert, st.prevRoot.cert)
		}
		if err != nil {
			return fmt.Errorf("load previous intermediate: %w: %w", ErrCorrupt, err)
		}
	}
	return nil
}

// create makes the root and the intermediate and stores both in one
// transaction, so a crash never leaves a root without an issuer.
func (a *Authority) create(device string) error {
	device = strings.TrimSpace(device)
	if device == "" {
		return errors.New("ca: create root: Options.DeviceName is required to create the CA")
	}
	a.device = device
	now := a.now()
	kt := a.keyType.orDefault()
	root, err := newRoot(device, kt, now)
	if err != nil {
		return fmt.Errorf("ca: create root: %w", err)
	}
	inter, err := newIntermediate(device, kt, root, now)
	if err != nil {
		return fmt.Errorf("ca: create intermediate: %w", err)
	}
	a.opMu.Lock()
	defer a.opMu.Unlock()
	prev := a.st.Load()
	next := prev.clone()
	next.root, next.inter = root, inter
	err = a.commit(prev, next, func(b *bbolt.Bucket) error {
		if b.Bucket(keyRoot) != nil || b.Get(keyRoot) != nil {
			// Another Open on the same DB won the race; refuse rather than
			// overwrite a trust anchor sensors may already pin.
			return errors.New("root created concurrently")
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("ca: create root: %w", err)
	}
	a.log.Info("created local CA",
		"root_subject", root.cert.Subject.CommonName,
		"root_fingerprint", fingerprint(root.cert.Raw),
		"root_not_after", root.cert.NotAfter,
		"key_type", kt,
		"intermediate_not_after", inter.cert.NotAfter)
	return nil
}

// Root returns the current self-signed root certificate. Callers must not
// modify it.
func (a *Authority) Root() *x509.Certificate { return a.st.Load().root.cert }

// Intermediate returns the local intermediate certificate, which issues
// leaves unless an imported issuer is active (see [Authority.Issuer]).
// Callers must not modify it.
func (a *Authority) Intermediate() *x509.Certificate { return a.st.Load().inter.cert }

// RootFingerprint returns the SHA-256 fingerprint of the current root
// certificate as uppercase hex bytes separated by colons, the format of
// `openssl x509 -fingerprint -sha256`, for users to compare on a sensor.
func (a *Authority) RootFingerprint() string { return fingerprint(a.Root().Raw) }

// TrustBundlePEM returns the trust anchors PEM-encoded: what a sensor
// installs to trust the gateway. That is the current root first, then
// during a root rotation the previous root, then the root of an imported
// issuer when its chain carried one. Intermediates are not included;
// servers and clients send them in their chain.
func (a *Authority) TrustBundlePEM() []byte {
	var out []byte
	for _, r := range a.st.Load().roots() {
		out = append(out, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: r.Raw})...)
	}
	return out
}

// Pool returns a new pool holding the trust anchors of TrustBundlePEM, for
// verifying client certificates (whose chains carry the intermediate) or
// the gateway's own server certificate. Each call returns a fresh pool the
// caller may extend.
func (a *Authority) Pool() *x509.CertPool {
	p := x509.NewCertPool()
	for _, r := range a.st.Load().roots() {
		p.AddCert(r)
	}
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
