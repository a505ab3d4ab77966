// Package e2e runs the edgegate binary as a real process and talks to it
// over 127.0.0.1 with real peers: mosquitto_pub/mosquitto_sub, a Go MQTT 5
// client (paho.golang), a minimal MQTT 3.1/3.1.1 client written here, and
// plain net/http for the admin API.
//
// Every test starts its own daemon with its own data directory and every
// listener on 127.0.0.1:0, so tests run in parallel and never share state.
// Nothing sleeps: tests wait on conditions (a banner line, a log line, a
// message, a process exit) under a deadline.
//
// TestMain builds ./cmd/edgegate once. Set EDGEGATE_E2E_BIN to test a binary
// built elsewhere (for example with -race). mosquitto_pub and mosquitto_sub
// come from scripts/install-test-deps.sh (make test runs it): under CI=true a
// missing one fails the test that needs it; elsewhere that part is skipped.
package e2e

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// edgegateBin is the binary under test, set by TestMain.
var edgegateBin string

func TestMain(m *testing.M) {
	os.Exit(runMain(m))
}

func runMain(m *testing.M) int {
	if bin := os.Getenv("EDGEGATE_E2E_BIN"); bin != "" {
		edgegateBin = bin
		return m.Run()
	}
	dir, err := os.MkdirTemp("", "edgegate-e2e-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	defer os.RemoveAll(dir)
	root, err := repoRoot()
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	edgegateBin = filepath.Join(dir, "edgegate")
	build := exec.Command("go", "build", "-o", edgegateBin, "./cmd/edgegate")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "e2e: go build ./cmd/edgegate failed: %v\n%s", err, out)
		return 1
	}
	return m.Run()
}

// repoRoot is the directory of the main module's go.mod.
func repoRoot() (string, error) {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	gomod := string(bytes.TrimSpace(out))
	if gomod == "" || gomod == os.DevNull {
		return "", fmt.Errorf("not inside the edgegate module (go env GOMOD = %q)", gomod)
	}
	return filepath.Dir(gomod), nil
}

// needTool returns the path of a peer program. When it is missing the test
// fails under CI=true (the design says peers are installed, never skipped)
// and is skipped otherwise.
func needTool(t testing.TB, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err == nil {
		return p
	}
	msg := fmt.Sprintf("%s not found (%v); run scripts/install-test-deps.sh", name, err)
	if strings.EqualFold(os.Getenv("CI"), "true") {
		t.Fatal(msg + " — required under CI=true")
	}
	t.Skip(msg)
	return ""
}
