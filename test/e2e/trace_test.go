package e2e

import (
	"context"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// traceInfo is a trace as the admin API shows it.
type traceInfo struct {
	Kind       string `json:"kind"`
	Target     string `json:"target"`
	File       string `json:"file"`
	StopReason string `json:"stop_reason"`
}

// waitFile waits until the file's content satisfies cond. A trace is
// written unbuffered as the broker handles packets; there is no event to
// wait on from outside, so the file is read until the line is there.
func waitFile(ctx context.Context, t *testing.T, path string, cond func(string) bool) string {
	t.Helper()
	var last string
	waitUntil(ctx, t, "trace file "+path, func() bool {
		b, err := os.ReadFile(path)
		if err != nil {
			return false
		}
		last = string(b)
		return cond(last)
	})
	return last
}

var traceLineTime = regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z `)

// TestTraceFile proves traces write what happened to a file: a client
// trace started through the admin API records that client's CONNECT,
// SUBSCRIBE, PUBLISH and the broker's answers (never its password), and
// ends with "trace stopped" when stopped; a topic trace started with
// `edgegate trace topic FILTER FILE` (over the admin socket) records the
// matching messages of every publisher and none other, shows in
// `edgegate trace list`, and stops with `edgegate trace stop`.
func TestTraceFile(t *testing.T) {
	t.Parallel()
	ctx := testContext(t, 60*time.Second)
	d := startDaemon(t, nil)
	d.addUser(t, "tracee", "Tracee-Pass-7", false)
	d.addUser(t, "other", "Other-Pass-7", false)
	tcp := tcpDialer(d.addr("tcp"), "")

	t.Run("client trace via API", func(t *testing.T) {
		var info traceInfo
		d.api(t, "POST", "/api/v1/traces", obj{"kind": "client", "target": "tracee-1", "name": "client_tracee"}, http.StatusCreated, &info)
		if info.File == "" || filepath.Dir(info.File) != filepath.Join(d.dataDir, "traces") {
			t.Fatalf("trace file %q, want it in %s", info.File, filepath.Join(d.dataDir, "traces"))
		}
		g := mustConnectGo(ctx, t, tcp, connOpts{clientID: "tracee-1", username: "tracee", password: "Tracee-Pass-7"})
		g.mustSubscribe(ctx, 1, "trace/in/#")
		g.mustPublish(ctx, "trace/in/x", 1, false, "hello-trace")
		g.expect(ctx, "trace/in/x", "hello-trace")
		// Another client's traffic must not show up.
		o := mustConnectGo(ctx, t, tcp, connOpts{clientID: "not-traced", username: "other", password: "Other-Pass-7"})
		o.mustPublish(ctx, "trace/elsewhere", 1, false, "not-for-this-trace")

		want := []string{
			`RECV CONNECT proto=5`,
			`username="tracee"`,
			`SENT CONNACK code=0`,
			`RECV SUBSCRIBE id=`,
			`filter="trace/in/#" qos=1`,
			`SENT SUBACK id=`,
			`RECV PUBLISH id=`,
			`topic="trace/in/x" qos=1 retain=false dup=false size=11 payload="hello-trace"`,
			`SENT PUBACK id=`,
			`SENT PUBLISH id=`,
		}
		content := waitFile(ctx, t, info.File, func(s string) bool {
			return strings.Contains(s, `SENT PUBLISH`) && strings.Contains(s, `SENT PUBACK`)
		})
		for _, w := range want {
			if !strings.Contains(content, w) {
				t.Errorf("trace file lacks %q:\n%s", w, content)
			}
		}
		d.api(t, "DELETE", "/api/v1/traces/client/tracee-1", nil, http.StatusNoContent, nil)
		content = waitFile(ctx, t, info.File, func(s string) bool { return strings.Contains(s, "trace stopped") })
		lines := strings.Split(strings.TrimRight(content, "\n"), "\n")
		if !strings.HasSuffix(lines[0], ` trace started: client "tracee-1"`) {
			t.Errorf("first line %q, want `<time> trace started: client \"tracee-1\"`", lines[0])
		}
		if !strings.HasSuffix(lines[len(lines)-1], " trace stopped") {
			t.Errorf("last line %q, want `<time> trace stopped`", lines[len(lines)-1])
		}
		for _, l := range lines {
			if !traceLineTime.MatchString(l) {
				t.Errorf("line without the UTC millisecond timestamp: %q", l)
			}
		}
		for _, leak := range []string{"Tracee-Pass-7", "not-for-this-trace", "not-traced"} {
			if strings.Contains(content, leak) {
				t.Errorf("client trace contains %q", leak)
			}
		}
		// After the stop nothing more is written.
		g.mustPublish(ctx, "trace/in/y", 1, false, "after-stop")
		g.expect(ctx, "trace/in/y", "after-stop")
		if b, _ := os.ReadFile(info.File); strings.Contains(string(b), "after-stop") {
			t.Errorf("the trace kept writing after it was stopped")
		}
	})

	t.Run("topic trace via CLI", func(t *testing.T) {
		out, errOut, code := d.cli(ctx, t, "trace", "topic", "sensors/#", "topic_sensors")
		if code != 0 {
			t.Fatalf("edgegate trace topic: exit %d\nstdout: %s\nstderr: %s", code, out, errOut)
		}
		file := filepath.Join(d.dataDir, "traces", "topic_sensors.log")
		if !strings.Contains(out, file) {
			t.Errorf("edgegate trace topic printed %q, want the file path %s", out, file)
		}
		list, errOut, code := d.cli(ctx, t, "trace", "list")
		if code != 0 || !strings.Contains(list, "sensors/#") || !strings.Contains(list, "running") {
			t.Errorf("edgegate trace list: exit %d, stdout %q, stderr %q; want the running topic trace", code, list, errOut)
		}
		a := mustConnectGo(ctx, t, tcp, connOpts{clientID: "pub-a", username: "tracee", password: "Tracee-Pass-7"})
		b := mustConnectGo(ctx, t, tcp, connOpts{clientID: "pub-b", username: "other", password: "Other-Pass-7"})
		a.mustPublish(ctx, "sensors/t1", 1, false, "21.5")
		b.mustPublish(ctx, "sensors/t2", 0, true, "40%")
		a.mustPublish(ctx, "actuators/x", 1, false, "not-a-sensor")
		if haveMosquitto(t) {
			mosqPub(ctx, t, append(mosqTCP(d, "tcp"), "-u", "other", "-P", "Other-Pass-7", "-i", "pub-mq", "-q", "2", "-t", "sensors/t3", "-m", "from-mosquitto")...)
		}
		content := waitFile(ctx, t, file, func(s string) bool { return strings.Contains(s, `topic="sensors/t2"`) })
		for _, w := range []string{
			` trace started: topic "sensors/#"`,
			`PUBLISH from="pub-a" topic="sensors/t1" qos=1 retain=false size=4 payload="21.5"`,
			`PUBLISH from="pub-b" topic="sensors/t2" qos=0 retain=true size=3 payload="40%"`,
		} {
			if !strings.Contains(content, w) {
				t.Errorf("topic trace lacks %q:\n%s", w, content)
			}
		}
		if haveMosquitto(t) {
			content = waitFile(ctx, t, file, func(s string) bool { return strings.Contains(s, `topic="sensors/t3"`) })
			if !strings.Contains(content, `PUBLISH from="pub-mq" topic="sensors/t3" qos=2`) {
				t.Errorf("topic trace lacks the mosquitto_pub message:\n%s", content)
			}
		}
		if strings.Contains(content, "actuators/x") {
			t.Errorf("topic trace of sensors/# recorded actuators/x:\n%s", content)
		}
		out, errOut, code = d.cli(ctx, t, "trace", "stop", "topic", "sensors/#")
		if code != 0 {
			t.Fatalf("edgegate trace stop: exit %d\nstdout: %s\nstderr: %s", code, out, errOut)
		}
		content = waitFile(ctx, t, file, func(s string) bool { return strings.Contains(s, "trace stopped") })
		if !strings.HasSuffix(strings.TrimRight(content, "\n"), "trace stopped") {
			t.Errorf("topic trace does not end with \"trace stopped\":\n%s", content)
		}
		var traces []traceInfo
		d.api(t, "GET", "/api/v1/traces", nil, http.StatusOK, &traces)
		for _, tr := range traces {
			if tr.Kind == "topic" && tr.Target == "sensors/#" && tr.StopReason == "" {
				t.Errorf("GET /api/v1/traces still shows the topic trace running: %+v", tr)
			}
		}
	})
}
