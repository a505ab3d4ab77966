package acl

import (
	"errors"
	"fmt"
	"net/netip"
	"testing"
)

// kindsConf has a rule of every kind; kindsCases run against it.
const kindsConf = `
{deny, {user, "mallory"}, pubsub, ["#"]}.
{allow, {clientid, "sensor-1"}, publish, ["sensors/sensor-1/#"]}.
{allow, {ipaddr, "10.0.0.0/8"}, subscribe, ["lan/#"]}.
{allow, {ipaddr, "192.168.1.10"}, publish, ["cam/+"]}.
{allow, {ipaddr, "fd00::/8"}, pubsub, ["v6/#"]}.
{allow, {ipaddr, "2001:db8::1"}, pubsub, ["one/#"]}.
{allow, all, subscribe, ["users/%u/#", "clients/%c/#"]}.
{allow, all, publish, [{eq, "exact/+"}, "$SYS/edge/+"]}.
{deny, all, pubsub, ["#"]}.
`

// placeholderConf puts placeholders in the first level.
const placeholderConf = `
{allow, all, pubsub, ["%c/#"]}.
{allow, all, pubsub, ["u/%u", "%u/%c"]}.
`

type matchCase struct {
	name  string
	req   Request
	index int // -1: no match
	perm  Permission
}

func pub(user, clientID, addr, topic string) Request {
	return Request{Username: user, ClientID: clientID, Addr: parseAddr(addr), Access: Publish, Topic: topic}
}

func sub(user, clientID, addr, topic string) Request {
	r := pub(user, clientID, addr, topic)
	r.Access = Subscribe
	return r
}

func parseAddr(s string) netip.Addr {
	if s == "" {
		return netip.Addr{}
	}
	return netip.MustParseAddr(s)
}

const remote = "203.0.113.7"

var kindsCases = []matchCase{
	{"user deny comes first", pub("mallory", "m", "10.1.1.1", "x"), 0, Deny},
	{"first match wins over a later allow", sub("mallory", "m", "10.1.1.1", "lan/x"), 0, Deny},
	{"clientid publish", pub("", "sensor-1", remote, "sensors/sensor-1/temp"), 1, Allow},
	{"clientid rule is publish only", sub("", "sensor-1", remote, "sensors/sensor-1/temp"), 8, Deny},
	{"other clientid", pub("", "sensor-2", remote, "sensors/sensor-1/temp"), 8, Deny},
	{"username is not clientid", pub("sensor-1", "x", remote, "sensors/sensor-1/temp"), 8, Deny},
	{"cidr subscribe", sub("", "c", "10.2.3.4", "lan/#"), 2, Allow},
	{"cidr rule is subscribe only", pub("", "c", "10.2.3.4", "lan/x"), 8, Deny},
	{"outside cidr", sub("", "c", "11.0.0.1", "lan/x"), 8, Deny},
	{"single ipv4", pub("", "c", "192.168.1.10", "cam/1"), 3, Allow},
	{"neighbour ipv4", pub("", "c", "192.168.1.11", "cam/1"), 8, Deny},
	{"ipv4-mapped client address", pub("", "c", "::ffff:192.168.1.10", "cam/1"), 3, Allow},
	{"ipv6 cidr", sub("", "c", "fd12::1", "v6/a"), 4, Allow},
	{"ipv6 zone ignored", pub("", "c", "fd12::1%eth0", "v6/a"), 4, Allow},
	{"outside ipv6 cidr", pub("", "c", "fe80::1", "v6/a"), 8, Deny},
	{"single ipv6", pub("", "c", "2001:db8::1", "one/x"), 5, Allow},
	{"neighbour ipv6", pub("", "c", "2001:db8::2", "one/x"), 8, Deny},
	{"ipv4 not in ipv6 rule", pub("", "c", "10.0.0.1", "v6/a"), 8, Deny},
	{"no address", pub("", "c", "", "one/x"), 8, Deny},
	{"%u", sub("bob", "c1", remote, "users/bob/inbox"), 6, Allow},
	{"%u subscription with #", sub("bob", "c1", remote, "users/bob/#"), 6, Allow},
	{"%u other user", sub("bob", "c1", remote, "users/alice/inbox"), 8, Deny},
	{"%u wildcard subscription is not the user", sub("bob", "c1", remote, "users/+/inbox"), 8, Deny},
	{"%c", sub("bob", "c1", remote, "clients/c1/x"), 6, Allow},
	{"%c other client", sub("bob", "c1", remote, "clients/c2/x"), 8, Deny},
	{"%u empty username", sub("", "c1", remote, "users//x"), 8, Deny},
	{"%u username with /", sub("a/b", "c1", remote, "users/a/b/x"), 8, Deny},
	{"%u username + cannot widen", sub("+", "c1", remote, "users/+/x"), 8, Deny},
	{"%u username # cannot widen", sub("#", "c1", remote, "users/#"), 8, Deny},
	{"%c clientid # cannot widen", sub("bob", "#", remote, "clients/#"), 8, Deny},
	{"%c clientid with + inside", sub("bob", "a+b", remote, "clients/a+b/x"), 8, Deny},
	{"eq is literal", pub("", "c", remote, "exact/+"), 7, Allow},
	{"eq has no wildcard meaning", pub("", "c", remote, "exact/a"), 8, Deny},
	{"rule + matches a $ level below the first", pub("", "c", remote, "$SYS/edge/x"), 7, Allow},
	{"# does not match $ topic", pub("", "c", remote, "$SYS/other"), -1, 0},
	{"# does not match $ subscription", sub("", "c", remote, "$SYS/#"), -1, 0},
	{"pubsub request matches nothing", Request{Access: PubSub, Topic: "a", Addr: parseAddr(remote)}, -1, 0},
	{"zero access matches nothing", Request{Topic: "a"}, -1, 0},
	{"empty topic matches nothing", pub("", "c", remote, ""), -1, 0},
}

var placeholderCases = []matchCase{
	{"%c first level", sub("", "c1", remote, "c1/#"), 0, Allow},
	{"%c/# matches the bare level", pub("", "c1", remote, "c1"), 0, Allow},
	{"%c cannot become $SYS", sub("", "$SYS", remote, "$SYS/#"), -1, 0},
	{"%c cannot become $SYS for publish", pub("", "$SYS", remote, "$SYS/x"), -1, 0},
	{"%u with $ below the first level", pub("$x", "c1", remote, "u/$x"), 1, Allow},
	{"%u first level with $ refused, %c still checked", pub("$u", "c1", remote, "$u/c1"), -1, 0},
	{"two placeholders", pub("u1", "c1", remote, "u1/c1"), 1, Allow},
	{"second placeholder must match too", pub("u1", "c1", remote, "u1/u1"), -1, 0},
	{"placeholder is not a wildcard", sub("u1", "c1", remote, "+/c1"), -1, 0},
}

var defaultCases = []matchCase{
	{"localhost subscribes $SYS", sub("", "c", "127.0.0.1", "$SYS/#"), 1, Allow},
	{"localhost subscribes #", sub("", "c", "127.0.0.1", "#"), 1, Allow},
	{"localhost publishes", pub("", "c", "127.0.0.1", "a/b"), 1, Allow},
	{"ipv6 localhost subscribes $SYS", sub("", "c", "::1", "$SYS/brokers/+/uptime"), 2, Allow},
	{"mapped localhost subscribes $SYS", sub("", "c", "::ffff:127.0.0.1", "$SYS/#"), 1, Allow},
	{"127.0.0.2 is not 127.0.0.1", sub("", "c", "127.0.0.2", "$SYS/#"), 3, Deny},
	{"remote may not subscribe $SYS/#", sub("", "c", remote, "$SYS/#"), 3, Deny},
	{"remote may not subscribe a $SYS topic", sub("", "c", remote, "$SYS/broker/uptime"), 3, Deny},
	{"remote may not subscribe #", sub("", "c", remote, "#"), 3, Deny},
	{"remote may subscribe a/#", sub("", "c", remote, "a/#"), 4, Allow},
	{"remote may subscribe +/# (EMQ default)", sub("", "c", remote, "+/#"), 4, Allow},
	{"remote may publish", pub("", "c", remote, "a/b"), 4, Allow},
	{"remote may publish a $ topic", pub("", "c", remote, "$SYS/x"), 4, Allow},
	{"dashboard subscribes $SYS", sub("dashboard", "c", remote, "$SYS/#"), 0, Allow},
	{"dashboard may not subscribe #", sub("dashboard", "c", remote, "#"), 3, Deny},
	{"no address may not subscribe #", sub("", "c", "", "#"), 3, Deny},
	{"shared # is checked as #", sub("", "c", remote, "$share/g/#"), 3, Deny},
	{"shared $SYS is checked as $SYS", sub("", "c", remote, "$share/g/$SYS/#"), 3, Deny},
	{"shared a/# allowed", sub("", "c", remote, "$share/g/a/#"), 4, Allow},
	{"localhost shared $SYS", sub("", "c", "127.0.0.1", "$share/g/$SYS/#"), 1, Allow},
}

func TestMatch(t *testing.T) {
	t.Parallel()
	sets := []struct {
		name  string
		rules Rules
		cases []matchCase
	}{
		{"kinds", mustParse(t, kindsConf), kindsCases},
		{"placeholders", mustParse(t, placeholderConf), placeholderCases},
		{"default", DefaultRules(), defaultCases},
	}
	for _, set := range sets {
		for _, c := range set.cases {
			t.Run(set.name+"/"+c.name, func(t *testing.T) {
				t.Parallel()
				index, perm, ok := set.rules.Match(c.req)
				if index != c.index || perm != c.perm || ok != (c.index >= 0) {
					t.Errorf("Match(%+v) = %d, %v, %v; want %d, %v, %v", c.req, index, perm, ok, c.index, c.perm, c.index >= 0)
				}
			})
		}
	}
}

func TestMatchEmptyRules(t *testing.T) {
	t.Parallel()
	if i, p, ok := Rules(nil).Match(pub("u", "c", remote, "a")); i != -1 || p != 0 || ok {
		t.Errorf("nil Rules: Match = %d, %v, %v; want -1, 0, false", i, p, ok)
	}
}

func TestMatchAllTopicsShortForm(t *testing.T) {
	t.Parallel()
	// {allow, all}. reaches $-topics, which {allow, all, pubsub, ["#"]}. does not.
	short := mustParse(t, `{allow, all}.`)
	hash := mustParse(t, `{allow, all, pubsub, ["#"]}.`)
	for _, req := range []Request{pub("", "c", remote, "$SYS/x"), sub("", "c", remote, "$SYS/#"), pub("", "c", remote, "a")} {
		if _, _, ok := short.Match(req); !ok {
			t.Errorf("{allow, all}: no match for %+v", req)
		}
	}
	if _, _, ok := hash.Match(pub("", "c", remote, "$SYS/x")); ok {
		t.Errorf(`["#"] matched a $ topic`)
	}
	userShort := mustParse(t, `{deny, {user, "bob"}}.`)
	if _, p, ok := userShort.Match(sub("bob", "c", remote, "$SYS/#")); !ok || p != Deny {
		t.Errorf("{deny, {user, \"bob\"}}: got %v, %v", p, ok)
	}
	if _, _, ok := userShort.Match(sub("alice", "c", remote, "a")); ok {
		t.Errorf("{deny, {user, \"bob\"}} matched alice")
	}
}

func TestMatchDoesNotAllocate(t *testing.T) {
	rules := mustParse(t, kindsConf)
	reqs := append(append([]matchCase(nil), kindsCases...), defaultCases...)
	for _, c := range reqs {
		allocs := testing.AllocsPerRun(100, func() {
			rules.Match(c.req)
			DefaultRules().Match(c.req)
		})
		// DefaultRules allocates its slices; Match must not add anything.
		base := testing.AllocsPerRun(100, func() { DefaultRules() })
		if allocs != base {
			t.Errorf("%s: Match allocates %v times", c.name, allocs-base)
		}
	}
}

func TestValidate(t *testing.T) {
	t.Parallel()
	ok := Rule{Permission: Allow, Who: All(), Access: PubSub, Topics: []Topic{{Filter: "#"}}}
	with := func(f func(r *Rule)) Rule {
		r := ok
		r.Topics = append([]Topic(nil), ok.Topics...)
		f(&r)
		return r
	}
	cases := []struct {
		name    string
		rule    Rule
		wantErr string
	}{
		{"valid", ok, ""},
		{"all topics", Rule{Permission: Deny, Who: User("x"), Access: PubSub, AllTopics: true}, ""},
		{"empty levels", with(func(r *Rule) { r.Topics = []Topic{{Filter: "a//b/"}} }), ""},
		{"eq with wildcards", with(func(r *Rule) { r.Topics = []Topic{{Filter: "#", Exact: true}} }), ""},
		{"eq with embedded %u", with(func(r *Rule) { r.Topics = []Topic{{Filter: "a-%u", Exact: true}} }), ""},
		{"no permission", with(func(r *Rule) { r.Permission = 0 }), "permission must be allow or deny"},
		{"bad permission", with(func(r *Rule) { r.Permission = 3 }), "permission must be allow or deny"},
		{"no who", with(func(r *Rule) { r.Who = Who{} }), "who is not set"},
		{"bad who kind", with(func(r *Rule) { r.Who = Who{Kind: 9} }), "who is not set"},
		{"all with name", with(func(r *Rule) { r.Who = Who{Kind: WhoAll, Name: "x"} }), "who all has"},
		{"empty user", with(func(r *Rule) { r.Who = User("") }), "user is empty"},
		{"empty clientid", with(func(r *Rule) { r.Who = ClientID("") }), "clientid is empty"},
		{"user with NUL", with(func(r *Rule) { r.Who = User("a\x00") }), "NUL"},
		{"user not UTF-8", with(func(r *Rule) { r.Who = User("\xff") }), "not valid UTF-8"},
		{"user with prefix", with(func(r *Rule) { r.Who = Who{Kind: WhoUser, Name: "a", Prefix: netip.MustParsePrefix("1.2.3.4/32")} }), "has an address"},
		{"user with invalid prefix", with(func(r *Rule) {
			r.Who = Who{Kind: WhoUser, Name: "a", Prefix: netip.PrefixFrom(netip.MustParseAddr("1.2.3.4"), 99)}
		}), "has an address"},
		{"ipaddr zero", with(func(r *Rule) { r.Who = IPAddr(netip.Prefix{}) }), "not a valid address"},
		{"ipaddr host bits", with(func(r *Rule) { r.Who = IPAddr(netip.MustParsePrefix("10.1.2.3/8")) }), "host bits set; the network is 10.0.0.0/8"},
		{"ipaddr mapped", with(func(r *Rule) { r.Who = IPAddr(netip.MustParsePrefix("::ffff:10.0.0.1/128")) }), "IPv4-mapped"},
		{"ipaddr with name", with(func(r *Rule) { r.Who = Who{Kind: WhoIPAddr, Name: "x", Prefix: netip.MustParsePrefix("::/0")} }), "has a name"},
		{"no access", with(func(r *Rule) { r.Access = 0 }), "access must be"},
		{"bad access", with(func(r *Rule) { r.Access = 4 }), "access must be"},
		{"empty topics", with(func(r *Rule) { r.Topics = nil }), "topic list is empty"},
		{"all topics with topics", with(func(r *Rule) { r.AllTopics = true }), "must not list topics"},
		{"all topics publish", Rule{Permission: Allow, Who: All(), Access: Publish, AllTopics: true}, "must have access pubsub"},
		{"# not last", with(func(r *Rule) { r.Topics = []Topic{{Filter: "a/#/b"}} }), "'#' must be the whole last level"},
		{"+ mixed", with(func(r *Rule) { r.Topics = []Topic{{Filter: "a+/b"}} }), "'+' must be a whole level"},
		{"empty filter", with(func(r *Rule) { r.Topics = []Topic{{Filter: ""}} }), "topic filter is empty"},
		{"empty eq", with(func(r *Rule) { r.Topics = []Topic{{Exact: true}} }), "topic filter is empty"},
		{"bad eq", with(func(r *Rule) { r.Topics = []Topic{{Filter: "a/#/b", Exact: true}} }), "'#' must be"},
		{"embedded placeholder", with(func(r *Rule) { r.Topics = []Topic{{Filter: "dev-%c/#"}} }), "must be a whole level"},
		{"shared filter", with(func(r *Rule) { r.Topics = []Topic{{Filter: "$share/g/a"}} }), "drop the \"$share/<name>/\" prefix"},
		{"shared eq", with(func(r *Rule) { r.Topics = []Topic{{Filter: "$share/g/#", Exact: true}} }), "drop the"},
	}
	for _, c := range cases {
		err := Rules{ok, c.rule}.Validate()
		checkErr(t, c.name, err, c.wantErr)
		if err != nil {
			var re *RuleError
			if !errors.As(err, &re) || re.Index != 1 {
				t.Errorf("%s: error %v is not a *RuleError for rule 1", c.name, err)
			}
			checkErr(t, c.name, err, "rule 1: ")
		}
	}
	if err := DefaultRules().Validate(); err != nil {
		t.Errorf("DefaultRules: %v", err)
	}
	if err := Rules(nil).Validate(); err != nil {
		t.Errorf("nil Rules: %v", err)
	}
}

func TestValidateReportsEveryRule(t *testing.T) {
	t.Parallel()
	err := Rules{{}, DefaultRules()[0], {Permission: Allow}}.Validate()
	checkErr(t, "Validate", err, "rule 0: permission")
	checkErr(t, "Validate", err, "rule 2: who is not set")
}

func TestTextForms(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		v    fmt.Stringer
		want string
	}{
		{Allow, "allow"}, {Deny, "deny"}, {Permission(0), "Permission(0)"},
		{Publish, "publish"}, {Subscribe, "subscribe"}, {PubSub, "pubsub"}, {Access(9), "Access(9)"},
		{All(), "all"}, {User(`a"b`), `{user, "a\"b"}`}, {ClientID("c"), `{clientid, "c"}`},
		{IPAddr(netip.MustParsePrefix("10.0.0.0/8")), `{ipaddr, "10.0.0.0/8"}`},
		{IPAddr(netip.MustParsePrefix("::1/128")), `{ipaddr, "::1"}`},
		{Topic{Filter: "#", Exact: true}, `{eq, "#"}`},
		{DefaultRules()[3], `{deny, all, subscribe, ["$SYS/#", {eq, "#"}]}`},
		{DefaultRules()[4], `{allow, all}`},
	} {
		if got := c.v.String(); got != c.want {
			t.Errorf("String() = %s, want %s", got, c.want)
		}
	}
	if _, err := Permission(0).MarshalText(); err == nil {
		t.Error("Permission(0).MarshalText: no error")
	}
	if _, err := Access(0).MarshalText(); err == nil {
		t.Error("Access(0).MarshalText: no error")
	}
	var p Permission
	checkErr(t, "Permission.UnmarshalText", p.UnmarshalText([]byte("Allow")), `not "Allow"`)
	var a Access
	checkErr(t, "Access.UnmarshalText", a.UnmarshalText([]byte("pub")), `not "pub"`)
}

func mustParse(t testing.TB, src string) Rules {
	t.Helper()
	rs, err := ParseConf(src)
	if err != nil {
		t.Fatalf("ParseConf: %v", err)
	}
	return rs
}

func BenchmarkMatch(b *testing.B) {
	defaults := DefaultRules()
	kinds := mustParse(b, kindsConf)
	benches := []struct {
		name  string
		rules Rules
		req   Request
	}{
		{"default/remote-publish", defaults, pub("u", "c", remote, "sensors/building-1/floor-2/temp")},
		{"default/remote-subscribe-$SYS", defaults, sub("u", "c", remote, "$SYS/brokers/+/uptime")},
		{"default/localhost-subscribe", defaults, sub("", "c", "127.0.0.1", "$SYS/#")},
		{"default/shared", defaults, sub("", "c", remote, "$share/g/a/b/#")},
		{"kinds/placeholder", kinds, sub("bob", "c1", remote, "users/bob/inbox/#")},
		{"kinds/fallthrough-ipv6", kinds, pub("", "c", "2001:db8::2", "one/x/y/z")},
	}
	for _, bb := range benches {
		b.Run(bb.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				bb.rules.Match(bb.req)
			}
		})
	}
}
