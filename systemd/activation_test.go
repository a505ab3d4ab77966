//go:build unix

package systemd

import (
	"bytes"
	"fmt"
	"io"
	"maps"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

func listenTCP(t *testing.T) *net.TCPListener {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = l.Close() })
	return l.(*net.TCPListener)
}

// inheritedFile returns a new fd for l's socket named like activation.Files
// names an fd passed by systemd; the caller hands it to listenersFromFiles,
// which closes it.
func inheritedFile(t *testing.T, l *net.TCPListener, name string) *os.File {
	t.Helper()
	f, err := l.File()
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = f.Close() }()
	fd, err := syscall.Dup(int(f.Fd()))
	if err != nil {
		t.Fatal(err)
	}
	syscall.CloseOnExec(fd)
	return os.NewFile(uintptr(fd), name)
}

// assertServes checks that l accepts a connection made to addr, i.e. that it
// is the very socket systemd would have passed.
func assertServes(t *testing.T, l net.Listener, addr string) {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, guard)
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	defer func() { _ = c.Close() }()
	if err := l.(*net.TCPListener).SetDeadline(time.Now().Add(guard)); err != nil {
		t.Fatal(err)
	}
	s, err := l.Accept()
	if err != nil {
		t.Fatalf("accept on %s: %v", addr, err)
	}
	_ = s.Close()
}

// assertClosed checks that nothing listens on addr any more: every fd for the
// socket, the inherited one and its duplicates, has been closed.
func assertClosed(t *testing.T, addr string) {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, guard)
	if err == nil {
		_ = c.Close()
		t.Errorf("%s still accepts connections: an fd was leaked", addr)
	}
}

func TestListenersFromFilesMapsNames(t *testing.T) {
	tcp, ws, unnamed := listenTCP(t), listenTCP(t), listenTCP(t)
	files := []*os.File{
		inheritedFile(t, tcp, "tcp"),
		inheritedFile(t, ws, "ws"),
		inheritedFile(t, unnamed, "LISTEN_FD_5"),
	}
	addrs := map[string]string{
		"tcp":         tcp.Addr().String(),
		"ws":          ws.Addr().String(),
		"LISTEN_FD_5": unnamed.Addr().String(),
	}

	got, err := listenersFromFiles(files)
	if err != nil {
		t.Fatalf("listenersFromFiles: %v", err)
	}
	defer func() {
		for _, l := range got {
			_ = l.Close()
		}
	}()
	names := slices.Sorted(maps.Keys(got))
	if want := []string{"LISTEN_FD_5", "tcp", "ws"}; !slices.Equal(names, want) {
		t.Fatalf("names = %v, want %v", names, want)
	}
	for name, l := range got {
		if l.Addr().String() != addrs[name] {
			t.Errorf("%s: addr %s, want %s", name, l.Addr(), addrs[name])
		}
		// Close our own listener first: the mapped one must hold the socket alone.
		_ = map[string]*net.TCPListener{"tcp": tcp, "ws": ws, "LISTEN_FD_5": unnamed}[name].Close()
		assertServes(t, l, addrs[name])
	}
	for _, f := range files {
		if err := f.Close(); err == nil {
			t.Errorf("file %s left open: listenersFromFiles owns and closes its files", f.Name())
		}
	}
}

func TestListenersFromFilesEmpty(t *testing.T) {
	for _, files := range [][]*os.File{nil, {}} {
		got, err := listenersFromFiles(files)
		if err != nil {
			t.Fatalf("listenersFromFiles(%v): %v", files, err)
		}
		if got == nil || len(got) != 0 {
			t.Fatalf("listenersFromFiles(%v) = %v, want empty non-nil map", files, got)
		}
	}
}

func TestListenersFromFilesRejects(t *testing.T) {
	regular := func(t *testing.T) *os.File {
		f, err := os.Create(filepath.Join(t.TempDir(), "not-a-socket"))
		if err != nil {
			t.Fatal(err)
		}
		return f
	}
	tests := []struct {
		name    string
		second  func(t *testing.T) (*os.File, string) // file and the address it listens on, if any
		wantErr string
	}{
		{
			name: "duplicate name",
			second: func(t *testing.T) (*os.File, string) {
				l := listenTCP(t)
				addr := l.Addr().String()
				f := inheritedFile(t, l, "tcp")
				_ = l.Close()
				return f, addr
			},
			wantErr: `more than one fd named "tcp"`,
		},
		{
			name:    "not a listener",
			second:  func(t *testing.T) (*os.File, string) { return regular(t), "" },
			wantErr: "not a stream listener",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			first := listenTCP(t)
			firstAddr := first.Addr().String()
			f1 := inheritedFile(t, first, "tcp")
			_ = first.Close()
			f2, secondAddr := tt.second(t)

			got, err := listenersFromFiles([]*os.File{f1, f2})
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("err = %v, want it to contain %q", err, tt.wantErr)
			}
			if got != nil {
				t.Errorf("listeners = %v on error, want nil", got)
			}
			// Nothing may survive a failed activation.
			assertClosed(t, firstAddr)
			if secondAddr != "" {
				assertClosed(t, secondAddr)
			}
		})
	}
}

func TestActivatedListenersNotActivated(t *testing.T) {
	// LISTEN_PID names another process: the fds are not ours, as when a
	// socket-activated parent leaked its environment to us.
	t.Setenv("LISTEN_PID", strconv.Itoa(os.Getpid()+1))
	t.Setenv("LISTEN_FDS", "1")
	t.Setenv("LISTEN_FDNAMES", "tcp")

	got, err := ActivatedListeners()
	if err != nil {
		t.Fatalf("ActivatedListeners: %v", err)
	}
	if got == nil || len(got) != 0 {
		t.Fatalf("ActivatedListeners = %v, want empty non-nil map", got)
	}
	for _, k := range []string{"LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"} {
		if v, ok := os.LookupEnv(k); ok {
			t.Errorf("%s=%q left in the environment", k, v)
		}
	}
}

// childEnv marks the re-executed test binary that plays the socket-activated
// daemon in TestActivatedListenersInheritedFDs.
const childEnv = "EDGEGATE_SYSTEMD_ACTIVATION_CHILD"

// TestActivatedListenersInheritedFDs passes real sockets as fds 3 and 4 to a
// child process, the way systemd does, and checks the child finds them by name.
func TestActivatedListenersInheritedFDs(t *testing.T) {
	if os.Getenv(childEnv) != "" {
		activatedChild(t)
		return
	}
	tcp, ws := listenTCP(t), listenTCP(t)
	files := make([]*os.File, 0, 2)
	for _, l := range []*net.TCPListener{tcp, ws} {
		f, err := l.File()
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = f.Close() })
		files = append(files, f)
	}
	// Queued in the backlog until the child accepts it on its "tcp" listener.
	conn, err := net.DialTimeout("tcp", tcp.Addr().String(), guard)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = conn.Close() }()

	cmd := exec.CommandContext(t.Context(), os.Args[0], "-test.run=^TestActivatedListenersInheritedFDs$")
	// systemd sets LISTEN_PID to the child's pid, which is unknown before the
	// fork: the child sets it itself from its own pid.
	cmd.Env = append(os.Environ(), childEnv+"=1", "LISTEN_FDS=2", "LISTEN_FDNAMES=tcp:ws")
	cmd.ExtraFiles = files // fds 3 and 4 in the child
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		t.Fatalf("child: %v\n%s", err, out.String())
	}

	for name, l := range map[string]net.Listener{"tcp": tcp, "ws": ws} {
		if want := fmt.Sprintf("listener %s=%s\n", name, l.Addr()); !strings.Contains(out.String(), want) {
			t.Errorf("child output lacks %q:\n%s", want, out.String())
		}
	}
	if err := conn.SetReadDeadline(time.Now().Add(guard)); err != nil {
		t.Fatal(err)
	}
	reply, err := io.ReadAll(conn)
	if err != nil || string(reply) != "accepted by child" {
		t.Errorf("reply from child's tcp listener = %q, %v", reply, err)
	}
}

func activatedChild(t *testing.T) {
	t.Setenv("LISTEN_PID", strconv.Itoa(os.Getpid()))
	got, err := ActivatedListeners()
	if err != nil {
		t.Fatalf("ActivatedListeners: %v", err)
	}
	if len(got) != 2 {
		t.Fatalf("got %d listeners (%v), want tcp and ws", len(got), got)
	}
	for _, k := range []string{"LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"} {
		if v, ok := os.LookupEnv(k); ok {
			t.Errorf("%s=%q left in the environment", k, v)
		}
	}
	for _, name := range []string{"tcp", "ws"} {
		l, ok := got[name]
		if !ok {
			t.Fatalf("no listener named %q in %v", name, got)
		}
		fmt.Printf("listener %s=%s\n", name, l.Addr())
	}
	if err := got["tcp"].(*net.TCPListener).SetDeadline(time.Now().Add(guard)); err != nil {
		t.Fatal(err)
	}
	c, err := got["tcp"].Accept()
	if err != nil {
		t.Fatalf("accept: %v", err)
	}
	_, err = io.WriteString(c, "accepted by child")
	_ = c.Close()
	if err != nil {
		t.Fatal(err)
	}
}
