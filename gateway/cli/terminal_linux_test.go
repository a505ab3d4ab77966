//go:build linux

package cli

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// openPTY returns the master and slave ends of a new pseudo-terminal, and
// the master's descriptor for ioctls (master.Fd would make it blocking).
func openPTY(t *testing.T) (master *os.File, mfd int, slave *os.File) {
	t.Helper()
	fd, err := unix.Open("/dev/ptmx", unix.O_RDWR|unix.O_NOCTTY|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("no pseudo-terminals: %v", err)
		}
		t.Skipf("no pseudo-terminals: %v", err)
	}
	if err := unix.IoctlSetPointerInt(fd, unix.TIOCSPTLCK, 0); err != nil {
		t.Fatal(err)
	}
	n, err := unix.IoctlGetInt(fd, unix.TIOCGPTN)
	if err != nil {
		t.Fatal(err)
	}
	master = os.NewFile(uintptr(fd), "ptmx") // non-blocking: pollable, deadlines work
	slave, err = os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { slave.Close(); master.Close() })
	return master, fd, slave
}

// lockedBuffer is a prompt sink read while the prompt runs.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// waitFor polls cond: the prompt runs in another goroutine and a pty gives
// no event for "termios changed".
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

func TestPasswordPromptDoesNotEcho(t *testing.T) {
	master, mfd, slave := openPTY(t)
	if !isTerminal(slave) {
		t.Fatal("isTerminal(pty) = false")
	}
	plain, err := os.Create(filepath.Join(t.TempDir(), "f"))
	if err != nil {
		t.Fatal(err)
	}
	defer plain.Close()
	if isTerminal(plain) {
		t.Fatal("isTerminal(regular file) = true")
	}

	// The termios of the pair, read through the master.
	echoOff := func() bool {
		tio, err := unix.IoctlGetTermios(mfd, unix.TCGETS)
		return err == nil && tio.Lflag&unix.ECHO == 0
	}
	if echoOff() {
		t.Fatal("a new pty starts without echo")
	}

	var prompt lockedBuffer
	type answer struct {
		password string
		err      error
	}
	done := make(chan answer, 1)
	go func() {
		p, err := readNewPassword(slave, &prompt)
		done <- answer{p, err}
	}()

	const secret = "pty-Secret-42"
	waitFor(t, "the first prompt with echo off", func() bool { return strings.Contains(prompt.String(), "Password: ") && echoOff() })
	if _, err := master.Write([]byte(secret + "\r")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the second prompt with echo off", func() bool { return strings.Contains(prompt.String(), "Repeat password: ") && echoOff() })
	if _, err := master.Write([]byte(secret + "\r")); err != nil {
		t.Fatal(err)
	}
	got := <-done
	if got.err != nil || got.password != secret {
		t.Fatalf("readNewPassword = %q, %v; want %q", got.password, got.err, secret)
	}
	if echoOff() {
		t.Fatal("echo not restored after the prompt")
	}

	// Everything the terminal showed up to a marker written afterwards.
	if _, err := slave.Write([]byte("END\n")); err != nil {
		t.Fatal(err)
	}
	var shown bytes.Buffer
	buf := make([]byte, 256)
	if err := master.SetReadDeadline(time.Now().Add(10 * time.Second)); err != nil {
		t.Fatal(err)
	}
	for !bytes.Contains(shown.Bytes(), []byte("END")) {
		n, err := master.Read(buf)
		shown.Write(buf[:n])
		if err != nil {
			t.Fatalf("read the terminal: %v (so far %q)", err, shown.String())
		}
	}
	if strings.Contains(shown.String(), "Secret") {
		t.Fatalf("the terminal echoed the password: %q", shown.String())
	}
}

func TestPasswordPromptMismatchAndInterrupt(t *testing.T) {
	master, mfd, slave := openPTY(t)
	echoOff := func() bool {
		tio, err := unix.IoctlGetTermios(mfd, unix.TCGETS)
		return err == nil && tio.Lflag&unix.ECHO == 0
	}
	for _, tt := range []struct {
		first, second string
		want          string
	}{
		{"one-password\r", "another-one\r", "do not match"},
		{"\x03", "", "interrupted"},
	} {
		var prompt lockedBuffer
		done := make(chan error, 1)
		go func() {
			_, err := readNewPassword(slave, &prompt)
			done <- err
		}()
		waitFor(t, "the first prompt", func() bool { return strings.Contains(prompt.String(), "Password: ") && echoOff() })
		if _, err := master.Write([]byte(tt.first)); err != nil {
			t.Fatal(err)
		}
		if tt.second != "" {
			waitFor(t, "the second prompt", func() bool { return strings.Contains(prompt.String(), "Repeat password: ") && echoOff() })
			if _, err := master.Write([]byte(tt.second)); err != nil {
				t.Fatal(err)
			}
		}
		if err := <-done; err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Fatalf("readNewPassword = %v; want %q", err, tt.want)
		}
		if echoOff() {
			t.Fatal("echo not restored")
		}
	}
}
