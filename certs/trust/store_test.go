package trust

import (
	"bytes"
	"context"
	"crypto/x509"
	"errors"
	"log/slog"
	"math/big"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

var ctx = context.Background()

func TestStageUploadApply(t *testing.T) {
	t.Parallel()
	ts := newTestStore(t, nil)
	if got := ts.rec.last(t); got.Version != 0 || len(got.Anchors) != 0 {
		t.Fatalf("OnApply at Open = %+v, want the empty snapshot", got)
	}
	root := newCert(t, nil, "Corp Root CA")
	inter := newCert(t, root, "Corp Issuing CA")
	client := newCert(t, root, "sensor-1", leaf())

	v, err := ts.StageUpload(TrustList, "corp", concat(root.pem(), client.pem()), "alice")
	if err != nil {
		t.Fatal(err)
	}
	if v.State != StateStaged || v.Origin != OriginUpload || v.CreatedBy != "alice" || !v.CreatedAt.Equal(testNow) {
		t.Errorf("staged version = %+v", v)
	}
	if got := names(v.Entries); !slices.Equal(got, []string{"trust/corp"}) {
		t.Errorf("entries = %v", got)
	}
	if len(v.Rejected) != 1 || v.Rejected[0].Name != "corp-2" || !strings.Contains(v.Rejected[0].Reason, "not a CA") {
		t.Errorf("rejected = %+v", v.Rejected)
	}
	// Staging changes nothing live.
	if ts.Snapshot().Version != 0 || ts.rec.calls() != 1 {
		t.Error("staging changed the live snapshot")
	}
	staged, ok, err := ts.Staged()
	if err != nil || !ok || staged.Number != v.Number || len(staged.Entries) != 1 {
		t.Fatalf("Staged() = %+v, %v, %v", staged, ok, err)
	}
	d, err := ts.Diff(0, v.Number)
	if err != nil || len(d.Added) != 1 || len(d.Removed)+len(d.Changed) != 0 {
		t.Fatalf("Diff = %+v, %v", d, err)
	}

	// A second upload stacks on the staged version.
	v2, err := ts.StageUpload(IssuerList, "corp-issuing", concat(inter.pem(), crlPEM(inter.crl(t, testNow.Add(time.Hour)))), "alice")
	if err != nil {
		t.Fatal(err)
	}
	if got := names(v2.Entries); !slices.Equal(got, []string{"trust/corp", "issuer/corp-issuing"}) || v2.Base != v.Number {
		t.Errorf("stacked version entries = %v, base %d", got, v2.Base)
	}
	if !v2.List(IssuerList)[0].HasCRL {
		t.Error("the CRL of the upload did not go with its certificate")
	}
	if old, err := ts.Version(v.Number); err != nil || old.State != StateDiscarded {
		t.Errorf("replaced staged version state = %q, %v", old.State, err)
	}

	applied, err := ts.Apply(ctx, v2.Number, ApplyOptions{By: "bob"})
	if err != nil {
		t.Fatal(err)
	}
	if applied.State != StateApplied || applied.AppliedBy != "bob" || !applied.AppliedAt.Equal(testNow) {
		t.Errorf("applied = %+v", applied)
	}
	snap := ts.Snapshot()
	if snap.Version != v2.Number || !slices.Equal(subjects(snap.Anchors), []string{"Corp Root CA"}) ||
		!slices.Equal(subjects(snap.Issuers), []string{"Corp Issuing CA"}) || len(snap.CRLs) != 1 {
		t.Errorf("snapshot = version %d anchors %v issuers %v CRLs %d", snap.Version, subjects(snap.Anchors), subjects(snap.Issuers), len(snap.CRLs))
	}
	if got := ts.rec.last(t); got.Version != v2.Number || ts.rec.calls() != 2 {
		t.Errorf("OnApply got version %d after %d calls", got.Version, ts.rec.calls())
	}
	if _, ok, _ := ts.Staged(); ok {
		t.Error("a version is still staged after apply")
	}
	e, err := ts.Entry(TrustList, root.id())
	if err != nil || e.Name != "corp" || e.Source != (Source{Kind: SourceUpload, Name: "corp"}) || e.AddedBy != "alice" {
		t.Errorf("Entry = %+v, %v", e, err)
	}
	if _, err := ts.Entry(IssuerList, root.id()); !errors.Is(err, ErrNotFound) {
		t.Errorf("Entry in the wrong list: %v, want ErrNotFound", err)
	}
	vs, err := ts.Versions()
	if err != nil || len(vs) != 2 || vs[0].Number != v2.Number || vs[0].State != StateApplied || vs[0].Entries != nil || vs[0].Counts.Trust != 1 || vs[0].Counts.Issuer != 1 {
		t.Errorf("Versions() = %+v, %v", vs, err)
	}
	if _, err := ts.Version(99); !errors.Is(err, ErrNotFound) {
		t.Errorf("Version(99) = %v, want ErrNotFound", err)
	}
}

func TestUploadRules(t *testing.T) {
	t.Parallel()
	ts := newTestStore(t, nil)
	root := newCert(t, nil, "Root CA")
	inter := newCert(t, root, "Issuing CA")
	if _, err := ts.StageUpload("nope", "x", root.pem(), "a"); !errors.Is(err, ErrInvalid) {
		t.Errorf("unknown list: %v", err)
	}
	if _, err := ts.StageUpload(TrustList, "x", []byte("junk"), "a"); !errors.Is(err, ErrInvalid) {
		t.Errorf("junk: %v", err)
	}
	// An issuer without its anchor is staged, and rejected in the version.
	v, err := ts.StageUpload(IssuerList, "inter", inter.pem(), "a")
	if err != nil || len(v.Entries) != 0 || len(v.Rejected) != 1 {
		t.Fatalf("issuer without anchor: %v, %+v, %v", names(v.Entries), v.Rejected, err)
	}
	if _, _, err := ts.StageSync([]Remote{{List: TrustList, Name: "root", Version: 1, Data: root.pem()}}, "sync"); err != nil {
		t.Fatal(err)
	}
	v, err = ts.StageUpload(IssuerList, "inter", inter.pem(), "a")
	if err != nil || len(v.List(IssuerList)) != 1 || len(v.Rejected) != 0 {
		t.Fatalf("issuer upload: %v, %v", names(v.Entries), err)
	}
	v, err = ts.StageUpload(IssuerList, "crl", crlPEM(inter.crl(t, testNow.Add(time.Hour))), "a")
	if err != nil || !v.List(IssuerList)[0].HasCRL || v.List(IssuerList)[0].Name != "inter" {
		t.Fatalf("CRL upload: %+v, %v", v.List(IssuerList), err)
	}
	other := newCert(t, nil, "Other CA")
	if _, err := ts.StageUpload(IssuerList, "crl", crlPEM(other.crl(t, testNow.Add(time.Hour))), "a"); !errors.Is(err, ErrInvalid) {
		t.Errorf("CRL of no entry: %v, want ErrInvalid", err)
	}
	// The name of a vault secret is not free for an upload.
	if _, err := ts.StageUpload(TrustList, "root", other.pem(), "a"); !errors.Is(err, ErrInvalid) {
		t.Errorf("upload named like a vault secret: %v, want ErrInvalid", err)
	}
	// Uploading under the same name replaces the earlier upload.
	if _, err := ts.StageUpload(TrustList, "mine", other.pem(), "a"); err != nil {
		t.Fatal(err)
	}
	other2 := newCert(t, nil, "Other CA 2")
	v, err = ts.StageUpload(TrustList, "mine", other2.pem(), "a")
	if err != nil {
		t.Fatal(err)
	}
	if got := names(v.List(TrustList)); !slices.Equal(got, []string{"trust/mine", "trust/root"}) || v.List(TrustList)[0].ID != other2.id() {
		t.Errorf("after re-upload: %v", got)
	}
}

func TestStageSync(t *testing.T) {
	t.Parallel()
	ts := newTestStore(t, nil)
	a, b := newCert(t, nil, "CA A"), newCert(t, nil, "CA B")
	inter := newCert(t, a, "Issuing A")
	set := []Remote{
		{List: TrustList, Name: "a", Version: 1, Data: a.pem()},
		{List: TrustList, Name: "b", Version: 3, Data: b.cert.Raw}, // DER
		{List: IssuerList, Name: "inter", Version: 2, Data: concat(inter.pem(), crlPEM(inter.crl(t, testNow.Add(time.Hour))))},
		{List: TrustList, Name: "junk", Version: 1, Data: []byte("junk")},
	}
	v1, changed, err := ts.StageSync(set, "syncer")
	if err != nil || !changed {
		t.Fatalf("first sync: changed %v, %v", changed, err)
	}
	if got := names(v1.Entries); !slices.Equal(got, []string{"trust/a", "trust/b", "issuer/inter"}) {
		t.Errorf("entries = %v", got)
	}
	if len(v1.Rejected) != 1 || v1.Rejected[0].Name != "junk" || !strings.Contains(v1.Rejected[0].Reason, "does not parse") {
		t.Errorf("rejected = %+v", v1.Rejected)
	}
	v2, changed, err := ts.StageSync(set, "syncer")
	if err != nil || changed || v2.Number != v1.Number {
		t.Fatalf("same set again: version %d changed %v, %v", v2.Number, changed, err)
	}
	known := ts.Known()
	want := map[RemoteKey]int{{TrustList, "a"}: 1, {TrustList, "b"}: 3, {IssuerList, "inter"}: 2}
	if len(known) != len(want) {
		t.Errorf("Known() = %v, want %v", known, want)
	}
	for k, n := range want {
		if known[k] != n {
			t.Errorf("Known()[%v] = %d, want %d", k, known[k], n)
		}
	}
	ts.mustApplyStaged(t)
	// What the syncer sends once it knows: data only for what changed.
	unchanged := []Remote{
		{List: TrustList, Name: "a", Version: 1},
		{List: TrustList, Name: "b", Version: 3},
		{List: IssuerList, Name: "inter", Version: 2},
		{List: TrustList, Name: "junk", Version: 1, Data: []byte("junk")},
	}
	if v, changed, err := ts.StageSync(unchanged, "syncer"); err != nil || changed {
		t.Fatalf("unchanged set after apply: version %d changed %v, %v", v.Number, changed, err)
	}
	// b gone from the vault, a new version of a: b dropped, a replaced.
	a2 := newCert(t, nil, "CA A")
	v3, changed, err := ts.StageSync([]Remote{{List: TrustList, Name: "a", Version: 2, Data: a2.pem()}, {List: IssuerList, Name: "inter", Version: 2}}, "syncer")
	if err != nil || !changed {
		t.Fatalf("changed set: %v, %v", changed, err)
	}
	d, _ := ts.Diff(ts.Snapshot().Version, v3.Number)
	// inter was signed by the old key of a: it no longer chains, and leaves too.
	if len(d.Changed) != 1 || !slices.Equal(names(d.Removed), []string{"trust/b", "issuer/inter"}) {
		t.Errorf("diff = added %v removed %v changed %d", names(d.Added), names(d.Removed), len(d.Changed))
	}
	if len(v3.List(IssuerList)) != 0 || len(v3.Rejected) != 1 || v3.Rejected[0].Name != "inter" {
		t.Errorf("v3 issuers %v rejected %+v", names(v3.List(IssuerList)), v3.Rejected)
	}
	// Data nil for a version the store does not hold is an error.
	if _, _, err := ts.StageSync([]Remote{{List: TrustList, Name: "a", Version: 9}}, "syncer"); !errors.Is(err, ErrInvalid) {
		t.Errorf("nil data for an unknown version: %v, want ErrInvalid", err)
	}
	if _, _, err := ts.StageSync([]Remote{{List: TrustList, Name: "a"}, {List: TrustList, Name: "a"}}, "syncer"); !errors.Is(err, ErrInvalid) {
		t.Errorf("repeated name: %v, want ErrInvalid", err)
	}
}

func TestTombstone(t *testing.T) {
	t.Parallel()
	ts := newTestStore(t, nil)
	a, b := newCert(t, nil, "CA A"), newCert(t, nil, "CA B")
	set := []Remote{{List: TrustList, Name: "a", Version: 4, Data: a.pem()}, {List: TrustList, Name: "b", Version: 1, Data: b.pem()}}
	if _, _, err := ts.StageSync(set, "syncer"); err != nil {
		t.Fatal(err)
	}
	ts.mustApplyStaged(t)

	v, err := ts.StageDelete(TrustList, a.id(), "alice")
	if err != nil {
		t.Fatal(err)
	}
	if got := names(v.Entries); !slices.Equal(got, []string{"trust/b"}) || len(v.Removed) != 1 || v.Removed[0].Name != "a" || v.Removed[0].Version != 4 {
		t.Fatalf("after delete: entries %v removed %+v", got, v.Removed)
	}
	if _, err := ts.StageDelete(TrustList, "0123456789abcdef", "alice"); !errors.Is(err, ErrNotFound) {
		t.Errorf("delete of nothing: %v, want ErrNotFound", err)
	}
	ts.mustApplyStaged(t)
	if k := ts.Known(); k[RemoteKey{TrustList, "a"}] != 4 {
		t.Errorf("Known() = %v, want the tombstoned name with its version", k)
	}
	// The next sync, with a in the vault still (even newer), does not bring it back.
	set[0].Version, set[0].Data = 5, a.pem()
	v, changed, err := ts.StageSync(set, "syncer")
	if err != nil || changed || names(v.Entries)[0] != "trust/b" || len(v.Entries) != 1 {
		t.Fatalf("sync after delete: %v changed %v, %v", names(v.Entries), changed, err)
	}
	// Tombstones are carried through other kinds of versions.
	c := newCert(t, nil, "CA C")
	v, err = ts.StageUpload(TrustList, "c", c.pem(), "alice")
	if err != nil || len(v.Removed) != 1 {
		t.Fatalf("upload after delete: removed %+v, %v", v.Removed, err)
	}
	ts.mustApplyStaged(t)
	if v, _, _ := ts.StageSync(set, "syncer"); slices.Contains(names(v.Entries), "trust/a") {
		t.Fatal("a came back after an upload version")
	}

	// Add from vault clears the tombstone.
	v, err = ts.StageAdd(TrustList, Remote{Name: "a", Version: 5, Data: a.pem()}, "alice")
	if err != nil {
		t.Fatal(err)
	}
	if len(v.Removed) != 0 || !slices.Contains(names(v.Entries), "trust/a") || v.Origin != OriginAdd {
		t.Fatalf("after add: entries %v removed %+v", names(v.Entries), v.Removed)
	}
	ts.mustApplyStaged(t)
	if v, changed, err := ts.StageSync(set, "syncer"); err != nil || changed || len(v.List(TrustList)) != 3 {
		t.Errorf("sync after add: %v changed %v, %v", names(v.Entries), changed, err)
	}
	if _, err := ts.StageAdd(TrustList, Remote{List: IssuerList, Name: "a", Data: a.pem()}, "alice"); !errors.Is(err, ErrInvalid) {
		t.Errorf("add with mismatched list: %v", err)
	}
}

func TestRollback(t *testing.T) {
	t.Parallel()
	ts := newTestStore(t, nil)
	if _, err := ts.Rollback(ctx, ApplyOptions{By: "x"}); !errors.Is(err, ErrNotFound) {
		t.Errorf("rollback with nothing applied: %v, want ErrNotFound", err)
	}
	a, b := newCert(t, nil, "CA A"), newCert(t, nil, "CA B")
	if _, err := ts.StageUpload(TrustList, "a", a.pem(), "x"); err != nil {
		t.Fatal(err)
	}
	v1 := ts.mustApplyStaged(t)
	if _, err := ts.StageUpload(TrustList, "b", b.pem(), "x"); err != nil {
		t.Fatal(err)
	}
	v2 := ts.mustApplyStaged(t)
	if got := subjects(ts.Snapshot().Anchors); !slices.Equal(got, []string{"CA A", "CA B"}) {
		t.Fatalf("anchors = %v", got)
	}
	// A staged version built on v2 is discarded by the rollback.
	if _, err := ts.StageDelete(TrustList, a.id(), "x"); err != nil {
		t.Fatal(err)
	}
	r, err := ts.Rollback(ctx, ApplyOptions{By: "ops"})
	if err != nil {
		t.Fatal(err)
	}
	if r.Origin != OriginRollback || r.State != StateApplied || r.Previous != v2.Number || r.Number <= v2.Number {
		t.Errorf("rollback version = %+v", r)
	}
	if got := subjects(ts.Snapshot().Anchors); !slices.Equal(got, []string{"CA A"}) || ts.rec.last(t).Version != r.Number {
		t.Errorf("after rollback anchors = %v, OnApply version %d", got, ts.rec.last(t).Version)
	}
	if _, ok, _ := ts.Staged(); ok {
		t.Error("staged version survived the rollback")
	}
	if old, _ := ts.Version(v2.Number); old.State != StateSuperseded {
		t.Errorf("v2 state = %q", old.State)
	}
	if d := DiffVersions(v1, r); !d.Empty() {
		t.Errorf("rollback differs from v1: %+v", d)
	}
	// Rolling back again returns to v2's content.
	if _, err := ts.Rollback(ctx, ApplyOptions{By: "ops"}); err != nil {
		t.Fatal(err)
	}
	if got := subjects(ts.Snapshot().Anchors); !slices.Equal(got, []string{"CA A", "CA B"}) {
		t.Errorf("after second rollback anchors = %v", got)
	}
}

func TestConfirmation(t *testing.T) {
	t.Parallel()
	a, b := newCert(t, nil, "CA A"), newCert(t, nil, "CA B")
	var asked [][]*x509.Certificate
	ts := newTestStore(t, func(o *Options) {
		o.SessionsUsing = func(certs []*x509.Certificate) int {
			asked = append(asked, certs)
			if slices.ContainsFunc(certs, func(c *x509.Certificate) bool { return c.Equal(a.cert) }) {
				return 3
			}
			return 0
		}
	})
	if _, err := ts.StageUpload(TrustList, "a", a.pem(), "x"); err != nil {
		t.Fatal(err)
	}
	if _, err := ts.StageUpload(TrustList, "b", b.pem(), "x"); err != nil {
		t.Fatal(err)
	}
	ts.mustApplyStaged(t)

	// Removing b: no session uses it, no confirmation needed.
	v, err := ts.StageDelete(TrustList, b.id(), "x")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ts.Apply(ctx, v.Number, ApplyOptions{By: "x"}); err != nil {
		t.Fatalf("apply without sessions: %v", err)
	}
	if _, err := ts.StageUpload(TrustList, "b", b.pem(), "x"); err != nil {
		t.Fatal(err)
	}
	ts.mustApplyStaged(t)

	// Removing a: three sessions use it.
	v, err = ts.StageDelete(TrustList, a.id(), "x")
	if err != nil {
		t.Fatal(err)
	}
	before := ts.Snapshot().Version
	_, err = ts.Apply(ctx, v.Number, ApplyOptions{By: "x"})
	var ce *ConfirmationError
	if !errors.As(err, &ce) || ce.Sessions != 3 || !slices.Equal(ce.CAs, []string{"a"}) || ce.EmptiesTrustList {
		t.Fatalf("apply = %v (%+v), want a confirmation error for 3 sessions of a", err, ce)
	}
	if !strings.Contains(err.Error(), "3 connected sessions") {
		t.Errorf("error = %q", err)
	}
	if ts.Snapshot().Version != before {
		t.Fatal("a refused apply changed the snapshot")
	}
	if s, ok, _ := ts.Staged(); !ok || s.Number != v.Number {
		t.Fatal("a refused apply dropped the staged version")
	}
	if got := asked[len(asked)-1]; len(got) != 1 || !got[0].Equal(a.cert) {
		t.Errorf("SessionsUsing asked about %v, want a only", subjects(got))
	}
	if _, err := ts.Apply(ctx, v.Number, ApplyOptions{By: "x", Confirm: true}); err != nil {
		t.Fatalf("confirmed apply: %v", err)
	}

	// Rollback brings a back: nothing removed that is in use.
	if _, err := ts.Rollback(ctx, ApplyOptions{By: "x"}); err != nil {
		t.Fatalf("rollback: %v", err)
	}
	// Rolling back again removes a once more: confirmation needed.
	if _, err := ts.Rollback(ctx, ApplyOptions{By: "x"}); !errors.As(err, &ce) {
		t.Fatalf("rollback removing a: %v, want a confirmation error", err)
	}
}

func TestConfirmEmptyTrustList(t *testing.T) {
	t.Parallel()
	ts := newTestStore(t, nil)
	a := newCert(t, nil, "CA A")
	if _, err := ts.StageUpload(TrustList, "a", a.pem(), "x"); err != nil {
		t.Fatal(err)
	}
	ts.mustApplyStaged(t)
	v, err := ts.StageDelete(TrustList, a.id(), "x")
	if err != nil {
		t.Fatal(err)
	}
	_, err = ts.Apply(ctx, v.Number, ApplyOptions{By: "x"})
	var ce *ConfirmationError
	if !errors.As(err, &ce) || !ce.EmptiesTrustList || ce.Sessions != 0 {
		t.Fatalf("apply = %v, want a confirmation error for an empty trust list", err)
	}
	if _, err := ts.Apply(ctx, v.Number, ApplyOptions{By: "x", Confirm: true}); err != nil {
		t.Fatal(err)
	}
	if len(ts.Snapshot().Anchors) != 0 {
		t.Error("anchors left after a confirmed empty apply")
	}
}

func TestApplyStaleAndDiscard(t *testing.T) {
	t.Parallel()
	ts := newTestStore(t, nil)
	a, b := newCert(t, nil, "CA A"), newCert(t, nil, "CA B")
	if _, err := ts.Apply(ctx, 1, ApplyOptions{}); !errors.Is(err, ErrNoStaged) {
		t.Errorf("apply with nothing staged: %v, want ErrNoStaged", err)
	}
	v1, err := ts.StageUpload(TrustList, "a", a.pem(), "x")
	if err != nil {
		t.Fatal(err)
	}
	v2, err := ts.StageUpload(TrustList, "b", b.pem(), "x")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ts.Apply(ctx, v1.Number, ApplyOptions{}); !errors.Is(err, ErrStale) {
		t.Errorf("apply of a replaced version: %v, want ErrStale", err)
	}
	if err := ts.Discard(); err != nil {
		t.Fatal(err)
	}
	if got, _ := ts.Version(v2.Number); got.State != StateDiscarded {
		t.Errorf("discarded version state = %q", got.State)
	}
	if err := ts.Discard(); !errors.Is(err, ErrNoStaged) {
		t.Errorf("second discard: %v, want ErrNoStaged", err)
	}
	if _, err := ts.Apply(ctx, v2.Number, ApplyOptions{}); !errors.Is(err, ErrNoStaged) {
		t.Errorf("apply of a discarded version: %v, want ErrNoStaged", err)
	}
}

func TestApplyRevalidates(t *testing.T) {
	t.Parallel()
	ts := newTestStore(t, nil)
	a := newCert(t, nil, "CA A")
	short := newCert(t, nil, "Short CA", validity(testNow.Add(-time.Hour), testNow.Add(time.Hour)))
	if _, err := ts.StageUpload(TrustList, "a", a.pem(), "x"); err != nil {
		t.Fatal(err)
	}
	v, err := ts.StageUpload(TrustList, "short", short.pem(), "x")
	if err != nil || len(v.Entries) != 2 {
		t.Fatalf("stage: %v, %v", names(v.Entries), err)
	}
	ts.clock.Add(2 * time.Hour)
	applied, err := ts.Apply(ctx, v.Number, ApplyOptions{By: "x"})
	if err != nil {
		t.Fatal(err)
	}
	if got := names(applied.Entries); !slices.Equal(got, []string{"trust/a"}) || len(applied.Rejected) != 1 || !strings.Contains(applied.Rejected[0].Reason, "expired") {
		t.Errorf("applied entries %v rejected %+v", got, applied.Rejected)
	}
	if stored, _ := ts.Version(v.Number); len(stored.Entries) != 1 || stored.Counts.Rejected != 1 {
		t.Errorf("stored version: %v, counts %+v", names(stored.Entries), stored.Counts)
	}
}

func TestReopenLastKnownGood(t *testing.T) {
	t.Parallel()
	ts := newTestStore(t, nil)
	a := newCert(t, nil, "CA A")
	inter := newCert(t, a, "Issuing A")
	if _, err := ts.StageUpload(TrustList, "a", a.pem(), "x"); err != nil {
		t.Fatal(err)
	}
	if _, err := ts.StageUpload(IssuerList, "inter", concat(inter.pem(), crlPEM(inter.crl(t, testNow.Add(time.Hour)))), "x"); err != nil {
		t.Fatal(err)
	}
	applied := ts.mustApplyStaged(t)
	b := newCert(t, nil, "CA B")
	staged, err := ts.StageUpload(TrustList, "b", b.pem(), "x")
	if err != nil {
		t.Fatal(err)
	}
	if err := ts.db.Close(); err != nil {
		t.Fatal(err)
	}

	db := openDB(t, ts.path)
	t.Cleanup(func() { _ = db.Close() })
	rec := &applyRecorder{}
	s, err := Open(Options{DB: db, Now: ts.clock.Now, OnApply: rec.OnApply})
	if err != nil {
		t.Fatal(err)
	}
	snap := rec.last(t)
	if rec.calls() != 1 || snap.Version != applied.Number || !slices.Equal(subjects(snap.Anchors), []string{"CA A"}) ||
		len(snap.Issuers) != 1 || len(snap.CRLs) != 1 {
		t.Errorf("OnApply at reopen: %d calls, version %d anchors %v", rec.calls(), snap.Version, subjects(snap.Anchors))
	}
	if s.Snapshot().Version != applied.Number {
		t.Errorf("Snapshot().Version = %d", s.Snapshot().Version)
	}
	if v, ok, err := s.Staged(); err != nil || !ok || v.Number != staged.Number {
		t.Errorf("staged version after reopen: %d, %v, %v", v.Number, ok, err)
	}
}

func TestHistoryBound(t *testing.T) {
	t.Parallel()
	const history = 3
	ts := newTestStore(t, func(o *Options) { o.History = history })
	a := newCert(t, nil, "CA A")
	for i := range 6 {
		if _, err := ts.StageUpload(TrustList, "a", newCert(t, nil, "CA").pem(), "x"); err != nil {
			t.Fatal(err)
		}
		if i%2 == 0 {
			if err := ts.Discard(); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := ts.StageUpload(TrustList, "a", a.pem(), "x"); err != nil {
			t.Fatal(err)
		}
		ts.clock.Add(time.Minute)
		ts.mustApplyStaged(t)
	}
	if _, err := ts.StageUpload(TrustList, "b", newCert(t, nil, "CA B").pem(), "x"); err != nil {
		t.Fatal(err)
	}
	vs, err := ts.Versions()
	if err != nil {
		t.Fatal(err)
	}
	count := make(map[State]int)
	for i, v := range vs {
		count[v.State]++
		if i > 0 && v.Number >= vs[i-1].Number {
			t.Errorf("Versions() not newest first: %d after %d", v.Number, vs[i-1].Number)
		}
	}
	if count[StateApplied] != 1 || count[StateSuperseded] != history-1 || count[StateStaged] != 1 || count[StateDiscarded] != history {
		t.Errorf("kept versions by state = %v", count)
	}
	// The previous applied version survives, so rollback works.
	if _, err := ts.Rollback(ctx, ApplyOptions{By: "x"}); err != nil {
		t.Errorf("rollback after pruning: %v", err)
	}
}

func TestPublish(t *testing.T) {
	t.Parallel()
	pub := &fakePublisher{}
	ts := newTestStore(t, func(o *Options) { o.Publisher = pub })
	a := newCert(t, nil, "CA A")
	if _, err := ts.StageUpload(TrustList, "a", a.pem(), "x"); err != nil {
		t.Fatal(err)
	}
	v := ts.mustApplyStaged(t)
	if got := v.Entries[0].Source; got != (Source{Kind: SourceVault, Name: "a", Version: 1}) || v.PublishError != "" {
		t.Errorf("published entry source = %+v, error %q", got, v.PublishError)
	}
	// The next sync finds it held.
	if k := ts.Known(); k[RemoteKey{TrustList, "a"}] != 1 {
		t.Errorf("Known() = %v", k)
	}
	if _, changed, err := ts.StageSync([]Remote{{List: TrustList, Name: "a", Version: 1}}, "syncer"); err != nil || changed {
		t.Errorf("sync after publish: changed %v, %v", changed, err)
	}

	pub.mu.Lock()
	pub.fail = true
	pub.mu.Unlock()
	b := newCert(t, nil, "CA B")
	if _, err := ts.StageUpload(TrustList, "b", b.pem(), "x"); err != nil {
		t.Fatal(err)
	}
	v = ts.mustApplyStaged(t)
	if !strings.Contains(v.PublishError, "vault unreachable") || len(ts.Snapshot().Anchors) != 2 {
		t.Errorf("failed publish: error %q, anchors %d", v.PublishError, len(ts.Snapshot().Anchors))
	}
	if e, _ := ts.Entry(TrustList, b.id()); e.Source.Kind != SourceUpload {
		t.Errorf("unpublished entry source = %+v", e.Source)
	}

	// Publishing switched off: no error recorded, the entry stays an upload.
	pub.mu.Lock()
	pub.fail, pub.off = false, true
	pub.mu.Unlock()
	c := newCert(t, nil, "CA C")
	if _, err := ts.StageUpload(TrustList, "c", c.pem(), "x"); err != nil {
		t.Fatal(err)
	}
	v = ts.mustApplyStaged(t)
	if e, _ := ts.Entry(TrustList, c.id()); e.Source.Kind != SourceUpload || v.PublishError != "" {
		t.Errorf("publishing off: source %+v, error %q", e.Source, v.PublishError)
	}
}

func TestCheckRevocation(t *testing.T) {
	t.Parallel()
	ts := newTestStore(t, nil)
	root := newCert(t, nil, "Root CA")
	inter := newCert(t, root, "Issuing CA")
	revoked := newCert(t, inter, "sensor-bad", leaf(), serial(0xbad))
	good := newCert(t, inter, "sensor-good", leaf())
	direct := newCert(t, root, "sensor-direct", leaf(), serial(0xd1))
	crl := inter.crl(t, testNow.Add(time.Hour), big.NewInt(0xbad))
	rootCRL := root.crl(t, testNow.Add(time.Hour), big.NewInt(0xd1), big.NewInt(0xbad))
	if _, err := ts.StageUpload(TrustList, "root", concat(root.pem(), crlPEM(rootCRL)), "x"); err != nil {
		t.Fatal(err)
	}
	if _, err := ts.StageUpload(IssuerList, "inter", concat(inter.pem(), crlPEM(crl)), "x"); err != nil {
		t.Fatal(err)
	}
	ts.mustApplyStaged(t)
	snap := ts.Snapshot()

	tests := []struct {
		name    string
		chain   []*x509.Certificate
		now     time.Time
		revoked bool
	}{
		{name: "revoked leaf, full chain", chain: []*x509.Certificate{revoked.cert, inter.cert, root.cert}, now: testNow, revoked: true},
		{name: "revoked leaf, leaf only", chain: []*x509.Certificate{revoked.cert}, now: testNow, revoked: true},
		{name: "good leaf", chain: []*x509.Certificate{good.cert, inter.cert, root.cert}, now: testNow},
		{name: "revoked by the root", chain: []*x509.Certificate{direct.cert, root.cert}, now: testNow, revoked: true},
		{name: "revocation not yet in force", chain: []*x509.Certificate{revoked.cert, inter.cert}, now: testNow.Add(-2 * time.Hour)},
		{name: "empty chain", now: testNow},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			err := snap.CheckRevocation(tt.chain, tt.now)
			if tt.revoked != errors.Is(err, ErrRevoked) {
				t.Fatalf("CheckRevocation = %v, revoked %v", err, tt.revoked)
			}
			if tt.revoked && !strings.Contains(err.Error(), tt.chain[0].SerialNumber.Text(16)) {
				t.Errorf("error %q does not name serial %s", err, tt.chain[0].SerialNumber.Text(16))
			}
		})
	}
	// The root's CRL lists 0xbad too, but the root did not sign that leaf.
	other := newCert(t, root, "sensor-other", leaf(), serial(0xbad))
	if err := snap.CheckRevocation([]*x509.Certificate{other.cert, root.cert}, testNow); !errors.Is(err, ErrRevoked) {
		t.Errorf("serial 0xbad of the root: %v", err)
	}
	// A hand-built snapshot (no recorded CRL issuers) still works on full chains.
	parsed, err := x509.ParseRevocationList(crl)
	if err != nil {
		t.Fatal(err)
	}
	bare := Snapshot{CRLs: []*x509.RevocationList{parsed}}
	if err := bare.CheckRevocation([]*x509.Certificate{revoked.cert, inter.cert}, testNow); !errors.Is(err, ErrRevoked) {
		t.Errorf("hand-built snapshot: %v", err)
	}
	if err := bare.CheckRevocation([]*x509.Certificate{good.cert, inter.cert}, testNow); err != nil {
		t.Errorf("hand-built snapshot, good leaf: %v", err)
	}
}

func TestOpenRequiresDB(t *testing.T) {
	t.Parallel()
	if _, err := Open(Options{Logger: slog.New(slog.DiscardHandler)}); err == nil {
		t.Fatal("Open without DB succeeded")
	}
}

func TestLogs(t *testing.T) {
	t.Parallel()
	var buf syncBuffer
	ts := newTestStore(t, func(o *Options) { o.Logger = slog.New(slog.NewJSONHandler(&buf, nil)) })
	root := newCert(t, nil, "Root CA")
	client := newCert(t, root, "sensor-1", leaf())
	if _, err := ts.StageUpload(TrustList, "corp", concat(root.pem(), client.pem()), "alice"); err != nil {
		t.Fatal(err)
	}
	ts.mustApplyStaged(t)
	out := buf.String()
	for _, want := range []string{`"msg":"trust: version staged"`, `"msg":"trust: entry rejected"`, `"reason":"not a CA certificate`, `"msg":"trust: version applied"`} {
		if !strings.Contains(out, want) {
			t.Errorf("log lacks %s:\n%s", want, out)
		}
	}
}

// syncBuffer is a bytes.Buffer safe for a handler and a reader.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
