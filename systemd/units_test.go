package systemd

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// units are the unit files shipped in this directory.
var units = []string{"edgegate.service", "edgegate-mqtt.socket"}

// systemdAnalyze returns the path of systemd-analyze, which
// scripts/install-test-deps.sh installs. Under CI=true a missing one fails.
func systemdAnalyze(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("systemd-analyze")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("systemd-analyze not found (scripts/install-test-deps.sh installs it): %v", err)
		}
		t.Skip("systemd-analyze not installed")
	}
	return p
}

// stageUnits copies the unit files into a temporary directory with
// ExecStart pointing at an executable that exists here, since verify checks
// that the command can be run.
func stageUnits(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	for _, u := range units {
		data, err := os.ReadFile(u)
		if err != nil {
			t.Fatal(err)
		}
		data = bytes.ReplaceAll(data, []byte("/usr/bin/edgegate"), []byte(self))
		if err := os.WriteFile(filepath.Join(dir, u), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// TestUnitsVerify runs systemd-analyze verify on the units. It exits 0
// even for unknown keys or unparsable values, which it reports as
// warnings: any output fails the test.
func TestUnitsVerify(t *testing.T) {
	analyze := systemdAnalyze(t)
	dir := stageUnits(t)
	args := []string{"verify", "--man=no"}
	for _, u := range units {
		args = append(args, filepath.Join(dir, u))
	}
	out, err := exec.Command(analyze, args...).CombinedOutput()
	if err != nil || len(bytes.TrimSpace(out)) > 0 {
		t.Fatalf("systemd-analyze verify: %v\n%s", err, out)
	}
}

// maxExposure is the highest `systemd-analyze security` exposure accepted
// for edgegate.service (0 is fully sandboxed, 10 not at all; systemd calls
// below 2 "OK"): a unit change that loosens the sandbox fails here.
const maxExposure = 2.0

func TestServiceSecurityExposure(t *testing.T) {
	analyze := systemdAnalyze(t)
	dir := stageUnits(t)
	out, err := exec.Command(analyze, "security", "--offline=yes", "--no-pager",
		filepath.Join(dir, "edgegate.service")).CombinedOutput()
	if err != nil {
		t.Fatalf("systemd-analyze security: %v\n%s", err, out)
	}
	m := regexp.MustCompile(`Overall exposure level for edgegate\.service: ([0-9.]+)`).FindSubmatch(out)
	if m == nil {
		t.Fatalf("no overall exposure level in:\n%s", out)
	}
	exposure, err := strconv.ParseFloat(string(m[1]), 64)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("systemd-analyze security: exposure %.1f for edgegate.service", exposure)
	if exposure > maxExposure {
		t.Errorf("exposure %.1f above %.1f; the lines marked ✗:\n%s", exposure, maxExposure, failedChecks(out))
	}
}

func failedChecks(out []byte) string {
	var b strings.Builder
	for _, line := range strings.Split(string(out), "\n") {
		if strings.Contains(line, "✗") {
			b.WriteString(line + "\n")
		}
	}
	return b.String()
}
