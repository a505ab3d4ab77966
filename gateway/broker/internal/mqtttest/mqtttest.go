// Package mqtttest is what the tests of the broker packages share: a mochi
// server set up as the broker sets it up, an allow-all auth hook, a TCP
// listener on 127.0.0.1:0, a raw MQTT client over mochi's packet codec and
// deadline-bounded waits.
//
// It is an ordinary package so that tests in several packages can import
// it, but only _test.go files do: the edgegate binary never links it.
package mqtttest

import (
	"bytes"
	"log/slog"
	"math"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/listeners"
	"github.com/mochi-mqtt/server/v2/packets"
)

// WaitLimit bounds every wait of this package (and of the tests built on
// it, unless they choose a shorter one); nothing in a passing test comes
// close.
const WaitLimit = 10 * time.Second

// NewServer returns a mochi server configured as the broker configures it
// for tests: the inline client on, mochi's own $SYS timer pushed out of the
// way, logs discarded, and an AllowAll hook added first. Each opt then edits
// the options before the server is made. The server is closed when the test
// ends unless the test closed it itself (mochi's Close must not run twice).
func NewServer(t testing.TB, opts ...func(*mqtt.Options)) *mqtt.Server {
	t.Helper()
	o := &mqtt.Options{
		InlineClient:           true,
		Logger:                 slog.New(slog.DiscardHandler),
		SysTopicResendInterval: math.MaxInt32,
	}
	for _, opt := range opts {
		opt(o)
	}
	srv := mqtt.New(o)
	stopped := new(stopWatch)
	t.Cleanup(func() {
		if !stopped.done.Load() {
			_ = srv.Close()
		}
	})
	for _, h := range []mqtt.Hook{stopped, new(AllowAll)} {
		if err := srv.AddHook(h, nil); err != nil {
			t.Fatal(err)
		}
	}
	return srv
}

// stopWatch records that its server has been closed.
type stopWatch struct {
	mqtt.HookBase
	done atomic.Bool
}

func (*stopWatch) ID() string { return "mqtttest-stop-watch" }

func (*stopWatch) Provides(b byte) bool { return b == mqtt.OnStopped }

func (w *stopWatch) OnStopped() { w.done.Store(true) }

// AllowAll is a hook that lets every client connect, publish and subscribe:
// without a hook providing OnConnectAuthenticate mochi refuses every
// CONNECT, and the broker's own auth and ACL hooks are tested elsewhere
// (mochi's hooks/auth would pull in yaml).
type AllowAll struct{ mqtt.HookBase }

// ID implements mqtt.Hook.
func (*AllowAll) ID() string { return "test-allow-all" }

// Provides implements mqtt.Hook.
func (*AllowAll) Provides(b byte) bool {
	return b == mqtt.OnConnectAuthenticate || b == mqtt.OnACLCheck
}

// OnConnectAuthenticate accepts every client.
func (*AllowAll) OnConnectAuthenticate(*mqtt.Client, packets.Packet) bool { return true }

// OnACLCheck allows every topic, both ways.
func (*AllowAll) OnACLCheck(*mqtt.Client, string, bool) bool { return true }

// ServeTCP adds a TCP listener on 127.0.0.1:0, starts the server and
// returns the bound address (mochi's TCP Address() is the bound address
// once Init, run by AddListener, has listened).
func ServeTCP(t testing.TB, srv *mqtt.Server) string {
	t.Helper()
	l := listeners.NewTCP(listeners.Config{ID: "tcp", Address: "127.0.0.1:0"})
	if err := srv.AddListener(l); err != nil {
		t.Fatal(err)
	}
	if err := srv.Serve(); err != nil {
		t.Fatal(err)
	}
	return l.Address()
}

// Logger returns a logger that forwards warnings and errors to t.Log until
// the test ends; mochi goroutines may still log after that.
func Logger(t testing.TB) *slog.Logger {
	w := &testLogWriter{t: t}
	t.Cleanup(func() { w.mu.Lock(); w.done = true; w.mu.Unlock() })
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

type testLogWriter struct {
	mu   sync.Mutex
	t    testing.TB
	done bool
}

func (w *testLogWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.done {
		w.t.Log(string(bytes.TrimRight(p, "\n")))
	}
	return len(p), nil
}

// Signal lets a test wait, without sleeping, for a condition that other
// goroutines (hooks, mostly) make true: they call Notify after each change
// and the test calls Wait.
type Signal chan struct{}

// NewSignal returns a Signal.
func NewSignal() Signal { return make(Signal, 1) }

// Notify wakes a waiting Wait; it never blocks.
func (s Signal) Notify() {
	select {
	case s <- struct{}{}:
	default:
	}
}

// Wait calls cond now and after each Notify until it returns true, and
// reports false if WaitLimit passes first.
func (s Signal) Wait(cond func() bool) bool {
	deadline := time.After(WaitLimit)
	for !cond() {
		select {
		case <-s:
		case <-deadline:
			return false
		}
	}
	return true
}
