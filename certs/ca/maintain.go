package ca

import (
	"fmt"
	"maps"
	"slices"
	"time"

	"go.etcd.io/bbolt"
)

// MaintenanceResult says what [Authority.Maintain] did and what needs the
// caller's attention.
type MaintenanceResult struct {
	// IssuerChanged is set when the active issuer changed (a rotated
	// intermediate, an expired imported issuer replaced by the local one):
	// leaves issued before should be re-issued soon. Their old issuer is
	// kept until it expires, so they keep verifying meanwhile.
	IssuerChanged bool
	// TrustBundleChanged is set when TrustBundlePEM and Pool changed (a
	// root left or joined): client-CA pools and distributed copies of the
	// bundle (ca.pem) need refreshing.
	TrustBundleChanged bool
	// CRLsChanged is set when any CRL was re-signed or dropped: what
	// CRL and CRLPEM return changed.
	CRLsChanged bool
	// RootRenewalDue is set when less than a third of the root's lifetime
	// is left: an operator should run RotateRoot, so that sensors get the
	// new root during the overlap. (An expired root is replaced
	// automatically, without overlap, because nothing verifies any more.)
	RootRenewalDue bool
	// ImportedIssuerRenewalDue is set when less than a third of an
	// imported issuer's lifetime is left: the operator should import its
	// successor. When it expires, the local issuer takes over.
	ImportedIssuerRenewalDue bool
	// NextMaintenance is when Maintain next has something to do (a CRL to
	// re-sign, a certificate to rotate or drop).
	NextMaintenance time.Time
}

// Maintain brings the authority up to date with the clock (Options.Now), in
// one transaction:
//
//   - replaces the local intermediate when less than a third of its
//     lifetime is left, keeping the old one as the previous intermediate
//     until it expires (an older previous one is dropped);
//   - drops the previous intermediate when it expires, the previous root
//     when its overlap ends (with the previous intermediate it signed), and
//     an imported issuer when it expires (the local one takes over);
//   - replaces an expired root (without overlap: nothing it anchored
//     verifies any more);
//   - drops revocations of certificates expired for over a CRL validity;
//   - re-signs each issuer's CRL when less than half of its validity is
//     left or its content changed.
//
// Run it at least every NextMaintenance; running it more often is cheap
// (nothing is written when nothing is due). Open runs it once.
func (a *Authority) Maintain() (MaintenanceResult, error) {
	a.opMu.Lock()
	defer a.opMu.Unlock()
	res, err := a.maintainLocked()
	if err != nil {
		return res, fmt.Errorf("ca: maintain: %w", err)
	}
	return res, nil
}

func (a *Authority) maintainLocked() (MaintenanceResult, error) {
	now := a.now()
	prev := a.st.Load()
	next := prev.clone()
	var res MaintenanceResult
	changed := false
	localWasActive := next.imported == nil || !next.imported.active

	if !now.Before(next.root.cert.NotAfter) {
		a.log.Warn("local root CA expired; replacing root and intermediate without overlap",
			"root_fingerprint", fingerprint(next.root.cert.Raw), "root_not_after", next.root.cert.NotAfter)
		if err := a.replaceRoot(next, now, a.caKeyType(next), false); err != nil {
			return res, err
		}
		res.IssuerChanged = localWasActive
		res.TrustBundleChanged = true
		changed = true
	}
	if pr := next.prevRoot; pr != nil && (!now.Before(pr.until) || !now.Before(pr.cert.NotAfter)) {
		a.dropPreviousRoot(next)
		res.TrustBundleChanged = true
		changed = true
	}
	if next.prevInter != nil && !now.Before(next.prevInter.cert.NotAfter) {
		a.log.Info("dropped expired previous intermediate", "serial", serialHex(next.prevInter.cert))
		next.prevInter = nil
		changed = true
	}
	if imp := next.imported; imp != nil && !now.Before(imp.cert.NotAfter) {
		if imp.active {
			a.log.Warn("imported issuer expired; the local issuer issues certificates again",
				"subject", imp.cert.Subject.String(), "not_after", imp.cert.NotAfter)
			res.IssuerChanged = true
		}
		if imp.root != nil {
			res.TrustBundleChanged = true
		}
		next.imported = nil
		changed = true
	}
	if a.intermediateDue(next, now) {
		if err := a.rotateIntermediate(next, now); err != nil {
			return res, err
		}
		if next.imported == nil || !next.imported.active {
			res.IssuerChanged = true
		}
		changed = true
	}
	forced := a.pruneRevocations(next, now)
	crlsChanged, err := a.syncCRLs(next, now, forced)
	if err != nil {
		return res, err
	}
	res.CRLsChanged = crlsChanged
	changed = changed || crlsChanged || len(forced) > 0 || len(next.revoked) != len(prev.revoked)

	if changed {
		// Issuance records of long-expired leaves go with the write that
		// is happening anyway (at least every half CRL validity).
		var pruned int
		err := a.commit(prev, next, func(b *bbolt.Bucket) error {
			var err error
			pruned, err = pruneIssued(b, now.Add(-a.crlValidity))
			return err
		})
		if err != nil {
			return res, err
		}
		if pruned > 0 {
			a.log.Debug("pruned issuance records of expired certificates", "count", pruned)
		}
	}
	res.RootRenewalDue = needsRenewal(next.root.cert, now)
	res.ImportedIssuerRenewalDue = next.imported != nil && needsRenewal(next.imported.cert, now)
	res.NextMaintenance = a.nextMaintenance(next, now)
	if res.RootRenewalDue {
		a.log.Warn("local root CA renewal due: run a root rotation", "root_not_after", next.root.cert.NotAfter)
	}
	if res.ImportedIssuerRenewalDue {
		a.log.Warn("imported issuer renewal due: import its successor", "not_after", next.imported.cert.NotAfter)
	}
	return res, nil
}

// intermediateDue reports whether the local intermediate must be replaced:
// it is missing, or needs renewal and a replacement would outlive it (an
// intermediate is capped at its root's expiry; near the end of the root's
// life replacing it gains nothing, RotateRoot does). A clock behind the
// intermediate's NotBefore replaces nothing: a certificate made with a
// wrong clock would be worse than the one in place.
func (a *Authority) intermediateDue(st *state, now time.Time) bool {
	if st.inter == nil {
		return true
	}
	inter := st.inter.cert
	if now.Before(inter.NotBefore) {
		a.log.Warn("clock is behind the intermediate's NotBefore; not rotating it",
			"now", now, "not_before", inter.NotBefore)
		return false
	}
	if !needsRenewal(inter, now) {
		return false
	}
	return !now.Before(inter.NotAfter) || st.root.cert.NotAfter.After(inter.NotAfter)
}

// caKeyType is the key type for new CA keys: Options.KeyType, else the
// current intermediate's or root's, else the default.
func (a *Authority) caKeyType(st *state) KeyType {
	if a.keyType != "" {
		return a.keyType
	}
	for _, p := range []*storedPair{st.inter, st.root} {
		if p == nil {
			continue
		}
		if kt, err := KeyTypeOf(p.key.Public()); err == nil {
			return kt
		}
	}
	return DefaultKeyType
}

// rotateIntermediate replaces st's intermediate with a new one from st's
// root; a still valid current one becomes the previous intermediate.
func (a *Authority) rotateIntermediate(st *state, now time.Time) error {
	inter, err := newIntermediate(a.device, a.caKeyType(st), st.root, now)
	if err != nil {
		return fmt.Errorf("create intermediate: %w", err)
	}
	attrs := []any{"intermediate_serial", serialHex(inter.cert), "intermediate_not_after", inter.cert.NotAfter}
	if old := st.inter; old != nil && now.Before(old.cert.NotAfter) {
		if st.prevInter != nil {
			attrs = append(attrs, "dropped_serial", serialHex(st.prevInter.cert))
		}
		st.prevInter = old
		attrs = append(attrs, "previous_serial", serialHex(old.cert), "previous_not_after", old.cert.NotAfter)
	}
	st.inter = inter
	a.log.Info("issued intermediate", attrs...)
	return nil
}

// replaceRoot makes a new root and intermediate in st. With overlap the old
// root stays trusted for Options.RootOverlap and the old intermediate stays
// as the previous one; without, both go.
func (a *Authority) replaceRoot(st *state, now time.Time, kt KeyType, overlap bool) error {
	root, err := newRoot(a.device, kt, now)
	if err != nil {
		return fmt.Errorf("create root: %w", err)
	}
	inter, err := newIntermediate(a.device, kt, root, now)
	if err != nil {
		return fmt.Errorf("create intermediate: %w", err)
	}
	old := st.root.cert
	if overlap {
		until := now.Add(a.rootOverlap)
		if until.After(old.NotAfter) {
			until = old.NotAfter
		}
		st.prevRoot = &previousRoot{cert: old, until: until}
		st.prevInter = nil
		if st.inter != nil && now.Before(st.inter.cert.NotAfter) {
			st.prevInter = st.inter
		}
	} else {
		st.prevRoot, st.prevInter = nil, nil
	}
	st.root, st.inter = root, inter
	a.log.Info("created new local root CA",
		"root_fingerprint", fingerprint(root.cert.Raw), "root_not_after", root.cert.NotAfter, "key_type", kt,
		"previous_root_fingerprint", fingerprint(old.Raw), "overlap", overlap)
	return nil
}

// dropPreviousRoot ends a root rotation's overlap: the previous root leaves
// the trust bundle, and the previous intermediate it signed goes with it
// (its leaves no longer verify).
func (a *Authority) dropPreviousRoot(st *state) {
	pr := st.prevRoot
	if st.prevInter != nil && st.prevInter.cert.CheckSignatureFrom(pr.cert) == nil {
		st.prevInter = nil
	}
	st.prevRoot = nil
	a.log.Info("previous root CA left the trust bundle", "root_fingerprint", fingerprint(pr.cert.Raw))
}

// pruneRevocations drops revocations of issuers no longer kept, and of
// certificates expired before the last full CRL period, from st. It
// returns the issuers whose CRL must be re-signed.
func (a *Authority) pruneRevocations(st *state, now time.Time) map[string]bool {
	forced := map[string]bool{}
	cutoff := now.Add(-a.crlValidity)
	for id, l := range st.revoked {
		if _, ok := st.issuerByID(id); !ok {
			delete(st.revoked, id)
			continue
		}
		var kept *revList
		for k, r := range l.entries {
			if r.NotAfter.IsZero() || !r.NotAfter.Before(cutoff) {
				continue
			}
			if kept == nil {
				kept = &revList{entries: maps.Clone(l.entries)}
			}
			delete(kept.entries, k)
		}
		if kept != nil {
			st.revoked[id] = kept
			forced[id] = true
		}
	}
	return forced
}

// syncCRLs signs a CRL for every issuer of st that has none, is in forced,
// or whose CRL is due (half its validity gone, or dated after now: the
// clock went back), and drops CRLs of issuers no longer kept.
func (a *Authority) syncCRLs(st *state, now time.Time, forced map[string]bool) (bool, error) {
	changed := false
	keep := map[string]bool{}
	for _, iss := range st.issuers() {
		keep[iss.id] = true
		c := st.crls[iss.id]
		if c != nil && !forced[iss.id] && now.Before(a.crlRefreshTime(c)) && !now.Before(c.thisUpdate) {
			continue
		}
		nc, err := a.signCRL(iss, st.revoked[iss.id], c, now)
		if err != nil {
			return false, err
		}
		st.crls[iss.id] = nc
		changed = true
	}
	for id := range st.crls {
		if !keep[id] {
			delete(st.crls, id)
			changed = true
		}
	}
	return changed, nil
}

// nextMaintenance is the first time after now at which Maintain has
// something to do for st.
func (a *Authority) nextMaintenance(st *state, now time.Time) time.Time {
	var times []time.Time
	add := func(t time.Time) {
		if t.After(now) {
			times = append(times, t)
		}
	}
	add(st.root.cert.NotAfter)
	add(renewalTime(st.root.cert))
	add(st.inter.cert.NotAfter)
	if st.root.cert.NotAfter.After(st.inter.cert.NotAfter) {
		add(renewalTime(st.inter.cert))
	}
	if st.prevRoot != nil {
		add(st.prevRoot.until)
	}
	if st.prevInter != nil {
		add(st.prevInter.cert.NotAfter)
	}
	if st.imported != nil {
		add(st.imported.cert.NotAfter)
		add(renewalTime(st.imported.cert))
	}
	for _, c := range st.crls {
		add(a.crlRefreshTime(c))
	}
	for _, l := range st.revoked {
		for _, r := range l.entries {
			if !r.NotAfter.IsZero() {
				add(r.NotAfter.Add(a.crlValidity))
			}
		}
	}
	if len(times) == 0 {
		return now.Add(a.crlValidity / 2)
	}
	return slices.MinFunc(times, func(x, y time.Time) int { return x.Compare(y) })
}

// RotateRoot replaces the root: a new root and a new intermediate (of key
// type kt; empty keeps the current type, or Options.KeyType when set)
// become the local CA. The old root stays in TrustBundlePEM and Pool for
// Options.RootOverlap (capped at its expiry) or until FinishRootRotation,
// so that sensors can install the new root first; the old intermediate is
// kept as the previous one (leaves issued under it keep verifying through
// the old root during the overlap; a previous intermediate from an earlier
// rotation is dropped). The issuer and the trust bundle change: re-issue
// leaves and redistribute the bundle. It fails with ErrRotationInProgress
// while the overlap of an earlier rotation lasts.
func (a *Authority) RotateRoot(kt KeyType) error {
	if kt != "" {
		if err := kt.check(); err != nil {
			return fmt.Errorf("ca: rotate root: %w", err)
		}
	}
	a.opMu.Lock()
	defer a.opMu.Unlock()
	prev := a.st.Load()
	if prev.prevRoot != nil {
		return fmt.Errorf("ca: rotate root: %w: the previous root stays until %s or FinishRootRotation",
			ErrRotationInProgress, prev.prevRoot.until.UTC().Format(time.RFC3339))
	}
	if kt == "" {
		kt = a.caKeyType(prev)
	}
	now := a.now()
	next := prev.clone()
	if err := a.replaceRoot(next, now, kt, true); err != nil {
		return fmt.Errorf("ca: rotate root: %w", err)
	}
	a.pruneRevocations(next, now)
	if _, err := a.syncCRLs(next, now, nil); err != nil {
		return fmt.Errorf("ca: rotate root: %w", err)
	}
	if err := a.commit(prev, next, nil); err != nil {
		return fmt.Errorf("ca: rotate root: %w", err)
	}
	return nil
}

// FinishRootRotation ends a root rotation's overlap now: the previous root
// leaves the trust bundle, and the previous intermediate it signed is
// dropped with its CRL. Without a rotation in progress it does nothing.
func (a *Authority) FinishRootRotation() error {
	a.opMu.Lock()
	defer a.opMu.Unlock()
	prev := a.st.Load()
	if prev.prevRoot == nil {
		return nil
	}
	now := a.now()
	next := prev.clone()
	a.dropPreviousRoot(next)
	a.pruneRevocations(next, now)
	if _, err := a.syncCRLs(next, now, nil); err != nil {
		return fmt.Errorf("ca: finish root rotation: %w", err)
	}
	if err := a.commit(prev, next, nil); err != nil {
		return fmt.Errorf("ca: finish root rotation: %w", err)
	}
	return nil
}
