package ca

import (
	"errors"
	"slices"
	"strings"
	"testing"
)

var hostTests = []struct {
	name    string
	in      []string
	dns     []string
	ips     []string
	uris    []string
	emails  []string
	wantErr []string // substrings of the error; nil for success
}{
	{name: "dns and ip", in: []string{"GW.Local.", "192.168.1.10", "::1", "*.gw.local", "gw.local", "::ffff:10.0.0.1"},
		dns: []string{"gw.local", "*.gw.local"}, ips: []string{"192.168.1.10", "::1", "10.0.0.1"}},
	{name: "underscore host", in: []string{"my_gw.lan"}, dns: []string{"my_gw.lan"}},
	{name: "uris", in: []string{"spiffe://edgegate.test/sensor/42", "urn:uuid:6e8bc430-9c3a-11d9-9669-0800200c9a66", "https://gw.example/id"},
		uris: []string{"spiffe://edgegate.test/sensor/42", "urn:uuid:6e8bc430-9c3a-11d9-9669-0800200c9a66", "https://gw.example/id"}},
	{name: "email", in: []string{"ops+pki@Example.COM"}, emails: []string{"ops+pki@example.com"}},
	{name: "none", in: nil},

	{name: "empty", in: []string{""}, wantErr: []string{`"": empty`}},
	{name: "space", in: []string{"gw local"}, wantErr: []string{"whitespace"}},
	{name: "zone", in: []string{"fe80::1%eth0"}, wantErr: []string{"zone"}},
	{name: "port", in: []string{"gw.local:8883"}, wantErr: []string{"a port is not part of a certificate name"}},
	{name: "bad wildcard", in: []string{"a.*.gw.local", "*.local", "*"}, wantErr: []string{`"a.*.gw.local": '*' is only`, `"*.local": wildcard needs`, `"*"`}},
	{name: "label", in: []string{"-gw.local", "gw..local", strings.Repeat("a", 64) + ".local"}, wantErr: []string{"starts or ends with '-'", "empty DNS label", "longer than 63"}},
	{name: "non-ascii", in: []string{"café.local"}, wantErr: []string{"punycode"}},
	{name: "numeric tld", in: []string{"1.2.3"}, wantErr: []string{"numeric label"}},
	{name: "spiffe", in: []string{"spiffe://Trust.Domain/x", "spiffe://td:8443/x", "spiffe://td/a//b", "spiffe://td/x?q=1"}, wantErr: []string{"SPIFFE trust domain", "no user, port", "empty, '.' or '..' segment", "no user, port, query"}},
	{name: "uri", in: []string{"HTTP://x/", "urn:x", "mailto:a@b.c"}, wantErr: []string{"lower-case scheme", "urn:NID:NSS", `"mailto:a@b.c": not a DNS name`}},
	{name: "email", in: []string{"@x.com", "a@", "a b@x.com", "a@*.x.com", `a"b@x.com`}, wantErr: []string{"local part must be", "e-mail domain: empty DNS name", "whitespace", "wildcard not allowed", "local part contains"}},
	{name: "every bad host is named", in: []string{"ok.local", "bad host", "1.2.3", "good.local", "::1%x"}, wantErr: []string{`"bad host"`, `"1.2.3"`, `"::1%x"`}},
}

func TestParseHosts(t *testing.T) {
	t.Parallel()
	for _, tt := range hostTests {
		s, err := parseHosts(tt.in)
		if tt.wantErr != nil {
			if !errors.Is(err, ErrInvalidRequest) {
				t.Errorf("%s: error %v does not wrap ErrInvalidRequest", tt.name, err)
				continue
			}
			for _, w := range tt.wantErr {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("%s: error %q does not contain %q", tt.name, err, w)
				}
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", tt.name, err)
			continue
		}
		var ips, uris []string
		for _, ip := range s.ips {
			ips = append(ips, ip.String())
		}
		for _, u := range s.uris {
			uris = append(uris, u.String())
		}
		if !slices.Equal(s.dns, tt.dns) || !slices.Equal(ips, tt.ips) || !slices.Equal(uris, tt.uris) || !slices.Equal(s.emails, tt.emails) {
			t.Errorf("%s: got dns=%q ips=%q uris=%q emails=%q, want %q %q %q %q",
				tt.name, s.dns, ips, uris, s.emails, tt.dns, tt.ips, tt.uris, tt.emails)
		}
	}
	if _, err := parseHosts(make([]string, maxHosts+1)); !errors.Is(err, ErrInvalidRequest) {
		t.Errorf("too many hosts: %v", err)
	}
}

func FuzzParseHosts(f *testing.F) {
	for _, tt := range hostTests {
		f.Add(strings.Join(tt.in, "\n"))
	}
	f.Fuzz(func(t *testing.T, joined string) {
		hosts := strings.Split(joined, "\n")
		s, err := parseHosts(hosts)
		if err != nil {
			if !errors.Is(err, ErrInvalidRequest) {
				t.Fatalf("parseHosts(%q) error %v does not wrap ErrInvalidRequest", hosts, err)
			}
			return
		}
		// Normalised names are accepted as they are.
		again, err := parseHosts(s.all)
		if err != nil || !slices.Equal(again.all, s.all) || !slices.Equal(again.kinds, s.kinds) {
			t.Fatalf("parseHosts(%q) = %q, which parses back as %q, %v", hosts, s.all, again.all, err)
		}
		if n := len(s.dns) + len(s.ips) + len(s.uris) + len(s.emails); n != len(s.all) {
			t.Fatalf("parseHosts(%q): %d names split into %d SANs", hosts, len(s.all), n)
		}
	})
}
