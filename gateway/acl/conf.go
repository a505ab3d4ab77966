package acl

import (
	"fmt"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// ParseError is returned by ParseConf; Line and Column (both from 1, the
// column counted in characters) locate the problem in the text.
type ParseError struct {
	Line, Column int
	Err          error
}

func (e *ParseError) Error() string { return fmt.Sprintf("%d:%d: %v", e.Line, e.Column, e.Err) }

func (e *ParseError) Unwrap() error { return e.Err }

// ParseConf parses EMQ acl.conf text: a sequence of Erlang terms, each ended
// by ".", with free-form whitespace and "%" comments to the end of the line:
//
//	%% Allow 'dashboard' to subscribe '$SYS/#'
//	{allow, {user, "dashboard"}, subscribe, ["$SYS/#"]}.
//	{deny, all, subscribe, ["$SYS/#", {eq, "#"}]}.
//	{allow, all}.
//
// A term is {Permission, Who, Access, [Topic, ...]} or the short form
// {Permission, Who} for every access on every topic (Rule.AllTopics). Strings
// are UTF-8 and take Erlang's escapes (\" \\ \n \t \xHH \x{H...} \NNN ...).
// Every parsed rule is valid (see Rules.Validate). Errors are *ParseError and
// say what was expected.
func ParseConf(src string) (Rules, error) {
	p := parser{lex: lexer{src: src, line: 1, col: 1}}
	var rs Rules
	for {
		tok, err := p.lex.next()
		if err != nil {
			return nil, err
		}
		if tok.kind == tokEOF {
			return rs, nil
		}
		r, err := p.rule(tok)
		if err != nil {
			return nil, err
		}
		rs = append(rs, r)
	}
}

// FormatConf writes rs as acl.conf text, one term per line. For rules that
// pass Validate, ParseConf(rs.FormatConf()) returns rs again.
func (rs Rules) FormatConf() string {
	var b strings.Builder
	for _, r := range rs {
		b.WriteString(r.String())
		b.WriteString(".\n")
	}
	return b.String()
}

// confString quotes s as an Erlang string that lexString reads back as s.
func confString(s string) string {
	var b strings.Builder
	b.Grow(len(s) + 2)
	b.WriteByte('"')
	for _, r := range s {
		switch {
		case r == '"' || r == '\\':
			b.WriteByte('\\')
			b.WriteRune(r)
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\t':
			b.WriteString(`\t`)
		case r == utf8.RuneError || !unicode.IsPrint(r):
			// Also covers invalid UTF-8, which ranging turns into U+FFFD: such
			// a string fails Validate and cannot round-trip anyway.
			fmt.Fprintf(&b, `\x{%X}`, r)
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte('"')
	return b.String()
}

type tokKind uint8

const (
	tokEOF tokKind = iota
	tokLBrace
	tokRBrace
	tokLBracket
	tokRBracket
	tokComma
	tokDot
	tokAtom
	tokString
)

type token struct {
	kind      tokKind
	text      string // the atom's name or the string's value
	line, col int
}

// String describes tok for an error message.
func (t token) String() string {
	switch t.kind {
	case tokEOF:
		return "end of input"
	case tokAtom:
		return "atom " + t.text
	case tokString:
		return "string " + quote(t.text)
	}
	return "'" + string("\x00{}[],."[t.kind]) + "'"
}

// lexer splits acl.conf text into tokens, tracking line and column.
type lexer struct {
	src       string
	off       int
	line, col int // of src[off]
}

// peekRune returns the rune at the read position and its size; size 0 at
// the end of the input.
func (l *lexer) peekRune() (rune, int) {
	if l.off >= len(l.src) {
		return 0, 0
	}
	return utf8.DecodeRuneInString(l.src[l.off:])
}

// advance moves past a rune of the given size.
func (l *lexer) advance(r rune, size int) {
	l.off += size
	if r == '\n' {
		l.line++
		l.col = 1
	} else {
		l.col++
	}
}

func (l *lexer) errorf(line, col int, format string, args ...any) error {
	return &ParseError{Line: line, Column: col, Err: fmt.Errorf(format, args...)}
}

// next returns the next token.
func (l *lexer) next() (token, error) {
	for {
		r, size := l.peekRune()
		if size == 0 {
			return token{kind: tokEOF, line: l.line, col: l.col}, nil
		}
		if r == utf8.RuneError && size == 1 {
			return token{}, l.errorf(l.line, l.col, "invalid UTF-8")
		}
		tok := token{line: l.line, col: l.col}
		switch {
		case r == ' ' || r == '\t' || r == '\n' || r == '\r' || r == '\f' || r == '\v':
			l.advance(r, size)
			continue
		case r == '%':
			for size > 0 && r != '\n' {
				l.advance(r, size)
				r, size = l.peekRune()
			}
			continue
		case r == '{':
			tok.kind = tokLBrace
		case r == '}':
			tok.kind = tokRBrace
		case r == '[':
			tok.kind = tokLBracket
		case r == ']':
			tok.kind = tokRBracket
		case r == ',':
			tok.kind = tokComma
		case r == '.':
			tok.kind = tokDot
		case r == '"':
			l.advance(r, size)
			s, err := l.lexString(tok.line, tok.col)
			if err != nil {
				return token{}, err
			}
			tok.kind, tok.text = tokString, s
			return tok, nil
		case r >= 'a' && r <= 'z':
			start := l.off
			for isAtomRune(r) {
				l.advance(r, size)
				r, size = l.peekRune()
			}
			tok.kind, tok.text = tokAtom, l.src[start:l.off]
			return tok, nil
		default:
			return token{}, l.errorf(l.line, l.col, "unexpected character %q", r)
		}
		l.advance(r, size)
		return tok, nil
	}
}

func isAtomRune(r rune) bool {
	return r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == '@'
}

// lexString reads a string after its opening quote, which is at line:col.
func (l *lexer) lexString(line, col int) (string, error) {
	var b strings.Builder
	for {
		r, size := l.peekRune()
		switch {
		case size == 0:
			return "", l.errorf(line, col, "string not terminated: expected '\"'")
		case r == utf8.RuneError && size == 1:
			return "", l.errorf(l.line, l.col, "invalid UTF-8")
		}
		l.advance(r, size)
		switch r {
		case '"':
			return b.String(), nil
		case '\\':
			if err := l.lexEscape(&b); err != nil {
				return "", err
			}
		default:
			b.WriteRune(r)
		}
	}
}

// simpleEscapes are Erlang's one-letter escapes.
var simpleEscapes = map[rune]rune{
	'b': '\b', 'd': 0x7f, 'e': 0x1b, 'f': '\f', 'n': '\n', 'r': '\r', 's': ' ', 't': '\t', 'v': '\v',
	'"': '"', '\'': '\'', '\\': '\\',
}

// lexEscape reads an escape sequence after its backslash.
func (l *lexer) lexEscape(b *strings.Builder) error {
	line, col := l.line, l.col-1
	r, size := l.peekRune()
	if size == 0 {
		return l.errorf(line, col, "string not terminated: expected an escape after '\\'")
	}
	l.advance(r, size)
	if e, ok := simpleEscapes[r]; ok {
		b.WriteRune(e)
		return nil
	}
	var digits string
	base := 16
	switch {
	case r >= '0' && r <= '7': // \N, \NN or \NNN octal
		base = 8
		start := l.off - 1
		for n := 1; n < 3; n++ {
			d, _ := l.peekRune()
			if d < '0' || d > '7' {
				break
			}
			l.advance(d, 1)
		}
		digits = l.src[start:l.off]
	case r == 'x':
		if c, _ := l.peekRune(); c == '{' {
			l.advance(c, 1)
			start := l.off
			for {
				c, size := l.peekRune()
				if size == 0 || c == '"' {
					return l.errorf(line, col, "escape \\x{...} not terminated: expected '}'")
				}
				l.advance(c, size)
				if c == '}' {
					break
				}
			}
			digits = l.src[start : l.off-1]
		} else {
			start := l.off
			for n := 0; n < 2; n++ {
				c, size := l.peekRune()
				if !isHex(c) {
					return l.errorf(line, col, "escape \\x: expected two hex digits or {hex digits}")
				}
				l.advance(c, size)
			}
			digits = l.src[start:l.off]
		}
	default:
		return l.errorf(line, col, "unknown escape \\%c", r)
	}
	if digits == "" || len(digits) > 8 || strings.IndexFunc(digits, func(c rune) bool { return !isHex(c) }) >= 0 {
		return l.errorf(line, col, "escape: %q is not a hexadecimal number", digits)
	}
	n, err := strconv.ParseUint(digits, base, 32)
	if err != nil || n > unicode.MaxRune || !utf8.ValidRune(rune(n)) { //nolint:gosec // n ≤ MaxRune is checked first
		return l.errorf(line, col, "escape: %s is not a Unicode code point", digits)
	}
	b.WriteRune(rune(n)) //nolint:gosec // bounded by the check above
	return nil
}

func isHex(c rune) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F'
}

// parser builds rules from tokens.
type parser struct {
	lex lexer
}

func (p *parser) errorf(tok token, format string, args ...any) error {
	return &ParseError{Line: tok.line, Column: tok.col, Err: fmt.Errorf(format, args...)}
}

// want reads the next token and fails unless it has the given kind.
func (p *parser) want(kind tokKind, what string) (token, error) {
	tok, err := p.lex.next()
	if err != nil {
		return tok, err
	}
	if tok.kind != kind {
		return tok, p.errorf(tok, "expected %s, found %v", what, tok)
	}
	return tok, nil
}

// rule parses one term; start is its first token.
func (p *parser) rule(start token) (Rule, error) {
	if start.kind != tokLBrace {
		return Rule{}, p.errorf(start, "expected '{' to start a rule, found %v", start)
	}
	var r Rule
	tok, err := p.lex.next()
	if err != nil {
		return r, err
	}
	if tok.kind != tokAtom || r.Permission.UnmarshalText([]byte(tok.text)) != nil {
		return r, p.errorf(tok, "expected allow or deny, found %v", tok)
	}
	if _, err := p.want(tokComma, "',' after "+r.Permission.String()); err != nil {
		return r, err
	}
	if r.Who, err = p.who(); err != nil {
		return r, err
	}
	if tok, err = p.lex.next(); err != nil {
		return r, err
	}
	switch tok.kind {
	case tokRBrace:
		r.Access, r.AllTopics = PubSub, true
	case tokComma:
		if tok, err = p.lex.next(); err != nil {
			return r, err
		}
		if tok.kind != tokAtom || r.Access.UnmarshalText([]byte(tok.text)) != nil {
			return r, p.errorf(tok, "expected publish, subscribe or pubsub, found %v", tok)
		}
		if _, err := p.want(tokComma, "',' and a topic list after "+r.Access.String()); err != nil {
			return r, err
		}
		if r.Topics, err = p.topics(); err != nil {
			return r, err
		}
		if _, err := p.want(tokRBrace, "'}' to end the rule"); err != nil {
			return r, err
		}
	default:
		return r, p.errorf(tok, "expected ',' and an access, or '}' after the who, found %v", tok)
	}
	if _, err := p.want(tokDot, "'.' after the rule"); err != nil {
		return r, err
	}
	if err := r.validate(); err != nil {
		// The parts were checked where they were read; this is a backstop.
		return r, p.errorf(start, "%v", err)
	}
	return r, nil
}

// who parses all or {user|clientid|ipaddr, "..."}.
func (p *parser) who() (Who, error) {
	const want = "all, {user, \"...\"}, {clientid, \"...\"} or {ipaddr, \"...\"}"
	tok, err := p.lex.next()
	if err != nil {
		return Who{}, err
	}
	if tok.kind == tokAtom && tok.text == "all" {
		return All(), nil
	}
	if tok.kind != tokLBrace {
		return Who{}, p.errorf(tok, "expected %s, found %v", want, tok)
	}
	kind, err := p.lex.next()
	if err != nil {
		return Who{}, err
	}
	if kind.kind != tokAtom || (kind.text != "user" && kind.text != "clientid" && kind.text != "ipaddr") {
		return Who{}, p.errorf(kind, "expected user, clientid or ipaddr, found %v", kind)
	}
	if _, err := p.want(tokComma, "',' after "+kind.text); err != nil {
		return Who{}, err
	}
	val, err := p.want(tokString, "a string after "+kind.text+",")
	if err != nil {
		return Who{}, err
	}
	var w Who
	switch kind.text {
	case "user":
		w = User(val.text)
	case "clientid":
		w = ClientID(val.text)
	default:
		if w, err = parseIPAddr(val.text); err != nil {
			return Who{}, p.errorf(val, "%v", err)
		}
	}
	if err := w.validate(); err != nil {
		return Who{}, p.errorf(val, "%v", err)
	}
	if _, err := p.want(tokRBrace, "'}' after the "+kind.text+" string"); err != nil {
		return Who{}, err
	}
	return w, nil
}

// topics parses a non-empty list of topics.
func (p *parser) topics() ([]Topic, error) {
	open, err := p.want(tokLBracket, "'[' to start the topic list")
	if err != nil {
		return nil, err
	}
	var ts []Topic
	for {
		tok, err := p.lex.next()
		if err != nil {
			return nil, err
		}
		if tok.kind == tokRBracket && len(ts) == 0 {
			return nil, p.errorf(open, "topic list is empty")
		}
		t, err := p.topic(tok)
		if err != nil {
			return nil, err
		}
		ts = append(ts, t)
		if tok, err = p.lex.next(); err != nil {
			return nil, err
		}
		switch tok.kind {
		case tokComma:
		case tokRBracket:
			return ts, nil
		default:
			return nil, p.errorf(tok, "expected ',' or ']' in the topic list, found %v", tok)
		}
	}
}

// topic parses "filter" or {eq, "topic"}; tok is its first token.
func (p *parser) topic(tok token) (Topic, error) {
	var t Topic
	switch tok.kind {
	case tokString:
		t.Filter = tok.text
	case tokLBrace:
		eq, err := p.lex.next()
		if err != nil {
			return t, err
		}
		if eq.kind != tokAtom || eq.text != "eq" {
			return t, p.errorf(eq, "expected eq, found %v", eq)
		}
		if _, err := p.want(tokComma, "',' after eq"); err != nil {
			return t, err
		}
		if tok, err = p.want(tokString, "a topic string after eq,"); err != nil {
			return t, err
		}
		t = Topic{Filter: tok.text, Exact: true}
		if _, err := p.want(tokRBrace, "'}' after the eq topic"); err != nil {
			return t, err
		}
	default:
		return t, p.errorf(tok, "expected a topic filter string or {eq, \"topic\"}, found %v", tok)
	}
	if err := t.validate(); err != nil {
		return t, p.errorf(tok, "%v", err)
	}
	return t, nil
}
