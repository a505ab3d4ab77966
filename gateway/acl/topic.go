package acl

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"
)

// maxTopicLen is the longest topic name or filter MQTT can carry: a UTF-8
// string in MQTT has a two-byte length prefix.
const maxTopicLen = 65535

// sharePrefix starts an MQTT 5 shared subscription: $share/<name>/<filter>.
const sharePrefix = "$share/"

// MatchFilter reports whether the topic filter matches topic, level by level
// as MQTT defines it: "+" matches exactly one level, "#" (only as the last
// level) matches the remaining zero or more levels, so "a/#" matches "a".
// A topic whose first level starts with "$" is not matched by a filter whose
// first level is "+" or "#" (MQTT 3.1.1 section 4.7.2), which keeps "#" away
// from "$SYS".
//
// Wildcard characters in topic are plain text: when topic is itself a
// subscription filter, as in an ACL check of a SUBSCRIBE, filter "a/+" matches
// "a/#" and filter "#" matches "#". An empty filter or topic matches nothing.
//
// MatchFilter does not allocate.
func MatchFilter(filter, topic string) bool {
	return matchFilter(filter, topic, nil)
}

// identity carries the values that replace the %u and %c placeholders.
type identity struct {
	username, clientID string
}

// matchFilter is MatchFilter with placeholder levels ("%u", "%c") replaced
// by id's values when id is not nil; with a nil id they are literal text.
// It walks both strings level by level instead of splitting them, so a check
// does not allocate.
func matchFilter(filter, topic string, id *identity) bool {
	if filter == "" || topic == "" {
		return false
	}
	dollar := topic[0] == '$'
	topicDone := false
	for first := true; ; first = false {
		fl, frest, fmore := strings.Cut(filter, "/")
		if fl == "#" {
			return !fmore && !(first && dollar)
		}
		if topicDone {
			return false
		}
		tl, trest, tmore := strings.Cut(topic, "/")
		switch {
		case fl == "+":
			if first && dollar {
				return false
			}
		case id != nil && isPlaceholder(fl):
			v := id.username
			if fl[1] == 'c' {
				v = id.clientID
			}
			if !placeholderValueOK(v, first) || v != tl {
				return false
			}
		default:
			if fl != tl {
				return false
			}
		}
		if !fmore {
			return !tmore
		}
		filter, topic, topicDone = frest, trest, !tmore
	}
}

// isPlaceholder reports whether a filter level is "%u" or "%c".
func isPlaceholder(level string) bool {
	return len(level) == 2 && level[0] == '%' && (level[1] == 'u' || level[1] == 'c')
}

// placeholderValueOK reports whether a username or client id may stand in for
// a placeholder level. The value is chosen by the client (a client id always
// is), so it must not be able to widen the rule: an empty value, a "/" (more
// levels), "+" or "#" (which equal the wildcard a client writes in a
// SUBSCRIBE filter, so "client/%c" with client id "+" would grant
// "client/+"), or a leading "$" in the first level (so "%c/#" cannot become
// "$SYS/#") makes the placeholder match nothing.
func placeholderValueOK(v string, first bool) bool {
	if v == "" || strings.ContainsAny(v, "/+#") {
		return false
	}
	return !(first && v[0] == '$')
}

// SplitShared splits an MQTT 5 shared subscription filter
// "$share/<group>/<filter>" into its share name and inner filter. For any
// other filter it returns ("", filter, false). It does not validate the
// parts: "$share//a" gives an empty group (ValidFilter rejects it).
func SplitShared(filter string) (group, inner string, shared bool) {
	rest, ok := strings.CutPrefix(filter, sharePrefix)
	if !ok {
		return "", filter, false
	}
	group, inner, ok = strings.Cut(rest, "/")
	if !ok {
		return "", filter, false
	}
	return group, inner, true
}

// ValidTopicName checks topic against the MQTT rules for the topic name of a
// PUBLISH: not empty, at most 65535 bytes, valid UTF-8 without NUL, and no
// wildcard characters.
func ValidTopicName(topic string) error {
	if err := checkMQTTString("topic name", topic); err != nil {
		return err
	}
	if i := strings.IndexAny(topic, "+#"); i >= 0 {
		return fmt.Errorf("topic name %s: wildcard %q is not allowed in a topic name", quote(topic), topic[i])
	}
	return nil
}

// ValidFilter checks filter against the MQTT rules for a subscription topic
// filter: not empty, at most 65535 bytes, valid UTF-8 without NUL, "+" only
// as a whole level, "#" only as the whole last level. Empty levels ("a//b")
// are valid. A shared subscription "$share/<group>/<filter>" needs a
// non-empty group without wildcards and a valid inner filter that is not
// itself shared.
func ValidFilter(filter string) error {
	if err := checkMQTTString("topic filter", filter); err != nil {
		return err
	}
	if group, inner, ok := SplitShared(filter); ok {
		switch {
		case group == "":
			return fmt.Errorf("topic filter %s: shared subscription has an empty share name", quote(filter))
		case strings.ContainsAny(group, "+#"):
			return fmt.Errorf("topic filter %s: share name must not contain '+' or '#'", quote(filter))
		case inner == "":
			return fmt.Errorf("topic filter %s: shared subscription has no topic filter after the share name", quote(filter))
		case strings.HasPrefix(inner, sharePrefix):
			return fmt.Errorf("topic filter %s: shared subscriptions cannot be nested", quote(filter))
		}
		if err := checkLevels(inner); err != nil {
			return fmt.Errorf("topic filter %s: %w", quote(filter), err)
		}
		return nil
	}
	if strings.HasPrefix(filter, sharePrefix) {
		return fmt.Errorf("topic filter %s: a shared subscription is $share/<name>/<filter>", quote(filter))
	}
	if err := checkLevels(filter); err != nil {
		return fmt.Errorf("topic filter %s: %w", quote(filter), err)
	}
	return nil
}

// checkLevels checks the placement of the wildcards in a filter.
func checkLevels(filter string) error {
	for {
		level, rest, more := strings.Cut(filter, "/")
		if strings.IndexByte(level, '#') >= 0 && (level != "#" || more) {
			return errors.New("'#' must be the whole last level")
		}
		if strings.IndexByte(level, '+') >= 0 && level != "+" {
			return errors.New("'+' must be a whole level")
		}
		if !more {
			return nil
		}
		filter = rest
	}
}

// checkMQTTString applies the rules MQTT has for every topic string.
func checkMQTTString(what, s string) error {
	switch {
	case s == "":
		return fmt.Errorf("%s is empty", what)
	case len(s) > maxTopicLen:
		return fmt.Errorf("%s is %d bytes long; MQTT allows at most %d", what, len(s), maxTopicLen)
	case !utf8.ValidString(s):
		return fmt.Errorf("%s %s is not valid UTF-8", what, quote(s))
	case strings.IndexByte(s, 0) >= 0:
		return fmt.Errorf("%s %s contains a NUL character", what, quote(s))
	}
	return nil
}

// quote quotes s for an error message, cut short so that a 64 KiB topic
// does not end up in a log line.
func quote(s string) string {
	const limit = 64
	if len(s) <= limit {
		return strconv.Quote(s)
	}
	n := limit
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return strconv.Quote(s[:n]) + "…"
}
