// Package acl decides whether an MQTT client may publish to a topic or
// subscribe to a topic filter, using ordered allow/deny rules in the style of
// the EMQ broker's acl.conf: the first rule that matches the client and the
// topic decides, and when none matches the caller applies its own default
// (EMQ's acl_nomatch).
//
// A rule names who it applies to (everyone, a username, a client id, or an
// IP address or network), the access it covers (publish, subscribe or both)
// and a list of topic filters. A filter may use the MQTT wildcards "+" and
// "#" and the placeholder levels "%u" and "%c" (replaced by the client's
// username and client id); {eq, "t"} matches the requested topic or filter
// t literally, which is how a rule can single out the subscription "#".
//
// For a SUBSCRIBE the requested "topic" is the client's filter, and its
// wildcards are matched as plain text, as in EMQ: rule "#" matches the
// subscription "#", and rule "a/+" matches "a/#". The flip side is that a
// rule compares filter text, not the topics a filter can receive: deny
// "secret/#" does not match the subscription "+/#". Shared subscriptions
// "$share/<name>/<filter>" are checked by their inner filter.
//
// Rules come from acl.conf text (ParseConf, FormatConf) or from the admin
// API's JSON. The package does no I/O.
//
// # JSON
//
// A rule in the admin API:
//
//	{"permission": "deny", "who": {"user": "bob"}, "access": "subscribe", "topics": ["$SYS/#", {"eq": "#"}]}
//	{"permission": "allow", "who": {"ipaddr": "10.0.0.0/8"}, "access": "pubsub", "topics": ["sensors/%c/#"]}
//	{"permission": "allow", "who": "all"}
//
// "who" is the string "all" or an object with exactly one of "user",
// "clientid" or "ipaddr" (an address or a CIDR network). A topic is a filter
// string or {"eq": "topic"}. "access" and "topics" come together; a rule with
// neither applies to every access on every topic, including the "$" topics
// that "#" does not match: it is acl.conf's short form {allow, all}. and
// Rule.AllTopics. Decoding is strict: unknown, duplicate or null fields,
// wrong types and invalid values are errors that name the field, and a
// decoded rule is always valid. A rule list is a JSON array.
package acl

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"unicode/utf8"
)

// Permission is what a matching rule decides.
type Permission uint8

// The zero Permission is invalid, so a forgotten field is never read as a
// decision.
const (
	Allow Permission = iota + 1
	Deny
)

// String returns "allow" or "deny".
func (p Permission) String() string {
	switch p {
	case Allow:
		return "allow"
	case Deny:
		return "deny"
	}
	return fmt.Sprintf("Permission(%d)", uint8(p))
}

// MarshalText returns "allow" or "deny"; it fails for any other value.
func (p Permission) MarshalText() ([]byte, error) {
	if p != Allow && p != Deny {
		return nil, fmt.Errorf("invalid permission %d", uint8(p))
	}
	return []byte(p.String()), nil
}

// UnmarshalText accepts exactly "allow" or "deny".
func (p *Permission) UnmarshalText(text []byte) error {
	switch string(text) {
	case "allow":
		*p = Allow
	case "deny":
		*p = Deny
	default:
		return fmt.Errorf("permission must be \"allow\" or \"deny\", not %s", quote(string(text)))
	}
	return nil
}

// Access is the kind of operation a rule covers or a request asks for. It is
// a bit set: PubSub is Publish|Subscribe.
type Access uint8

// The zero Access is invalid.
const (
	Publish Access = 1 << iota
	Subscribe
	PubSub = Publish | Subscribe
)

// String returns "publish", "subscribe" or "pubsub".
func (a Access) String() string {
	switch a {
	case Publish:
		return "publish"
	case Subscribe:
		return "subscribe"
	case PubSub:
		return "pubsub"
	}
	return fmt.Sprintf("Access(%d)", uint8(a))
}

// MarshalText returns "publish", "subscribe" or "pubsub"; it fails for any
// other value.
func (a Access) MarshalText() ([]byte, error) {
	if a < Publish || a > PubSub {
		return nil, fmt.Errorf("invalid access %d", uint8(a))
	}
	return []byte(a.String()), nil
}

// UnmarshalText accepts exactly "publish", "subscribe" or "pubsub".
func (a *Access) UnmarshalText(text []byte) error {
	switch string(text) {
	case "publish":
		*a = Publish
	case "subscribe":
		*a = Subscribe
	case "pubsub":
		*a = PubSub
	default:
		return fmt.Errorf("access must be \"publish\", \"subscribe\" or \"pubsub\", not %s", quote(string(text)))
	}
	return nil
}

// WhoKind says which clients a rule applies to.
type WhoKind uint8

// The zero WhoKind is invalid: a rule must say whom it is for.
const (
	WhoAll      WhoKind = iota + 1 // every client
	WhoUser                        // clients authenticated with Who.Name as username
	WhoClientID                    // clients whose client id is Who.Name
	WhoIPAddr                      // clients connecting from an address in Who.Prefix
)

// Who selects the clients a rule applies to. Build one with All, User,
// ClientID or IPAddr.
type Who struct {
	Kind WhoKind
	// Name is the username (WhoUser) or client id (WhoClientID); empty
	// otherwise.
	Name string
	// Prefix is the address or network (WhoIPAddr); zero otherwise. It must
	// be masked (no host bits set) and not an IPv4-mapped IPv6 prefix, as
	// clients' IPv4 addresses are matched in their 4-byte form.
	Prefix netip.Prefix
}

// All returns the Who of every client.
func All() Who { return Who{Kind: WhoAll} }

// User returns the Who of the clients with the given username.
func User(name string) Who { return Who{Kind: WhoUser, Name: name} }

// ClientID returns the Who of the clients with the given client id.
func ClientID(id string) Who { return Who{Kind: WhoClientID, Name: id} }

// IPAddr returns the Who of the clients connecting from an address in p.
// A single address is a prefix of its full length (/32 or /128).
func IPAddr(p netip.Prefix) Who { return Who{Kind: WhoIPAddr, Prefix: p} }

// parseIPAddr parses the value of {ipaddr, "..."}: an address or a CIDR.
func parseIPAddr(s string) (Who, error) {
	var p netip.Prefix
	if strings.IndexByte(s, '/') >= 0 {
		var err error
		if p, err = netip.ParsePrefix(s); err != nil {
			return Who{}, fmt.Errorf("ipaddr %s is not an IP address or CIDR network", quote(s))
		}
	} else {
		a, err := netip.ParseAddr(s)
		if err != nil {
			return Who{}, fmt.Errorf("ipaddr %s is not an IP address or CIDR network", quote(s))
		}
		if a.Zone() != "" {
			return Who{}, fmt.Errorf("ipaddr %s: an IPv6 zone is not allowed", quote(s))
		}
		p = netip.PrefixFrom(a, a.BitLen())
	}
	w := IPAddr(p)
	if err := w.validate(); err != nil {
		return Who{}, err
	}
	return w, nil
}

// validate checks that w is one of the four forms, in canonical shape, so
// that it formats and parses back to the same value.
func (w Who) validate() error {
	switch w.Kind {
	case WhoAll:
		if w.Name != "" || w.Prefix != (netip.Prefix{}) {
			return errors.New("who all has a name or address set")
		}
	case WhoUser, WhoClientID:
		what := "user"
		if w.Kind == WhoClientID {
			what = "clientid"
		}
		switch {
		case w.Prefix != (netip.Prefix{}):
			return fmt.Errorf("who %s has an address set", what)
		case w.Name == "":
			return fmt.Errorf("%s is empty", what)
		case !utf8.ValidString(w.Name):
			return fmt.Errorf("%s %s is not valid UTF-8", what, quote(w.Name))
		case strings.IndexByte(w.Name, 0) >= 0:
			return fmt.Errorf("%s %s contains a NUL character", what, quote(w.Name))
		}
	case WhoIPAddr:
		p := w.Prefix
		switch {
		case w.Name != "":
			return errors.New("who ipaddr has a name set")
		case !p.IsValid():
			return errors.New("ipaddr is not a valid address or network")
		case p.Addr().Zone() != "":
			return fmt.Errorf("ipaddr %s: an IPv6 zone is not allowed", formatPrefix(p))
		case p.Addr().Is4In6():
			return fmt.Errorf("ipaddr %s is IPv4-mapped IPv6; write the IPv4 form", formatPrefix(p))
		case p != p.Masked():
			return fmt.Errorf("ipaddr %s has host bits set; the network is %s", p, p.Masked())
		}
	default:
		return errors.New("who is not set")
	}
	return nil
}

// String returns w in acl.conf syntax: all, {user, "name"}, {clientid, "id"}
// or {ipaddr, "10.0.0.0/8"}.
func (w Who) String() string {
	switch w.Kind {
	case WhoAll:
		return "all"
	case WhoUser:
		return "{user, " + confString(w.Name) + "}"
	case WhoClientID:
		return "{clientid, " + confString(w.Name) + "}"
	case WhoIPAddr:
		return "{ipaddr, " + confString(formatPrefix(w.Prefix)) + "}"
	}
	return fmt.Sprintf("Who(%d)", uint8(w.Kind))
}

// formatPrefix writes a single-address prefix as the bare address, as
// acl.conf files usually do.
func formatPrefix(p netip.Prefix) string {
	if p.IsValid() && p.Bits() == p.Addr().BitLen() {
		return p.Addr().String()
	}
	return p.String()
}

// matches reports whether the client is one w selects. addr must already be
// unmapped and without zone.
func (w *Who) matches(username, clientID string, addr netip.Addr) bool {
	switch w.Kind {
	case WhoAll:
		return true
	case WhoUser:
		return w.Name != "" && w.Name == username
	case WhoClientID:
		return w.Name != "" && w.Name == clientID
	case WhoIPAddr:
		return w.Prefix.IsValid() && w.Prefix.Contains(addr)
	}
	return false
}

// Topic is one entry of a rule's topic list.
type Topic struct {
	// Filter is a topic filter, matched with MQTT wildcards and the
	// placeholders %u and %c; with Exact, the exact text to compare.
	Filter string
	// Exact is acl.conf's {eq, Filter}: the requested topic or filter must
	// equal Filter, with no wildcard or placeholder meaning.
	Exact bool
}

// String returns t in acl.conf syntax: "a/+" or {eq, "#"}.
func (t Topic) String() string {
	if t.Exact {
		return "{eq, " + confString(t.Filter) + "}"
	}
	return confString(t.Filter)
}

// validate checks a topic-list entry.
func (t Topic) validate() error {
	if err := ValidFilter(t.Filter); err != nil {
		return err
	}
	if _, _, shared := SplitShared(t.Filter); shared {
		// Match checks the inner filter of a shared subscription, so a rule
		// on "$share/..." could never match anything.
		return fmt.Errorf("topic filter %s: rules apply to the filter inside a shared subscription; drop the \"$share/<name>/\" prefix", quote(t.Filter))
	}
	if t.Exact {
		return nil
	}
	for f := t.Filter; ; {
		level, rest, more := strings.Cut(f, "/")
		if !isPlaceholder(level) && (strings.Contains(level, "%u") || strings.Contains(level, "%c")) {
			// EMQ substitutes whole levels only; "dev-%c" would silently
			// never match what its author meant.
			return fmt.Errorf("topic filter %s: placeholder %%u or %%c must be a whole level", quote(t.Filter))
		}
		if !more {
			return nil
		}
		f = rest
	}
}

// Rule is one acl.conf line: {Permission, Who, Access, Topics}.
type Rule struct {
	Permission Permission
	Who        Who
	// Access is the operation the rule covers; PubSub covers both.
	Access Access
	// Topics lists the filters the rule applies to; it must not be empty
	// unless AllTopics is set.
	Topics []Topic
	// AllTopics makes the rule apply to every topic and filter, including
	// those starting with "$" that "#" does not match. It is acl.conf's short
	// form {allow, all}. (any Who may be used), requires Access PubSub and
	// an empty Topics.
	AllTopics bool
}

// String returns r in acl.conf syntax, without the final ".".
func (r Rule) String() string {
	var b strings.Builder
	b.WriteByte('{')
	b.WriteString(r.Permission.String())
	b.WriteString(", ")
	b.WriteString(r.Who.String())
	if !r.AllTopics {
		b.WriteString(", ")
		b.WriteString(r.Access.String())
		b.WriteString(", [")
		for i, t := range r.Topics {
			if i > 0 {
				b.WriteString(", ")
			}
			b.WriteString(t.String())
		}
		b.WriteByte(']')
	}
	b.WriteByte('}')
	return b.String()
}

// validate checks one rule.
func (r *Rule) validate() error {
	if r.Permission != Allow && r.Permission != Deny {
		return errors.New("permission must be allow or deny")
	}
	if err := r.Who.validate(); err != nil {
		return err
	}
	if r.Access < Publish || r.Access > PubSub {
		return errors.New("access must be publish, subscribe or pubsub")
	}
	if r.AllTopics {
		if r.Access != PubSub {
			return errors.New("a rule on all topics must have access pubsub")
		}
		if len(r.Topics) != 0 {
			return errors.New("a rule on all topics must not list topics")
		}
		return nil
	}
	if len(r.Topics) == 0 {
		return errors.New("topic list is empty")
	}
	for _, t := range r.Topics {
		if err := t.validate(); err != nil {
			return err
		}
	}
	return nil
}

// matchesTopic reports whether one of r's topics matches topic.
func (r *Rule) matchesTopic(topic string, id *identity) bool {
	if r.AllTopics {
		return true
	}
	for i := range r.Topics {
		t := &r.Topics[i]
		if t.Exact {
			if t.Filter == topic {
				return true
			}
		} else if matchFilter(t.Filter, topic, id) {
			return true
		}
	}
	return false
}

// RuleError is returned by Validate and by Rules.UnmarshalJSON for a rule
// that is not valid.
type RuleError struct {
	Index int // the rule's position in Rules, from 0
	Err   error
}

func (e *RuleError) Error() string { return fmt.Sprintf("rule %d: %v", e.Index, e.Err) }

func (e *RuleError) Unwrap() error { return e.Err }

// Rules is an ordered ACL: the first matching rule decides.
type Rules []Rule

// Validate checks every rule and returns one *RuleError per bad rule,
// joined. Match assumes valid rules.
func (rs Rules) Validate() error {
	var errs []error
	for i := range rs {
		if err := rs[i].validate(); err != nil {
			errs = append(errs, &RuleError{Index: i, Err: err})
		}
	}
	return errors.Join(errs...)
}

// Request is one authorization question: may this client publish to / subscribe to Topic?
type Request struct {
	Username string
	ClientID string
	// Addr is the client's address. An IPv4-mapped IPv6 address (from a
	// dual-stack listener) is matched as IPv4; a zone is ignored.
	Addr netip.Addr
	// Access is Publish or Subscribe; a request with any other value matches
	// no rule.
	Access Access
	// Topic is the topic name of a PUBLISH or the topic filter of a
	// SUBSCRIBE; for a shared subscription "$share/<name>/<filter>" the
	// rules are matched against <filter>. The broker is expected to have
	// checked it with ValidTopicName or ValidFilter.
	Topic string
}

// Match returns the index and permission of the first rule that matches
// req. ok is false, with index -1, when no rule matches: the caller then
// applies its no-match default.
//
// A rule matches when its Who selects the client, its Access covers
// req.Access and one of its topics matches req.Topic (see MatchFilter; the
// placeholder levels %u and %c stand for req.Username and req.ClientID, and
// match nothing when that value is empty, contains "/", "+" or "#", or, in
// the first level, starts with "$").
//
// Match does not allocate.
func (rs Rules) Match(req Request) (index int, perm Permission, ok bool) {
	if req.Access != Publish && req.Access != Subscribe {
		return -1, 0, false
	}
	topic := req.Topic
	if req.Access == Subscribe {
		// Without this "$share/g/#" would slip past every rule on "#": its
		// first level starts with "$".
		if _, inner, shared := SplitShared(topic); shared {
			topic = inner
		}
	}
	addr := req.Addr.Unmap().WithZone("")
	id := identity{username: req.Username, clientID: req.ClientID}
	for i := range rs {
		r := &rs[i]
		if r.Access&req.Access == 0 || !r.Who.matches(req.Username, req.ClientID, addr) {
			continue
		}
		if r.matchesTopic(topic, &id) {
			return i, r.Permission, true
		}
	}
	return -1, 0, false
}

// DefaultRules returns the stock acl.conf of the EMQ broker:
//
//	{allow, {user, "dashboard"}, subscribe, ["$SYS/#"]}.
//	{allow, {ipaddr, "127.0.0.1"}, pubsub, ["$SYS/#", "#"]}.
//	{allow, {ipaddr, "::1"}, pubsub, ["$SYS/#", "#"]}.
//	{deny, all, subscribe, ["$SYS/#", {eq, "#"}]}.
//	{allow, all}.
//
// The dashboard user and local clients may watch $SYS; other clients may not
// subscribe to $SYS or to "#" itself; everything else is allowed. The IPv6
// loopback line is edgegate's addition, since EMQ's single localhost line
// only covers IPv4.
func DefaultRules() Rules {
	local := []Topic{{Filter: "$SYS/#"}, {Filter: "#"}}
	return Rules{
		{Permission: Allow, Who: User("dashboard"), Access: Subscribe, Topics: []Topic{{Filter: "$SYS/#"}}},
		{Permission: Allow, Who: IPAddr(netip.MustParsePrefix("127.0.0.1/32")), Access: PubSub, Topics: local},
		{Permission: Allow, Who: IPAddr(netip.MustParsePrefix("::1/128")), Access: PubSub, Topics: append([]Topic(nil), local...)},
		{Permission: Deny, Who: All(), Access: Subscribe, Topics: []Topic{{Filter: "$SYS/#"}, {Filter: "#", Exact: true}}},
		{Permission: Allow, Who: All(), Access: PubSub, AllTopics: true},
	}
}
