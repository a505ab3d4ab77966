package systemd

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// guard bounds every blocking wait so that a broken test fails instead of
// hanging; nothing here sleeps or asserts on timing.
const guard = 10 * time.Second

// listenNotify stands in for systemd: it binds a unixgram socket in a temp dir
// and points NOTIFY_SOCKET at it.
func listenNotify(t *testing.T) *net.UnixConn {
	t.Helper()
	path := filepath.Join(t.TempDir(), "notify.sock")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatalf("listen %s: %v", path, err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	t.Setenv("NOTIFY_SOCKET", path)
	return conn
}

func readDatagram(t *testing.T, conn *net.UnixConn) string {
	t.Helper()
	if err := conn.SetReadDeadline(time.Now().Add(guard)); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 4096)
	n, err := conn.Read(buf)
	if err != nil {
		t.Fatalf("read notify datagram: %v", err)
	}
	return string(buf[:n])
}

func waitDone(t *testing.T, done <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-done:
	case <-time.After(guard):
		t.Fatalf("%s did not return", what)
	}
}

func TestNotifierSendsState(t *testing.T) {
	tests := []struct {
		name string
		call func(*Notifier) error
		want string
	}{
		{"ready", (*Notifier).Ready, "READY=1"},
		{"stopping", (*Notifier).Stopping, "STOPPING=1"},
		{"status", func(n *Notifier) error { return n.Status("serving 3 listeners") }, "STATUS=serving 3 listeners"},
		{"status empty", func(n *Notifier) error { return n.Status("") }, "STATUS="},
		{
			"status cannot inject assignments",
			func(n *Notifier) error { return n.Status("failed: boom\nREADY=1\r\nX") },
			"STATUS=failed: boom READY=1 X",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			conn := listenNotify(t)
			n := NewNotifier(nil)
			if err := tt.call(n); err != nil {
				t.Fatalf("notify: %v", err)
			}
			if got := readDatagram(t, conn); got != tt.want {
				t.Errorf("datagram = %q, want %q", got, tt.want)
			}
			// The socket must stay in the environment for later messages.
			if os.Getenv("NOTIFY_SOCKET") == "" {
				t.Error("NOTIFY_SOCKET was unset")
			}
		})
	}
}

func TestNotifierSequence(t *testing.T) {
	conn := listenNotify(t)
	n := NewNotifier(slog.New(slog.DiscardHandler))
	steps := []struct {
		call func() error
		want string
	}{
		{func() error { return n.Status("starting") }, "STATUS=starting"},
		{n.Ready, "READY=1"},
		{n.Stopping, "STOPPING=1"},
	}
	for _, s := range steps {
		if err := s.call(); err != nil {
			t.Fatalf("%s: %v", s.want, err)
		}
		if got := readDatagram(t, conn); got != s.want {
			t.Fatalf("datagram = %q, want %q", got, s.want)
		}
	}
}

func TestNotifierNoopOutsideSystemd(t *testing.T) {
	t.Setenv("NOTIFY_SOCKET", "")
	t.Setenv("WATCHDOG_USEC", "")
	t.Setenv("WATCHDOG_PID", "")
	n := NewNotifier(nil)
	for name, call := range map[string]func() error{
		"Ready":    n.Ready,
		"Status":   func() error { return n.Status("x") },
		"Stopping": n.Stopping,
	} {
		if err := call(); err != nil {
			t.Errorf("%s without NOTIFY_SOCKET: %v", name, err)
		}
	}

	done := make(chan struct{})
	go func() {
		defer close(done)
		n.RunWatchdog(context.Background()) // must return at once: no watchdog configured
	}()
	waitDone(t, done, "RunWatchdog without WATCHDOG_USEC")
}

func TestNotifierReportsUnreachableSocket(t *testing.T) {
	t.Setenv("NOTIFY_SOCKET", filepath.Join(t.TempDir(), "absent.sock"))
	err := NewNotifier(nil).Ready()
	if err == nil {
		t.Fatal("Ready with a missing notify socket: want error, got nil")
	}
	if !strings.Contains(err.Error(), "READY=1") {
		t.Errorf("error %q does not name the state", err)
	}
	var opErr *net.OpError
	if !errors.As(err, &opErr) {
		t.Errorf("error %v does not wrap the dial error", err)
	}
}

func TestRunWatchdogSendsKeepAlives(t *testing.T) {
	conn := listenNotify(t)
	t.Setenv("WATCHDOG_USEC", "20000") // 20ms: keep-alive every 10ms
	t.Setenv("WATCHDOG_PID", strconv.Itoa(os.Getpid()))

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan struct{})
	go func() {
		defer close(done)
		NewNotifier(nil).RunWatchdog(ctx)
	}()

	for i := range 2 {
		if got := readDatagram(t, conn); got != "WATCHDOG=1" {
			t.Fatalf("datagram %d = %q, want WATCHDOG=1", i, got)
		}
	}
	cancel()
	waitDone(t, done, "RunWatchdog after cancel")

	// The watchdog environment is left for the process to read again.
	if os.Getenv("WATCHDOG_USEC") == "" || os.Getenv("NOTIFY_SOCKET") == "" {
		t.Error("watchdog environment was unset")
	}
}

func TestRunWatchdogReturnsWhenNotForThisProcess(t *testing.T) {
	tests := []struct {
		name    string
		usec    string
		pid     string
		wantLog string
	}{
		{"other pid", "20000", strconv.Itoa(os.Getpid() + 1), ""},
		{"bad interval", "soon", "", "watchdog disabled"},
		{"zero interval", "0", "", "watchdog disabled"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			listenNotify(t)
			t.Setenv("WATCHDOG_USEC", tt.usec)
			t.Setenv("WATCHDOG_PID", tt.pid)
			var logs bytes.Buffer
			n := NewNotifier(slog.New(slog.NewTextHandler(&logs, nil)))

			done := make(chan struct{})
			go func() {
				defer close(done)
				n.RunWatchdog(context.Background())
			}()
			waitDone(t, done, "RunWatchdog")
			if tt.wantLog != "" && !strings.Contains(logs.String(), tt.wantLog) {
				t.Errorf("log %q does not contain %q", logs.String(), tt.wantLog)
			}
		})
	}
}
