package ca

import (
	"bytes"
	"crypto"
	"crypto/x509"
	"errors"
	"fmt"

	"go.etcd.io/bbolt"
)

// Layout of the "ca" bucket. Each entry is a nested bucket holding one
// certificate and its key, always written together in one transaction:
//
//	ca/root/{cert,key}          self-signed root
//	ca/intermediate/{cert,key}  issuer of all leaves
//	ca/server/{cert,key}        listener certificate (LoadOrIssueServer)
//
// cert is DER, key is PKCS#8 DER. A later issue adds encryption of key and
// more entries (CRL, BYO issuer) next to these.
var (
	bucketCA        = []byte("ca")
	keyRoot         = []byte("root")
	keyIntermediate = []byte("intermediate")
	keyServer       = []byte("server")

	fieldCert = []byte("cert")
	fieldKey  = []byte("key")
)

// storedPair is a decoded certificate and its private key.
type storedPair struct {
	cert *x509.Certificate
	key  crypto.Signer
}

// loadPair decodes entry name of b. It returns (nil, nil) when the entry does
// not exist, and an error wrapping ErrCorrupt when it exists but is unusable.
// The returned values do not alias bbolt memory, so they outlive the transaction.
func loadPair(b *bbolt.Bucket, name []byte) (*storedPair, error) {
	eb := b.Bucket(name)
	if eb == nil {
		if b.Get(name) != nil {
			return nil, fmt.Errorf("%w: %q is a value, want a bucket", ErrCorrupt, name)
		}
		return nil, nil
	}
	certDER, keyDER := eb.Get(fieldCert), eb.Get(fieldKey)
	if certDER == nil {
		return nil, fmt.Errorf("%w: certificate missing", ErrCorrupt)
	}
	if keyDER == nil {
		return nil, fmt.Errorf("%w: key missing", ErrCorrupt)
	}
	// x509.ParseCertificate keeps references into its input (Raw, …), and
	// bbolt memory is only valid inside the transaction: copy first.
	cert, err := x509.ParseCertificate(bytes.Clone(certDER))
	if err != nil {
		return nil, fmt.Errorf("%w: parse certificate: %w", ErrCorrupt, err)
	}
	k, err := x509.ParsePKCS8PrivateKey(bytes.Clone(keyDER))
	if err != nil {
		return nil, fmt.Errorf("%w: parse key: %w", ErrCorrupt, err)
	}
	key, ok := k.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("%w: key of type %T cannot sign", ErrCorrupt, k)
	}
	if !publicKeysEqual(cert.PublicKey, key.Public()) {
		return nil, fmt.Errorf("%w: key does not match certificate", ErrCorrupt)
	}
	return &storedPair{cert: cert, key: key}, nil
}

// storePair writes cert and key as entry name of b, replacing any previous
// entry. Callers run it inside the Update that must make both visible at once.
func storePair(b *bbolt.Bucket, name []byte, cert *x509.Certificate, key crypto.Signer) error {
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return fmt.Errorf("marshal key: %w", err)
	}
	if b.Bucket(name) != nil {
		if err := b.DeleteBucket(name); err != nil {
			return fmt.Errorf("replace %q: %w", name, err)
		}
	} else if b.Get(name) != nil {
		// A corrupt plain value where the entry belongs: replace it.
		if err := b.Delete(name); err != nil {
			return fmt.Errorf("replace %q: %w", name, err)
		}
	}
	eb, err := b.CreateBucket(name)
	if err != nil {
		return fmt.Errorf("create %q: %w", name, err)
	}
	if err := eb.Put(fieldCert, cert.Raw); err != nil {
		return fmt.Errorf("put %q certificate: %w", name, err)
	}
	if err := eb.Put(fieldKey, keyDER); err != nil {
		return fmt.Errorf("put %q key: %w", name, err)
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
