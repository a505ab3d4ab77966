package ca

import (
	"crypto/x509/pkix"
	"errors"
	"reflect"
	"strings"
	"testing"
)

var dnTests = []struct {
	in      string
	want    pkix.Name
	wantErr string // substring of the error; "" for success
}{
	{in: "CN=sensor-1,O=Acme,C=FR", want: pkix.Name{CommonName: "sensor-1", Organization: []string{"Acme"}, Country: []string{"FR"}}},
	{in: "cn=sensor-1, o=Acme , c=fr", want: pkix.Name{CommonName: "sensor-1", Organization: []string{"Acme"}, Country: []string{"FR"}}},
	{in: "CN=a,OU=Plant A,OU=Line 2,O=Acme", want: pkix.Name{CommonName: "a", OrganizationalUnit: []string{"Plant A", "Line 2"}, Organization: []string{"Acme"}}},
	{in: "O=a+O=b", want: pkix.Name{Organization: []string{"a", "b"}}},
	{in: `CN=Doe\, John`, want: pkix.Name{CommonName: "Doe, John"}},
	{in: `CN=\#1 \+ more\;\<\>\"\\`, want: pkix.Name{CommonName: `#1 + more;<>"\`}},
	{in: `CN=\ padded\ `, want: pkix.Name{CommonName: " padded "}},
	{in: `CN=caf\C3\A9`, want: pkix.Name{CommonName: "café"}},
	{in: "CN=café", want: pkix.Name{CommonName: "café"}},
	{in: "CN=a=b", want: pkix.Name{CommonName: "a=b"}},
	{in: "CN=x#y", want: pkix.Name{CommonName: "x#y"}},
	{in: "L=Lyon,ST=Rhône,STREET=1 rue X,POSTALCODE=69001,SERIALNUMBER=ABC-123", want: pkix.Name{
		Locality: []string{"Lyon"}, Province: []string{"Rhône"}, StreetAddress: []string{"1 rue X"},
		PostalCode: []string{"69001"}, SerialNumber: "ABC-123",
	}},

	{in: "", wantErr: "empty"},
	{in: "   ", wantErr: "empty"},
	{in: "CN=a,", wantErr: "trailing separator"},
	{in: ",CN=a", wantErr: "missing attribute type"},
	{in: "CN", wantErr: `"CN" is not followed by '='`},
	{in: "CN=", wantErr: "empty value"},
	{in: "CN= ", wantErr: "empty value"},
	{in: "EMAIL=a@b", wantErr: `unknown attribute type "EMAIL" (allowed: CN, O, OU, C, L, ST, STREET, POSTALCODE, SERIALNUMBER)`},
	{in: "2.5.4.3=x", wantErr: "unknown attribute type"},
	{in: "CN=#0403616263", wantErr: "hex-encoded values"},
	{in: `CN=a"b`, wantErr: `unescaped '"'`},
	{in: "CN=a;O=b", wantErr: "unescaped ';'"},
	{in: `CN=a\`, wantErr: "dangling"},
	{in: `CN=a\q`, wantErr: `invalid escape '\q'`},
	{in: `CN=\C3`, wantErr: "not valid UTF-8"},
	{in: "CN=a\x00b", wantErr: "non-printable"},
	{in: "CN=tab\there", wantErr: "non-printable"},
	{in: `CN=a\0Ab`, wantErr: "non-printable"},
	{in: "CN=a,CN=b", wantErr: "CN appears more than once"},
	{in: "SERIALNUMBER=1,SERIALNUMBER=2", wantErr: "more than once"},
	{in: "C=FRA", wantErr: "two-letter country code"},
	{in: "C=1A", wantErr: "two-letter country code"},
	{in: "SERIALNUMBER=a_b", wantErr: "PrintableString"},
	{in: "CN=" + strings.Repeat("x", 65), wantErr: "65 characters, at most 64"},
	{in: "CN=" + strings.Repeat("x", 2000), wantErr: "longer than 1024 bytes"},
}

func TestParseDN(t *testing.T) {
	t.Parallel()
	for _, tt := range dnTests {
		got, err := ParseDN(tt.in)
		if tt.wantErr != "" {
			if err == nil || !errors.Is(err, ErrInvalidRequest) || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("ParseDN(%q) error = %v, want ErrInvalidRequest containing %q", tt.in, err, tt.wantErr)
			}
			continue
		}
		if err != nil {
			t.Errorf("ParseDN(%q): %v", tt.in, err)
			continue
		}
		if !reflect.DeepEqual(got, tt.want) {
			t.Errorf("ParseDN(%q) = %#v, want %#v", tt.in, got, tt.want)
		}
		// What pkix prints parses back to the same name.
		if again, err := ParseDN(got.String()); err != nil || !reflect.DeepEqual(again, got) {
			t.Errorf("ParseDN(%q.String() = %q) = %#v, %v; want %#v", tt.in, got.String(), again, err, got)
		}
	}
}

func FuzzParseDN(f *testing.F) {
	for _, tt := range dnTests {
		f.Add(tt.in)
	}
	f.Fuzz(func(t *testing.T, s string) {
		name, err := ParseDN(s)
		if err != nil {
			if !errors.Is(err, ErrInvalidRequest) {
				t.Fatalf("ParseDN(%q) error %v does not wrap ErrInvalidRequest", s, err)
			}
			return
		}
		if name.String() == "" {
			t.Fatalf("ParseDN(%q) accepted an empty name", s)
		}
		again, err := ParseDN(name.String())
		if err != nil || !reflect.DeepEqual(again, name) {
			t.Fatalf("ParseDN(%q) = %#v, which prints as %q and parses back as %#v, %v", s, name, name.String(), again, err)
		}
	})
}
