package acl

import (
	"errors"
	"net/netip"
	"reflect"
	"strings"
	"testing"
)

// seedConf is the acl.conf of seed 002 (EMQ's stock file), with the
// localhost address the seed text lost restored, and the IPv6 loopback line
// edgegate adds.
const seedConf = `%% Allow 'dashboard' to subscribe '$SYS/#'
{allow, {user, "dashboard"}, subscribe, ["$SYS/#"]}.

%% Allow clients from localhost to subscribe any topics
{allow, {ipaddr, "127.0.0.1"}, pubsub, ["$SYS/#", "#"]}.
{allow, {ipaddr, "::1"}, pubsub, ["$SYS/#", "#"]}.

%% Deny clients to subscribe '$SYS#' and '#'
{deny, all, subscribe, ["$SYS/#", {eq, "#"}]}.

%% Allow all by default
{allow, all}.
`

func TestParseConfDefault(t *testing.T) {
	t.Parallel()
	rs := mustParse(t, seedConf)
	if !reflect.DeepEqual(rs, DefaultRules()) {
		t.Errorf("ParseConf(seed acl.conf) =\n%s\nwant DefaultRules() =\n%s", rs.FormatConf(), DefaultRules().FormatConf())
	}
	want := `{allow, {user, "dashboard"}, subscribe, ["$SYS/#"]}.
{allow, {ipaddr, "127.0.0.1"}, pubsub, ["$SYS/#", "#"]}.
{allow, {ipaddr, "::1"}, pubsub, ["$SYS/#", "#"]}.
{deny, all, subscribe, ["$SYS/#", {eq, "#"}]}.
{allow, all}.
`
	if got := DefaultRules().FormatConf(); got != want {
		t.Errorf("FormatConf:\n%s\nwant:\n%s", got, want)
	}
}

// confCases are shared with FuzzParseConf as its seed corpus.
var confCases = []struct {
	name string
	src  string
	want Rules
}{
	{"empty", "", nil},
	{"only comments", "% one\n%% two\n  \t\r\n", nil},
	{"compact", `{deny,{clientid,"c"},publish,[{eq,"a/+"},"b"]}.{allow,all}.`, Rules{
		{Permission: Deny, Who: ClientID("c"), Access: Publish, Topics: []Topic{{Filter: "a/+", Exact: true}, {Filter: "b"}}},
		{Permission: Allow, Who: All(), Access: PubSub, AllTopics: true},
	}},
	{"spread over lines with comments", "{ allow , % who next\n  {user,\n \"u\" } ,\n subscribe,\n [ \"%u/#\" %% mine\n ] }\n.\n", Rules{
		{Permission: Allow, Who: User("u"), Access: Subscribe, Topics: []Topic{{Filter: "%u/#"}}},
	}},
	{"cidr v4 and v6", `{allow, {ipaddr, "10.0.0.0/8"}, pubsub, ["a"]}. {allow, {ipaddr, "fd00::/8"}, pubsub, ["b"]}.`, Rules{
		{Permission: Allow, Who: IPAddr(netip.MustParsePrefix("10.0.0.0/8")), Access: PubSub, Topics: []Topic{{Filter: "a"}}},
		{Permission: Allow, Who: IPAddr(netip.MustParsePrefix("fd00::/8")), Access: PubSub, Topics: []Topic{{Filter: "b"}}},
	}},
	{"cidr /32 is the address", `{allow, {ipaddr, "1.2.3.4/32"}, pubsub, ["a"]}.`, Rules{
		{Permission: Allow, Who: IPAddr(netip.MustParsePrefix("1.2.3.4/32")), Access: PubSub, Topics: []Topic{{Filter: "a"}}},
	}},
	{"short form for a user", `{deny, {user, "x"}}.`, Rules{
		{Permission: Deny, Who: User("x"), Access: PubSub, AllTopics: true},
	}},
	{"escapes", `{allow, {user, "a\"b\\c\x41\x{e9}\101\s\t"}, pubsub, ["%%not a comment"]}.`, Rules{
		{Permission: Allow, Who: User("a\"b\\cAé" + "A \t"), Access: PubSub, Topics: []Topic{{Filter: "%%not a comment"}}},
	}},
	{"unicode", `{allow, {clientid, "капибара"}, pubsub, ["温度/+"]}.`, Rules{
		{Permission: Allow, Who: ClientID("капибара"), Access: PubSub, Topics: []Topic{{Filter: "温度/+"}}},
	}},
	{"dot at end of input", `{allow, all}.`, Rules{{Permission: Allow, Who: All(), Access: PubSub, AllTopics: true}}},
	{"seed", seedConf, DefaultRules()},
}

func TestParseConf(t *testing.T) {
	t.Parallel()
	for _, c := range confCases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			got, err := ParseConf(c.src)
			if err != nil {
				t.Fatalf("ParseConf: %v", err)
			}
			if !reflect.DeepEqual(got, c.want) {
				t.Fatalf("ParseConf = %#v\nwant %#v", got, c.want)
			}
			checkRoundTrip(t, got)
		})
	}
}

// checkRoundTrip checks that rs survives FormatConf/ParseConf and JSON.
func checkRoundTrip(t *testing.T, rs Rules) {
	t.Helper()
	if err := rs.Validate(); err != nil {
		t.Fatalf("parsed rules do not validate: %v", err)
	}
	text := rs.FormatConf()
	back, err := ParseConf(text)
	if err != nil {
		t.Fatalf("ParseConf(FormatConf()) = %v; text:\n%s", err, text)
	}
	if !reflect.DeepEqual(back, rs) {
		t.Fatalf("ParseConf(FormatConf()) = %#v\nwant %#v\ntext:\n%s", back, rs, text)
	}
	if again := back.FormatConf(); again != text {
		t.Fatalf("FormatConf is not stable:\n%s\nthen\n%s", text, again)
	}
	data, err := rs.MarshalJSON()
	if err != nil {
		t.Fatalf("MarshalJSON: %v", err)
	}
	var fromJSON Rules
	if err := fromJSON.UnmarshalJSON(data); err != nil {
		t.Fatalf("UnmarshalJSON(%s): %v", data, err)
	}
	if !reflect.DeepEqual(fromJSON, rs) {
		t.Fatalf("JSON round trip = %#v\nwant %#v\njson: %s", fromJSON, rs, data)
	}
}

// confErrorCases are shared with FuzzParseConf as its seed corpus.
var confErrorCases = []struct {
	src     string
	wantErr string // the full message, position first
}{
	{`allow`, `1:1: expected '{' to start a rule, found atom allow`},
	{`{allow, all}`, `1:13: expected '.' after the rule, found end of input`},
	{`{allow, all}.` + "\n\n  {permit, all}.", `3:4: expected allow or deny, found atom permit`},
	{`{allow all}.`, `1:8: expected ',' after allow, found atom all`},
	{`{allow, everyone}.`, `1:9: expected all, {user, "..."}, {clientid, "..."} or {ipaddr, "..."}, found atom everyone`},
	{`{allow, {username, "x"}}.`, `1:10: expected user, clientid or ipaddr, found atom username`},
	{`{allow, {user "x"}}.`, `1:15: expected ',' after user, found string "x"`},
	{`{allow, {user, x}}.`, `1:16: expected a string after user,, found atom x`},
	{`{allow, {user, "x", "y"}}.`, `1:19: expected '}' after the user string, found ','`},
	{`{allow, {user, ""}}.`, `1:16: user is empty`},
	{`{allow, {ipaddr, "10.0.0.0/33"}}.`, `1:18: ipaddr "10.0.0.0/33" is not an IP address or CIDR network`},
	{`{allow, {ipaddr, "localhost"}}.`, `1:18: ipaddr "localhost" is not an IP address or CIDR network`},
	{`{allow, {ipaddr, ""}, pubsub, ["#"]}.`, `1:18: ipaddr "" is not an IP address or CIDR network`},
	{`{allow, {ipaddr, "10.1.2.3/8"}}.`, `1:18: ipaddr 10.1.2.3/8 has host bits set; the network is 10.0.0.0/8`},
	{`{allow, {ipaddr, "fe80::1%eth0"}}.`, `1:18: ipaddr "fe80::1%eth0": an IPv6 zone is not allowed`},
	{`{allow, {ipaddr, "::ffff:127.0.0.1"}}.`, `1:18: ipaddr ::ffff:127.0.0.1 is IPv4-mapped IPv6; write the IPv4 form`},
	{`{allow, all, pub, ["a"]}.`, `1:14: expected publish, subscribe or pubsub, found atom pub`},
	{`{allow, all, publish}.`, `1:21: expected ',' and a topic list after publish, found '}'`},
	{`{allow, all, publish, "a"}.`, `1:23: expected '[' to start the topic list, found string "a"`},
	{`{allow, all, publish, []}.`, `1:23: topic list is empty`},
	{`{allow, all, publish, ["a",]}.`, `1:28: expected a topic filter string or {eq, "topic"}, found ']'`},
	{`{allow, all, publish, ["a" "b"]}.`, `1:28: expected ',' or ']' in the topic list, found string "b"`},
	{`{allow, all, publish, ["a/#/b"]}.`, `1:24: topic filter "a/#/b": '#' must be the whole last level`},
	{`{allow, all, publish, ["a+/b"]}.`, `1:24: topic filter "a+/b": '+' must be a whole level`},
	{`{allow, all, publish, [""]}.`, `1:24: topic filter is empty`},
	{`{allow, all, publish, ["x-%u"]}.`, `1:24: topic filter "x-%u": placeholder %u or %c must be a whole level`},
	{`{allow, all, publish, ["$share/g/a"]}.`, `1:24: topic filter "$share/g/a": rules apply to the filter inside a shared subscription; drop the "$share/<name>/" prefix`},
	{`{allow, all, publish, [{exact, "a"}]}.`, `1:25: expected eq, found atom exact`},
	{`{allow, all, publish, [{eq, "a/#/b"}]}.`, `1:29: topic filter "a/#/b": '#' must be the whole last level`},
	{`{allow, all, publish, [{eq, "a"]}.`, `1:32: expected '}' after the eq topic, found ']'`},
	{`{allow, all, publish, ["a"]`, `1:28: expected '}' to end the rule, found end of input`},
	{`{allow, all, publish, ["a"]} x`, `1:30: expected '.' after the rule, found atom x`},
	{`{allow, all, ["a"]}.`, `1:14: expected publish, subscribe or pubsub, found '['`},
	{`{allow, all ["a"]}.`, `1:13: expected ',' and an access, or '}' after the who, found '['`},
	{`{allow, all}. .`, `1:15: expected '{' to start a rule, found '.'`},
	{`{allow, 'all'}.`, `1:9: unexpected character '\''`},
	{`{Allow, all}.`, `1:2: unexpected character 'A'`},
	{"{allow, {user, \"a\n", `1:16: string not terminated: expected '"'`},
	{`{allow, {user, "a\q"}}.`, `1:18: unknown escape \q`},
	{`{allow, {user, "a\x4"}}.`, `1:18: escape \x: expected two hex digits or {hex digits}`},
	{`{allow, {user, "a\x{110000}"}}.`, `1:18: escape: 110000 is not a Unicode code point`},
	{`{allow, {user, "a\x{d800}"}}.`, `1:18: escape: d800 is not a Unicode code point`},
	{`{allow, {user, "a\x{}"}}.`, `1:18: escape: "" is not a hexadecimal number`},
	{`{allow, {user, "a\x{12"}}.`, `1:18: escape \x{...} not terminated: expected '}'`},
	{`{allow, {user, "a\x00"}}.`, `1:16: user "a\x00" contains a NUL character`},
	{"{allow, {user, \"\xff\"}}.", `1:17: invalid UTF-8`},
	{"\xff", `1:1: invalid UTF-8`},
	{"{allow, {user, \"ü\"}}.\n{allow, {user, \"ü\"}, pubsub, [\"#\"]}. {deny, {clientid, \"é\"}, bad", `2:62: expected publish, subscribe or pubsub, found atom bad`},
}

func TestParseConfErrors(t *testing.T) {
	t.Parallel()
	for _, c := range confErrorCases {
		rs, err := ParseConf(c.src)
		if err == nil {
			t.Errorf("ParseConf(%q) = %v, want error %q", c.src, rs, c.wantErr)
			continue
		}
		if err.Error() != c.wantErr {
			t.Errorf("ParseConf(%q) error\n got: %s\nwant: %s", c.src, err, c.wantErr)
		}
		var pe *ParseError
		if !errors.As(err, &pe) {
			t.Errorf("ParseConf(%q) error %T is not a *ParseError", c.src, err)
		}
		if rs != nil {
			t.Errorf("ParseConf(%q) returned rules with its error", c.src)
		}
	}
}

func TestFormatConfEscapes(t *testing.T) {
	t.Parallel()
	name := "q\"b\\s\n\t\x01\u00a0\u2028é温"
	rs := Rules{{Permission: Allow, Who: User(name), Access: PubSub, Topics: []Topic{{Filter: "%u/" + name}}}}
	text := rs.FormatConf()
	if strings.ContainsAny(text[:len(text)-1], "\n\x01\u00a0\u2028") {
		t.Errorf("FormatConf left a raw control or space character in %q", text)
	}
	checkRoundTrip(t, rs)
}
