package e2e

import (
	"encoding/json"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestSysTopics proves a subscriber receives seed 002's $SYS topics under
// $SYS/brokers/<node>/ with the configured node name and sys.interval
// (1 s here): version, uptime (repeatedly), sysdescr, stats and metrics;
// clients/<id>/connected and /disconnected JSON with the seed's fields when
// a client comes and goes; and the same statistics at /api/v1/stats and
// /metrics.
func TestSysTopics(t *testing.T) {
	t.Parallel()
	ctx := testContext(t, 60*time.Second)
	d := startDaemon(t, obj{"node": "e2e-node", "auth": obj{"allow_anonymous": true}})
	tcp := tcpDialer(d.addr("tcp"), "")
	const prefix = "$SYS/brokers/e2e-node/"

	sub := mustConnectGo(ctx, t, tcp, connOpts{clientID: "sys-watcher"})
	sub.mustSubscribe(ctx, 0, prefix+"clients/+/connected", prefix+"clients/+/disconnected")

	probe := mustConnectGo(ctx, t, tcp, connOpts{clientID: "sys-probe", username: "probe-user"})
	m := sub.expectTopic(ctx, prefix+"clients/sys-probe/connected")
	var conn struct {
		ClientID  string `json:"clientid"`
		Username  string `json:"username"`
		IPAddress string `json:"ipaddress"`
		Session   *bool  `json:"session"`
		Protocol  int    `json:"protocol"`
		Connack   *int   `json:"connack"`
		TS        int64  `json:"ts"`
	}
	if err := json.Unmarshal(m.Payload, &conn); err != nil {
		t.Fatalf("connected payload %s: %v", m.Payload, err)
	}
	if conn.ClientID != "sys-probe" || conn.Username != "probe-user" || conn.IPAddress != "127.0.0.1" ||
		conn.Protocol != 5 || conn.Connack == nil || *conn.Connack != 0 || conn.Session == nil {
		t.Errorf("connected payload %s: want clientid sys-probe, username probe-user, ipaddress 127.0.0.1, protocol 5, connack 0, session", m.Payload)
	}
	if now := time.Now().Unix(); conn.TS < now-60 || conn.TS > now+60 {
		t.Errorf("connected ts %d is not about now (%d)", conn.TS, now)
	}
	probe.close()
	m = sub.expectTopic(ctx, prefix+"clients/sys-probe/disconnected")
	var disc struct {
		ClientID string `json:"clientid"`
		Username string `json:"username"`
		Reason   string `json:"reason"`
	}
	if err := json.Unmarshal(m.Payload, &disc); err != nil || disc.ClientID != "sys-probe" || disc.Username != "probe-user" || disc.Reason == "" {
		t.Errorf("disconnected payload %s (err %v): want clientid, username and a reason", m.Payload, err)
	}

	// Periodic topics at sys.interval.
	sub.mustSubscribe(ctx, 0, prefix+"uptime", prefix+"version", prefix+"sysdescr",
		prefix+"stats/clients/count", prefix+"metrics/messages/received")
	seen := map[string]string{}
	uptimes := 0
	for uptimes < 2 || len(seen) < 5 {
		m, err := sub.next(ctx)
		if err != nil {
			t.Fatalf("$SYS topics seen %v (uptime %d times): %v", seen, uptimes, err)
		}
		topic := strings.TrimPrefix(m.Topic, prefix)
		seen[topic] = string(m.Payload)
		if topic == "uptime" {
			uptimes++
		}
	}
	for _, topic := range []string{"uptime", "version", "sysdescr"} {
		if seen[topic] == "" {
			t.Errorf("%s%s is empty", prefix, topic)
		}
	}
	if n, err := strconv.Atoi(seen["stats/clients/count"]); err != nil || n < 1 {
		t.Errorf("stats/clients/count = %q, want >= 1 (the watcher)", seen["stats/clients/count"])
	}

	if haveMosquitto(t) {
		ms := startMosqSub(ctx, t, append(mosqTCP(d, "tcp"), "-t", prefix+"version", "-C", "1", "-W", "20")...)
		got := ms.wait(ctx)
		if len(got) != 1 || !strings.HasPrefix(got[0], "0 0 "+prefix+"version ") {
			t.Errorf("mosquitto_sub %sversion got %q", prefix, got)
		}
	}

	var stats map[string]any
	d.api(t, "GET", "/api/v1/stats", nil, http.StatusOK, &stats)
	if len(stats) == 0 {
		t.Errorf("GET /api/v1/stats is empty")
	}
	resp, err := apiClient.Get(d.apiBase + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), "# TYPE") {
		t.Errorf("GET /metrics: status %d, body %.300s; want Prometheus text", resp.StatusCode, body)
	}
}
