package e2e

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestHTTPPublish proves seed 002's HTTP publish API with the requests curl
// makes: `curl -u admin:PASS -d "qos=1&retain=0&topic=/a/b/c&message=hello
// from http" http://127.0.0.1:PORT/mqtt/publish` (form body sent as is,
// Content-Type application/x-www-form-urlencoded, Basic auth) reaches an
// MQTT subscriber at QoS 1; retain=1 is kept for later subscribers; the
// JSON twin /api/v1/publish works; no credentials, a wildcard topic or a bad
// QoS are refused with a JSON error and publish nothing.
func TestHTTPPublish(t *testing.T) {
	t.Parallel()
	ctx := testContext(t, 60*time.Second)
	d := startDaemon(t, obj{"auth": obj{"allow_anonymous": true}})
	d.setupAdmin(t)
	sub := mustConnectGo(ctx, t, tcpDialer(d.addr("tcp"), ""), connOpts{clientID: "http-sub"})
	sub.mustSubscribe(ctx, 1, "/a/b/c")
	sub.mustSubscribe(ctx, 2, "http/#")

	form := func(body string, auth bool) (int, []byte) {
		return d.apiRaw(t, "POST", "/mqtt/publish", "application/x-www-form-urlencoded", []byte(body), auth)
	}
	wantOK := func(status int, body []byte) {
		t.Helper()
		if status != http.StatusOK {
			t.Fatalf("status %d: %s", status, body)
		}
		var r struct {
			Result string `json:"result"`
		}
		if err := json.Unmarshal(body, &r); err != nil || r.Result != "ok" {
			t.Fatalf("answer %s, want {\"result\":\"ok\"}", body)
		}
	}
	wantError := func(what string, status, want int, body []byte) {
		t.Helper()
		var e struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		}
		if status != want || json.Unmarshal(body, &e) != nil || e.Code == "" || e.Message == "" {
			t.Errorf("%s: status %d body %s, want %d with a JSON {code, message}", what, status, body, want)
		}
	}

	// Refusals first: none of them may reach the subscriber.
	st, b := form("qos=1&retain=0&topic=/a/b/c&message=no credentials", false)
	wantError("no credentials", st, http.StatusUnauthorized, b)
	st, b = form("qos=1&retain=0&topic=http/%23&message=wildcard", true)
	wantError("wildcard topic", st, http.StatusBadRequest, b)
	st, b = form("qos=3&retain=0&topic=/a/b/c&message=bad qos", true)
	wantError("qos 3", st, http.StatusBadRequest, b)

	// The seed's example, byte for byte.
	wantOK(form("qos=1&retain=0&topic=/a/b/c&message=hello from http", true))
	m := sub.expect(ctx, "/a/b/c", "hello from http")
	if m.QoS != 1 || m.Retain {
		t.Errorf("HTTP publish arrived with QoS %d retain %v, want QoS 1 not retained", m.QoS, m.Retain)
	}

	wantOK(form("qos=2&retain=1&topic=http/kept&message=retained+via+http&client=http-tester", true))
	if m := sub.expect(ctx, "http/kept", "retained via http"); m.QoS != 2 {
		t.Errorf("QoS 2 HTTP publish arrived at QoS %d", m.QoS)
	}

	status, body := d.apiRaw(t, "POST", "/api/v1/publish", "application/json",
		mustJSON(t, obj{"topic": "http/json", "payload": "from json", "qos": 1}), true)
	wantOK(status, body)
	sub.expect(ctx, "http/json", "from json")

	later := mustConnectGo(ctx, t, tcpDialer(d.addr("tcp"), ""), connOpts{clientID: "http-later"})
	later.mustSubscribe(ctx, 1, "http/kept")
	if m := later.expect(ctx, "http/kept", "retained via http"); !m.Retain {
		t.Errorf("retain=1 HTTP publish delivered to a later subscriber without the retain flag")
	}
	if !haveMosquitto(t) {
		return
	}
	ms := startMosqSub(ctx, t, append(mosqTCP(d, "tcp"), "-q", "1", "-t", "http/kept", "-C", "1", "-W", "20")...)
	if got := ms.wait(ctx); !equalStrings(got, []string{msgLine(true, 1, "http/kept", "retained via http")}) {
		t.Errorf("mosquitto_sub got %q for the HTTP-retained message", got)
	}
	if strings.Contains(d.allLogs(), adminPassword) {
		t.Errorf("the admin password appears in the daemon's log")
	}
}
