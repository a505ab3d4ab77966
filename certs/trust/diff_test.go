package trust

import (
	"slices"
	"testing"
	"time"
)

func TestDiffVersions(t *testing.T) {
	t.Parallel()
	root := newCert(t, nil, "Root CA")
	root2 := newCert(t, nil, "Root CA 2")
	renewed := newCert(t, nil, "Root CA (renewed)")
	inter := newCert(t, root, "Issuing CA")
	crl1 := inter.crl(t, testNow.Add(time.Hour))
	crl2 := inter.crl(t, testNow.Add(2*time.Hour))

	// version makes a version of valid entries (facts filled).
	version := func(n uint64, entries ...Entry) Version {
		valid, rejected := Validate(entries, testNow)
		if len(rejected) != 0 {
			t.Fatalf("fixture rejected: %v", rejected)
		}
		return Version{Number: n, Entries: valid}
	}
	vault := func(e Entry, version int) Entry {
		e.Source = Source{Kind: SourceVault, Name: e.Name, Version: version}
		return e
	}
	base := version(1, entryOf(TrustList, "root", root, nil), entryOf(IssuerList, "inter", inter, crl1))

	tests := []struct {
		name                    string
		from, to                Version
		added, removed, changed []string
	}{
		{name: "same", from: base, to: base},
		{name: "from nothing", from: Version{}, to: base, added: []string{"trust/root", "issuer/inter"}},
		{name: "to nothing", from: base, to: Version{Number: 2}, removed: []string{"trust/root", "issuer/inter"}},
		{
			name:  "added",
			from:  base,
			to:    version(2, entryOf(TrustList, "root", root, nil), entryOf(TrustList, "root2", root2, nil), entryOf(IssuerList, "inter", inter, crl1)),
			added: []string{"trust/root2"},
		},
		{
			name:    "renewed under the same name",
			from:    version(1, entryOf(TrustList, "root", root, nil), entryOf(TrustList, "root2", root2, nil)),
			to:      version(2, entryOf(TrustList, "root", renewed, nil), entryOf(TrustList, "root2", root2, nil)),
			changed: []string{"trust/root"},
		},
		{
			name:    "new CRL",
			from:    base,
			to:      version(2, entryOf(TrustList, "root", root, nil), entryOf(IssuerList, "inter", inter, crl2)),
			changed: []string{"issuer/inter"},
		},
		{
			name: "upload published to the vault",
			from: base,
			to:   version(2, vault(entryOf(TrustList, "root", root, nil), 1), entryOf(IssuerList, "inter", inter, crl1)),
		},
		{
			name:    "renamed",
			from:    base,
			to:      version(2, entryOf(TrustList, "corp root", root, nil), entryOf(IssuerList, "inter", inter, crl1)),
			changed: nil,
		},
		{
			name:    "moved between lists",
			from:    version(1, entryOf(TrustList, "root", root, nil), entryOf(TrustList, "inter", inter, nil)),
			to:      version(2, entryOf(TrustList, "root", root, nil), entryOf(IssuerList, "inter", inter, nil)),
			added:   []string{"issuer/inter"},
			removed: []string{"trust/inter"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			d := DiffVersions(tt.from, tt.to)
			if d.From != tt.from.Number || d.To != tt.to.Number {
				t.Errorf("From, To = %d, %d", d.From, d.To)
			}
			check := func(what string, got, want []string) {
				t.Helper()
				if want == nil {
					want = []string{}
				}
				if !slices.Equal(got, want) {
					t.Errorf("%s = %v, want %v", what, got, want)
				}
			}
			check("added", names(d.Added), tt.added)
			check("removed", names(d.Removed), tt.removed)
			var changed []Entry
			for _, c := range d.Changed {
				if c.From.List != c.To.List {
					t.Errorf("change across lists: %+v", c)
				}
				changed = append(changed, c.To)
			}
			check("changed", names(changed), tt.changed)
			if d.Empty() != (len(tt.added)+len(tt.removed)+len(tt.changed) == 0) {
				t.Errorf("Empty() = %v", d.Empty())
			}
		})
	}
}
