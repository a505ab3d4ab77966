package acl

import (
	"encoding/json"
	"errors"
	"net/netip"
	"reflect"
	"testing"
)

// jsonCases are shared with FuzzRuleJSON as its seed corpus. canon is the
// encoding MarshalJSON gives; "" means it is the input itself.
var jsonCases = []struct {
	in    string
	want  Rule
	canon string
}{
	{`{"permission":"allow","who":"all"}`,
		Rule{Permission: Allow, Who: All(), Access: PubSub, AllTopics: true}, ""},
	{`{"permission":"deny","who":{"user":"bob"},"access":"subscribe","topics":["$SYS/#",{"eq":"#"}]}`,
		Rule{Permission: Deny, Who: User("bob"), Access: Subscribe, Topics: []Topic{{Filter: "$SYS/#"}, {Filter: "#", Exact: true}}}, ""},
	{`{"permission":"allow","who":{"clientid":"c1"},"access":"publish","topics":["clients/%c/#"]}`,
		Rule{Permission: Allow, Who: ClientID("c1"), Access: Publish, Topics: []Topic{{Filter: "clients/%c/#"}}}, ""},
	{`{"permission":"allow","who":{"ipaddr":"10.0.0.0/8"},"access":"pubsub","topics":["#"]}`,
		Rule{Permission: Allow, Who: IPAddr(netip.MustParsePrefix("10.0.0.0/8")), Access: PubSub, Topics: []Topic{{Filter: "#"}}}, ""},
	{`{"permission":"allow","who":{"ipaddr":"::1"},"access":"pubsub","topics":["#"]}`,
		Rule{Permission: Allow, Who: IPAddr(netip.MustParsePrefix("::1/128")), Access: PubSub, Topics: []Topic{{Filter: "#"}}}, ""},
	{` { "topics" : [ "a" ] , "access" : "pubsub", "who" : { "ipaddr" : "192.0.2.1/32" } , "permission" : "deny" } `,
		Rule{Permission: Deny, Who: IPAddr(netip.MustParsePrefix("192.0.2.1/32")), Access: PubSub, Topics: []Topic{{Filter: "a"}}},
		`{"permission":"deny","who":{"ipaddr":"192.0.2.1"},"access":"pubsub","topics":["a"]}`},
	{`{"permission":"deny","who":{"user":"<&>"}}`,
		Rule{Permission: Deny, Who: User("<&>"), Access: PubSub, AllTopics: true},
		`{"permission":"deny","who":{"user":"\u003c\u0026\u003e"}}`},
}

func TestRuleJSON(t *testing.T) {
	t.Parallel()
	for _, c := range jsonCases {
		var r Rule
		if err := json.Unmarshal([]byte(c.in), &r); err != nil {
			t.Errorf("Unmarshal(%s): %v", c.in, err)
			continue
		}
		if !reflect.DeepEqual(r, c.want) {
			t.Errorf("Unmarshal(%s) = %#v, want %#v", c.in, r, c.want)
		}
		data, err := json.Marshal(r)
		if err != nil {
			t.Errorf("Marshal(%v): %v", r, err)
			continue
		}
		canon := c.canon
		if canon == "" {
			canon = c.in
		}
		if string(data) != canon {
			t.Errorf("Marshal(%v) = %s, want %s", r, data, canon)
		}
	}
}

// jsonErrorCases are shared with FuzzRuleJSON as its seed corpus.
var jsonErrorCases = []struct {
	in, wantErr string
}{
	{`null`, `rule must be a JSON object, not null`},
	{`[]`, `rule must be a JSON object, not an array`},
	{`{}`, `"permission" is missing`},
	{`{"permission":"allow"}`, `"who" is missing`},
	{`{"permission":"allow","who":"all","extra":1}`, `unknown field "extra"; a rule has "permission", "who", "access" and "topics"`},
	{`{"Permission":"allow","who":"all"}`, `unknown field "Permission"`},
	{`{"permission":"allow","permission":"deny","who":"all"}`, `duplicate field "permission"`},
	{`{"permission":"Allow","who":"all"}`, `permission must be "allow" or "deny", not "Allow"`},
	{`{"permission":true,"who":"all"}`, `"permission" must be a string, not a boolean`},
	{`{"permission":null,"who":"all"}`, `"permission" must be a string, not null`},
	{`{"permission":"allow","who":"everyone"}`, `"who": must be "all" or an object with one of "user", "clientid" or "ipaddr", not "everyone"`},
	{`{"permission":"allow","who":null}`, `"who": must be "all" or an object with one of "user", "clientid" or "ipaddr", not null`},
	{`{"permission":"allow","who":{}}`, `"who": must be "all" or an object with one of "user", "clientid" or "ipaddr", not an empty object`},
	{`{"permission":"allow","who":{"user":"a","clientid":"b"}}`, `"who": has more than one of "user", "clientid" and "ipaddr"`},
	{`{"permission":"allow","who":{"user":"a","user":"b"}}`, `"who": duplicate field "user"`},
	{`{"permission":"allow","who":{"username":"a"}}`, `"who": unknown field "username"`},
	{`{"permission":"allow","who":{"user":""}}`, `"who": user is empty`},
	{`{"permission":"allow","who":{"user":7}}`, `"who": "user" must be a string, not a number`},
	{`{"permission":"allow","who":{"ipaddr":"10.0.0.1/8"}}`, `"who": ipaddr 10.0.0.1/8 has host bits set; the network is 10.0.0.0/8`},
	{`{"permission":"allow","who":{"ipaddr":"nope"}}`, `"who": ipaddr "nope" is not an IP address or CIDR network`},
	{`{"permission":"allow","who":"all","access":"pubsub"}`, `"access" and "topics" go together`},
	{`{"permission":"allow","who":"all","topics":["#"]}`, `"access" and "topics" go together`},
	{`{"permission":"allow","who":"all","access":"pub","topics":["#"]}`, `access must be "publish", "subscribe" or "pubsub", not "pub"`},
	{`{"permission":"allow","who":"all","access":"pubsub","topics":[]}`, `"topics" is empty`},
	{`{"permission":"allow","who":"all","access":"pubsub","topics":null}`, `"topics" must be an array, not null`},
	{`{"permission":"allow","who":"all","access":"pubsub","topics":"#"}`, `"topics" must be an array, not a string`},
	{`{"permission":"allow","who":"all","access":"pubsub","topics":["a",5]}`, `"topics"[1]: a topic must be a filter string or {"eq": "topic"}, not a number`},
	{`{"permission":"allow","who":"all","access":"pubsub","topics":["a/#/b"]}`, `"topics"[0]: topic filter "a/#/b": '#' must be the whole last level`},
	{`{"permission":"allow","who":"all","access":"pubsub","topics":[{"eq":"#","x":1}]}`, `"topics"[0]: unknown field "x"`},
	{`{"permission":"allow","who":"all","access":"pubsub","topics":[{"Eq":"#"}]}`, `"topics"[0]: unknown field "Eq"`},
	{`{"permission":"allow","who":"all","access":"pubsub","topics":[{}]}`, `"topics"[0]: an exact topic is {"eq": "topic"}, not an empty object`},
	{`{"permission":"allow","who":"all","access":"pubsub","topics":[{"eq":null}]}`, `"topics"[0]: "eq" must be a string, not null`},
	{`{"permission":"allow","who":"all","access":"pubsub","topics":[{"eq":""}]}`, `"topics"[0]: topic filter is empty`},
	{`{"permission":"allow","who":"all","access":"pubsub","topics":["$share/g/#"]}`, `drop the "$share/<name>/" prefix`},
	{`{"permission":"allow","who":"all","access":"pubsub","topics":["a\u0000"]}`, `contains a NUL character`},
}

func TestRuleJSONErrors(t *testing.T) {
	t.Parallel()
	for _, c := range jsonErrorCases {
		var r Rule
		err := json.Unmarshal([]byte(c.in), &r)
		checkErr(t, "Unmarshal("+c.in+")", err, c.wantErr)
		if !reflect.DeepEqual(r, Rule{}) {
			t.Errorf("Unmarshal(%s) changed the rule on error: %#v", c.in, r)
		}
	}
}

func TestRulesJSON(t *testing.T) {
	t.Parallel()
	data, err := json.Marshal(DefaultRules())
	if err != nil {
		t.Fatal(err)
	}
	want := `[{"permission":"allow","who":{"user":"dashboard"},"access":"subscribe","topics":["$SYS/#"]},` +
		`{"permission":"allow","who":{"ipaddr":"127.0.0.1"},"access":"pubsub","topics":["$SYS/#","#"]},` +
		`{"permission":"allow","who":{"ipaddr":"::1"},"access":"pubsub","topics":["$SYS/#","#"]},` +
		`{"permission":"deny","who":"all","access":"subscribe","topics":["$SYS/#",{"eq":"#"}]},` +
		`{"permission":"allow","who":"all"}]`
	if string(data) != want {
		t.Errorf("Marshal(DefaultRules()) =\n%s\nwant\n%s", data, want)
	}
	var back Rules
	if err := json.Unmarshal(data, &back); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(back, DefaultRules()) {
		t.Errorf("round trip = %v", back)
	}

	for _, empty := range []Rules{nil, {}} {
		if data, err := json.Marshal(empty); err != nil || string(data) != "[]" {
			t.Errorf("Marshal(%#v) = %s, %v; want []", empty, data, err)
		}
	}
	for _, in := range []string{`null`, `[]`, ` [ ] `} {
		rs := DefaultRules()
		if err := json.Unmarshal([]byte(in), &rs); err != nil || rs != nil {
			t.Errorf("Unmarshal(%s) = %v, %v; want nil, nil", in, rs, err)
		}
	}

	var rs Rules
	err = json.Unmarshal([]byte(`[{"permission":"allow","who":"all"},{"permission":"allow"}]`), &rs)
	var re *RuleError
	if !errors.As(err, &re) || re.Index != 1 || err.Error() != `rule 1: "who" is missing` {
		t.Errorf("Unmarshal with a bad second rule: %v", err)
	}
	checkErr(t, "Unmarshal(object)", json.Unmarshal([]byte(`{}`), &rs), "rules must be a JSON array, not an object")

	_, err = json.Marshal(Rules{{Permission: Allow}})
	checkErr(t, "Marshal(invalid rule)", err, "rule 0: who is not set")
	_, err = json.Marshal(Rule{})
	checkErr(t, "Marshal(Rule{})", err, "permission must be allow or deny")
}

func TestRuleUnmarshalJSONDirect(t *testing.T) {
	t.Parallel()
	// encoding/json hands UnmarshalJSON one whole value; direct callers may not.
	var r Rule
	checkErr(t, "trailing data", r.UnmarshalJSON([]byte(`{"permission":"allow","who":"all"} {}`)), "unexpected data after the object")
	checkErr(t, "truncated", r.UnmarshalJSON([]byte(`{"permission":"allow"`)), "rule: ")
	checkErr(t, "empty", r.UnmarshalJSON(nil), "rule: EOF")
}
