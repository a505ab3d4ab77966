package acl

import (
	"encoding/json"
	"errors"
	"net/netip"
	"reflect"
	"strings"
	"testing"
)

func FuzzMatchFilter(f *testing.F) {
	for _, c := range filterCases {
		f.Add(c.filter, c.topic)
	}
	f.Fuzz(func(t *testing.T, filter, topic string) {
		got := MatchFilter(filter, topic)
		if want := refMatch(filter, topic); got != want {
			t.Fatalf("MatchFilter(%q, %q) = %v, reference says %v", filter, topic, got, want)
		}
		if ValidFilter(filter) == nil && !MatchFilter(filter, filter) {
			t.Fatalf("valid filter %q does not match itself", filter)
		}
		if got && strings.HasPrefix(topic, "$") && (strings.HasPrefix(filter, "+") || strings.HasPrefix(filter, "#")) {
			t.Fatalf("first-level wildcard filter %q matched $ topic %q", filter, topic)
		}
	})
}

// substitute replaces placeholder levels the way Match does, reporting
// false when a value may not be used.
func substitute(filter, username, clientID string) (string, bool) {
	levels := strings.Split(filter, "/")
	for i, l := range levels {
		if l != "%u" && l != "%c" {
			continue
		}
		v := username
		if l == "%c" {
			v = clientID
		}
		if v == "" || strings.ContainsAny(v, "/+#") || (i == 0 && strings.HasPrefix(v, "$")) {
			return "", false
		}
		levels[i] = v
	}
	return strings.Join(levels, "/"), true
}

func FuzzMatchPlaceholders(f *testing.F) {
	for _, c := range placeholderCases {
		f.Add("%c/#", c.req.Topic, c.req.Username, c.req.ClientID)
		f.Add("%u/%c", c.req.Topic, c.req.Username, c.req.ClientID)
	}
	for _, c := range kindsCases {
		f.Add("users/%u/#", c.req.Topic, c.req.Username, c.req.ClientID)
	}
	f.Fuzz(func(t *testing.T, filter, topic, username, clientID string) {
		got := matchFilter(filter, topic, &identity{username: username, clientID: clientID})
		want := false
		if s, ok := substitute(filter, username, clientID); ok {
			want = refMatch(s, topic)
		}
		if got != want {
			t.Fatalf("matchFilter(%q, %q, u=%q c=%q) = %v, want %v", filter, topic, username, clientID, got, want)
		}
	})
}

func FuzzParseConf(f *testing.F) {
	for _, c := range confCases {
		f.Add(c.src)
	}
	for _, c := range confErrorCases {
		f.Add(c.src)
	}
	f.Add(kindsConf)
	f.Add(placeholderConf)
	for _, c := range jsonCases {
		f.Add(Rules{c.want}.FormatConf())
	}
	f.Fuzz(func(t *testing.T, src string) {
		rs, err := ParseConf(src)
		if err != nil {
			var pe *ParseError
			if !errors.As(err, &pe) || pe.Line < 1 || pe.Column < 1 {
				t.Fatalf("ParseConf error %v (%T) has no position", err, err)
			}
			if rs != nil {
				t.Fatal("ParseConf returned rules with an error")
			}
			return
		}
		checkRoundTrip(t, rs)
		for _, req := range []Request{
			pub("u", "c", "127.0.0.1", "a/b"),
			sub("u", "c", "::1", "$SYS/#"),
			sub("", "", "", "$share/g/#"),
		} {
			if i, p, ok := rs.Match(req); ok != (i >= 0) || (ok && p != rs[i].Permission) {
				t.Fatalf("Match = %d, %v, %v", i, p, ok)
			}
		}
	})
}

func FuzzRuleJSON(f *testing.F) {
	for _, c := range jsonCases {
		f.Add([]byte(c.in))
	}
	for _, c := range jsonErrorCases {
		f.Add([]byte(c.in))
	}
	for _, c := range confCases {
		for _, r := range c.want {
			data, err := json.Marshal(r)
			if err != nil {
				f.Fatal(err)
			}
			f.Add(data)
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var r Rule
		if err := json.Unmarshal(data, &r); err != nil {
			if !reflect.DeepEqual(r, Rule{}) {
				t.Fatalf("failed Unmarshal changed the rule: %#v", r)
			}
			return
		}
		if err := r.validate(); err != nil {
			t.Fatalf("decoded rule is not valid: %v", err)
		}
		out, err := json.Marshal(r)
		if err != nil {
			t.Fatalf("Marshal: %v", err)
		}
		var back Rule
		if err := json.Unmarshal(out, &back); err != nil {
			t.Fatalf("Unmarshal(%s): %v", out, err)
		}
		if !reflect.DeepEqual(back, r) {
			t.Fatalf("JSON round trip: %#v, want %#v", back, r)
		}
		if again, _ := json.Marshal(back); string(again) != string(out) {
			t.Fatalf("Marshal is not stable: %s then %s", out, again)
		}
		checkRoundTrip(t, Rules{r})
		_, _, _ = Rules{r}.Match(Request{Addr: netip.MustParseAddr("10.0.0.1"), Access: Subscribe, Topic: "#"})
	})
}
