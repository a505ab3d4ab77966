package trust

import (
	"bytes"
	"crypto/x509"
	"fmt"
	"slices"
	"strings"
	"time"
)

// draft is a version being built: kept entries (already in the base, they
// win over new ones holding the same certificate) then new ones, before
// validation.
type draft struct {
	kept, added []Entry
	rejected    []Rejection
	removed     []Tombstone
	note        string
}

// stage builds a new staged version on the base (the staged version, else
// the applied one) and stores it in one transaction, discarding the staged
// version it replaces. With skipUnchanged, a result with the base's content
// stores nothing and returns the base, false.
func (s *Store) stage(origin, by string, skipUnchanged bool, build func(t tx, base Version, now time.Time) (draft, error)) (Version, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	var (
		v       Version
		changed bool
	)
	err := s.update(func(t tx) error {
		base, err := t.base()
		if err != nil {
			return err
		}
		d, err := build(t, base, now)
		if err != nil {
			return err
		}
		valid, rejected := Validate(append(d.kept, d.added...), now)
		v = Version{
			State:     StateStaged,
			Origin:    origin,
			Note:      d.note,
			CreatedAt: now,
			CreatedBy: by,
			Base:      base.Number,
			Entries:   valid,
			Rejected:  append(slices.Clone(d.rejected), rejected...),
			Removed:   slices.Clone(d.removed),
		}
		v.normalize()
		if skipUnchanged && sameContent(v, base) {
			v = base
			return nil
		}
		changed = true
		if v.Number, err = t.nextNumber(); err != nil {
			return err
		}
		if old := t.meta(keyStaged); old != 0 {
			if err := t.setState(old, StateDiscarded); err != nil {
				return err
			}
		}
		if err := t.put(v); err != nil {
			return err
		}
		if err := t.setMeta(keyStaged, v.Number); err != nil {
			return err
		}
		return t.prune(s.history)
	})
	if err != nil {
		return Version{}, false, err
	}
	if changed {
		s.log.Info("trust: version staged", "version", v.Number, "origin", origin, "by", by, "base", v.Base,
			"trust", v.Counts.Trust, "issuer", v.Counts.Issuer, "rejected", v.Counts.Rejected)
		s.logRejections(v.Number, v.Rejected)
	}
	return v, changed, nil
}

func (s *Store) logRejections(version uint64, rs []Rejection) {
	for _, r := range rs {
		s.log.Warn("trust: entry rejected", "version", version, "list", r.List, "name", r.Name,
			"source", r.Source.Kind, "fingerprint", r.Fingerprint, "reason", r.Reason)
	}
}

// StageUpload stages an upload to list: data (PEM or DER, see ParseBundle)
// may hold several certificates and CRLs. Its certificates replace those of
// an earlier upload of the same name; they are named name, name-2, name-3…
// (the first one's subject CN when name is empty). A CRL goes with the
// certificate of the upload, or else of the list, that signed it. Entries
// that fail validation are in the version's Rejected.
func (s *Store) StageUpload(list ListName, name string, data []byte, by string) (Version, error) {
	list, err := ParseListName(string(list))
	if err != nil {
		return Version{}, fmt.Errorf("trust: upload: %w", err)
	}
	certs, crls, err := ParseBundle(data)
	if err != nil {
		return Version{}, fmt.Errorf("trust: upload %q: %w", name, err)
	}
	name = strings.TrimSpace(name)
	if name == "" && len(certs) > 0 {
		name = commonName(certs[0])
	}
	v, _, err := s.stage(OriginUpload, by, false, func(_ tx, base Version, now time.Time) (draft, error) {
		src := Source{Kind: SourceUpload, Name: name}
		d := draft{removed: base.Removed, note: fmt.Sprintf("upload %q to the %s list", name, list)}
		var added []Entry
		for i, c := range certs {
			e := Entry{List: list, Name: name, Source: src, AddedAt: now, AddedBy: by, DER: c.Raw}
			if i > 0 {
				e.Name = fmt.Sprintf("%s-%d", name, i+1)
			}
			if taken(base, list, e.Name, src) {
				return d, fmt.Errorf("%w: name %q is taken by another entry (or deleted vault secret) of the %s list", ErrInvalid, e.Name, list)
			}
			added = append(added, e)
		}
		// Entries of the base a CRL of the upload goes to.
		updated := make(map[string]Entry)
		for _, crl := range crls {
			if i := crlOwner(crl, added); i >= 0 {
				added[i].CRL = newerCRL(added[i].CRL, crl)
				continue
			}
			i := crlOwner(crl, base.List(list))
			if i < 0 {
				return d, fmt.Errorf("%w: upload %q: CRL issued by %q matches no certificate of the upload or of the %s list",
					ErrInvalid, name, crl.Issuer.String(), list)
			}
			e := base.List(list)[i]
			if u, ok := updated[e.Fingerprint]; ok {
				e = u
			}
			e.CRL = newerCRL(e.CRL, crl)
			updated[e.Fingerprint] = e
		}
		replaced := func(e Entry) bool { return len(certs) > 0 && e.List == list && e.Source == src }
		for _, e := range base.Entries {
			if replaced(e) {
				continue
			}
			if u, ok := updated[e.Fingerprint]; ok && e.List == list {
				e = u
			}
			d.kept = append(d.kept, e)
		}
		for _, r := range base.Rejected {
			if !(len(certs) > 0 && r.List == list && r.Source == src) {
				d.rejected = append(d.rejected, r)
			}
		}
		d.added = added
		return d, nil
	})
	if err != nil {
		return Version{}, fmt.Errorf("trust: upload %q: %w", name, err)
	}
	return v, nil
}

// taken reports whether name is held in list of base by an entry of
// another source than src, or tombstoned: publishing an upload under it
// would clash with a vault secret.
func taken(base Version, list ListName, name string, src Source) bool {
	return base.tombstoned(list, name) || slices.ContainsFunc(base.Entries, func(e Entry) bool {
		return e.List == list && e.Name == name && e.Source != src
	})
}

// crlOwner is the index of the entry of entries that issued crl, or -1.
func crlOwner(crl *x509.RevocationList, entries []Entry) int {
	for i, e := range entries {
		c, err := e.Certificate()
		if err != nil {
			continue
		}
		if bytes.Equal(crl.RawIssuer, c.RawSubject) && crl.CheckSignatureFrom(c) == nil {
			return i
		}
	}
	return -1
}

// newerCRL returns the DER of whichever of old and crl was issued last.
func newerCRL(old []byte, crl *x509.RevocationList) []byte {
	if len(old) > 0 {
		if prev, err := x509.ParseRevocationList(old); err == nil && prev.ThisUpdate.After(crl.ThisUpdate) {
			return old
		}
	}
	return crl.Raw
}

// StageDelete stages the removal of entry id (or full fingerprint) of list
// from the staged version, else the applied one; ErrNotFound when it has no
// such entry. A vault-sourced entry leaves a tombstone, so that later syncs
// do not bring it back until StageAdd; the vault copy is untouched.
func (s *Store) StageDelete(list ListName, id, by string) (Version, error) {
	v, _, err := s.stage(OriginDelete, by, false, func(_ tx, base Version, now time.Time) (draft, error) {
		gone, ok := findEntry(base, list, id)
		if !ok {
			return draft{}, fmt.Errorf("%s entry %q: %w", list, id, ErrNotFound)
		}
		d := draft{rejected: base.Rejected, removed: slices.Clone(base.Removed),
			note: fmt.Sprintf("delete %q from the %s list", gone.Name, list)}
		for _, e := range base.Entries {
			if e.List != gone.List || e.ID != gone.ID {
				d.kept = append(d.kept, e)
			}
		}
		if gone.Source.Kind == SourceVault && !base.tombstoned(list, gone.Source.Name) {
			d.removed = append(d.removed, Tombstone{List: list, Name: gone.Source.Name, Version: gone.Source.Version,
				Fingerprint: gone.Fingerprint, RemovedAt: now, RemovedBy: by})
		}
		return d, nil
	})
	if err != nil {
		return Version{}, fmt.Errorf("trust: delete %s entry %q: %w", list, id, err)
	}
	return v, nil
}

// StageAdd stages "add from vault": it clears the tombstone of
// remote.Name in list and adds the secret, replacing a vault entry of that
// name. remote.Data may be nil only when the store still holds that secret
// version (staged or applied).
func (s *Store) StageAdd(list ListName, remote Remote, by string) (Version, error) {
	if remote.List == "" {
		remote.List = list
	}
	if remote.List != list || strings.TrimSpace(remote.Name) == "" {
		return Version{}, fmt.Errorf("trust: add from vault: %w: want a named secret of the %s list, got %q of %q", ErrInvalid, list, remote.Name, remote.List)
	}
	if _, err := ParseListName(string(list)); err != nil {
		return Version{}, fmt.Errorf("trust: add from vault: %w", err)
	}
	v, _, err := s.stage(OriginAdd, by, false, func(t tx, base Version, now time.Time) (draft, error) {
		e, _, rej, err := s.fromRemote(t, base, remote, now, by)
		if err != nil {
			return draft{}, err
		}
		if rej != nil {
			return draft{}, fmt.Errorf("%w: %s", ErrInvalid, rej.Reason)
		}
		d := draft{added: []Entry{e}, note: fmt.Sprintf("add vault secret %q to the %s list", remote.Name, list)}
		isIt := func(l ListName, src Source) bool {
			return l == list && src.Kind == SourceVault && src.Name == remote.Name
		}
		for _, x := range base.Entries {
			if !isIt(x.List, x.Source) {
				d.kept = append(d.kept, x)
			}
		}
		for _, r := range base.Rejected {
			if !isIt(r.List, r.Source) {
				d.rejected = append(d.rejected, r)
			}
		}
		for _, ts := range base.Removed {
			if ts.List != list || ts.Name != remote.Name {
				d.removed = append(d.removed, ts)
			}
		}
		return d, nil
	})
	if err != nil {
		return Version{}, fmt.Errorf("trust: add vault secret %q to the %s list: %w", remote.Name, list, err)
	}
	return v, nil
}

// StageSync stages the vault's whole set of secrets, remote. Vault entries
// missing from it are dropped, tombstoned names skipped, uploads kept. When
// the result has the base's content no version is made: it returns the
// base (the staged version, else the applied one) and changed false.
func (s *Store) StageSync(remote []Remote, by string) (v Version, changed bool, err error) {
	seen := make(map[RemoteKey]bool)
	for _, r := range remote {
		if _, err := ParseListName(string(r.List)); err != nil {
			return Version{}, false, fmt.Errorf("trust: sync: secret %q: %w", r.Name, err)
		}
		k := RemoteKey{r.List, r.Name}
		if r.Name == "" || seen[k] {
			return Version{}, false, fmt.Errorf("trust: sync: %w: secret name %q empty or repeated in the %s list", ErrInvalid, r.Name, r.List)
		}
		seen[k] = true
	}
	remote = slices.Clone(remote)
	slices.SortFunc(remote, func(a, b Remote) int {
		return compareEntries(Entry{List: a.List, Name: a.Name}, Entry{List: b.List, Name: b.Name})
	})
	v, changed, err = s.stage(OriginSync, by, true, func(t tx, base Version, now time.Time) (draft, error) {
		d := draft{removed: base.Removed, note: fmt.Sprintf("vault sync: %d secrets", len(remote))}
		for _, e := range base.Entries {
			if e.Source.Kind != SourceVault {
				d.kept = append(d.kept, e)
			}
		}
		for _, r := range base.Rejected {
			if r.Source.Kind != SourceVault {
				d.rejected = append(d.rejected, r)
			}
		}
		for _, r := range remote {
			if base.tombstoned(r.List, r.Name) {
				continue
			}
			e, held, rej, err := s.fromRemote(t, base, r, now, by)
			switch {
			case err != nil:
				return d, err
			case rej != nil:
				d.rejected = append(d.rejected, *rej)
			case held:
				d.kept = append(d.kept, e)
			default:
				d.added = append(d.added, e)
			}
		}
		return d, nil
	})
	if err != nil {
		return Version{}, false, fmt.Errorf("trust: sync: %w", err)
	}
	return v, changed, nil
}

// fromRemote makes the entry of vault secret r: the one the store holds
// (held true) when the version matches and the data, if given, holds the
// same certificate and CRL; else a new one from r.Data. A secret whose data
// does not parse, or holds other than one certificate, comes back as a
// rejection.
func (s *Store) fromRemote(t tx, base Version, r Remote, now time.Time, by string) (e Entry, held bool, rej *Rejection, err error) {
	src := Source{Kind: SourceVault, Name: r.Name, Version: r.Version}
	old, ok := s.held(t, base, r.List, src)
	if r.Data == nil {
		if !ok {
			return Entry{}, false, nil, fmt.Errorf("%w: vault secret %q (%s list) version %d: no data, and the store does not hold that version", ErrInvalid, r.Name, r.List, r.Version)
		}
		return old, true, nil, nil
	}
	e = Entry{List: r.List, Name: r.Name, Source: src, AddedAt: now, AddedBy: by}
	certs, crls, err := ParseBundle(r.Data)
	if err != nil {
		rej := reject(e, "vault secret does not parse: %v", err)
		return Entry{}, false, &rej, nil
	}
	if len(certs) != 1 {
		rej := reject(e, "vault secret holds %d certificates (one expected)", len(certs))
		return Entry{}, false, &rej, nil
	}
	e.DER = certs[0].Raw
	// The newest CRL the certificate signed, else the first: Validate then
	// says what is wrong with it.
	for _, crl := range crls {
		if crlOwner(crl, []Entry{e}) == 0 {
			e.CRL = newerCRL(e.CRL, crl)
		}
	}
	if e.CRL == nil && len(crls) > 0 {
		e.CRL = crls[0].Raw
	}
	if ok && bytes.Equal(old.DER, e.DER) && bytes.Equal(old.CRL, e.CRL) {
		return old, true, nil, nil
	}
	return e, false, nil, nil
}

// held finds the entry of source src in list of base, else of the applied
// version.
func (s *Store) held(t tx, base Version, list ListName, src Source) (Entry, bool) {
	find := func(v Version) (Entry, bool) {
		i := slices.IndexFunc(v.Entries, func(e Entry) bool { return e.List == list && e.Source == src })
		if i < 0 {
			return Entry{}, false
		}
		return v.Entries[i], true
	}
	if e, ok := find(base); ok {
		return e, true
	}
	applied, err := t.versionOrEmpty(t.meta(keyApplied))
	if err != nil {
		return Entry{}, false
	}
	return find(applied)
}
