package e2e

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"strings"
	"testing"
)

// mosqMsgFormat is mosquitto_sub's -F output for a message: a marker that
// debug lines (-d) never start with, retain flag, QoS, topic, payload.
const mosqMsgFormat = "MSG %r %q %t %p"

// mosqResult is a finished mosquitto_pub/mosquitto_sub run.
type mosqResult struct {
	stdout, stderr string
	code           int
}

// runMosquitto runs mosquitto_pub or mosquitto_sub to completion.
func runMosquitto(ctx context.Context, t testing.TB, tool string, args ...string) mosqResult {
	t.Helper()
	bin := needTool(t, tool)
	cmd := exec.CommandContext(ctx, bin, args...)
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err := cmd.Run()
	res := mosqResult{stdout: o.String(), stderr: e.String()}
	var exit *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &exit):
		res.code = exit.ExitCode()
	default:
		t.Fatalf("%s %s: %v", tool, strings.Join(args, " "), err)
	}
	if ctx.Err() != nil {
		t.Fatalf("%s %s: %v (stdout %q, stderr %q)", tool, strings.Join(args, " "), ctx.Err(), res.stdout, res.stderr)
	}
	return res
}

// mosqPub runs mosquitto_pub and requires success (for QoS 1/2 that means
// the broker acknowledged the message).
func mosqPub(ctx context.Context, t testing.TB, args ...string) {
	t.Helper()
	r := runMosquitto(ctx, t, "mosquitto_pub", args...)
	if r.code != 0 {
		t.Fatalf("mosquitto_pub %s: exit code %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), r.code, r.stdout, r.stderr)
	}
}

// mosqSub is a running mosquitto_sub.
type mosqSub struct {
	t      testing.TB
	args   []string
	cmd    *exec.Cmd
	stdout *watchBuffer
	stderr *watchBuffer
	done   chan struct{}
	code   int
}

// startMosqSub starts mosquitto_sub with -d (so its SUBACK shows) and the
// message format mosqMsgFormat. Give it -C and -W so it ends by itself.
func startMosqSub(ctx context.Context, t testing.TB, args ...string) *mosqSub {
	t.Helper()
	bin := needTool(t, "mosquitto_sub")
	// mosquitto_sub's stdout is block-buffered on a pipe: its SUBACK line
	// would only show at exit. stdbuf (coreutils) makes it line-buffered.
	stdbuf := needTool(t, "stdbuf")
	args = append([]string{"-d", "-F", mosqMsgFormat}, args...)
	s := &mosqSub{t: t, args: args, stdout: newWatchBuffer(), stderr: newWatchBuffer(), done: make(chan struct{})}
	s.cmd = exec.CommandContext(ctx, stdbuf, append([]string{"-oL", "-eL", bin}, args...)...)
	s.cmd.Stdout, s.cmd.Stderr = s.stdout, s.stderr
	s.cmd.SysProcAttr = childProcAttr()
	if err := s.cmd.Start(); err != nil {
		t.Fatalf("start mosquitto_sub: %v", err)
	}
	go func() {
		_ = s.cmd.Wait()
		s.code = s.cmd.ProcessState.ExitCode()
		close(s.done)
	}()
	t.Cleanup(func() {
		select {
		case <-s.done:
		default:
			_ = s.cmd.Process.Kill()
			<-s.done
		}
	})
	return s
}

// waitSubscribed waits for the SUBACK and returns its granted QoS list as
// printed by mosquitto_sub -d ("Subscribed (mid: 1): 1, 128").
func (s *mosqSub) waitSubscribed(ctx context.Context) string {
	s.t.Helper()
	out, err := s.stdout.waitFor(ctx, s.done, func(o string) bool { return strings.Contains(o, "Subscribed (mid:") })
	if err != nil {
		s.t.Fatalf("mosquitto_sub %s: no SUBACK: %v\nstdout: %s\nstderr: %s", strings.Join(s.args, " "), err, out, s.stderr.String())
	}
	i := strings.Index(out, "Subscribed (mid:")
	line, _, _ := strings.Cut(out[i:], "\n")
	_, granted, _ := strings.Cut(line, "):")
	return strings.TrimSpace(granted)
}

// wait waits for mosquitto_sub to exit and returns the messages it printed.
func (s *mosqSub) wait(ctx context.Context) []string {
	s.t.Helper()
	select {
	case <-s.done:
	case <-ctx.Done():
		s.t.Fatalf("mosquitto_sub %s did not exit: %v\nstdout: %s", strings.Join(s.args, " "), ctx.Err(), s.stdout.String())
	}
	return s.messages()
}

// messages returns the message lines printed so far, without the marker.
func (s *mosqSub) messages() []string {
	var out []string
	for _, l := range strings.Split(s.stdout.String(), "\n") {
		if m, ok := strings.CutPrefix(l, "MSG "); ok {
			out = append(out, m)
		}
	}
	return out
}

// msgLine is how mosqMsgFormat prints a message.
func msgLine(retain bool, qos byte, topic, payload string) string {
	r := "0"
	if retain {
		r = "1"
	}
	return r + " " + string('0'+qos) + " " + topic + " " + payload
}

// haveMosquitto reports whether mosquitto_pub and mosquitto_sub are
// installed. Missing ones fail the test under CI=true; otherwise the test
// logs it and runs only its Go half.
func haveMosquitto(t testing.TB) bool {
	t.Helper()
	for _, tool := range []string{"mosquitto_pub", "mosquitto_sub"} {
		if _, err := exec.LookPath(tool); err != nil {
			if strings.EqualFold(os.Getenv("CI"), "true") {
				t.Fatalf("%s not found (%v); run scripts/install-test-deps.sh — required under CI=true", tool, err)
			}
			t.Logf("%s not found: skipping the mosquitto half of this test (run scripts/install-test-deps.sh)", tool)
			return false
		}
	}
	return true
}
