package e2e

import (
	"context"
	"crypto/tls"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// transport is one way to reach the broker, for the Go client and, when
// mosquitto can speak it, for mosquitto_pub/mosquitto_sub.
type transport struct {
	name string
	dial dialer
	// mosq are mosquitto's connection arguments (host, port, TLS files);
	// nil when mosquitto cannot use this transport.
	mosq []string
	// versions are the -V values to run mosquitto with.
	versions []string
}

var allMosquittoVersions = []string{"mqttv31", "mqttv311", "mqttv5"}

// exerciseQoS checks that a message at QoS 0, 1 and 2 goes from publisher
// to subscriber over tr, with the QoS it was sent at: Go to Go, and then
// for each mosquitto protocol version, mosquitto and Go publishers to
// mosquitto and Go subscribers at once.
func exerciseQoS(ctx context.Context, t *testing.T, tr transport) {
	t.Helper()
	for qos := byte(0); qos <= 2; qos++ {
		q := strconv.Itoa(int(qos))
		topic := "e2e/" + tr.name + "/qos" + q
		sub := mustConnectGo(ctx, t, tr.dial, connOpts{clientID: tr.name + "-gosub-" + q})
		sub.mustSubscribe(ctx, qos, topic)
		pub := mustConnectGo(ctx, t, tr.dial, connOpts{clientID: tr.name + "-gopub-" + q})

		payload := "go-to-go-qos" + q
		pub.mustPublish(ctx, topic, qos, false, payload)
		if m := sub.expect(ctx, topic, payload); m.QoS != qos {
			t.Fatalf("%s: received at QoS %d, want %d", tr.name, m.QoS, qos)
		}
		if tr.mosq == nil || !haveMosquitto(t) {
			continue
		}
		for _, v := range tr.versions {
			ms := startMosqSub(ctx, t, append(slices.Clone(tr.mosq), "-V", v, "-q", q, "-t", topic, "-C", "2", "-W", "20")...)
			if got := ms.waitSubscribed(ctx); got != q {
				t.Fatalf("%s %s: mosquitto_sub granted %q, want %s", tr.name, v, got, q)
			}
			fromMosq, fromGo := "mosquitto-"+v+"-qos"+q, "go-"+v+"-qos"+q
			mosqPub(ctx, t, append(slices.Clone(tr.mosq), "-V", v, "-q", q, "-t", topic, "-m", fromMosq)...)
			pub.mustPublish(ctx, topic, qos, false, fromGo)

			want := []string{msgLine(false, qos, topic, fromMosq), msgLine(false, qos, topic, fromGo)}
			slices.Sort(want)
			got := ms.wait(ctx)
			slices.Sort(got)
			if !slices.Equal(got, want) {
				t.Fatalf("%s %s QoS %d: mosquitto_sub printed %q, want %q (stderr %q)", tr.name, v, qos, got, want, ms.stderr.String())
			}
			if ms.code != 0 {
				t.Fatalf("%s %s: mosquitto_sub exit code %d", tr.name, v, ms.code)
			}
			var goGot []string
			for range 2 {
				m, err := sub.next(ctx)
				if err != nil {
					t.Fatalf("%s %s: Go subscriber: %v", tr.name, v, err)
				}
				goGot = append(goGot, msgLine(m.Retain, m.QoS, m.Topic, string(m.Payload)))
			}
			slices.Sort(goGot)
			if !slices.Equal(goGot, want) {
				t.Fatalf("%s %s QoS %d: Go subscriber got %q, want %q", tr.name, v, qos, goGot, want)
			}
		}
	}
}

// mosqTCP are mosquitto's arguments for a plain listener.
func mosqTCP(d *daemon, listener string) []string {
	return []string{"-h", "127.0.0.1", "-p", d.port(listener)}
}

// TestMessagingOverTCP proves QoS 0, 1 and 2 delivery on the MQTT TCP
// listener with MQTT 3.1, 3.1.1 and 5 (mosquitto) and MQTT 5 (Go), in
// every publisher/subscriber combination, and with a raw MQTT 3.1.1 client.
func TestMessagingOverTCP(t *testing.T) {
	t.Parallel()
	ctx := testContext(t, 90*time.Second)
	d := startDaemon(t, obj{"auth": obj{"allow_anonymous": true}})
	exerciseQoS(ctx, t, transport{
		name:     "tcp",
		dial:     tcpDialer(d.addr("tcp"), ""),
		mosq:     mosqTCP(d, "tcp"),
		versions: allMosquittoVersions,
	})

	t.Run("raw MQTT 3.1.1", func(t *testing.T) {
		sub := dialRaw(ctx, t, tcpDialer(d.addr("tcp"), ""))
		sub.mustConnect(rawOpts{clientID: "raw-sub", clean: true})
		pub := dialRaw(ctx, t, tcpDialer(d.addr("tcp"), ""))
		pub.mustConnect(rawOpts{clientID: "raw-pub", clean: true})
		for qos := byte(0); qos <= 2; qos++ {
			topic := fmt.Sprintf("e2e/raw/qos%d", qos)
			sub.mustSubscribe(topic, qos)
			pub.mustPublish(topic, qos, false, "raw-"+topic)
			sub.expect(topic, "raw-"+topic, qos)
		}
	})
}

// TestMessagingOverTLS proves QoS 0, 1 and 2 over MQTT/TLS with a client
// that trusts only the local CA root (one-way) and with a client
// certificate issued by the local CA (two-way, client_auth required), for
// mosquitto and Go, and over WSS for Go. It also proves the two-way
// listener refuses clients without a certificate or with one from another
// CA, and that TLS below 1.2 is refused.
func TestMessagingOverTLS(t *testing.T) {
	t.Parallel()
	ctx := testContext(t, 120*time.Second)
	d := newDaemon(t, obj{
		"auth": obj{"allow_anonymous": true},
		"listeners": obj{
			"tls": obj{"tls": obj{"client_auth": "required", "client_ca": "local"}},
			"tls-oneway": obj{"type": "tls", "bind": "127.0.0.1:0", "max_clients": 100,
				"tls": obj{"client_auth": "none", "client_ca": "local"}},
		},
	}, daemonOptions{})
	// First start creates the local CA; the store is read while stopped.
	d.start()
	d.stop()
	p := openLocalCA(t, d, clientCertRequest{name: "client", cn: "e2e-client"})
	d.start()

	client := p.certs["client"]
	oneWay := p.tlsConfig(nil)
	twoWay := p.tlsConfig(&client)

	t.Run("one-way", func(t *testing.T) {
		exerciseQoS(ctx, t, transport{
			name:     "tls-oneway",
			dial:     tlsDialer(d.addr("tls-oneway"), oneWay),
			mosq:     []string{"-h", "127.0.0.1", "-p", d.port("tls-oneway"), "--cafile", p.rootFile},
			versions: allMosquittoVersions,
		})
	})
	t.Run("two-way", func(t *testing.T) {
		exerciseQoS(ctx, t, transport{
			name: "tls-twoway",
			dial: tlsDialer(d.addr("tls"), twoWay),
			mosq: []string{"-h", "127.0.0.1", "-p", d.port("tls"), "--cafile", p.rootFile,
				"--cert", client.certFile, "--key", client.keyFile},
			versions: allMosquittoVersions,
		})
	})
	t.Run("wss one-way", func(t *testing.T) {
		exerciseQoS(ctx, t, transport{name: "wss", dial: wsDialer(d.wsURL("wss"), "mqtt", oneWay)})
	})

	t.Run("two-way refuses a client without certificate", func(t *testing.T) {
		if _, err := connectGo(ctx, t, tlsDialer(d.addr("tls"), oneWay), connOpts{clientID: "no-cert"}); err == nil {
			t.Fatal("a client without certificate connected to the client_auth=required listener")
		}
		if !haveMosquitto(t) {
			return
		}
		r := runMosquitto(ctx, t, "mosquitto_pub", "-h", "127.0.0.1", "-p", d.port("tls"), "--cafile", p.rootFile,
			"-q", "1", "-t", "e2e/nocert", "-m", "x")
		if r.code == 0 {
			t.Fatalf("mosquitto_pub without certificate succeeded on the two-way listener\nstderr: %s", r.stderr)
		}
	})
	t.Run("two-way refuses a certificate from another CA", func(t *testing.T) {
		foreign := foreignClientCert(t, "e2e-client")
		if _, err := connectGo(ctx, t, tlsDialer(d.addr("tls"), p.tlsConfig(&foreign)), connOpts{clientID: "foreign"}); err == nil {
			t.Fatal("a client certificate from an unknown CA was accepted")
		}
		if !haveMosquitto(t) {
			return
		}
		r := runMosquitto(ctx, t, "mosquitto_pub", "-h", "127.0.0.1", "-p", d.port("tls"), "--cafile", p.rootFile,
			"--cert", foreign.certFile, "--key", foreign.keyFile, "-q", "1", "-t", "e2e/foreign", "-m", "x")
		if r.code == 0 {
			t.Fatalf("mosquitto_pub with a foreign certificate succeeded\nstderr: %s", r.stderr)
		}
	})
	t.Run("one-way client must trust the local CA", func(t *testing.T) {
		// Another root: the server's chain must not verify.
		other := foreignClientCert(t, "x")
		cfg := oneWay.Clone()
		cfg.RootCAs = x509PoolOf(t, other.tls.Certificate[0])
		if _, err := connectGo(ctx, t, tlsDialer(d.addr("tls-oneway"), cfg), connOpts{clientID: "wrong-root"}); err == nil {
			t.Fatal("the server certificate verified against an unrelated root")
		}
	})
	t.Run("TLS below 1.2 refused", func(t *testing.T) {
		old := oneWay.Clone()
		old.MinVersion, old.MaxVersion = tls.VersionTLS10, tls.VersionTLS11
		if _, err := connectGo(ctx, t, tlsDialer(d.addr("tls-oneway"), old), connOpts{clientID: "tls11"}); err == nil {
			t.Fatal("a TLS 1.1 client connected")
		}
	})
}

// TestMessagingOverWebSocket proves QoS 0, 1 and 2 over MQTT over
// WebSocket with each subprotocol of seed 002: "mqtt" (Go MQTT 5 client),
// "mqttv3.1.1" and "mqttv3.1" (raw MQTT 3.1.1 and 3.1 clients), including
// delivery between a WebSocket client and a TCP client. mosquitto's
// clients (2.0) cannot speak WebSocket, so this transport is Go only.
func TestMessagingOverWebSocket(t *testing.T) {
	t.Parallel()
	ctx := testContext(t, 90*time.Second)
	d := startDaemon(t, obj{"auth": obj{"allow_anonymous": true}})
	if u := d.wsURL("ws"); !strings.HasPrefix(u, "ws://") || !strings.HasSuffix(u, "/mqtt") {
		t.Fatalf("ws listener announced as %q, want ws://…/mqtt", u)
	}

	t.Run("subprotocol mqtt", func(t *testing.T) {
		exerciseQoS(ctx, t, transport{name: "ws", dial: wsDialer(d.wsURL("ws"), "mqtt", nil)})
	})
	for _, c := range []struct {
		subprotocol string
		level       byte
	}{{"mqttv3.1.1", 4}, {"mqttv3.1", 3}} {
		t.Run("subprotocol "+c.subprotocol, func(t *testing.T) {
			dial := wsDialer(d.wsURL("ws"), c.subprotocol, nil)
			sub := dialRaw(ctx, t, dial)
			sub.mustConnect(rawOpts{level: c.level, clientID: "ws-sub-" + c.subprotocol, clean: true})
			pub := dialRaw(ctx, t, dial)
			pub.mustConnect(rawOpts{level: c.level, clientID: "ws-pub-" + c.subprotocol, clean: true})
			tcpSub := mustConnectGo(ctx, t, tcpDialer(d.addr("tcp"), ""), connOpts{clientID: "tcp-sub-" + c.subprotocol})
			for qos := byte(0); qos <= 2; qos++ {
				topic := fmt.Sprintf("e2e/%s/qos%d", c.subprotocol, qos)
				sub.mustSubscribe(topic, qos)
				tcpSub.mustSubscribe(ctx, qos, topic)
				payload := "ws-" + topic
				pub.mustPublish(topic, qos, false, payload)
				sub.expect(topic, payload, qos)
				if m := tcpSub.expect(ctx, topic, payload); m.QoS != qos {
					t.Fatalf("TCP subscriber got QoS %d, want %d", m.QoS, qos)
				}
				// And back: TCP publisher to WebSocket subscriber.
				tcpSub.mustPublish(ctx, topic, qos, false, "tcp-"+topic)
				tcpSub.expect(ctx, topic, "tcp-"+topic)
				sub.expect(topic, "tcp-"+topic, qos)
			}
		})
	}
}
