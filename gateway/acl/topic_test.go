package acl

import (
	"strings"
	"testing"
)

// filterCases are shared with FuzzMatchFilter as its seed corpus.
var filterCases = []struct {
	filter, topic string
	want          bool
}{
	// Literal levels.
	{"a/b", "a/b", true},
	{"a/b", "a/c", false},
	{"a/b", "a", false},
	{"a", "a/b", false},
	{"a/b", "a/b/", false},
	{"a//b", "a//b", true},
	{"/", "/", true},
	{"a/", "a/", true},
	{"a/", "a", false},
	{"A", "a", false},
	{"ü/ß", "ü/ß", true},
	// "+" matches exactly one level, including an empty one.
	{"+", "a", true},
	{"+", "a/b", false},
	{"+", "", false},
	{"a/+", "a/b", true},
	{"a/+", "a/", true},
	{"a/+", "a", false},
	{"a/+", "a/b/c", false},
	{"+/+", "/", true},
	{"+/b/+", "a/b/c", true},
	{"+/b/+", "a/x/c", false},
	// "#" matches the rest, zero or more levels.
	{"#", "a", true},
	{"#", "a/b/c", true},
	{"#", "/", true},
	{"a/#", "a", true},
	{"a/#", "a/", true},
	{"a/#", "a/b/c", true},
	{"a/#", "ab", false},
	{"a/#", "b/a", false},
	{"a/b/#", "a", false},
	{"+/#", "a", true},
	{"+/#", "a/b", true},
	{"#/a", "x/a", false}, // invalid filter: "#" not last
	// $-topics: no first-level wildcard match (MQTT 4.7.2).
	{"#", "$SYS", false},
	{"#", "$SYS/broker/uptime", false},
	{"+/broker", "$SYS/broker", false},
	{"+/#", "$SYS/x", false},
	{"$SYS/#", "$SYS", true},
	{"$SYS/#", "$SYS/broker/uptime", true},
	{"$SYS/+/uptime", "$SYS/broker/uptime", true},
	{"a/+", "a/$x", true}, // only the first level is special
	{"a/#", "a/$x/y", true},
	// Wildcards in the topic (a subscription filter under an ACL check) are
	// level text.
	{"#", "#", true},
	{"#", "+/#", true},
	{"+", "+", true},
	{"+", "#", true},
	{"a/+", "a/#", true},
	{"a/b", "a/+", false},
	{"$SYS/#", "$SYS/#", true},
	{"#", "$SYS/#", false},
	// Placeholders are plain text in MatchFilter.
	{"%u", "%u", true},
	{"%u", "bob", false},
	// Empty inputs match nothing.
	{"", "", false},
	{"", "a", false},
	{"a", "", false},
	{"#", "", false},
}

func TestMatchFilter(t *testing.T) {
	t.Parallel()
	for _, c := range filterCases {
		if got := MatchFilter(c.filter, c.topic); got != c.want {
			t.Errorf("MatchFilter(%q, %q) = %v, want %v", c.filter, c.topic, got, c.want)
		}
		// The level walk must agree with the obvious split-based matcher.
		if got := refMatch(c.filter, c.topic); got != c.want {
			t.Errorf("refMatch(%q, %q) = %v, want %v (table or reference is wrong)", c.filter, c.topic, got, c.want)
		}
	}
}

// refMatch is a straightforward matcher to check matchFilter against.
func refMatch(filter, topic string) bool {
	if filter == "" || topic == "" {
		return false
	}
	f, t := strings.Split(filter, "/"), strings.Split(topic, "/")
	if strings.HasPrefix(t[0], "$") && (f[0] == "+" || f[0] == "#") {
		return false
	}
	for i, fl := range f {
		if fl == "#" {
			return i == len(f)-1
		}
		if i >= len(t) || (fl != "+" && fl != t[i]) {
			return false
		}
	}
	return len(f) == len(t)
}

func TestValidFilter(t *testing.T) {
	t.Parallel()
	cases := []struct {
		filter  string
		wantErr string // "" means valid
	}{
		{"a/b", ""},
		{"#", ""},
		{"+", ""},
		{"a/#", ""},
		{"+/+/#", ""},
		{"a//b", ""},
		{"/", ""},
		{"$SYS/#", ""},
		{"%u/#", ""},
		{"$share/g/a/#", ""},
		{"$share/g/#", ""},
		{"$share/g/$SYS/#", ""},
		{"$share", ""}, // not a shared subscription
		{"", "is empty"},
		{"a/#/b", "'#' must be the whole last level"},
		{"#/", "'#' must be the whole last level"},
		{"a#", "'#' must be the whole last level"},
		{"a/b#", "'#' must be the whole last level"},
		{"a+/b", "'+' must be a whole level"},
		{"a/+b", "'+' must be a whole level"},
		{"++", "'+' must be a whole level"},
		{"a\x00b", "NUL"},
		{"a\xffb", "not valid UTF-8"},
		{"\xed\xa0\x80", "not valid UTF-8"}, // a UTF-16 surrogate
		{strings.Repeat("a", maxTopicLen), ""},
		{strings.Repeat("a", maxTopicLen+1), "at most 65535"},
		{"$share/g", "$share/<name>/<filter>"},
		{"$share//a", "empty share name"},
		{"$share/g+/a", "share name must not contain"},
		{"$share/g/", "no topic filter"},
		{"$share/g/$share/h/a", "cannot be nested"},
		{"$share/g/a/#/b", "'#' must be the whole last level"},
	}
	for _, c := range cases {
		err := ValidFilter(c.filter)
		checkErr(t, "ValidFilter("+quote(c.filter)+")", err, c.wantErr)
	}
}

func TestValidTopicName(t *testing.T) {
	t.Parallel()
	cases := []struct {
		topic   string
		wantErr string
	}{
		{"a/b", ""},
		{"/", ""},
		{"$SYS/broker", ""},
		{"%u", ""},
		{"", "is empty"},
		{"a/+", "wildcard '+'"},
		{"#", "wildcard '#'"},
		{"a/b#", "wildcard '#'"},
		{"a\x00", "NUL"},
		{"\xc3", "not valid UTF-8"},
		{strings.Repeat("ä", maxTopicLen/2), ""},
		{strings.Repeat("a", maxTopicLen+1), "at most 65535"},
	}
	for _, c := range cases {
		checkErr(t, "ValidTopicName("+quote(c.topic)+")", ValidTopicName(c.topic), c.wantErr)
	}
}

func TestSplitShared(t *testing.T) {
	t.Parallel()
	cases := []struct {
		filter, group, inner string
		shared               bool
	}{
		{"$share/g/a/b", "g", "a/b", true},
		{"$share/g/#", "g", "#", true},
		{"$share//a", "", "a", true},
		{"$share/g/", "g", "", true},
		{"$share/g", "", "$share/g", false},
		{"$share", "", "$share", false},
		{"$SHARE/g/a", "", "$SHARE/g/a", false},
		{"a/b", "", "a/b", false},
		{"", "", "", false},
	}
	for _, c := range cases {
		g, in, ok := SplitShared(c.filter)
		if g != c.group || in != c.inner || ok != c.shared {
			t.Errorf("SplitShared(%q) = %q, %q, %v; want %q, %q, %v", c.filter, g, in, ok, c.group, c.inner, c.shared)
		}
	}
}

// checkErr fails unless err is nil when wantErr is "", or contains wantErr.
func checkErr(t *testing.T, what string, err error, wantErr string) {
	t.Helper()
	switch {
	case wantErr == "" && err != nil:
		t.Errorf("%s: unexpected error: %v", what, err)
	case wantErr != "" && err == nil:
		t.Errorf("%s: no error, want one containing %q", what, wantErr)
	case wantErr != "" && !strings.Contains(err.Error(), wantErr):
		t.Errorf("%s: error %q does not contain %q", what, err, wantErr)
	}
}
