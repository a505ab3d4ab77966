package e2e

import (
	"net/http"
	"strings"
	"testing"
	"time"
)

// listenerClients returns the connection count GET /api/v1/listeners
// reports for a listener.
func listenerClients(t *testing.T, d *daemon, name string) int {
	t.Helper()
	var ls []listenerStatus
	d.api(t, "GET", "/api/v1/listeners", nil, http.StatusOK, &ls)
	for _, l := range ls {
		if l.Name == name {
			return l.Clients
		}
	}
	t.Fatalf("listener %q not in GET /api/v1/listeners", name)
	return 0
}

// TestMaxClients proves a listener's max_clients: with max_clients 2 on
// the TCP listener, a third CONNECT is refused cleanly — MQTT 3.1.1
// CONNACK return code 3 (server unavailable), MQTT 5 CONNACK 0x97 (quota
// exceeded), mosquitto_pub reports it — while the two connected clients
// keep working; once one leaves, a new client gets in. The WebSocket
// listener has its own limit.
func TestMaxClients(t *testing.T) {
	t.Parallel()
	ctx := testContext(t, 60*time.Second)
	d := startDaemon(t, obj{
		"auth": obj{"allow_anonymous": true},
		"listeners": obj{
			"tcp": obj{"max_clients": 2},
			"ws":  obj{"max_clients": 1},
		},
	})
	d.setupAdmin(t)
	tcp := tcpDialer(d.addr("tcp"), "")
	first := mustConnectGo(ctx, t, tcp, connOpts{clientID: "first"})
	second := mustConnectGo(ctx, t, tcp, connOpts{clientID: "second"})
	first.mustSubscribe(ctx, 1, "limits/t")

	raw := dialRaw(ctx, t, tcp)
	code, _, err := raw.connect(rawOpts{clientID: "third-v3", clean: true})
	if err != nil {
		t.Errorf("third client (MQTT 3.1.1): no CONNACK: %v", err)
	} else if code != connackServerUnavailable {
		t.Errorf("third client (MQTT 3.1.1): CONNACK return code %d, want 3 (server unavailable)", code)
	}
	if _, err := raw.waitClosedByServer(10 * time.Second); err != nil {
		t.Errorf("third client (MQTT 3.1.1): %v after the refusal", err)
	}

	g, err := connectGo(ctx, t, tcp, connOpts{clientID: "third-v5"})
	switch {
	case err == nil:
		t.Errorf("third client (MQTT 5) was admitted over max_clients 2")
		g.close()
	case g == nil || g.connack == nil:
		t.Errorf("third client (MQTT 5): refused without CONNACK: %v", err)
	case g.connack.ReasonCode != 0x97:
		t.Errorf("third client (MQTT 5): CONNACK reason 0x%02x, want 0x97 quota exceeded", g.connack.ReasonCode)
	}
	if haveMosquitto(t) {
		r := runMosquitto(ctx, t, "mosquitto_pub", append(mosqTCP(d, "tcp"), "-t", "limits/t", "-m", "x")...)
		if r.code == 0 || !strings.Contains(strings.ToLower(r.stderr), "unavailable") {
			t.Errorf("mosquitto_pub over max_clients: exit %d, stderr %q; want a refusal naming the server unavailable", r.code, r.stderr)
		}
	}

	// The admitted clients are unaffected.
	second.mustPublish(ctx, "limits/t", 1, false, "still-served")
	first.expect(ctx, "limits/t", "still-served")

	// Room again once one leaves.
	second.close()
	waitUntil(ctx, t, "the TCP listener to count 1 connection", func() bool { return listenerClients(t, d, "tcp") <= 1 })
	again := mustConnectGo(ctx, t, tcp, connOpts{clientID: "after-leave"})
	again.mustPublish(ctx, "limits/t", 1, false, "welcome")
	first.expect(ctx, "limits/t", "welcome")

	t.Run("websocket", func(t *testing.T) {
		ws := wsDialer(d.wsURL("ws"), "mqtt", nil)
		mustConnectGo(ctx, t, ws, connOpts{clientID: "ws-1"})
		g, err := connectGo(ctx, t, ws, connOpts{clientID: "ws-2"})
		if err == nil {
			g.close()
			t.Fatal("second WebSocket client admitted over max_clients 1")
		}
		if g == nil || g.connack == nil || g.connack.ReasonCode != 0x97 {
			t.Errorf("second WebSocket client: %v, want CONNACK 0x97 quota exceeded", err)
		}
	})
}
