package trust

import (
	"errors"
	"math/big"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestValidate(t *testing.T) {
	t.Parallel()
	root := newCert(t, nil, "Root CA")
	otherRoot := newCert(t, nil, "Other Root CA")
	inter := newCert(t, root, "Issuing CA")
	orphan := newCert(t, otherRoot, "Orphan Issuing CA")
	client := newCert(t, root, "sensor-1", leaf())
	expired := newCert(t, nil, "Expired Root", validity(testNow.AddDate(-2, 0, 0), testNow.AddDate(-1, 0, 0)))
	future := newCert(t, nil, "Future Root", validity(testNow.Add(time.Hour), testNow.AddDate(1, 0, 0)))
	expiredInter := newCert(t, root, "Expired Issuing CA", validity(testNow.AddDate(-2, 0, 0), testNow.AddDate(0, 0, -1)))

	root1 := newCert(t, nil, "Pathlen1 Root", pathLen(1))
	below1 := newCert(t, root1, "Below Pathlen1")
	below2 := newCert(t, below1, "Two Below Pathlen1")
	root0 := newCert(t, nil, "Pathlen0 Root", pathLen(0))
	below0 := newCert(t, root0, "Below Pathlen0")

	ncRoot := newCert(t, nil, "Constrained Root", permittedDNS("example.com"))
	inside := newCert(t, ncRoot, "Inside CA", dnsNames("ca.example.com"))
	outside := newCert(t, ncRoot, "Outside CA", dnsNames("ca.evil.org"))

	impostor := newCert(t, nil, "Issuing CA") // same subject as inter, other key
	goodCRL := inter.crl(t, testNow.Add(24*time.Hour), big.NewInt(7))
	forgedCRL := impostor.crl(t, testNow.Add(24*time.Hour))
	staleCRL := inter.crl(t, testNow.Add(-time.Minute))
	rootCRL := root.crl(t, testNow.Add(24*time.Hour))

	tests := []struct {
		name    string
		entries []Entry
		valid   []string          // list/name, in order
		reasons map[string]string // list/name → substring of the reason
	}{
		{
			name:    "root and issuer with anchor",
			entries: []Entry{entryOf(TrustList, "root", root, nil), entryOf(IssuerList, "inter", inter, goodCRL)},
			valid:   []string{"trust/root", "issuer/inter"},
		},
		{
			name:    "root with its CRL",
			entries: []Entry{entryOf(TrustList, "root", root, rootCRL)},
			valid:   []string{"trust/root"},
		},
		{
			name:    "leaf where CA expected",
			entries: []Entry{entryOf(TrustList, "root", root, nil), entryOf(TrustList, "client", client, nil), entryOf(IssuerList, "client2", client, nil)},
			valid:   []string{"trust/root"},
			reasons: map[string]string{"trust/client": "not a CA certificate (basic constraints CA:FALSE)", "issuer/client2": "duplicate of trust-list entry \"client\""},
		},
		{
			name:    "leaf in issuer list",
			entries: []Entry{entryOf(TrustList, "root", root, nil), entryOf(IssuerList, "client", client, nil)},
			valid:   []string{"trust/root"},
			reasons: map[string]string{"issuer/client": "not a CA certificate"},
		},
		{
			name:    "expired CA",
			entries: []Entry{entryOf(TrustList, "old", expired, nil), entryOf(TrustList, "root", root, nil), entryOf(IssuerList, "old-inter", expiredInter, nil)},
			valid:   []string{"trust/root"},
			reasons: map[string]string{"trust/old": "expired on", "issuer/old-inter": "expired on"},
		},
		{
			name:    "not yet valid",
			entries: []Entry{entryOf(TrustList, "future", future, nil)},
			reasons: map[string]string{"trust/future": "not valid yet"},
		},
		{
			name:    "duplicate within a list",
			entries: []Entry{entryOf(TrustList, "a", root, nil), entryOf(TrustList, "b", root, nil)},
			valid:   []string{"trust/a"},
			reasons: map[string]string{"trust/b": "duplicate of trust-list entry \"a\""},
		},
		{
			name:    "duplicate across lists",
			entries: []Entry{entryOf(TrustList, "root", root, nil), entryOf(IssuerList, "inter", inter, nil), entryOf(TrustList, "inter-as-root", inter, nil)},
			valid:   []string{"trust/root", "issuer/inter"},
			reasons: map[string]string{"trust/inter-as-root": "duplicate of issuer-list entry \"inter\""},
		},
		{
			name:    "issuer without anchor",
			entries: []Entry{entryOf(TrustList, "root", root, nil), entryOf(IssuerList, "orphan", orphan, nil)},
			valid:   []string{"trust/root"},
			reasons: map[string]string{"issuer/orphan": "does not chain to a trust-list anchor"},
		},
		{
			name:    "issuer with empty trust list",
			entries: []Entry{entryOf(IssuerList, "inter", inter, nil)},
			reasons: map[string]string{"issuer/inter": "the trust list is empty"},
		},
		{
			name:    "issuer chaining through another issuer",
			entries: []Entry{entryOf(TrustList, "root1", root1, nil), entryOf(IssuerList, "two-below", below2, nil), entryOf(IssuerList, "below", below1, nil)},
			valid:   []string{"trust/root1", "issuer/below"},
			reasons: map[string]string{"issuer/two-below": "path length"},
		},
		{
			name:    "path length violated",
			entries: []Entry{entryOf(TrustList, "root0", root0, nil), entryOf(IssuerList, "below0", below0, nil)},
			valid:   []string{"trust/root0"},
			reasons: map[string]string{"issuer/below0": "path length constraint of \"Pathlen0 Root\" (pathlen 0)"},
		},
		{
			name: "issuer stranded by a rejected issuer",
			entries: []Entry{entryOf(TrustList, "root1", root1, nil),
				entryOf(IssuerList, "below", below1, inter.crl(t, testNow.Add(time.Hour))), // CRL of someone else
				entryOf(IssuerList, "two-below", below2, nil)},
			valid:   []string{"trust/root1"},
			reasons: map[string]string{"issuer/below": "CRL issuer", "issuer/two-below": "does not chain"},
		},
		{
			name:    "name constraints violated",
			entries: []Entry{entryOf(TrustList, "nc", ncRoot, nil), entryOf(IssuerList, "inside", inside, nil), entryOf(IssuerList, "outside", outside, nil)},
			valid:   []string{"trust/nc", "issuer/inside"},
			reasons: map[string]string{"issuer/outside": "ca.evil.org"},
		},
		{
			name:    "CRL bad signature",
			entries: []Entry{entryOf(TrustList, "root", root, nil), entryOf(IssuerList, "inter", inter, forgedCRL)},
			valid:   []string{"trust/root"},
			reasons: map[string]string{"issuer/inter": "CRL is not signed by this certificate"},
		},
		{
			name:    "CRL expired",
			entries: []Entry{entryOf(TrustList, "root", root, nil), entryOf(IssuerList, "inter", inter, staleCRL)},
			valid:   []string{"trust/root"},
			reasons: map[string]string{"issuer/inter": "CRL expired"},
		},
		{
			name:    "CRL garbage",
			entries: []Entry{entryOf(TrustList, "root", root, []byte("not a CRL"))},
			reasons: map[string]string{"trust/root": "CRL does not parse"},
		},
		{
			name:    "garbage",
			entries: []Entry{{List: TrustList, Name: "junk", DER: []byte("junk")}, {List: TrustList, Name: "empty"}},
			reasons: map[string]string{"trust/junk": "certificate does not parse", "trust/empty": "certificate does not parse"},
		},
		{
			name:    "unknown list",
			entries: []Entry{entryOf("other", "root", root, nil)},
			reasons: map[string]string{"other/root": "unknown list"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			valid, rejected := Validate(tt.entries, testNow)
			want := tt.valid
			if want == nil {
				want = []string{}
			}
			if got := names(valid); !slices.Equal(got, want) {
				t.Errorf("valid = %v, want %v", got, want)
			}
			got := make(map[string]string)
			for _, r := range rejected {
				got[string(r.List)+"/"+r.Name] = r.Reason
			}
			if len(got) != len(tt.reasons) {
				t.Errorf("rejected = %v, want %d rejections", got, len(tt.reasons))
			}
			for name, sub := range tt.reasons {
				if !strings.Contains(got[name], sub) {
					t.Errorf("reason for %s = %q, want it to contain %q", name, got[name], sub)
				}
			}
			for _, e := range valid {
				if e.ID == "" || len(e.Fingerprint) != 64 || e.ID != e.Fingerprint[:16] || e.Subject == "" || !e.IsCA {
					t.Errorf("facts of %s not filled: %+v", e.Name, e)
				}
			}
		})
	}
}

func TestValidateFacts(t *testing.T) {
	t.Parallel()
	root := newCert(t, nil, "Root CA", pathLen(2))
	inter := newCert(t, root, "Issuing CA")
	crl := inter.crl(t, testNow.Add(time.Hour))
	valid, rejected := Validate([]Entry{entryOf(TrustList, "", root, nil), entryOf(IssuerList, "i", inter, crl)}, testNow)
	if len(rejected) != 0 || len(valid) != 2 {
		t.Fatalf("Validate: valid %v, rejected %v", names(valid), rejected)
	}
	r, i := valid[0], valid[1]
	if r.Name != "Root CA" || !r.SelfSigned || r.MaxPathLen != 2 || r.HasCRL {
		t.Errorf("root facts = name %q selfSigned %v maxPathLen %d hasCRL %v", r.Name, r.SelfSigned, r.MaxPathLen, r.HasCRL)
	}
	if i.SelfSigned || i.MaxPathLen != -1 || !i.HasCRL || !i.CRLNextUpdate.Equal(testNow.Add(time.Hour)) || i.Serial != inter.cert.SerialNumber.Text(16) {
		t.Errorf("issuer facts = %+v", i)
	}
	if !strings.Contains(i.Issuer, "Root CA") {
		t.Errorf("issuer Issuer = %q", i.Issuer)
	}
	certs, crls, err := ParseBundle(i.PEM())
	if err != nil || len(certs) != 1 || len(crls) != 1 {
		t.Fatalf("ParseBundle(PEM()) = %d certs, %d CRLs, %v", len(certs), len(crls), err)
	}
	if c, err := i.Certificate(); err != nil || !c.Equal(inter.cert) {
		t.Errorf("Certificate() = %v", err)
	}
}

func TestParseListName(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]ListName{"trust": TrustList, "issuer": IssuerList, " Trust ": TrustList} {
		if got, err := ParseListName(in); err != nil || got != want {
			t.Errorf("ParseListName(%q) = %q, %v", in, got, err)
		}
	}
	for _, in := range []string{"", "root", "trusts"} {
		if _, err := ParseListName(in); !errors.Is(err, ErrInvalid) {
			t.Errorf("ParseListName(%q) error = %v, want ErrInvalid", in, err)
		}
	}
}
