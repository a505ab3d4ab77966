package e2e

import (
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestDefaultACL proves seed 002's default rules (no acl.rules in the
// settings):
//
//	{allow, {user, "dashboard"}, subscribe, ["$SYS/#"]}.
//	{allow, {ipaddr, "127.0.0.1"}, pubsub, ["$SYS/#", "#"]}.   (and ::1)
//	{deny, all, subscribe, ["$SYS/#", {eq, "#"}]}.
//	{allow, all}.
//
// Every MQTT connection of a test comes over loopback, so "a client that
// is not local" is simulated by dialling from 127.0.0.2: Linux routes all
// of 127.0.0.0/8 to lo, and the default rule names exactly 127.0.0.1, so a
// client from 127.0.0.2 is one the ipaddr rule does not match. What this
// proves: the ipaddr rule is as narrow as written, and the explicit deny
// rule refuses "$SYS/#" and exactly "#" to everyone else (while "a/#" and
// other filters stay allowed); superusers and the dashboard user keep
// their rights. It does not prove the hook's own fallback for clients no
// rule matches ("$SYS only from a loopback address"): 127.0.0.2 is a
// loopback address too, and a real non-loopback source cannot be made
// without leaving 127.0.0.1.
func TestDefaultACL(t *testing.T) {
	t.Parallel()
	ctx := testContext(t, 60*time.Second)
	d := startDaemon(t, nil)
	d.addUser(t, "alice", "Alice-Pass-1", false)
	d.addUser(t, "dashboard", "Dash-Pass-1", false)
	d.addUser(t, "root", "Root-Pass-1", true)
	remote := tcpDialer(d.addr("tcp"), "127.0.0.2")
	local := tcpDialer(d.addr("tcp"), "127.0.0.1")

	refusedCode := func(c byte) bool { return c >= 0x80 }

	t.Run("from 127.0.0.2", func(t *testing.T) {
		alice := mustConnectGo(ctx, t, remote, connOpts{clientID: "alice-remote", username: "alice", password: "Alice-Pass-1"})
		for _, f := range []string{"#", "$SYS/#", "$SYS/brokers/+/uptime"} {
			codes, err := alice.subscribe(ctx, 0, f)
			if err != nil || len(codes) != 1 || !refusedCode(codes[0]) {
				t.Errorf("alice from 127.0.0.2 subscribing %q: SUBACK %v (err %v), want refused", f, codes, err)
			}
		}
		for _, f := range []string{"a/#", "+/b", "a/b"} {
			alice.mustSubscribe(ctx, 0, f)
		}
		// MQTT 3.1.1 answers a refused subscription with 0x80.
		raw := dialRaw(ctx, t, remote)
		raw.mustConnect(rawOpts{clientID: "alice-v3", username: "alice", password: "Alice-Pass-1", clean: true})
		if code, err := raw.subscribe("#", 0); err != nil || code != 0x80 {
			t.Errorf("MQTT 3.1.1 subscribe \"#\" from 127.0.0.2: SUBACK 0x%02x (err %v), want 0x80", code, err)
		}
		raw.mustSubscribe("a/#", 1)
		if code, err := raw.subscribe("$SYS/#", 0); err != nil || code != 0x80 {
			t.Errorf("MQTT 3.1.1 subscribe \"$SYS/#\" from 127.0.0.2: SUBACK 0x%02x (err %v), want 0x80", code, err)
		}
		alice.mustPublish(ctx, "a/x", 1, false, "allowed")
		raw.expect("a/x", "allowed", 1)

		root := mustConnectGo(ctx, t, remote, connOpts{clientID: "root-remote", username: "root", password: "Root-Pass-1"})
		root.mustSubscribe(ctx, 0, "#", "$SYS/#")
		dash := mustConnectGo(ctx, t, remote, connOpts{clientID: "dash-remote", username: "dashboard", password: "Dash-Pass-1"})
		dash.mustSubscribe(ctx, 0, "$SYS/#")
		if codes, err := dash.subscribe(ctx, 0, "#"); err != nil || len(codes) != 1 || !refusedCode(codes[0]) {
			t.Errorf("dashboard subscribing \"#\": SUBACK %v (err %v), want refused", codes, err)
		}

		if !haveMosquitto(t) {
			return
		}
		for _, f := range []string{"#", "$SYS/#"} {
			ms := startMosqSub(ctx, t, append(mosqTCP(d, "tcp"), "-A", "127.0.0.2", "-u", "alice", "-P", "Alice-Pass-1",
				"-t", f, "-C", "1", "-W", "20")...)
			if got := ms.waitSubscribed(ctx); got != "128" {
				t.Errorf("mosquitto_sub -A 127.0.0.2 -t %q: granted %q, want 128", f, got)
			}
			if _, err := ms.stderr.waitFor(ctx, ms.done, func(s string) bool { return strings.Contains(s, "denied") }); err != nil {
				t.Errorf("mosquitto_sub -t %q: no refusal message on stderr (%q)", f, ms.stderr.String())
			}
		}
		ms := startMosqSub(ctx, t, append(mosqTCP(d, "tcp"), "-A", "127.0.0.2", "-u", "alice", "-P", "Alice-Pass-1",
			"-t", "a/#", "-C", "1", "-W", "20")...)
		if got := ms.waitSubscribed(ctx); got != "0" {
			t.Errorf("mosquitto_sub -A 127.0.0.2 -t a/#: granted %q, want 0", got)
		}
		alice.mustPublish(ctx, "a/mosq", 0, false, "to-mosquitto")
		if got := ms.wait(ctx); !equalStrings(got, []string{msgLine(false, 0, "a/mosq", "to-mosquitto")}) {
			t.Errorf("mosquitto_sub a/# got %q", got)
		}
	})

	t.Run("from 127.0.0.1", func(t *testing.T) {
		alice := mustConnectGo(ctx, t, local, connOpts{clientID: "alice-local", username: "alice", password: "Alice-Pass-1"})
		alice.mustSubscribe(ctx, 0, "#", "$SYS/#")
		alice.expectTopic(ctx, "$SYS/brokers/edgegate/uptime")
	})

	t.Run("rules are readable", func(t *testing.T) {
		body := string(d.api(t, "GET", "/api/v1/acl", nil, http.StatusOK, nil))
		for _, want := range []string{`"eq":"#"`, `127.0.0.1`, `dashboard`} {
			if !strings.Contains(strings.ReplaceAll(body, " ", ""), want) {
				t.Errorf("GET /api/v1/acl does not show %s: %s", want, body)
			}
		}
	})
}

// TestWildcardPublishRefused proves a PUBLISH to a topic name with a
// wildcard is refused by closing that connection (MQTT 5: a DISCONNECT
// with an error reason, or a plain close), is routed to no one, and leaves
// other clients working.
func TestWildcardPublishRefused(t *testing.T) {
	t.Parallel()
	ctx := testContext(t, 60*time.Second)
	d := startDaemon(t, obj{"auth": obj{"allow_anonymous": true}})
	tcp := tcpDialer(d.addr("tcp"), "")
	watcher := mustConnectGo(ctx, t, tcp, connOpts{clientID: "watcher"})
	watcher.mustSubscribe(ctx, 1, "wild/#")

	for _, topic := range []string{"wild/#", "wild/+/x"} {
		bad := dialRaw(ctx, t, tcp)
		bad.mustConnect(rawOpts{clientID: "wild-raw", clean: true})
		if err := bad.write(publishPacket(topic, 1, false, 1, "must not route")); err != nil {
			t.Fatal(err)
		}
		got, err := bad.waitClosedByServer(10 * time.Second)
		if err != nil {
			t.Errorf("raw MQTT 3.1.1 publish to %q: %v", topic, err)
		}
		for _, p := range got {
			if p.kind() == 4 {
				t.Errorf("publish to %q was acknowledged (PUBACK)", topic)
			}
		}
	}

	g := mustConnectGo(ctx, t, tcp, connOpts{clientID: "wild-go"})
	_ = g.publish(ctx, "wild/+", 0, false, "must not route")
	if err := g.waitClosed(ctx); err != nil {
		t.Errorf("MQTT 5 publish to \"wild/+\": connection still open: %v", err)
	}
	// MQTT 5 lets the server call it a malformed packet (0x81), a protocol
	// error (0x82) or an invalid topic name (0x90).
	if dc := g.serverDisconnect(); dc != nil && dc.ReasonCode != 0x81 && dc.ReasonCode != 0x82 && dc.ReasonCode != 0x90 {
		t.Errorf("MQTT 5 publish to \"wild/+\": DISCONNECT reason 0x%02x, want 0x81, 0x82 or 0x90", dc.ReasonCode)
	}

	if haveMosquitto(t) {
		r := runMosquitto(ctx, t, "mosquitto_pub", append(mosqTCP(d, "tcp"), "-t", "wild/#", "-m", "x")...)
		if r.code == 0 {
			t.Errorf("mosquitto_pub -t wild/# succeeded")
		}
	}

	// The watcher is unaffected and saw none of the refused messages.
	ok := mustConnectGo(ctx, t, tcp, connOpts{clientID: "wild-ok"})
	ok.mustPublish(ctx, "wild/ok", 1, false, "fine")
	watcher.expect(ctx, "wild/ok", "fine")
}
