package ca

import (
	"bytes"
	"crypto"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"time"

	"go.etcd.io/bbolt"

	"github.com/edgegate/edgegate/certs/keyseal"
)

// Layout of the "ca" bucket. Each certificate entry is a nested bucket
// holding one certificate and its key, always written together in one
// transaction:
//
//	ca/root/{cert,key}                   the current self-signed root
//	ca/root-previous/{cert,until}        the root before RotateRoot, kept in the
//	                                     trust bundle until "until" (no key)
//	ca/intermediate/{cert,key}           the local issuer
//	ca/intermediate-previous/{cert,key}  the local issuer before the last
//	                                     rotation, kept until it expires
//	ca/imported/{cert,key,chain,active}  an issuer brought by the operator
//	                                     (ImportIssuer); chain is its parents'
//	                                     DER concatenated, active "1" or "0"
//	ca/server/{cert,key}                 listener certificate (LoadOrIssueServer)
//	ca/issued/<serial>                   {"issuer":<id>,"not_after":…} for each
//	                                     leaf the authority's issuers signed
//	ca/revoked/<issuer id>/<serial>      {"reason":…,"revoked_at":…,"not_after":…}
//	ca/crl/<issuer id>                   the issuer's current CRL, DER
//
// cert is DER. key is PKCS#8 DER sealed by keyseal with the label
// "ca/<entry>" (e.g. "ca/intermediate-previous"), or plain PKCS#8 when
// the authority runs without a Sealer or the value predates sealing. until
// is time.Time text (RFC 3339). <serial> is the serial number's big-endian
// bytes; <issuer id> is [IssuerID].
var (
	bucketCA                = []byte("ca")
	keyRoot                 = []byte("root")
	keyRootPrevious         = []byte("root-previous")
	keyIntermediate         = []byte("intermediate")
	keyIntermediatePrevious = []byte("intermediate-previous")
	keyImported             = []byte("imported")
	keyServer               = []byte("server")
	keyIssued               = []byte("issued")
	keyRevoked              = []byte("revoked")
	keyCRL                  = []byte("crl")

	fieldCert   = []byte("cert")
	fieldKey    = []byte("key")
	fieldChain  = []byte("chain")
	fieldActive = []byte("active")
	fieldUntil  = []byte("until")
)

// keyEntries are the entries that hold a private key, the ones Open seals
// when it finds them in plain PKCS#8.
var keyEntries = [][]byte{keyRoot, keyIntermediate, keyIntermediatePrevious, keyImported, keyServer}

// sealLabel is the keyseal label of the key in entry name.
func sealLabel(name []byte) string { return "ca/" + string(name) }

// storedPair is a decoded certificate and its private key.
type storedPair struct {
	cert *x509.Certificate
	key  crypto.Signer
	id   string // IssuerID(cert)
}

func newPair(cert *x509.Certificate, key crypto.Signer) *storedPair {
	return &storedPair{cert: cert, key: key, id: IssuerID(cert)}
}

// loadPair decodes entry name of b. It returns (nil, false, nil) when the
// entry does not exist, and an error wrapping ErrCorrupt when it exists but
// is unusable. plain reports a key stored unsealed. The returned values do
// not alias bbolt memory, so they outlive the transaction.
func loadPair(b *bbolt.Bucket, name []byte, s *keyseal.Sealer) (p *storedPair, plain bool, err error) {
	eb, err := entryBucket(b, name)
	if eb == nil || err != nil {
		return nil, false, err
	}
	cert, err := loadCert(eb)
	if err != nil {
		return nil, false, err
	}
	keyVal := eb.Get(fieldKey)
	if keyVal == nil {
		return nil, false, fmt.Errorf("%w: key missing", ErrCorrupt)
	}
	var keyDER []byte
	switch {
	case keyseal.IsSealed(keyVal):
		if s == nil {
			return nil, false, fmt.Errorf("%w: the key of %q is sealed", ErrSealerRequired, name)
		}
		if keyDER, err = s.Open(keyVal, sealLabel(name)); err != nil {
			return nil, false, fmt.Errorf("%w: open sealed key: %w", ErrCorrupt, err)
		}
	default:
		keyDER, plain = bytes.Clone(keyVal), true
	}
	k, err := x509.ParsePKCS8PrivateKey(keyDER)
	if err != nil {
		return nil, false, fmt.Errorf("%w: parse key: %w", ErrCorrupt, err)
	}
	key, ok := k.(crypto.Signer)
	if !ok {
		return nil, false, fmt.Errorf("%w: key of type %T cannot sign", ErrCorrupt, k)
	}
	if !publicKeysEqual(cert.PublicKey, key.Public()) {
		return nil, false, fmt.Errorf("%w: key does not match certificate", ErrCorrupt)
	}
	return newPair(cert, key), plain, nil
}

// entryBucket returns the nested bucket of entry name, nil when there is
// none, and ErrCorrupt when a plain value sits where the entry belongs.
func entryBucket(b *bbolt.Bucket, name []byte) (*bbolt.Bucket, error) {
	eb := b.Bucket(name)
	if eb == nil && b.Get(name) != nil {
		return nil, fmt.Errorf("%w: %q is a value, want a bucket", ErrCorrupt, name)
	}
	return eb, nil
}

func loadCert(eb *bbolt.Bucket) (*x509.Certificate, error) {
	certDER := eb.Get(fieldCert)
	if certDER == nil {
		return nil, fmt.Errorf("%w: certificate missing", ErrCorrupt)
	}
	// x509.ParseCertificate keeps references into its input (Raw, …), and
	// bbolt memory is only valid inside the transaction: copy first.
	cert, err := x509.ParseCertificate(bytes.Clone(certDER))
	if err != nil {
		return nil, fmt.Errorf("%w: parse certificate: %w", ErrCorrupt, err)
	}
	return cert, nil
}

// storePair writes cert and key as entry name of b, replacing any previous
// entry, and returns the entry's bucket for further fields. Callers run it
// inside the Update that must make both visible at once.
func storePair(b *bbolt.Bucket, name []byte, p *storedPair, s *keyseal.Sealer) (*bbolt.Bucket, error) {
	keyDER, err := x509.MarshalPKCS8PrivateKey(p.key)
	if err != nil {
		return nil, fmt.Errorf("marshal key: %w", err)
	}
	keyVal := keyDER
	if s != nil {
		if keyVal, err = s.Seal(keyDER, sealLabel(name)); err != nil {
			return nil, fmt.Errorf("seal %q key: %w", name, err)
		}
	}
	eb, err := replaceEntry(b, name)
	if err != nil {
		return nil, err
	}
	if err := eb.Put(fieldCert, p.cert.Raw); err != nil {
		return nil, fmt.Errorf("put %q certificate: %w", name, err)
	}
	if err := eb.Put(fieldKey, keyVal); err != nil {
		return nil, fmt.Errorf("put %q key: %w", name, err)
	}
	return eb, nil
}

// replaceEntry deletes entry name (a bucket, or a corrupt plain value) and
// creates it afresh.
func replaceEntry(b *bbolt.Bucket, name []byte) (*bbolt.Bucket, error) {
	if err := deleteEntry(b, name); err != nil {
		return nil, err
	}
	eb, err := b.CreateBucket(name)
	if err != nil {
		return nil, fmt.Errorf("create %q: %w", name, err)
	}
	return eb, nil
}

// deleteEntry removes entry name whatever it holds; a missing one is fine.
func deleteEntry(b *bbolt.Bucket, name []byte) error {
	if b.Bucket(name) != nil {
		if err := b.DeleteBucket(name); err != nil {
			return fmt.Errorf("delete %q: %w", name, err)
		}
	} else if b.Get(name) != nil {
		if err := b.Delete(name); err != nil {
			return fmt.Errorf("delete %q: %w", name, err)
		}
	}
	return nil
}

// sealPlainKeys seals, in place, the keys of entries stored in plain PKCS#8.
// Open runs it once in one Update when it finds any.
func sealPlainKeys(b *bbolt.Bucket, names [][]byte, s *keyseal.Sealer) error {
	for _, name := range names {
		eb := b.Bucket(name)
		if eb == nil {
			continue
		}
		v := eb.Get(fieldKey)
		if v == nil || keyseal.IsSealed(v) {
			continue
		}
		sealed, err := s.Seal(bytes.Clone(v), sealLabel(name))
		if err != nil {
			return fmt.Errorf("seal %q key: %w", name, err)
		}
		if err := eb.Put(fieldKey, sealed); err != nil {
			return fmt.Errorf("put %q key: %w", name, err)
		}
	}
	return nil
}

// publicKeysEqual reports whether a and b are the same public key.
func publicKeysEqual(a, b crypto.PublicKey) bool {
	type equaler interface{ Equal(crypto.PublicKey) bool }
	ea, ok := a.(equaler)
	return ok && ea.Equal(b)
}

// checkRoot verifies that a stored root is usable as the trust anchor.
func checkRoot(root *x509.Certificate) error {
	if !root.IsCA || !root.BasicConstraintsValid {
		return errors.New("root is not a CA certificate")
	}
	if err := root.CheckSignatureFrom(root); err != nil {
		return fmt.Errorf("root is not self-signed: %w", err)
	}
	return nil
}

// checkIntermediate verifies that a stored intermediate was issued by root.
func checkIntermediate(inter, root *x509.Certificate) error {
	if !inter.IsCA || !inter.BasicConstraintsValid {
		return errors.New("intermediate is not a CA certificate")
	}
	if err := inter.CheckSignatureFrom(root); err != nil {
		return fmt.Errorf("intermediate not signed by root: %w", err)
	}
	return nil
}

// serialKey is the bbolt key of a serial number.
func serialKey(serial *big.Int) []byte { return serial.Bytes() }

// issuedRecord is the value of ca/issued/<serial>.
type issuedRecord struct {
	Issuer   string    `json:"issuer"`
	NotAfter time.Time `json:"not_after"`
}

// revokedRecord is the value of ca/revoked/<issuer id>/<serial>.
type revokedRecord struct {
	Reason    int       `json:"reason"`
	RevokedAt time.Time `json:"revoked_at"`
	NotAfter  time.Time `json:"not_after,omitzero"`
}

// putIssued records that the issuer with id signed leaf.
func putIssued(b *bbolt.Bucket, id string, leaf *x509.Certificate) error {
	ib, err := b.CreateBucketIfNotExists(keyIssued)
	if err != nil {
		return fmt.Errorf("issued records: %w", err)
	}
	v, err := json.Marshal(issuedRecord{Issuer: id, NotAfter: leaf.NotAfter.UTC()})
	if err != nil {
		return err
	}
	if err := ib.Put(serialKey(leaf.SerialNumber), v); err != nil {
		return fmt.Errorf("record issued serial: %w", err)
	}
	return nil
}

// getIssued looks up the issuance record of serial.
func getIssued(b *bbolt.Bucket, serial *big.Int) (issuedRecord, bool, error) {
	ib := b.Bucket(keyIssued)
	if ib == nil {
		return issuedRecord{}, false, nil
	}
	v := ib.Get(serialKey(serial))
	if v == nil {
		return issuedRecord{}, false, nil
	}
	var r issuedRecord
	if err := json.Unmarshal(v, &r); err != nil {
		return issuedRecord{}, false, fmt.Errorf("%w: issued record of serial %s: %w", ErrCorrupt, serial.Text(16), err)
	}
	return r, true, nil
}

// pruneIssued deletes issuance records of certificates expired before
// cutoff; revoking them no longer matters.
func pruneIssued(b *bbolt.Bucket, cutoff time.Time) (int, error) {
	ib := b.Bucket(keyIssued)
	if ib == nil {
		return 0, nil
	}
	var stale [][]byte
	err := ib.ForEach(func(k, v []byte) error {
		var r issuedRecord
		if json.Unmarshal(v, &r) != nil || r.NotAfter.Before(cutoff) {
			// An unreadable record is useless too.
			stale = append(stale, bytes.Clone(k))
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	for _, k := range stale {
		if err := ib.Delete(k); err != nil {
			return 0, err
		}
	}
	return len(stale), nil
}

// loadRevoked reads ca/revoked into the in-memory form.
func loadRevoked(b *bbolt.Bucket) (map[string]*revList, error) {
	out := map[string]*revList{}
	rb := b.Bucket(keyRevoked)
	if rb == nil {
		return out, nil
	}
	err := rb.ForEachBucket(func(idKey []byte) error {
		id := string(idKey)
		list := &revList{entries: map[string]Revocation{}}
		err := rb.Bucket(idKey).ForEach(func(k, v []byte) error {
			var r revokedRecord
			if err := json.Unmarshal(v, &r); err != nil {
				return fmt.Errorf("%w: revocation %s/%x: %w", ErrCorrupt, id, k, err)
			}
			serial := new(big.Int).SetBytes(k)
			list.entries[serial.Text(16)] = Revocation{
				IssuerID: id, Serial: serial, Reason: r.Reason, RevokedAt: r.RevokedAt, NotAfter: r.NotAfter,
			}
			return nil
		})
		out[id] = list
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("load revocations: %w", err)
	}
	return out, nil
}

// writeRevList makes ca/revoked/<id> hold exactly list (nil deletes it).
func writeRevList(b *bbolt.Bucket, id string, list *revList) error {
	rb, err := b.CreateBucketIfNotExists(keyRevoked)
	if err != nil {
		return err
	}
	if err := deleteEntry(rb, []byte(id)); err != nil {
		return err
	}
	if list == nil || len(list.entries) == 0 {
		return nil
	}
	ib, err := rb.CreateBucket([]byte(id))
	if err != nil {
		return err
	}
	for _, r := range list.entries {
		v, err := json.Marshal(revokedRecord{Reason: r.Reason, RevokedAt: r.RevokedAt.UTC(), NotAfter: r.NotAfter.UTC()})
		if err != nil {
			return err
		}
		if err := ib.Put(serialKey(r.Serial), v); err != nil {
			return err
		}
	}
	return nil
}

// loadCRLs reads ca/crl. A CRL that does not parse is dropped with a
// warning by the caller: CRLs are derived data, Maintain signs a new one.
func loadCRLs(b *bbolt.Bucket) (map[string]*crlState, []string) {
	out := map[string]*crlState{}
	var bad []string
	cb := b.Bucket(keyCRL)
	if cb == nil {
		return out, nil
	}
	_ = cb.ForEach(func(k, v []byte) error {
		if v == nil {
			bad = append(bad, string(k))
			return nil
		}
		der := bytes.Clone(v)
		rl, err := x509.ParseRevocationList(der)
		if err != nil || rl.Number == nil {
			bad = append(bad, string(k))
			return nil
		}
		out[string(k)] = &crlState{der: der, number: rl.Number, thisUpdate: rl.ThisUpdate, nextUpdate: rl.NextUpdate}
		return nil
	})
	return out, bad
}

// writeCRL makes ca/crl/<id> hold c (nil deletes it).
func writeCRL(b *bbolt.Bucket, id string, c *crlState) error {
	cb, err := b.CreateBucketIfNotExists(keyCRL)
	if err != nil {
		return err
	}
	if c == nil {
		return cb.Delete([]byte(id))
	}
	return cb.Put([]byte(id), c.der)
}

// loadState reads everything but the listener certificate from b. plain
// lists the entries whose key is stored unsealed.
func loadState(b *bbolt.Bucket, s *keyseal.Sealer) (st *state, plain [][]byte, warnings []string, err error) {
	st = &state{}
	load := func(name []byte, what string) (*storedPair, error) {
		p, isPlain, err := loadPair(b, name, s)
		if err != nil {
			return nil, fmt.Errorf("load %s: %w", what, err)
		}
		if isPlain {
			plain = append(plain, name)
		}
		return p, nil
	}
	if st.root, err = load(keyRoot, "root"); err != nil {
		return nil, nil, nil, err
	}
	if st.inter, err = load(keyIntermediate, "intermediate"); err != nil {
		return nil, nil, nil, err
	}
	if st.prevInter, err = load(keyIntermediatePrevious, "previous intermediate"); err != nil {
		return nil, nil, nil, err
	}
	if st.prevRoot, err = loadPreviousRoot(b); err != nil {
		return nil, nil, nil, fmt.Errorf("load previous root: %w", err)
	}
	imp, err := load(keyImported, "imported issuer")
	if err != nil {
		return nil, nil, nil, err
	}
	if imp != nil {
		if st.imported, err = loadImported(b.Bucket(keyImported), imp); err != nil {
			return nil, nil, nil, fmt.Errorf("load imported issuer: %w", err)
		}
	}
	if st.revoked, err = loadRevoked(b); err != nil {
		return nil, nil, nil, err
	}
	var bad []string
	st.crls, bad = loadCRLs(b)
	for _, id := range bad {
		warnings = append(warnings, "unreadable CRL of issuer "+id+" dropped")
	}
	return st, plain, warnings, nil
}

func loadPreviousRoot(b *bbolt.Bucket) (*previousRoot, error) {
	eb, err := entryBucket(b, keyRootPrevious)
	if eb == nil || err != nil {
		return nil, err
	}
	cert, err := loadCert(eb)
	if err != nil {
		return nil, err
	}
	var until time.Time
	if err := until.UnmarshalText(eb.Get(fieldUntil)); err != nil {
		return nil, fmt.Errorf("%w: until: %w", ErrCorrupt, err)
	}
	return &previousRoot{cert: cert, until: until}, nil
}

func storePreviousRoot(b *bbolt.Bucket, pr *previousRoot) error {
	eb, err := replaceEntry(b, keyRootPrevious)
	if err != nil {
		return err
	}
	until, err := pr.until.UTC().MarshalText()
	if err != nil {
		return err
	}
	if err := eb.Put(fieldCert, pr.cert.Raw); err != nil {
		return err
	}
	return eb.Put(fieldUntil, until)
}

func loadImported(eb *bbolt.Bucket, p *storedPair) (*importedIssuer, error) {
	var parents []*x509.Certificate
	if raw := eb.Get(fieldChain); len(raw) > 0 {
		var err error
		if parents, err = x509.ParseCertificates(bytes.Clone(raw)); err != nil {
			return nil, fmt.Errorf("%w: parse chain: %w", ErrCorrupt, err)
		}
	}
	return newImported(p, parents, string(eb.Get(fieldActive)) == "1"), nil
}

func storeImported(b *bbolt.Bucket, imp *importedIssuer, s *keyseal.Sealer) error {
	eb, err := storePair(b, keyImported, &imp.storedPair, s)
	if err != nil {
		return err
	}
	var chain []byte
	for _, c := range imp.parents {
		chain = append(chain, c.Raw...)
	}
	if err := eb.Put(fieldChain, chain); err != nil {
		return err
	}
	active := []byte("0")
	if imp.active {
		active = []byte("1")
	}
	return eb.Put(fieldActive, active)
}

// commit writes to the store extra and then every part of next that differs
// from prev (the state the authority holds now), in one Update, and on
// success makes next the authority's state. The caller holds opMu.
func (a *Authority) commit(prev, next *state, extra func(b *bbolt.Bucket) error) error {
	err := a.db.Update(func(tx *bbolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists(bucketCA)
		if err != nil {
			return err
		}
		if extra != nil {
			if err := extra(b); err != nil {
				return err
			}
		}
		pairs := []struct {
			name       []byte
			prev, next *storedPair
		}{
			{keyRoot, prev.root, next.root},
			{keyIntermediate, prev.inter, next.inter},
			{keyIntermediatePrevious, prev.prevInter, next.prevInter},
		}
		for _, p := range pairs {
			if p.prev == p.next {
				continue
			}
			if p.next == nil {
				err = deleteEntry(b, p.name)
			} else {
				_, err = storePair(b, p.name, p.next, a.sealer)
			}
			if err != nil {
				return err
			}
		}
		if prev.prevRoot != next.prevRoot {
			if next.prevRoot == nil {
				err = deleteEntry(b, keyRootPrevious)
			} else {
				err = storePreviousRoot(b, next.prevRoot)
			}
			if err != nil {
				return fmt.Errorf("previous root: %w", err)
			}
		}
		if prev.imported != next.imported {
			if next.imported == nil {
				err = deleteEntry(b, keyImported)
			} else {
				err = storeImported(b, next.imported, a.sealer)
			}
			if err != nil {
				return fmt.Errorf("imported issuer: %w", err)
			}
		}
		for id, c := range next.crls {
			if prev.crls[id] != c {
				if err := writeCRL(b, id, c); err != nil {
					return fmt.Errorf("CRL %s: %w", id, err)
				}
			}
		}
		for id := range prev.crls {
			if _, ok := next.crls[id]; !ok {
				if err := writeCRL(b, id, nil); err != nil {
					return fmt.Errorf("CRL %s: %w", id, err)
				}
			}
		}
		for id, l := range next.revoked {
			if prev.revoked[id] != l {
				if err := writeRevList(b, id, l); err != nil {
					return fmt.Errorf("revocations of %s: %w", id, err)
				}
			}
		}
		for id := range prev.revoked {
			if _, ok := next.revoked[id]; !ok {
				if err := writeRevList(b, id, nil); err != nil {
					return fmt.Errorf("revocations of %s: %w", id, err)
				}
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("store: %w", err)
	}
	a.st.Store(next)
	return nil
}

// issuerIDHex is the form of IssuerID: lower-case hex.
func issuerIDHex(sum []byte) string { return hex.EncodeToString(sum) }
