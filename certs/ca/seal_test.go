package ca

import (
	"bytes"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"testing"
	"time"

	"go.etcd.io/bbolt"

	"github.com/edgegate/edgegate/certs/keyseal"
)

// keyDERs returns the PKCS#8 DER of every CA key the authority holds.
func keyDERs(t *testing.T, a *Authority) map[string][]byte {
	t.Helper()
	st := a.st.Load()
	out := map[string][]byte{}
	for name, p := range map[string]*storedPair{"root": st.root, "intermediate": st.inter, "previous": st.prevInter} {
		if p == nil {
			continue
		}
		der, err := x509.MarshalPKCS8PrivateKey(p.key)
		if err != nil {
			t.Fatal(err)
		}
		out[name] = der
	}
	if st.imported != nil {
		der, err := x509.MarshalPKCS8PrivateKey(st.imported.key)
		if err != nil {
			t.Fatal(err)
		}
		out["imported"] = der
	}
	return out
}

func TestKeysSealedAtRest(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	if _, err := e.a.LoadOrIssueServer([]string{"gw.local"}); err != nil {
		t.Fatal(err)
	}
	e.advance(IntermediateValidity * 5 / 6)
	e.maintain(t) // rotation: an intermediate-previous entry
	imp := makeCA(t, "Enterprise Issuing CA", nil, e.clk.Now(), &caOpts{maxPathLen: -1})
	if err := e.a.ImportIssuer([]*x509.Certificate{imp.cert}, imp.key); err != nil {
		t.Fatal(err)
	}
	secrets := keyDERs(t, e.a)
	if len(secrets) != 4 {
		t.Fatalf("want root, intermediate, previous and imported keys, have %d", len(secrets))
	}

	for _, name := range keyEntries {
		v := rawKey(t, e.db, name)
		if !keyseal.IsSealed(v) {
			t.Errorf("key of %q is stored unsealed", name)
		}
	}
	closeDB(t, e.db)
	file, err := os.ReadFile(e.path)
	if err != nil {
		t.Fatal(err)
	}
	for name, der := range secrets {
		if bytes.Contains(file, der) {
			t.Errorf("the database file contains the plain %s key", name)
		}
	}

	// The same device key opens it again; no key, or another one, does not.
	e.db = openDB(t, e.path)
	for _, tc := range []struct {
		name   string
		sealer *keyseal.Sealer
		want   []error
	}{
		{"no sealer", nil, []error{ErrSealerRequired}},
		{"other device key", testSealer(t), []error{ErrCorrupt, keyseal.ErrOpen}},
	} {
		o := e.opts
		o.Sealer = tc.sealer
		_, err := Open(e.db, o)
		for _, want := range tc.want {
			if !errors.Is(err, want) {
				t.Errorf("%s: Open error = %v, want %v", tc.name, err, want)
			}
		}
	}
	a, err := Open(e.db, e.opts)
	if err != nil {
		t.Fatalf("reopen with the device key: %v", err)
	}
	for name, der := range keyDERs(t, a) {
		if !bytes.Equal(der, secrets[name]) {
			t.Errorf("%s key changed across reopen", name)
		}
	}
}

func TestSealedKeyInAnotherSlotDoesNotOpen(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	err := e.db.Update(func(tx *bbolt.Tx) error {
		b := tx.Bucket(bucketCA)
		return b.Bucket(keyRoot).Put(fieldKey, bytes.Clone(b.Bucket(keyIntermediate).Get(fieldKey)))
	})
	if err != nil {
		t.Fatal(err)
	}
	_, err = Open(e.db, e.opts)
	if !errors.Is(err, ErrCorrupt) || !errors.Is(err, keyseal.ErrOpen) {
		t.Fatalf("Open with the intermediate's sealed key in the root slot: %v, want ErrCorrupt and keyseal.ErrOpen", err)
	}
}

// A store written before sealing existed (plain PKCS#8 everywhere) is read,
// then sealed in place by the first Open with a device key.
func TestOpenSealsPlainKeys(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(o *Options) { o.Sealer = nil })
	if _, err := e.a.LoadOrIssueServer([]string{"gw.local"}); err != nil {
		t.Fatal(err)
	}
	e.advance(time.Hour)
	imp := makeCA(t, "Enterprise Issuing CA", nil, e.clk.Now(), &caOpts{maxPathLen: -1})
	if err := e.a.ImportIssuer([]*x509.Certificate{imp.cert}, imp.key); err != nil {
		t.Fatal(err)
	}
	if err := e.a.UseLocalIssuer(); err != nil {
		t.Fatal(err)
	}
	if err := e.a.RotateRoot(""); err != nil { // an intermediate-previous entry
		t.Fatal(err)
	}
	if _, err := e.a.LoadOrIssueServer([]string{"gw.local"}); err != nil {
		t.Fatal(err)
	}
	before := keyDERs(t, e.a)
	for _, name := range keyEntries {
		if v := rawKey(t, e.db, name); v == nil || keyseal.IsSealed(v) || v[0] != 0x30 {
			t.Fatalf("precondition: %q key is not plain DER", name)
		}
	}
	srv, err := e.a.LoadOrIssueServer([]string{"gw.local"})
	if err != nil {
		t.Fatal(err)
	}

	e.opts.Sealer = e.sealer
	e.reopen(t)
	for _, name := range keyEntries {
		if v := rawKey(t, e.db, name); !keyseal.IsSealed(v) {
			t.Errorf("%q key not sealed by Open", name)
		}
	}
	for name, der := range keyDERs(t, e.a) {
		if !bytes.Equal(der, before[name]) {
			t.Errorf("%s key changed by sealing", name)
		}
	}
	got, err := e.a.LoadOrIssueServer([]string{"gw.local"})
	if err != nil {
		t.Fatal(err)
	}
	if got.Leaf.SerialNumber.Cmp(srv.Leaf.SerialNumber) != 0 {
		t.Error("listener certificate re-issued after sealing; want the stored one")
	}
	e.reopen(t) // and it opens again, now sealed
}

// Every operation logs, none logs key material, sealed or not.
func TestLogsCarryNoSecretsAcrossOperations(t *testing.T) {
	t.Parallel()
	var logs bytes.Buffer
	e := newEnv(t, func(o *Options) {
		o.Logger = slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	})
	var secrets [][]byte
	leaf := mustIssue(t, e.a, IssueRequest{Client: true, Subject: "CN=s", KeyType: KeyRSA2048})
	der, _ := x509.MarshalPKCS8PrivateKey(leaf.Key)
	secrets = append(secrets, der)
	if err := e.a.Revoke(leaf.Cert.SerialNumber, ReasonKeyCompromise, time.Time{}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.a.LoadOrIssueServer([]string{"gw.local"}); err != nil {
		t.Fatal(err)
	}
	ent := newEnterprise(t, e.clk.Now())
	if err := e.a.ImportIssuer([]*x509.Certificate{ent.issuing.cert, ent.policy.cert, ent.root.cert}, ent.issuing.key); err != nil {
		t.Fatal(err)
	}
	if err := e.a.UseLocalIssuer(); err != nil {
		t.Fatal(err)
	}
	if err := e.a.RotateRoot(""); err != nil {
		t.Fatal(err)
	}
	e.clk.Set(e.a.Intermediate().NotAfter.Add(-time.Hour))
	e.maintain(t)
	for _, d := range keyDERs(t, e.a) {
		secrets = append(secrets, d)
	}
	for _, name := range keyEntries {
		if v := rawKey(t, e.db, name); v != nil {
			secrets = append(secrets, v)
		}
	}
	out := logs.String()
	if !strings.Contains(out, "revoked certificate") || !strings.Contains(out, "imported issuer") || !strings.Contains(out, "created new local root CA") {
		t.Fatalf("operations not logged:\n%s", out)
	}
	if strings.Contains(out, "PRIVATE KEY") {
		t.Error("log contains a PEM private key")
	}
	for _, s := range secrets {
		for _, enc := range []string{base64.StdEncoding.EncodeToString(s), fmt.Sprintf("%x", s), fmt.Sprintf("%X", s)} {
			if strings.Contains(out, enc[len(enc)/2:len(enc)/2+32]) {
				t.Errorf("log contains key material")
			}
		}
	}
}
