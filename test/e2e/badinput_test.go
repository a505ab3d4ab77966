package e2e

import (
	"bytes"
	"errors"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// TestBadSettingsFile proves a bad settings file is refused at start with
// exit code 2 and a message that names the file and the line:col (for
// JSON problems) or the setting (for invalid values) — never a panic, never
// a start.
func TestBadSettingsFile(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		file string
		want []*regexp.Regexp // on stderr
	}{
		{
			name: "unknown key",
			file: "{\n  \"listeners\": {\n    \"tcp\": {\"bind\": \"127.0.0.1:0\"}\n  },\n  \"mqtt\": {\n    \"max_packet_sise\": 1024\n  }\n}\n",
			want: []*regexp.Regexp{regexp.MustCompile(`\b6:\d+\b`), regexp.MustCompile(`max_packet_sise`)},
		},
		{
			name: "unknown listener key",
			file: "{\"listeners\": {\"tcp\": {\"bind\": \"127.0.0.1:0\",\n  \"max_client\": 5}}}",
			want: []*regexp.Regexp{regexp.MustCompile(`\b2:\d+\b`), regexp.MustCompile(`max_client`)},
		},
		{
			name: "wrong type",
			file: "{\n  \"sys\": {\n    \"interval\": 60\n  }\n}\n",
			want: []*regexp.Regexp{regexp.MustCompile(`\b3:\d+\b`), regexp.MustCompile(`interval`)},
		},
		{
			name: "syntax error",
			file: "{\n  \"node\": \"n1\"\n  \"log\": {}\n}\n",
			want: []*regexp.Regexp{regexp.MustCompile(`\b3:\d+\b`)},
		},
		{
			name: "invalid value",
			file: `{"node": "not a valid node name!"}`,
			want: []*regexp.Regexp{regexp.MustCompile(`\bnode\b`)},
		},
		{
			name: "invalid bind",
			file: `{"listeners": {"tcp": {"bind": "127.0.0.1:99999"}}}`,
			want: []*regexp.Regexp{regexp.MustCompile(`listeners\.tcp\.bind`)},
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			ctx := testContext(t, 30*time.Second)
			cfg := filepath.Join(t.TempDir(), "bad-settings.json")
			writeFile(t, cfg, []byte(c.file))
			cmd := exec.CommandContext(ctx, edgegateBin, "serve", "--data", filepath.Join(t.TempDir(), "data"), "--config", cfg)
			var stdout, stderr bytes.Buffer
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			err := cmd.Run()
			var exit *exec.ExitError
			if !errors.As(err, &exit) || exit.ExitCode() != 2 {
				t.Fatalf("exit: %v, want exit code 2\nstdout: %s\nstderr: %s", err, stdout.String(), stderr.String())
			}
			msg := stderr.String()
			for _, re := range c.want {
				if !re.MatchString(msg) {
					t.Errorf("stderr %q does not match %s", msg, re)
				}
			}
			if c.name != "invalid value" && c.name != "invalid bind" && !strings.Contains(msg, cfg) {
				t.Errorf("stderr %q does not name the file %s", msg, cfg)
			}
			if strings.Contains(msg, "panic") || strings.Contains(msg, "goroutine ") {
				t.Errorf("the daemon panicked:\n%s", msg)
			}
			if strings.Contains(stdout.String(), "ready") {
				t.Errorf("the daemon printed ready with a bad settings file")
			}
		})
	}
}

// TestMalformedPackets proves malformed MQTT input on the TCP port — not
// MQTT at all, a bad protocol name, a malformed remaining length, a
// reserved packet type, QoS 3, an invalid UTF-8 topic, a packet over
// mqtt.max_packet_size — closes only the offending connection: a client
// connected before keeps publishing and receiving, and the daemon keeps
// running without a panic.
func TestMalformedPackets(t *testing.T) {
	t.Parallel()
	ctx := testContext(t, 60*time.Second)
	d := startDaemon(t, obj{
		"auth": obj{"allow_anonymous": true},
		"mqtt": obj{"max_packet_size": 1024},
	})
	tcp := tcpDialer(d.addr("tcp"), "")
	bystander := mustConnectGo(ctx, t, tcp, connOpts{clientID: "bystander"})
	bystander.mustSubscribe(ctx, 1, "mal/ok")

	badConnect := func() []byte {
		body := appendString(nil, "MQXX")
		body = append(body, 4, 0x02, 0, 30)
		body = appendString(body, "bad-proto")
		return packet(0x10, body)
	}()
	cases := []struct {
		name    string
		connect bool // send a valid CONNECT first
		bytes   []byte
	}{
		{"not MQTT", false, []byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n")},
		{"bad protocol name", false, badConnect},
		{"malformed remaining length", false, []byte{0x10, 0xff, 0xff, 0xff, 0xff, 0x01}},
		{"reserved packet type", true, []byte{0x00, 0x00}},
		{"publish with QoS 3", true, publishPacket("mal/ok", 3, false, 1, "x")},
		{"invalid UTF-8 topic", true, publishPacket("mal/\xff\xfe", 0, false, 0, "x")},
		{"over max_packet_size", true, publishPacket("mal/ok", 0, false, 0, strings.Repeat("x", 4000))},
	}
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			raw := dialRaw(ctx, t, tcp)
			if c.connect {
				raw.mustConnect(rawOpts{clientID: "mal-" + strings.ReplaceAll(c.name, " ", "-"), clean: true})
			}
			if err := raw.write(c.bytes); err != nil {
				t.Fatalf("write: %v", err)
			}
			got, err := raw.waitClosedByServer(10 * time.Second)
			if err != nil {
				t.Errorf("%s: %v", c.name, err)
			}
			for _, p := range got {
				if p.kind() == 2 && len(p.body) == 2 && p.body[1] == 0 {
					t.Errorf("%s: the broker accepted the connection (CONNACK 0)", c.name)
				}
			}
			payload := "alive-" + string(rune('a'+i))
			bystander.mustPublish(ctx, "mal/ok", 1, false, payload)
			bystander.expect(ctx, "mal/ok", payload)
		})
	}
	if !d.running() {
		t.Fatal("the daemon exited")
	}
	if logs := d.allLogs(); strings.Contains(logs, "panic") {
		t.Errorf("the daemon logged a panic:\n%s", tail(logs, 4000))
	}
}

// TestCLIUsers proves `edgegate user add|list` works both against a
// running daemon (over the admin socket) and with the daemon stopped
// (directly on the store), and that users added either way can log in.
func TestCLIUsers(t *testing.T) {
	t.Parallel()
	ctx := testContext(t, 60*time.Second)
	d := startDaemon(t, nil)

	run := func(args ...string) string {
		t.Helper()
		out, errOut, code := d.cli(ctx, t, args...)
		if code != 0 {
			t.Fatalf("edgegate %s: exit %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), code, out, errOut)
		}
		return out
	}
	run("user", "add", "live-user", "--password", "Live-Pass-1")
	checkLogin(ctx, t, d, "cli-live", "live-user", "Live-Pass-1", admitted)

	d.stop()
	run("user", "add", "offline-user", "--password", "Offline-Pass-1", "--superuser")
	list := run("user", "list")
	for _, u := range []string{"live-user", "offline-user"} {
		if !strings.Contains(list, u) {
			t.Errorf("edgegate user list (daemon stopped) lacks %s:\n%s", u, list)
		}
	}
	d.start()
	checkLogin(ctx, t, d, "cli-offline", "offline-user", "Offline-Pass-1", admitted)
	checkLogin(ctx, t, d, "cli-offline-bad", "offline-user", "nope", refused)
	g := mustConnectGo(ctx, t, tcpDialer(d.addr("tcp"), "127.0.0.2"), connOpts{clientID: "su", username: "offline-user", password: "Offline-Pass-1"})
	g.mustSubscribe(ctx, 0, "#") // superuser: the {eq,"#"} deny does not apply
}
