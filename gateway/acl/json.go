package acl

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
)

// MarshalJSON encodes r in the admin API form; it fails if r is not valid.
func (r Rule) MarshalJSON() ([]byte, error) {
	if err := r.validate(); err != nil {
		return nil, err
	}
	v := struct {
		Permission Permission `json:"permission"`
		Who        Who        `json:"who"`
		Access     Access     `json:"access,omitzero"`
		Topics     []Topic    `json:"topics,omitempty"`
	}{Permission: r.Permission, Who: r.Who}
	if !r.AllTopics {
		v.Access, v.Topics = r.Access, r.Topics
	}
	return json.Marshal(v)
}

// UnmarshalJSON decodes the admin API form strictly and validates the rule.
func (r *Rule) UnmarshalJSON(data []byte) error {
	var v Rule
	var hasPerm, hasWho, hasAccess, hasTopics bool
	err := decodeObject(data, "rule", func(key string, raw json.RawMessage) error {
		switch key {
		case "permission":
			hasPerm = true
			s, err := decodeString(raw, `"permission"`)
			if err != nil {
				return err
			}
			return v.Permission.UnmarshalText([]byte(s))
		case "who":
			hasWho = true
			if err := v.Who.UnmarshalJSON(raw); err != nil {
				return fmt.Errorf(`"who": %w`, err)
			}
			return nil
		case "access":
			hasAccess = true
			s, err := decodeString(raw, `"access"`)
			if err != nil {
				return err
			}
			return v.Access.UnmarshalText([]byte(s))
		case "topics":
			hasTopics = true
			ts, err := decodeTopics(raw)
			v.Topics = ts
			return err
		}
		return fmt.Errorf("unknown field %s; a rule has \"permission\", \"who\", \"access\" and \"topics\"", quote(key))
	})
	if err != nil {
		return err
	}
	switch {
	case !hasPerm:
		return errors.New(`"permission" is missing`)
	case !hasWho:
		return errors.New(`"who" is missing`)
	case hasAccess != hasTopics:
		return errors.New(`"access" and "topics" go together: give both, or neither for a rule on every access and topic`)
	case !hasAccess:
		v.Access, v.AllTopics = PubSub, true
	}
	if err := v.validate(); err != nil {
		return err
	}
	*r = v
	return nil
}

// decodeTopics decodes a JSON array of topics, each checked.
func decodeTopics(raw json.RawMessage) ([]Topic, error) {
	if len(raw) == 0 || raw[0] != '[' {
		return nil, fmt.Errorf(`"topics" must be an array, not %s`, jsonKind(raw))
	}
	var items []json.RawMessage
	if err := json.Unmarshal(raw, &items); err != nil {
		return nil, fmt.Errorf(`"topics": %w`, err)
	}
	if len(items) == 0 {
		return nil, errors.New(`"topics" is empty; omit "access" and "topics" for a rule on every topic`)
	}
	ts := make([]Topic, len(items))
	for i, item := range items {
		if err := ts[i].UnmarshalJSON(item); err != nil {
			return nil, fmt.Errorf(`"topics"[%d]: %w`, i, err)
		}
		if err := ts[i].validate(); err != nil {
			return nil, fmt.Errorf(`"topics"[%d]: %w`, i, err)
		}
	}
	return ts, nil
}

// MarshalJSON encodes w as "all" or {"user"|"clientid"|"ipaddr": "..."}.
func (w Who) MarshalJSON() ([]byte, error) {
	if err := w.validate(); err != nil {
		return nil, err
	}
	switch w.Kind {
	case WhoUser:
		return json.Marshal(map[string]string{"user": w.Name})
	case WhoClientID:
		return json.Marshal(map[string]string{"clientid": w.Name})
	case WhoIPAddr:
		return json.Marshal(map[string]string{"ipaddr": formatPrefix(w.Prefix)})
	}
	return []byte(`"all"`), nil
}

// UnmarshalJSON decodes "all" or an object with exactly one of "user",
// "clientid" or "ipaddr".
func (w *Who) UnmarshalJSON(data []byte) error {
	data = bytes.TrimSpace(data)
	const want = `"all" or an object with one of "user", "clientid" or "ipaddr"`
	if len(data) > 0 && data[0] == '"' {
		var s string
		if err := json.Unmarshal(data, &s); err != nil {
			return err
		}
		if s != "all" {
			return fmt.Errorf("must be %s, not %s", want, quote(s))
		}
		*w = All()
		return nil
	}
	if len(data) == 0 || data[0] != '{' {
		return fmt.Errorf("must be %s, not %s", want, jsonKind(data))
	}
	var v Who
	err := decodeObject(data, "who", func(key string, raw json.RawMessage) error {
		if v.Kind != 0 {
			return fmt.Errorf("has more than one of \"user\", \"clientid\" and \"ipaddr\"")
		}
		s, err := decodeString(raw, quote(key))
		switch key {
		case "user":
			v = User(s)
		case "clientid":
			v = ClientID(s)
		case "ipaddr":
			if err == nil {
				v, err = parseIPAddr(s)
			}
		default:
			return fmt.Errorf("unknown field %s; want %s", quote(key), want)
		}
		return err
	})
	if err != nil {
		return err
	}
	if v.Kind == 0 {
		return fmt.Errorf("must be %s, not an empty object", want)
	}
	if err := v.validate(); err != nil {
		return err
	}
	*w = v
	return nil
}

// MarshalJSON encodes t as its filter string, or {"eq": "topic"} when Exact.
func (t Topic) MarshalJSON() ([]byte, error) {
	if t.Exact {
		return json.Marshal(map[string]string{"eq": t.Filter})
	}
	return json.Marshal(t.Filter)
}

// UnmarshalJSON decodes a filter string or {"eq": "topic"}. It does not
// check the filter; Rule.UnmarshalJSON does.
func (t *Topic) UnmarshalJSON(data []byte) error {
	data = bytes.TrimSpace(data)
	if len(data) > 0 && data[0] == '"' {
		var s string
		if err := json.Unmarshal(data, &s); err != nil {
			return err
		}
		*t = Topic{Filter: s}
		return nil
	}
	if len(data) == 0 || data[0] != '{' {
		return fmt.Errorf(`a topic must be a filter string or {"eq": "topic"}, not %s`, jsonKind(data))
	}
	var v Topic
	seen := false
	err := decodeObject(data, "topic", func(key string, raw json.RawMessage) error {
		if key != "eq" {
			return fmt.Errorf(`unknown field %s; an exact topic is {"eq": "topic"}`, quote(key))
		}
		s, err := decodeString(raw, `"eq"`)
		v, seen = Topic{Filter: s, Exact: true}, true
		return err
	})
	if err != nil {
		return err
	}
	if !seen {
		return errors.New(`an exact topic is {"eq": "topic"}, not an empty object`)
	}
	*t = v
	return nil
}

// MarshalJSON encodes rs as a JSON array ("[]" when empty); it fails if a
// rule is not valid.
func (rs Rules) MarshalJSON() ([]byte, error) {
	if err := rs.Validate(); err != nil {
		return nil, err
	}
	if rs == nil {
		return []byte("[]"), nil
	}
	return json.Marshal([]Rule(rs))
}

// UnmarshalJSON decodes a JSON array of rules (null or [] is no rules);
// errors are *RuleError naming the rule's index.
func (rs *Rules) UnmarshalJSON(data []byte) error {
	data = bytes.TrimSpace(data)
	if bytes.Equal(data, []byte("null")) {
		*rs = nil
		return nil
	}
	if len(data) == 0 || data[0] != '[' {
		return fmt.Errorf("rules must be a JSON array, not %s", jsonKind(data))
	}
	var items []json.RawMessage
	if err := json.Unmarshal(data, &items); err != nil {
		return err
	}
	var out Rules
	if len(items) > 0 {
		out = make(Rules, len(items))
	}
	for i, item := range items {
		if err := out[i].UnmarshalJSON(item); err != nil {
			return &RuleError{Index: i, Err: err}
		}
	}
	*rs = out
	return nil
}

// decodeObject walks the members of a JSON object in order, rejecting
// duplicate keys (which encoding/json would silently let the last one win)
// and anything after the object. Keys are matched exactly, not
// case-insensitively as encoding/json does for structs.
func decodeObject(data []byte, what string, field func(key string, raw json.RawMessage) error) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	tok, err := dec.Token()
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		return fmt.Errorf("%s must be a JSON object, not %s", what, jsonKind(bytes.TrimSpace(data)))
	}
	seen := make(map[string]bool, 4)
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
		key, _ := tok.(string)
		if seen[key] {
			return fmt.Errorf("duplicate field %s", quote(key))
		}
		seen[key] = true
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
		if err := field(key, bytes.TrimSpace(raw)); err != nil {
			return err
		}
	}
	if _, err := dec.Token(); err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return fmt.Errorf("%s: unexpected data after the object", what)
	}
	return nil
}

// decodeString decodes a JSON string, and nothing else (not null).
func decodeString(raw json.RawMessage, what string) (string, error) {
	if len(raw) == 0 || raw[0] != '"' {
		return "", fmt.Errorf("%s must be a string, not %s", what, jsonKind(raw))
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return "", fmt.Errorf("%s: %w", what, err)
	}
	return s, nil
}

// jsonKind names the type of a JSON value from its first byte.
func jsonKind(raw []byte) string {
	if len(raw) == 0 {
		return "nothing"
	}
	switch c := raw[0]; {
	case c == '{':
		return "an object"
	case c == '[':
		return "an array"
	case c == '"':
		return "a string"
	case c == 't' || c == 'f':
		return "a boolean"
	case c == 'n':
		return "null"
	case c == '-' || c >= '0' && c <= '9':
		return "a number"
	}
	return "invalid JSON"
}
