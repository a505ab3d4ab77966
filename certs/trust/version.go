package trust

import (
	"bytes"
	"slices"
	"strings"
	"time"
)

// State is where a version is in its life.
type State string

const (
	// StateStaged is the one version waiting to be applied.
	StateStaged State = "staged"
	// StateApplied is the version the live pools hold.
	StateApplied State = "applied"
	// StateSuperseded is a version that was applied and no longer is.
	StateSuperseded State = "superseded"
	// StateDiscarded is a staged version that was discarded, or replaced by
	// a newer staged one, without being applied.
	StateDiscarded State = "discarded"
)

// Origins of a version: what made it.
const (
	OriginSync     = "sync"
	OriginUpload   = "upload"
	OriginDelete   = "delete"
	OriginAdd      = "add"
	OriginRollback = "rollback"
)

// Tombstone is a vault-sourced name deleted locally. It is carried into
// every later version, so that syncs do not bring the name back, until
// StageAdd re-adds it. The vault copy is untouched.
type Tombstone struct {
	List ListName `json:"list"`
	Name string   `json:"name"`
	// Version is the vault secret's version when it was deleted.
	Version     int       `json:"version,omitempty"`
	Fingerprint string    `json:"fingerprint,omitempty"`
	RemovedAt   time.Time `json:"removedAt"`
	RemovedBy   string    `json:"removedBy"`
}

// Counts sums up a version's content; it is filled even when a summary
// leaves the content out.
type Counts struct {
	Trust    int `json:"trust"`
	Issuer   int `json:"issuer"`
	Rejected int `json:"rejected"`
	Removed  int `json:"removed"`
}

// Version is one state of both lists.
type Version struct {
	Number    uint64    `json:"number"`
	State     State     `json:"state"`
	Origin    string    `json:"origin"` // one of the Origin constants
	Note      string    `json:"note,omitempty"`
	CreatedAt time.Time `json:"createdAt"`
	CreatedBy string    `json:"createdBy"`
	AppliedAt time.Time `json:"appliedAt,omitzero"`
	AppliedBy string    `json:"appliedBy,omitempty"`
	// Base is the version this one was made from (the staged or applied
	// one at the time); 0 for the first.
	Base uint64 `json:"base,omitempty"`
	// Previous is the version that was applied when this one was applied:
	// what Rollback returns to.
	Previous uint64 `json:"previous,omitempty"`
	// Entries are the valid entries, sorted by list (trust first), name, ID.
	Entries  []Entry     `json:"entries"`
	Rejected []Rejection `json:"rejected,omitempty"`
	// Removed are the tombstones of vault names deleted locally in this
	// version's lineage.
	Removed []Tombstone `json:"removed,omitempty"`
	// PublishError says which uploaded entries could not be published to
	// the vault when the version was applied; they stay upload-sourced.
	PublishError string `json:"publishError,omitempty"`
	Counts       Counts `json:"counts"`
}

// List returns the entries of list l.
func (v Version) List(l ListName) []Entry {
	var out []Entry
	for _, e := range v.Entries {
		if e.List == l {
			out = append(out, e)
		}
	}
	return out
}

// tombstoned reports whether the vault name of list l is tombstoned.
func (v Version) tombstoned(l ListName, name string) bool {
	return slices.ContainsFunc(v.Removed, func(t Tombstone) bool { return t.List == l && t.Name == name })
}

// normalize sorts the content and fills Counts.
func (v *Version) normalize() {
	if v.Entries == nil {
		v.Entries = []Entry{}
	}
	slices.SortStableFunc(v.Entries, compareEntries)
	slices.SortStableFunc(v.Rejected, func(a, b Rejection) int {
		if d := a.List.rank() - b.List.rank(); d != 0 {
			return d
		}
		return strings.Compare(a.Name, b.Name)
	})
	slices.SortStableFunc(v.Removed, func(a, b Tombstone) int {
		if d := a.List.rank() - b.List.rank(); d != 0 {
			return d
		}
		return strings.Compare(a.Name, b.Name)
	})
	v.Counts = Counts{
		Trust:    len(v.List(TrustList)),
		Issuer:   len(v.List(IssuerList)),
		Rejected: len(v.Rejected),
		Removed:  len(v.Removed),
	}
}

// summary is v without its content (Counts stay).
func (v Version) summary() Version {
	v.Entries, v.Rejected, v.Removed = nil, nil, nil
	return v
}

// sameContent reports whether a and b, both normalized, hold the same
// entries (certificate, CRL, source and name), rejections and tombstones;
// who added what and when does not count.
func sameContent(a, b Version) bool {
	return slices.EqualFunc(a.Entries, b.Entries, func(x, y Entry) bool {
		return x.List == y.List && x.Name == y.Name && x.Source == y.Source &&
			x.Fingerprint == y.Fingerprint && bytes.Equal(x.CRL, y.CRL)
	}) && slices.Equal(a.Rejected, b.Rejected) &&
		slices.EqualFunc(a.Removed, b.Removed, func(x, y Tombstone) bool {
			return x.List == y.List && x.Name == y.Name
		})
}

// Change is an entry whose certificate or CRL differs between two versions.
type Change struct {
	From Entry `json:"from"`
	To   Entry `json:"to"`
}

// Diff is what changes from one version to another.
type Diff struct {
	From    uint64   `json:"from"`
	To      uint64   `json:"to"`
	Added   []Entry  `json:"added"`
	Removed []Entry  `json:"removed"`
	Changed []Change `json:"changed"` // same list and name, different certificate or CRL
}

// Empty reports whether the diff changes nothing.
func (d Diff) Empty() bool { return len(d.Added)+len(d.Removed)+len(d.Changed) == 0 }

// DiffVersions compares two versions. An entry whose certificate is in the
// same list of both is unchanged, or changed when its CRL differs, whatever
// its name or source (an upload published to the vault keeps its place).
// Of the rest, entries of the same list and name (the vault secret name, or
// the upload's entry name) are changed; the others are added or removed.
func DiffVersions(from, to Version) Diff {
	d := Diff{From: from.Number, To: to.Number, Added: []Entry{}, Removed: []Entry{}, Changed: []Change{}}
	type key struct {
		list ListName
		s    string
	}
	byCert := make(map[key]Entry)
	for _, e := range from.Entries {
		byCert[key{e.List, e.Fingerprint}] = e
	}
	var added []Entry
	matched := make(map[key]bool)
	for _, e := range to.Entries {
		k := key{e.List, e.Fingerprint}
		old, ok := byCert[k]
		if !ok {
			added = append(added, e)
			continue
		}
		matched[k] = true
		if !bytes.Equal(old.CRL, e.CRL) {
			d.Changed = append(d.Changed, Change{From: old, To: e})
		}
	}
	// Names may repeat (two uploads without a name and the same CN), so
	// each name holds a queue of unmatched entries.
	byName := make(map[key][]Entry)
	for _, e := range from.Entries {
		if k := (key{e.List, e.Name}); !matched[key{e.List, e.Fingerprint}] {
			byName[k] = append(byName[k], e)
		}
	}
	for _, e := range added {
		k := key{e.List, e.Name}
		if olds := byName[k]; len(olds) > 0 {
			byName[k] = olds[1:]
			d.Changed = append(d.Changed, Change{From: olds[0], To: e})
			continue
		}
		d.Added = append(d.Added, e)
	}
	for _, olds := range byName {
		d.Removed = append(d.Removed, olds...)
	}
	slices.SortFunc(d.Added, compareEntries)
	slices.SortFunc(d.Removed, compareEntries)
	slices.SortFunc(d.Changed, func(a, b Change) int { return compareEntries(a.To, b.To) })
	return d
}
