package e2e

import (
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestSdNotify proves the systemd notification protocol without systemd:
// with NOTIFY_SOCKET pointing to a unixgram socket the test listens on,
// the daemon sends READY=1 (by then every listener accepts MQTT) and a
// STATUS= line, and on SIGTERM sends STOPPING=1 and exits 0 within 5 s.
func TestSdNotify(t *testing.T) {
	t.Parallel()
	ctx := testContext(t, 60*time.Second)
	sock := filepath.Join(t.TempDir(), "notify.sock")
	ln, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sock, Net: "unixgram"})
	if err != nil {
		t.Fatalf("listen on %s: %v", sock, err)
	}
	t.Cleanup(func() { _ = ln.Close() })
	got := newWatchBuffer()
	closed := make(chan struct{})
	go func() {
		defer close(closed)
		buf := make([]byte, 4096)
		for {
			n, _, err := ln.ReadFromUnix(buf)
			if err != nil {
				return
			}
			_, _ = got.Write(append(buf[:n:n], '\n'))
		}
	}()
	t.Cleanup(func() { _ = ln.Close(); <-closed })

	d := newDaemon(t, obj{"auth": obj{"allow_anonymous": true}}, daemonOptions{env: []string{"NOTIFY_SOCKET=" + sock}})
	d.start()
	if _, err := got.waitFor(ctx, closed, func(s string) bool { return strings.Contains(s, "READY=1") }); err != nil {
		t.Fatalf("no READY=1 on NOTIFY_SOCKET: %v (got %q)", err, got.String())
	}
	for name := range d.listeners {
		c, err := net.DialTimeout("tcp", d.addr(name), 5*time.Second)
		if err != nil {
			t.Errorf("after READY=1, listener %s (%s) does not accept: %v", name, d.addr(name), err)
			continue
		}
		c.Close()
	}
	g := mustConnectGo(ctx, t, tcpDialer(d.addr("tcp"), ""), connOpts{clientID: "after-ready"})
	g.close()
	if s := got.String(); !strings.Contains(s, "STATUS=") {
		t.Errorf("no STATUS= notification (got %q)", s)
	}
	if s := got.String(); strings.Contains(s, "STOPPING=1") {
		t.Fatalf("STOPPING=1 sent while running (got %q)", s)
	}

	d.stop() // requires exit code 0 within 5 s
	if _, err := got.waitFor(ctx, closed, func(s string) bool { return strings.Contains(s, "STOPPING=1") }); err != nil {
		t.Fatalf("no STOPPING=1 on SIGTERM: %v (got %q)", err, got.String())
	}
	s := got.String()
	if strings.Index(s, "READY=1") > strings.Index(s, "STOPPING=1") {
		t.Errorf("STOPPING=1 came before READY=1: %q", s)
	}
}
