package certs

import (
	"bytes"
	"crypto"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"

	"go.etcd.io/bbolt"

	"github.com/edgegate/edgegate/certs/keyseal"
)

// Layout of the "certificates" bucket:
//
//	certificates/records/<id>  JSON record (everything but the key)
//	certificates/keys/<id>     private key: PKCS#8 DER sealed with the device key
//	certificates/roles/server  id of the certificate the TLS listeners serve
//
// A record and its key are always written in the same transaction.
var (
	bucketCertificates = []byte("certificates")
	bucketRecords      = []byte("records")
	bucketKeys         = []byte("keys")
	bucketRoles        = []byte("roles")
)

// ErrNotFound is returned when no certificate has the requested id.
var ErrNotFound = errors.New("certs: certificate not found")

// ErrCorrupt is returned (wrapped) when a stored certificate cannot be decoded.
var ErrCorrupt = errors.New("certs: corrupt store entry")

// record is what the store keeps of a certificate: the fields a user or the
// gateway sets. Everything derived is recomputed on read.
type record struct {
	ID          string            `json:"id"`
	Name        string            `json:"name"`
	Description string            `json:"description,omitempty"`
	Chain       string            `json:"chain"`
	CARef       string            `json:"caRef,omitempty"`
	Exposed     bool              `json:"exposed,omitempty"`
	AutoRenew   bool              `json:"autoRenew,omitempty"`
	Client      bool              `json:"client,omitempty"`
	Tags        []string          `json:"tags,omitempty"`
	Metadata    map[string]string `json:"metadata,omitempty"`
	Source      Source            `json:"source"`
	Names       []string          `json:"names,omitempty"` // what a renewal asks for
	ClientCA    bool              `json:"clientCA,omitempty"`
	// Issue is how a certificate the gateway issued was asked for.
	Issue            *IssueParams `json:"issue,omitempty"`
	Revoked          bool         `json:"revoked,omitempty"`
	RevocationReason string       `json:"revocationReason,omitempty"`
	RevokedAt        int64        `json:"revokedAt,omitempty"`
	Renewal          Renewal      `json:"renewal"`
}

func keyLabel(id string) string { return "certificates/" + id }

// tx wraps one bbolt transaction with the decoding rules of the store.
type tx struct {
	*bbolt.Tx
	sealer *keyseal.Sealer
}

func (t tx) bucket(name []byte) *bbolt.Bucket {
	if root := t.Bucket(bucketCertificates); root != nil {
		return root.Bucket(name)
	}
	return nil
}

// writable returns the sub-bucket name, creating it and its parent.
func (t tx) writable(name []byte) (*bbolt.Bucket, error) {
	root, err := t.CreateBucketIfNotExists(bucketCertificates)
	if err != nil {
		return nil, err
	}
	return root.CreateBucketIfNotExists(name)
}

func (t tx) record(id string) (record, error) {
	var r record
	b := t.bucket(bucketRecords)
	if b == nil {
		return r, fmt.Errorf("%w: %q", ErrNotFound, id)
	}
	raw := b.Get([]byte(id))
	if raw == nil {
		return r, fmt.Errorf("%w: %q", ErrNotFound, id)
	}
	if err := json.Unmarshal(raw, &r); err != nil {
		return r, fmt.Errorf("%w: record %q: %w", ErrCorrupt, id, err)
	}
	return r, nil
}

func (t tx) records() ([]record, error) {
	b := t.bucket(bucketRecords)
	if b == nil {
		return nil, nil
	}
	var out []record
	err := b.ForEach(func(k, v []byte) error {
		var r record
		if err := json.Unmarshal(v, &r); err != nil {
			return fmt.Errorf("%w: record %q: %w", ErrCorrupt, k, err)
		}
		out = append(out, r)
		return nil
	})
	return out, err
}

func (t tx) hasKey(id string) bool {
	b := t.bucket(bucketKeys)
	return b != nil && b.Get([]byte(id)) != nil
}

// key returns the private key of id, or nil when it has none.
func (t tx) key(id string) (crypto.Signer, error) {
	b := t.bucket(bucketKeys)
	if b == nil {
		return nil, nil
	}
	sealed := b.Get([]byte(id))
	if sealed == nil {
		return nil, nil
	}
	der, err := t.sealer.Open(bytes.Clone(sealed), keyLabel(id))
	if err != nil {
		return nil, fmt.Errorf("%w: key of %q: %w", ErrCorrupt, id, err)
	}
	k, err := x509.ParsePKCS8PrivateKey(der)
	if err != nil {
		return nil, fmt.Errorf("%w: key of %q: %w", ErrCorrupt, id, err)
	}
	signer, ok := k.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("%w: key of %q (%T) cannot sign", ErrCorrupt, id, k)
	}
	return signer, nil
}

// put writes r and, when key is non-nil, its key; a nil key keeps the
// stored one (a metadata update) unless dropKey is set.
func (t tx) put(r record, key crypto.Signer, dropKey bool) error {
	raw, err := json.Marshal(r)
	if err != nil {
		return fmt.Errorf("encode record %q: %w", r.ID, err)
	}
	records, err := t.writable(bucketRecords)
	if err != nil {
		return err
	}
	if err := records.Put([]byte(r.ID), raw); err != nil {
		return fmt.Errorf("put record %q: %w", r.ID, err)
	}
	keys, err := t.writable(bucketKeys)
	if err != nil {
		return err
	}
	switch {
	case key != nil:
		der, err := x509.MarshalPKCS8PrivateKey(key)
		if err != nil {
			return fmt.Errorf("marshal key of %q: %w", r.ID, err)
		}
		sealed, err := t.sealer.Seal(der, keyLabel(r.ID))
		if err != nil {
			return err
		}
		if err := keys.Put([]byte(r.ID), sealed); err != nil {
			return fmt.Errorf("put key of %q: %w", r.ID, err)
		}
	case dropKey:
		if err := keys.Delete([]byte(r.ID)); err != nil {
			return fmt.Errorf("delete key of %q: %w", r.ID, err)
		}
	}
	return nil
}

func (t tx) delete(id string) error {
	for _, name := range [][]byte{bucketRecords, bucketKeys} {
		if b := t.bucket(name); b != nil {
			if err := b.Delete([]byte(id)); err != nil {
				return fmt.Errorf("delete %q: %w", id, err)
			}
		}
	}
	return nil
}

// serving returns the id of the certificate the listeners serve, "" if none.
func (t tx) serving() string {
	if b := t.bucket(bucketRoles); b != nil {
		return string(b.Get([]byte(RoleServer)))
	}
	return ""
}

func (t tx) setServing(id string) error {
	b, err := t.writable(bucketRoles)
	if err != nil {
		return err
	}
	return b.Put([]byte(RoleServer), []byte(id))
}
