package logtail

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
)

func newLogger(t *Tail, level slog.Leveler) (*slog.Logger, *bytes.Buffer) {
	var out bytes.Buffer
	return slog.New(t.Handler(slog.NewTextHandler(&out, &slog.HandlerOptions{Level: level}))), &out
}

func TestHandlerTeesAndFormats(t *testing.T) {
	tail := New(10)
	log, out := newLogger(tail, slog.LevelInfo)
	log.Debug("hidden")
	log.With("component", "ca").WithGroup("req").Info("issued cert", "name", "my sensor", "n", 3,
		slog.Group("peer", "ip", "10.0.0.1"), "err", errors.New(`bad "x"`), "empty", "")
	log.Warn("plain")

	lines := tail.Lines()
	if len(lines) != 2 {
		t.Fatalf("kept %d lines, want 2 (debug is below the level): %+v", len(lines), lines)
	}
	got := lines[0]
	if got.Level != slog.LevelInfo || got.Message != "issued cert" || got.Time.IsZero() {
		t.Errorf("line = %+v", got)
	}
	want := `component=ca req.name="my sensor" req.n=3 req.peer.ip=10.0.0.1 req.err="bad \"x\"" req.empty=""`
	if got.Attrs != want {
		t.Errorf("attrs:\n got %s\nwant %s", got.Attrs, want)
	}
	if txt := lines[1].Text(); txt != "WARN plain" {
		t.Errorf("Text() = %q", txt)
	}
	// The real handler got the same records.
	if s := out.String(); !strings.Contains(s, "msg=\"issued cert\"") || !strings.Contains(s, "msg=plain") || strings.Contains(s, "hidden") {
		t.Errorf("next handler output:\n%s", s)
	}
}

func TestRingKeepsTheLastLines(t *testing.T) {
	tail := New(3)
	log, _ := newLogger(tail, slog.LevelInfo)
	for i := range 5 {
		log.Info(fmt.Sprint("line ", i))
	}
	var got []string
	for _, l := range tail.Lines() {
		got = append(got, l.Message)
	}
	if strings.Join(got, ",") != "line 2,line 3,line 4" {
		t.Errorf("lines = %v", got)
	}
	if n := len(New(0).ring); n != DefaultSize {
		t.Errorf("New(0) keeps %d lines, want %d", n, DefaultSize)
	}
}

func TestSubscribe(t *testing.T) {
	tail := New(10)
	log, _ := newLogger(tail, slog.LevelInfo)
	lines, cancel := tail.Subscribe(2)
	log.Info("one")
	log.Info("two")
	log.Info("three") // the buffer is full: dropped, logging goes on
	for _, want := range []string{"one", "two"} {
		select {
		case l := <-lines:
			if l.Message != want {
				t.Errorf("got %q, want %q", l.Message, want)
			}
		default: // lines are offered synchronously, while logging
			t.Fatalf("no line %q", want)
		}
	}
	cancel()
	cancel() // twice is fine
	if _, open := <-lines; open {
		t.Error("channel still open after cancel")
	}
	log.Info("after") // no send on the closed channel
	if n := len(tail.Lines()); n != 4 {
		t.Errorf("kept %d lines, want 4", n)
	}
}
