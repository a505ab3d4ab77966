package e2e

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// waitDisconnected waits until the broker shows clientID's session as
// disconnected (so later publishes are queued for it, not written to a
// closing connection).
func waitDisconnected(ctx context.Context, t *testing.T, d *daemon, clientID string) {
	t.Helper()
	waitUntil(ctx, t, clientID+" to be disconnected", func() bool {
		status, body := d.apiRaw(t, "GET", "/api/v1/clients/"+url.PathEscape(clientID), "", nil, true)
		if status != http.StatusOK {
			t.Fatalf("GET /api/v1/clients/%s: status %d: %s (the persistent session must be listed)", clientID, status, body)
		}
		var ci clientInfo
		if err := jsonUnmarshal(body, &ci); err != nil {
			t.Fatal(err)
		}
		return !ci.Connected
	})
}

// waitAcknowledged waits until the broker has processed the client's
// acknowledgements of everything it was sent (paho acknowledges after its
// handlers return, asynchronously), so that a following disconnect or
// publish does not race them.
func waitAcknowledged(ctx context.Context, t *testing.T, d *daemon, clientID string) {
	t.Helper()
	waitUntil(ctx, t, clientID+" to have no unacknowledged messages", func() bool {
		var ci clientInfo
		d.api(t, "GET", "/api/v1/clients/"+url.PathEscape(clientID), nil, http.StatusOK, &ci)
		return ci.Inflight == 0
	})
}

// queuedPerTopic is how many messages are queued on one topic for an
// offline session. With several, a wrong delivery order is seen at once
// (not only by chance).
const queuedPerTopic = 8

// TestPersistenceAcrossRestart proves that retained messages and persistent
// sessions (with QoS 1 and 2 messages queued while their client was away)
// survive a clean stop (SIGTERM, exit 0) and a crash (SIGKILL): every
// message the broker acknowledged is delivered after the restart, to an
// MQTT 3.1.1 clean-session=false client (mosquitto_sub -c) and to an
// MQTT 5 client with a session expiry interval (Go), and retained messages
// go to a new subscriber with the retain flag.
func TestPersistenceAcrossRestart(t *testing.T) {
	t.Parallel()
	for _, how := range []string{"clean stop", "kill -9"} {
		t.Run(how, func(t *testing.T) {
			t.Parallel()
			ctx := testContext(t, 120*time.Second)
			d := startDaemon(t, obj{"auth": obj{"allow_anonymous": true}})
			d.setupAdmin(t)
			mosq := haveMosquitto(t)
			tcp := func() dialer { return tcpDialer(d.addr("tcp"), "") } // ports change on restart

			// Persistent subscribers, then away.
			if mosq {
				r := runMosquitto(ctx, t, "mosquitto_sub", append(mosqTCP(d, "tcp"),
					"-V", "mqttv311", "-c", "-i", "persist-mq", "-q", "1", "-t", "persist/mq/#", "-E", "-d")...)
				if r.code != 0 || !containsLine(r.stdout, "Subscribed (mid: 1): 1") {
					t.Fatalf("mosquitto_sub -c -E: exit %d\nstdout: %s\nstderr: %s", r.code, r.stdout, r.stderr)
				}
				waitDisconnected(ctx, t, d, "persist-mq")
			}
			goSub := mustConnectGo(ctx, t, tcp(), connOpts{clientID: "persist-go", sessionExpiry: 3600})
			goSub.mustSubscribe(ctx, 1, "persist/go/#")
			goSub.mustSubscribe(ctx, 2, "persist/go2/#")
			goSub.close()
			waitDisconnected(ctx, t, d, "persist-go")

			// Acknowledged publishes while they are away, and retained ones.
			pub := mustConnectGo(ctx, t, tcp(), connOpts{clientID: "persist-pub"})
			var wantGo []string
			for i := 1; i <= queuedPerTopic; i++ {
				// One topic: MQTT requires the order of messages on a topic
				// from one publisher to be kept ("Ordered Topic", §4.6).
				topic, payload := "persist/go/q", fmt.Sprintf("queued-%d", i)
				pub.mustPublish(ctx, topic, 1, false, payload)
				wantGo = append(wantGo, msgLine(false, 1, topic, payload))
			}
			pub.mustPublish(ctx, "persist/go2/x", 2, false, "queued-qos2")
			wantGo = append(wantGo, msgLine(false, 2, "persist/go2/x", "queued-qos2"))
			pub.mustPublish(ctx, "retained/go", 1, true, "keep-go")
			var wantMq []string
			wantRetained := []string{msgLine(true, 1, "retained/go", "keep-go")}
			if mosq {
				for i := 1; i <= queuedPerTopic; i++ {
					topic, payload := "persist/mq/q", fmt.Sprintf("mq-queued-%d", i)
					mosqPub(ctx, t, append(mosqTCP(d, "tcp"), "-q", "1", "-t", topic, "-m", payload)...)
					wantMq = append(wantMq, msgLine(false, 1, topic, payload))
				}
				mosqPub(ctx, t, append(mosqTCP(d, "tcp"), "-q", "1", "-r", "-t", "retained/mq", "-m", "keep-mq")...)
				wantRetained = append(wantRetained, msgLine(true, 1, "retained/mq", "keep-mq"))
			}
			pub.close()

			if how == "kill -9" {
				d.kill()
				d.start()
			} else {
				d.restart()
			}

			if mosq {
				ms := startMosqSub(ctx, t, append(mosqTCP(d, "tcp"),
					"-V", "mqttv311", "-c", "-i", "persist-mq", "-q", "1", "-t", "persist/mq/#", "-C", strconv.Itoa(queuedPerTopic), "-W", "20")...)
				checkQueued(t, how+", mosquitto_sub -c (MQTT 3.1.1)", ms.wait(ctx), wantMq)
			}

			back, err := connectGo(ctx, t, tcp(), connOpts{clientID: "persist-go", keepSession: true, sessionExpiry: 3600})
			if err != nil {
				t.Fatalf("reconnect persist-go: %v", err)
			}
			if !back.connack.SessionPresent {
				t.Errorf("after %s, CONNACK session present = false for persist-go, want true", how)
			}
			var gotGo []string
			for range wantGo {
				m, err := back.next(ctx)
				if err != nil {
					t.Fatalf("after %s, persist-go got %q, want %q: %v", how, gotGo, wantGo, err)
				}
				gotGo = append(gotGo, msgLine(m.Retain, m.QoS, m.Topic, string(m.Payload)))
			}
			checkQueued(t, how+", persist-go (MQTT 5)", gotGo, wantGo)

			fresh := mustConnectGo(ctx, t, tcp(), connOpts{clientID: "retained-reader"})
			fresh.mustSubscribe(ctx, 1, "retained/#")
			var gotRetained []string
			for range wantRetained {
				m, err := fresh.next(ctx)
				if err != nil {
					t.Fatalf("after %s, retained messages %q, want %q: %v", how, gotRetained, wantRetained, err)
				}
				gotRetained = append(gotRetained, msgLine(m.Retain, m.QoS, m.Topic, string(m.Payload)))
			}
			slices.Sort(gotRetained)
			slices.Sort(wantRetained)
			if !slices.Equal(gotRetained, wantRetained) {
				t.Errorf("after %s, retained messages %q, want %q", how, gotRetained, wantRetained)
			}
			if mosq {
				ms := startMosqSub(ctx, t, append(mosqTCP(d, "tcp"), "-q", "1", "-t", "retained/#", "-C", "2", "-W", "20")...)
				got := ms.wait(ctx)
				slices.Sort(got)
				if !slices.Equal(got, wantRetained) {
					t.Errorf("after %s, mosquitto_sub got retained %q, want %q", how, got, wantRetained)
				}
			}
		})
	}
}

func containsLine(out, line string) bool {
	return slices.Contains(splitLines(out), line)
}

func splitLines(s string) []string {
	return strings.Split(strings.ReplaceAll(s, "\r", ""), "\n")
}

// checkQueued checks that the messages queued for a persistent session all
// arrived, once each, and — separately — in the order they were published
// on each topic: MQTT 3.1.1 and 5 §4.6 make every topic an "Ordered Topic"
// by default, so messages from one publisher on one topic must reach a
// subscriber in the order they were published.
func checkQueued(t *testing.T, who string, got, want []string) {
	t.Helper()
	g, w := slices.Clone(got), slices.Clone(want)
	slices.Sort(g)
	slices.Sort(w)
	if !slices.Equal(g, w) {
		t.Errorf("%s: messages lost or duplicated: got %q, want %q", who, got, want)
		return
	}
	for _, topic := range []string{"persist/go/q", "persist/mq/q", "persist/go2/x"} {
		if a, b := onTopic(got, topic), onTopic(want, topic); !slices.Equal(a, b) {
			t.Errorf("%s: all messages arrived but out of order on %s: got %q, want %q (MQTT §4.6 ordered topic)", who, topic, a, b)
		}
	}
}

// onTopic keeps the msgLine lines of one topic, in order.
func onTopic(lines []string, topic string) []string {
	var out []string
	for _, l := range lines {
		if f := strings.Fields(l); len(f) >= 3 && f[2] == topic {
			out = append(out, l)
		}
	}
	return out
}

// TestOfflineQueueBounded proves the queue of an offline persistent
// session is bounded by mqtt.max_queued_messages: with a bound of 3 and 10
// acknowledged QoS 1 publishes while the client is away, it gets 3 messages
// back, and the 7 others are counted in messages.dropped (GET
// /api/v1/stats), which $SYS metrics/messages/dropped reports too.
func TestOfflineQueueBounded(t *testing.T) {
	t.Parallel()
	ctx := testContext(t, 60*time.Second)
	d := startDaemon(t, obj{
		"auth": obj{"allow_anonymous": true},
		"mqtt": obj{"max_queued_messages": 3},
	})
	d.setupAdmin(t)
	tcp := tcpDialer(d.addr("tcp"), "")
	away := mustConnectGo(ctx, t, tcp, connOpts{clientID: "bounded", sessionExpiry: 3600})
	away.mustSubscribe(ctx, 1, "bounded/t")
	away.close()
	waitDisconnected(ctx, t, d, "bounded")

	pub := mustConnectGo(ctx, t, tcp, connOpts{clientID: "bounded-pub"})
	for i := 1; i <= 10; i++ {
		pub.mustPublish(ctx, "bounded/t", 1, false, fmt.Sprintf("m%d", i))
	}
	type stats struct {
		Messages struct {
			Dropped uint64 `json:"dropped"`
		} `json:"messages"`
	}
	var st stats
	waitUntil(ctx, t, "messages.dropped to reach 7", func() bool {
		d.api(t, "GET", "/api/v1/stats", nil, http.StatusOK, &st)
		return st.Messages.Dropped >= 7
	})
	if st.Messages.Dropped != 7 {
		t.Errorf("messages.dropped = %d, want 7", st.Messages.Dropped)
	}

	back := mustConnectGo(ctx, t, tcp, connOpts{clientID: "bounded", keepSession: true, sessionExpiry: 3600})
	var got []string
	for range 3 {
		m, err := back.next(ctx)
		if err != nil {
			t.Fatalf("after reconnect got %q, want 3 queued messages: %v", got, err)
		}
		got = append(got, string(m.Payload))
	}
	// Anything queued beyond the bound would have been resent on connect,
	// before this marker. The bound also counts unacknowledged messages of
	// a connected session, so the acknowledgements must be in first.
	waitAcknowledged(ctx, t, d, "bounded")
	pub.mustPublish(ctx, "bounded/t", 1, false, "marker")
	if m := back.expectTopic(ctx, "bounded/t"); string(m.Payload) != "marker" {
		t.Errorf("after the 3 queued messages %q came %q, want only the new marker (the queue holds at most 3)", got, m.Payload)
	}
}

// TestQueuedMessagesInOrder proves that QoS 1 messages queued for an
// offline persistent session on one topic are delivered, when it comes
// back, in the order they were published (MQTT 3.1.1 and 5 §4.6: every
// topic is an "Ordered Topic" by default). No restart is involved; the
// cycle is repeated because a wrong order can look right by chance.
func TestQueuedMessagesInOrder(t *testing.T) {
	t.Parallel()
	ctx := testContext(t, 60*time.Second)
	d := startDaemon(t, obj{"auth": obj{"allow_anonymous": true}})
	d.setupAdmin(t)
	tcp := tcpDialer(d.addr("tcp"), "")
	sub := mustConnectGo(ctx, t, tcp, connOpts{clientID: "ordered", sessionExpiry: 3600})
	sub.mustSubscribe(ctx, 1, "ordered/t")
	pub := mustConnectGo(ctx, t, tcp, connOpts{clientID: "ordered-pub"})
	for round := 1; round <= 4; round++ {
		waitAcknowledged(ctx, t, d, "ordered")
		sub.close()
		waitDisconnected(ctx, t, d, "ordered")
		var want []string
		for i := 1; i <= queuedPerTopic; i++ {
			p := fmt.Sprintf("r%d-m%d", round, i)
			pub.mustPublish(ctx, "ordered/t", 1, false, p)
			want = append(want, msgLine(false, 1, "ordered/t", p))
		}
		// A PUBACK reaches the publisher before the broker has queued the
		// message for subscribers (mochi acknowledges first); resuming the
		// session while the last one is still being queued is a different
		// race from the one under test here.
		waitUntil(ctx, t, "all messages of the round to be queued", func() bool {
			var ci clientInfo
			d.api(t, "GET", "/api/v1/clients/ordered", nil, http.StatusOK, &ci)
			return ci.Inflight == queuedPerTopic
		})
		sub = mustConnectGo(ctx, t, tcp, connOpts{clientID: "ordered", keepSession: true, sessionExpiry: 3600})
		var got []string
		for range want {
			m, err := sub.next(ctx)
			if err != nil {
				t.Fatalf("round %d: got %q, want %q: %v", round, got, want, err)
			}
			got = append(got, msgLine(m.Retain, m.QoS, m.Topic, string(m.Payload)))
		}
		if !slices.Equal(got, want) {
			t.Fatalf("round %d: queued messages on one topic came out of order:\n got %q\nwant %q", round, got, want)
		}
	}
}
