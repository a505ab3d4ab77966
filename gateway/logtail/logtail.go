// Package logtail keeps the process's most recent log lines for the web
// UI: a slog.Handler that passes every record on to the real handler and
// also keeps it, formatted as one line, in a fixed-size ring, and offers
// each new line to subscribers (a page showing the log live).
//
// The logger never carries secrets (see DESIGN.md), so neither does the
// tail: it holds exactly what the journal gets.
package logtail

import (
	"context"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode"
	"unicode/utf8"
)

// DefaultSize is how many lines a Tail made by New(0) keeps.
const DefaultSize = 200

// Line is one log record as the tail keeps it.
type Line struct {
	Time    time.Time
	Level   slog.Level
	Message string
	// Attrs are the record's attributes, those of the logger's With
	// included, as key=value pairs (keys qualified by their groups).
	Attrs string
}

// Text is the line without its time: "INFO message key=value ...".
func (l Line) Text() string {
	if l.Attrs == "" {
		return l.Level.String() + " " + l.Message
	}
	return l.Level.String() + " " + l.Message + " " + l.Attrs
}

// Tail is the ring of recent lines. It is safe for concurrent use.
type Tail struct {
	mu   sync.Mutex
	ring []Line
	next int // where the next line goes
	full bool
	subs map[*subscriber]struct{}
}

type subscriber struct{ ch chan Line }

// New returns a Tail keeping the last size lines (DefaultSize if size ≤ 0).
func New(size int) *Tail {
	if size <= 0 {
		size = DefaultSize
	}
	return &Tail{ring: make([]Line, size), subs: map[*subscriber]struct{}{}}
}

// Lines returns the kept lines, oldest first.
func (t *Tail) Lines() []Line {
	t.mu.Lock()
	defer t.mu.Unlock()
	if !t.full {
		return append([]Line(nil), t.ring[:t.next]...)
	}
	out := make([]Line, 0, len(t.ring))
	out = append(out, t.ring[t.next:]...)
	return append(out, t.ring[:t.next]...)
}

// Subscribe returns a channel that receives each new line, buffered for
// buffer lines. A line that finds the buffer full is dropped for this
// subscriber: logging never waits for a reader. cancel stops the
// subscription and closes the channel.
func (t *Tail) Subscribe(buffer int) (lines <-chan Line, cancel func()) {
	s := &subscriber{ch: make(chan Line, buffer)}
	t.mu.Lock()
	t.subs[s] = struct{}{}
	t.mu.Unlock()
	var once sync.Once
	return s.ch, func() {
		once.Do(func() {
			t.mu.Lock()
			defer t.mu.Unlock()
			delete(t.subs, s)
			close(s.ch)
		})
	}
}

func (t *Tail) add(l Line) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.ring[t.next] = l
	t.next++
	if t.next == len(t.ring) {
		t.next, t.full = 0, true
	}
	for s := range t.subs {
		select {
		case s.ch <- l:
		default:
		}
	}
}

// Handler returns a handler that passes records to next and keeps them in
// the tail. It logs what next logs: Enabled is next's.
func (t *Tail) Handler(next slog.Handler) slog.Handler {
	return &handler{tail: t, next: next}
}

type handler struct {
	tail   *Tail
	next   slog.Handler
	group  string // the open groups as a key prefix, "a.b."
	preset string // the With attributes, formatted
}

func (h *handler) Enabled(ctx context.Context, l slog.Level) bool { return h.next.Enabled(ctx, l) }

func (h *handler) Handle(ctx context.Context, r slog.Record) error {
	var b strings.Builder
	b.WriteString(h.preset)
	r.Attrs(func(a slog.Attr) bool {
		appendAttr(&b, h.group, a)
		return true
	})
	h.tail.add(Line{Time: r.Time, Level: r.Level, Message: r.Message, Attrs: strings.TrimPrefix(b.String(), " ")})
	return h.next.Handle(ctx, r)
}

func (h *handler) WithAttrs(as []slog.Attr) slog.Handler {
	if len(as) == 0 {
		return h
	}
	var b strings.Builder
	b.WriteString(h.preset)
	for _, a := range as {
		appendAttr(&b, h.group, a)
	}
	return &handler{tail: h.tail, next: h.next.WithAttrs(as), group: h.group, preset: b.String()}
}

func (h *handler) WithGroup(name string) slog.Handler {
	if name == "" {
		return h
	}
	return &handler{tail: h.tail, next: h.next.WithGroup(name), group: h.group + name + ".", preset: h.preset}
}

// appendAttr writes " key=value" as slog's text handler would: groups
// flattened into dotted keys, empty attributes left out, values quoted
// when they need it.
func appendAttr(b *strings.Builder, prefix string, a slog.Attr) {
	a.Value = a.Value.Resolve()
	if a.Equal(slog.Attr{}) {
		return
	}
	if a.Value.Kind() == slog.KindGroup {
		if a.Key != "" {
			prefix += a.Key + "."
		}
		for _, g := range a.Value.Group() {
			appendAttr(b, prefix, g)
		}
		return
	}
	b.WriteByte(' ')
	b.WriteString(quoteIfNeeded(prefix + a.Key))
	b.WriteByte('=')
	var v string
	switch a.Value.Kind() {
	case slog.KindTime:
		v = a.Value.Time().Format(time.RFC3339Nano)
	default:
		v = a.Value.String()
	}
	b.WriteString(quoteIfNeeded(v))
}

func quoteIfNeeded(s string) string {
	if s == "" {
		return `""`
	}
	for _, r := range s {
		if r == '=' || r == '"' || r == utf8.RuneError || unicode.IsSpace(r) || !unicode.IsPrint(r) {
			return strconv.Quote(s)
		}
	}
	return s
}
