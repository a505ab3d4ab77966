package ca

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"slices"
	"strings"
)

// maxHosts bounds the names in one certificate; a request with more is
// almost certainly a mistake, and each name costs every handshake.
const maxHosts = 100

// hostKind is the SAN kind of a requested name.
type hostKind int

const (
	hostDNS hostKind = iota
	hostIP
	hostURI
	hostEmail
)

// hostSet is a list of requested names split into SAN kinds, normalised
// (DNS names and e-mail domains lower-cased, a DNS name's trailing dot
// dropped, IPv4-mapped IPv6 unmapped) and deduplicated in request order.
type hostSet struct {
	all    []string // normalised, in request order
	kinds  []hostKind
	dns    []string
	ips    []net.IP
	uris   []*url.URL
	emails []string
}

func (s hostSet) empty() bool { return len(s.all) == 0 }

// firstNameForCN is the first DNS name or IP address, the conventional CN of
// a server certificate, or "" when there is none.
func (s hostSet) firstNameForCN() string {
	for i, h := range s.all {
		if s.kinds[i] == hostDNS || s.kinds[i] == hostIP {
			return h
		}
	}
	return ""
}

// onlyServerNames reports whether every host is a DNS name or an IP address.
func (s hostSet) onlyServerNames() bool {
	return len(s.uris) == 0 && len(s.emails) == 0
}

// sortedNames returns the DNS names and IP addresses sorted, as certNames
// does for an issued certificate.
func (s hostSet) sortedNames() []string {
	var names []string
	for i, h := range s.all {
		if s.kinds[i] == hostDNS || s.kinds[i] == hostIP {
			names = append(names, h)
		}
	}
	slices.Sort(names)
	return names
}

// parseHosts classifies each host as an IP address, a URI (a scheme followed
// by "//", or a urn:), an e-mail address (contains '@') or else a DNS name,
// validates and normalises it. Every invalid host is named in the error,
// which wraps ErrInvalidRequest.
func parseHosts(hosts []string) (hostSet, error) {
	var (
		s        hostSet
		problems []string
	)
	if len(hosts) > maxHosts {
		return hostSet{}, fmt.Errorf("%w: %d hosts, at most %d allowed", ErrInvalidRequest, len(hosts), maxHosts)
	}
	for _, h := range hosts {
		if err := s.add(h); err != nil {
			problems = append(problems, fmt.Sprintf("%q: %v", truncateForError(h), err))
		}
	}
	if len(problems) > 0 {
		return hostSet{}, fmt.Errorf("%w: invalid hosts: %s", ErrInvalidRequest, strings.Join(problems, "; "))
	}
	return s, nil
}

// add validates h and appends it to the set unless it is a duplicate.
func (s *hostSet) add(h string) error {
	norm, kind, err := classifyHost(h)
	if err != nil {
		return err
	}
	if slices.Contains(s.all, norm) {
		return nil
	}
	s.all = append(s.all, norm)
	s.kinds = append(s.kinds, kind)
	switch kind {
	case hostIP:
		s.ips = append(s.ips, net.IP(netip.MustParseAddr(norm).AsSlice()))
	case hostURI:
		u, _ := url.Parse(norm) // classifyHost checked that it parses to itself
		s.uris = append(s.uris, u)
	case hostEmail:
		s.emails = append(s.emails, norm)
	default:
		s.dns = append(s.dns, norm)
	}
	return nil
}

// classifyHost validates one host and returns its normalised form and kind.
func classifyHost(h string) (string, hostKind, error) {
	if h == "" {
		return "", 0, fmt.Errorf("empty")
	}
	for _, r := range h {
		if r <= ' ' || r == 0x7f {
			return "", 0, fmt.Errorf("contains whitespace or a control character")
		}
	}
	if ip, err := netip.ParseAddr(h); err == nil {
		if ip.Zone() != "" {
			return "", 0, fmt.Errorf("IP address with a zone")
		}
		return ip.Unmap().String(), hostIP, nil
	}
	if scheme, _, ok := strings.Cut(h, ":"); ok && !strings.Contains(scheme, "@") {
		u, err := parseURIHost(h)
		if err != nil {
			return "", 0, err
		}
		return u.String(), hostURI, nil
	}
	if local, domain, ok := strings.Cut(h, "@"); ok {
		norm, err := normaliseEmail(local, domain)
		return norm, hostEmail, err
	}
	norm, err := normaliseDNSName(h, true)
	return norm, hostDNS, err
}

// parseURIHost validates a URI SAN: an absolute URI with a lower-case
// scheme and either an authority ("scheme://host/…") or, for urn:, an
// opaque part. SPIFFE IDs are checked against the SPIFFE ID rules.
func parseURIHost(h string) (*url.URL, error) {
	u, err := url.Parse(h)
	if err != nil {
		return nil, fmt.Errorf("not a valid URI: %w", unwrapURLError(err))
	}
	if scheme, _, _ := strings.Cut(h, ":"); u.Scheme == "" || scheme != u.Scheme {
		// url.Parse lower-cases the scheme; the raw one must be already.
		return nil, fmt.Errorf("a URI needs a lower-case scheme")
	}
	switch {
	case u.Scheme == "urn":
		if u.Opaque == "" || !strings.Contains(u.Opaque, ":") {
			return nil, fmt.Errorf("a urn: URI needs a namespace and a name (urn:NID:NSS)")
		}
	case u.Opaque != "" || u.Host == "":
		// "host:8883" parses as scheme "host"; say what is probably meant.
		return nil, fmt.Errorf("not a DNS name, IP address, e-mail address or URI (a URI is scheme://host/…, a port is not part of a certificate name)")
	}
	if u.Scheme == "spiffe" {
		if err := checkSPIFFEID(u); err != nil {
			return nil, err
		}
	}
	if u.String() != h {
		// Refuse what url would silently rewrite, so the certificate holds
		// exactly what was asked for.
		return nil, fmt.Errorf("URI is not in canonical form (want %q)", u.String())
	}
	return u, nil
}

// unwrapURLError drops url.Error's "parse <input>:" prefix; the caller
// names the input already.
func unwrapURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

// checkSPIFFEID applies the SPIFFE ID format: spiffe://trust-domain/path,
// trust domain of [a-z0-9.-_], no port, user, query or fragment, path
// segments non-empty and not "." or "..".
func checkSPIFFEID(u *url.URL) error {
	if u.User != nil || u.Port() != "" || u.RawQuery != "" || u.Fragment != "" || u.ForceQuery {
		return fmt.Errorf("a SPIFFE ID has no user, port, query or fragment")
	}
	for _, c := range []byte(u.Host) {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '.' || c == '-' || c == '_') {
			return fmt.Errorf("SPIFFE trust domain %q may only hold a-z 0-9 . - _", u.Host)
		}
	}
	if u.Path == "" {
		return nil
	}
	for seg := range strings.SplitSeq(strings.TrimPrefix(u.Path, "/"), "/") {
		if seg == "" || seg == "." || seg == ".." {
			return fmt.Errorf("SPIFFE ID path has an empty, '.' or '..' segment")
		}
	}
	return nil
}

// normaliseEmail validates an rfc822Name SAN: a plain local part (no
// quoting, comments or spaces) and a DNS domain, lower-cased.
func normaliseEmail(local, domain string) (string, error) {
	if local == "" || len(local) > 64 {
		return "", fmt.Errorf("e-mail local part must be 1 to 64 characters")
	}
	for i := 0; i < len(local); i++ {
		c := local[i]
		if c >= 0x80 || strings.IndexByte(`"(),:;<>@[\]`, c) >= 0 {
			return "", fmt.Errorf("e-mail local part contains %q", c)
		}
	}
	d, err := normaliseDNSName(domain, false)
	if err != nil {
		return "", fmt.Errorf("e-mail domain: %w", err)
	}
	return local + "@" + d, nil
}

// normaliseDNSName validates a DNS name and returns it lower-cased without a
// trailing dot. Labels are 1 to 63 of a-z 0-9 - _ (underscore because host
// names with one exist and Go's verifier accepts them), not starting or
// ending with '-'. A wildcard is only a whole leftmost "*" label, with at
// least two labels after it. Internationalised names must be given in
// their xn-- (punycode) form.
func normaliseDNSName(h string, wildcardOK bool) (string, error) {
	n := strings.ToLower(strings.TrimSuffix(h, "."))
	if n == "" {
		return "", fmt.Errorf("empty DNS name")
	}
	if len(n) > 253 {
		return "", fmt.Errorf("DNS name longer than 253 characters")
	}
	labels := strings.Split(n, ".")
	for i, l := range labels {
		if l == "*" && i == 0 {
			if !wildcardOK {
				return "", fmt.Errorf("wildcard not allowed here")
			}
			if len(labels) < 3 {
				return "", fmt.Errorf("wildcard needs at least two labels after it (*.example.com)")
			}
			continue
		}
		if err := checkLabel(l); err != nil {
			return "", err
		}
	}
	last := labels[len(labels)-1]
	if strings.Trim(last, "0123456789") == "" {
		return "", fmt.Errorf("not a valid IP address, and a DNS name cannot end in a numeric label")
	}
	return n, nil
}

func checkLabel(l string) error {
	if l == "" {
		return fmt.Errorf("empty DNS label")
	}
	if len(l) > 63 {
		return fmt.Errorf("DNS label longer than 63 characters")
	}
	if l[0] == '-' || l[len(l)-1] == '-' {
		return fmt.Errorf("DNS label %q starts or ends with '-'", l)
	}
	for i := 0; i < len(l); i++ {
		c := l[i]
		switch {
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9', c == '-', c == '_':
		case c >= 0x80:
			return fmt.Errorf("non-ASCII DNS name: give it in its xn-- (punycode) form")
		case c == '*':
			return fmt.Errorf("'*' is only allowed as the whole leftmost label")
		default:
			return fmt.Errorf("DNS name contains %q", c)
		}
	}
	return nil
}
