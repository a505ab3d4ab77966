package ca

import (
	"crypto/x509/pkix"
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

// maxDNLength bounds the input of ParseDN; real subjects are far shorter.
const maxDNLength = 1024

// dnAttribute describes one attribute ParseDN accepts: its RFC 4514 name,
// the upper bound on its length from RFC 5280 appendix A (in characters),
// and where it goes in a pkix.Name.
type dnAttribute struct {
	name      string
	maxLen    int
	printable bool // the value must fit an ASN.1 PrintableString
	set       func(n *pkix.Name, v string) (dup bool)
}

// dnAttributes are the attributes pkix.Name has fields for, under the names
// pkix.Name.String prints, so that a parsed name prints back as input
// ParseDN accepts.
var dnAttributes = []dnAttribute{
	{"CN", 64, false, func(n *pkix.Name, v string) bool {
		dup := n.CommonName != ""
		n.CommonName = v
		return dup
	}},
	{"O", 64, false, func(n *pkix.Name, v string) bool { n.Organization = append(n.Organization, v); return false }},
	{"OU", 64, false, func(n *pkix.Name, v string) bool {
		n.OrganizationalUnit = append(n.OrganizationalUnit, v)
		return false
	}},
	{"C", 2, true, func(n *pkix.Name, v string) bool { n.Country = append(n.Country, v); return false }},
	{"L", 128, false, func(n *pkix.Name, v string) bool { n.Locality = append(n.Locality, v); return false }},
	{"ST", 128, false, func(n *pkix.Name, v string) bool { n.Province = append(n.Province, v); return false }},
	{"STREET", 128, false, func(n *pkix.Name, v string) bool {
		n.StreetAddress = append(n.StreetAddress, v)
		return false
	}},
	{"POSTALCODE", 40, false, func(n *pkix.Name, v string) bool { n.PostalCode = append(n.PostalCode, v); return false }},
	{"SERIALNUMBER", 64, true, func(n *pkix.Name, v string) bool {
		dup := n.SerialNumber != ""
		n.SerialNumber = v
		return dup
	}},
}

// ParseDN parses a distinguished name in the string form of RFC 4514, e.g.
// "CN=sensor-1,O=Acme,C=FR", into a pkix.Name. It is strict, so that what is
// signed is what the user meant:
//
//   - attribute types are CN, O, OU, C, L, ST, STREET, POSTALCODE and
//     SERIALNUMBER (case-insensitive); OIDs and "#"-hex values are refused;
//   - the characters , + " \ < > ; in a value, a leading # or space and a
//     trailing space must be escaped with a backslash, or written as \XX hex
//     bytes (which must form UTF-8); other escapes are refused;
//   - spaces around separators, names and values are ignored;
//   - values must be non-empty, printable (no control characters) and
//     within RFC 5280's length bounds; C is two letters (upper-cased);
//     SERIALNUMBER fits an ASN.1 PrintableString; CN and SERIALNUMBER appear
//     at most once.
//
// "+" (a multi-valued RDN) is accepted and flattened like ",", because
// pkix.Name has no multi-valued RDNs and prints repeated attributes that way.
// Attribute order does not matter: a pkix.Name is encoded in a fixed order
// (C, ST, L, STREET, POSTALCODE, O, OU, CN, SERIALNUMBER), and its String
// form is accepted back by ParseDN. Errors wrap [ErrInvalidRequest].
func ParseDN(s string) (pkix.Name, error) {
	var name pkix.Name
	fail := func(format string, args ...any) (pkix.Name, error) {
		return pkix.Name{}, fmt.Errorf("%w: subject DN %q: %s", ErrInvalidRequest, truncateForError(s), fmt.Sprintf(format, args...))
	}
	if len(s) > maxDNLength {
		return fail("longer than %d bytes", maxDNLength)
	}
	if strings.TrimSpace(s) == "" {
		return fail("empty")
	}
	p := dnParser{s: s}
	for n := 1; ; n++ {
		typ, err := p.attributeType()
		if err != nil {
			return fail("attribute %d: %v", n, err)
		}
		attr, ok := lookupAttribute(typ)
		if !ok {
			return fail("attribute %d: unknown attribute type %q (allowed: %s)", n, typ, allowedAttributes())
		}
		val, err := p.value()
		if err != nil {
			return fail("%s: %v", attr.name, err)
		}
		if val, err = checkAttributeValue(attr, val); err != nil {
			return fail("%s: %v", attr.name, err)
		}
		if attr.set(&name, val) {
			return fail("%s appears more than once", attr.name)
		}
		if p.done() {
			return name, nil
		}
		p.pos++ // past the ',' or '+' that value stopped at
	}
}

// dnParser walks a DN string; pos is a byte offset into s.
type dnParser struct {
	s   string
	pos int
}

func (p *dnParser) done() bool { return p.pos >= len(p.s) }

func (p *dnParser) skipSpaces() {
	for p.pos < len(p.s) && p.s[p.pos] == ' ' {
		p.pos++
	}
}

// attributeType reads an attribute type name and the '=' after it.
func (p *dnParser) attributeType() (string, error) {
	p.skipSpaces()
	start := p.pos
	for p.pos < len(p.s) && isNameChar(p.s[p.pos]) {
		p.pos++
	}
	typ := p.s[start:p.pos]
	p.skipSpaces()
	switch {
	case typ == "" && p.done():
		return "", fmt.Errorf("missing attribute (trailing separator?)")
	case typ == "":
		return "", fmt.Errorf("missing attribute type before %q", p.s[p.pos:p.pos+1])
	case p.done() || p.s[p.pos] != '=':
		return "", fmt.Errorf("%q is not followed by '='", typ)
	}
	p.pos++ // '='
	return typ, nil
}

func isNameChar(c byte) bool {
	return c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '.'
}

// value reads an attribute value up to an unescaped ',' or '+' (left at
// pos) or the end, unescapes it and drops unescaped spaces at both ends.
func (p *dnParser) value() (string, error) {
	p.skipSpaces()
	var (
		b strings.Builder
		// keep is the length of b up to the last character that must be
		// kept: anything but an unescaped space.
		keep  int
		first = true
	)
	for ; p.pos < len(p.s); p.pos++ {
		c := p.s[p.pos]
		switch c {
		case ',', '+':
			return b.String()[:keep], nil
		case '\\':
			p.pos++
			if p.pos >= len(p.s) {
				return "", fmt.Errorf("dangling '\\' at the end")
			}
			e := p.s[p.pos]
			switch {
			case strings.IndexByte(`,+"\<>;=# `, e) >= 0:
				b.WriteByte(e)
			case isHex(e) && p.pos+1 < len(p.s) && isHex(p.s[p.pos+1]):
				b.WriteByte(unhex(e)<<4 | unhex(p.s[p.pos+1]))
				p.pos++
			default:
				return "", fmt.Errorf("invalid escape '\\%c' (escape only , + \" \\ < > ; = # space, or write \\XX hex)", e)
			}
			keep = b.Len()
		case '"', '<', '>', ';':
			return "", fmt.Errorf("unescaped %q in value (write \\%c)", c, c)
		case '#':
			if first {
				return "", fmt.Errorf("hex-encoded values (#...) are not supported; escape a leading '#' as \\#")
			}
			b.WriteByte(c)
			keep = b.Len()
		case ' ':
			b.WriteByte(c)
		default:
			b.WriteByte(c)
			keep = b.Len()
		}
		first = false
	}
	return b.String()[:keep], nil
}

func isHex(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F'
}

func unhex(c byte) byte {
	switch {
	case c >= 'a':
		return c - 'a' + 10
	case c >= 'A':
		return c - 'A' + 10
	}
	return c - '0'
}

func lookupAttribute(typ string) (dnAttribute, bool) {
	for _, a := range dnAttributes {
		if strings.EqualFold(typ, a.name) {
			return a, true
		}
	}
	return dnAttribute{}, false
}

func allowedAttributes() string {
	names := make([]string, len(dnAttributes))
	for i, a := range dnAttributes {
		names[i] = a.name
	}
	return strings.Join(names, ", ")
}

// checkAttributeValue validates an unescaped value and returns it
// normalised (C upper-cased).
func checkAttributeValue(attr dnAttribute, v string) (string, error) {
	if v == "" {
		return "", fmt.Errorf("empty value")
	}
	if !utf8.ValidString(v) {
		return "", fmt.Errorf("value is not valid UTF-8")
	}
	for _, r := range v {
		if !unicode.IsPrint(r) && r != ' ' {
			return "", fmt.Errorf("value contains the non-printable character %U", r)
		}
	}
	if attr.name == "C" {
		if len(v) != 2 || !isLetter(v[0]) || !isLetter(v[1]) {
			return "", fmt.Errorf("%q is not a two-letter country code", v)
		}
		return strings.ToUpper(v), nil
	}
	if n := utf8.RuneCountInString(v); n > attr.maxLen {
		return "", fmt.Errorf("value is %d characters, at most %d allowed", n, attr.maxLen)
	}
	if attr.printable {
		for i := 0; i < len(v); i++ {
			if !isPrintableStringChar(v[i]) {
				return "", fmt.Errorf("%q contains %q, which an ASN.1 PrintableString cannot hold", v, v[i])
			}
		}
	}
	return v, nil
}

func isLetter(c byte) bool { return c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' }

// isPrintableStringChar reports whether c is in ASN.1 PrintableString's
// alphabet (X.680 41.4).
func isPrintableStringChar(c byte) bool {
	return isLetter(c) || c >= '0' && c <= '9' || strings.IndexByte(" '()+,-./:=?", c) >= 0
}

// truncateForError shortens user input quoted in an error message.
func truncateForError(s string) string {
	const limit = 128
	if len(s) <= limit {
		return s
	}
	cut := limit
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}
