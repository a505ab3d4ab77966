package broker

import (
	"fmt"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/edgegate/edgegate/gateway/broker/internal/mqtttest"
	"github.com/edgegate/edgegate/gateway/config"
)

// These tests hold a subscriber's write queue (mqtt.client_write_queue)
// full. mochi v2.7.9 drops a QoS 1/2 message it cannot queue for a
// connected client, after its publisher got the PUBACK; the patched copy in
// third_party/mochi-mqtt-server (PATCHES.md) keeps it in the session and
// sends it, in order, once the client has room.

// writeGate holds the write loop of one client once it has written a
// PUBLISH, until the test opens the gate: to the broker the client is one
// that stopped reading its socket, whatever the kernel would buffer.
type writeGate struct {
	mqtttest.AllowAll
	client             string
	held               chan struct{} // closed when the write loop is first held
	open               chan struct{} // closed by release
	heldOnce, openOnce sync.Once
}

func newWriteGate(client string) *writeGate {
	return &writeGate{client: client, held: make(chan struct{}), open: make(chan struct{})}
}

func (g *writeGate) ID() string { return "test-write-gate" }

func (g *writeGate) Provides(b byte) bool { return b == mqtt.OnPacketSent || g.AllowAll.Provides(b) }

// OnPacketSent runs in the client's write loop (and, for other packets, in
// its connection's goroutine) after a packet was written.
func (g *writeGate) OnPacketSent(cl *mqtt.Client, pk packets.Packet, _ []byte) {
	if cl.ID != g.client || pk.FixedHeader.Type != packets.Publish {
		return
	}
	g.heldOnce.Do(func() { close(g.held) })
	<-g.open
}

func (g *writeGate) release() { g.openOnce.Do(func() { close(g.open) }) }

func (g *writeGate) waitHeld(t testing.TB) {
	t.Helper()
	select {
	case <-g.held:
	case <-time.After(ioTimeout):
		t.Fatal("the subscriber's write loop never wrote a PUBLISH")
	}
}

// connectWithReceiveMaximum connects like connect, with a v5 Receive
// Maximum when rm is not 0, and returns the connection and whether the
// broker had a session.
func (b *itBroker) connectWithReceiveMaximum(name, id string, o connectOpts, rm uint16) (*mqttConn, bool) {
	b.t.Helper()
	c := b.dial(name)
	pk := mqtttest.ConnectPacket(id, o.options())
	pk.Properties.ReceiveMaximum = rm
	c.ID, c.Version = id, pk.ProtocolVersion
	c.Send(pk)
	ack := c.Expect(packets.Connack)
	if ack.ReasonCode != 0 {
		b.t.Fatalf("%s: CONNACK %#x", id, ack.ReasonCode)
	}
	return c, ack.SessionPresent
}

// readPublishes reads PUBLISH packets, acknowledging QoS 1 ones, until done
// holds for those read, and returns them.
func (c *mqttConn) readPublishes(done func([]packets.Packet) bool) []packets.Packet {
	c.t.Helper()
	var got []packets.Packet
	for !done(got) {
		pk := c.Recv()
		if pk.FixedHeader.Type != packets.Publish {
			c.t.Fatalf("%s: want PUBLISH, got %s", c.ID, mqtttest.Show(pk))
		}
		if pk.FixedHeader.Qos > 0 {
			c.Send(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Puback}, PacketID: pk.PacketID})
		}
		got = append(got, pk)
	}
	return got
}

// readAll reads n messages on topic and then, after the publisher's QoS 1
// marker, whatever else is on its way, and returns all but the marker. A
// message published after a session resumed may overtake the resent queue
// (mochi resends it after the CONNACK), so the marker is published only
// once the queue has arrived.
func (c *mqttConn) readAll(pub *mqttConn, topic string, n int) []packets.Packet {
	c.t.Helper()
	got := c.readPublishes(func(got []packets.Packet) bool { return len(payloadsOn(got, topic)) >= n })
	if code := pub.Publish("slow/marker", "end", 1, false); code != 0 {
		c.t.Fatalf("marker: PUBACK reason %#x", code)
	}
	got = append(got, c.readPublishes(func(got []packets.Packet) bool {
		return len(got) > 0 && got[len(got)-1].TopicName == "slow/marker"
	})...)
	return got[:len(got)-1]
}

// sequence returns "1" … "n".
func sequence(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = strconv.Itoa(i + 1)
	}
	return out
}

// payloadsOn returns the payloads of the messages on topic, in order.
func payloadsOn(pks []packets.Packet, topic string) []string {
	var out []string
	for _, pk := range pks {
		if pk.TopicName == topic {
			out = append(out, string(pk.Payload))
		}
	}
	return out
}

// TestSlowSubscriberKeepsEveryQoS1Message fills a subscriber's write queue
// (4 packets here) and publishes past it: the subscriber gets every QoS 1
// message the publisher had acknowledged, once each and in order, when it
// reads again or when it comes back to its session; no QoS 1 message is
// counted as dropped. The QoS 0 messages that do not fit in the queue are
// dropped and counted.
func TestSlowSubscriberKeepsEveryQoS1Message(t *testing.T) {
	const qos1, qos0 = 50, 5
	for _, tc := range []struct {
		name       string
		opts       connectOpts
		receiveMax uint16 // the subscriber's v5 Receive Maximum, 0 for none
		// reconnect: the subscriber drops its connection with the messages
		// still queued and resumes its session on a new one.
		reconnect   bool
		wantDropped uint64 // of the qos0 QoS 0 messages
	}{
		{name: "v3 reads again", opts: v3, wantDropped: qos0},
		{name: "v5 reads again", opts: v5, wantDropped: qos0},
		// One message is written and one queued; the others wait for a
		// PUBACK, not for room, so three QoS 0 messages fit in the queue.
		{name: "v5 receive maximum 2", opts: v5, receiveMax: 2, wantDropped: qos0 - 3},
		{name: "v3 resumes its session", opts: connectOpts{version: 4, expiry: 3600}, reconnect: true, wantDropped: qos0},
		{name: "v5 resumes its session", opts: connectOpts{version: 5, expiry: 3600}, reconnect: true, wantDropped: qos0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			env := newEnv(t)
			cfg := testConfig(map[string]config.Listener{"tcp": tcpListener(10)})
			cfg.MQTT.ClientWriteQueue = 4
			gate := newWriteGate("slow")
			b := startBrokerWithAuth(t, env, cfg, gate)
			t.Cleanup(gate.release) // before the broker's Close: cleanups run last-in first-out

			slow, _ := b.connectWithReceiveMaximum("tcp", "slow", tc.opts, tc.receiveMax)
			slow.Subscribe("slow/#", 1)
			pub := b.connect("tcp", "pub", v3)

			// Publish returns once the broker has handed the message to
			// its subscribers.
			for i := 1; i <= qos1; i++ {
				if code := pub.Publish("slow/q", strconv.Itoa(i), 1, false); code != 0 {
					t.Fatalf("message %d: PUBACK reason %#x", i, code)
				}
				if i == 1 {
					gate.waitHeld(t)
				}
			}
			if got := b.Stats().Messages.Dropped; got != 0 {
				t.Fatalf("%d QoS 1 messages counted as dropped", got)
			}
			for i := 1; i <= qos0; i++ {
				pub.Publish("slow/zero", strconv.Itoa(i), 0, false)
			}
			if got := b.Stats().Messages.Dropped; got != tc.wantDropped {
				t.Errorf("dropped = %d after %d QoS 0 messages, want %d", got, qos0, tc.wantDropped)
			}

			if tc.reconnect {
				_ = slow.Close()
				b.waitClients("tcp", 1) // the broker handled the disconnection
				gate.release()
				var present bool
				slow, present = b.connectWithReceiveMaximum("tcp", "slow", tc.opts, tc.receiveMax)
				if !present {
					t.Fatal("session not present on reconnection")
				}
			} else {
				gate.release()
			}

			got := slow.readAll(pub, "slow/q", qos1)
			if q := payloadsOn(got, "slow/q"); !slices.Equal(q, sequence(qos1)) {
				t.Errorf("QoS 1 messages received: %s; want 1 to %d, in order", strings.Join(q, " "), qos1)
			}
			if z := payloadsOn(got, "slow/zero"); uint64(len(z)) != qos0-tc.wantDropped {
				t.Errorf("QoS 0 messages received: %q; want the %d that were not dropped", z, qos0-tc.wantDropped)
			}
			if got := b.Stats().Messages.Dropped; got != tc.wantDropped {
				t.Errorf("dropped = %d at the end, want %d", got, tc.wantDropped)
			}
			slow.Ping() // the PUBACKs are handled
			if stored := b.Stats().Messages.Stored; stored != 0 {
				t.Errorf("%d messages still queued after every PUBACK", stored)
			}
		})
	}
}

// TestSubscriberNotReadingDoesNotStallPublisher has a subscriber that does
// not read its socket while more than the kernel can buffer is published
// to it: the publisher's messages are all acknowledged at once, none is
// dropped, and the subscriber gets them all, in order, once it reads.
// (mochi v2.7.9 also made the publisher wait: the subscriber's packet ids
// were handed out under the lock its blocked write held.)
func TestSubscriberNotReadingDoesNotStallPublisher(t *testing.T) {
	const payloadSize = 64 << 10
	const rcvbuf = 4 << 10
	// Enough to fill the subscriber's receive buffer and the broker's
	// send buffer (which Linux grows up to tcp_wmem's maximum) twice over.
	n := 2*(maxSendBuffer(t)+2*rcvbuf)/payloadSize + 32

	env := newEnv(t)
	cfg := testConfig(map[string]config.Listener{"tcp": tcpListener(10)})
	cfg.MQTT.ClientWriteQueue = 4
	cfg.MQTT.MaxQueuedMessages = 65535
	cfg.MQTT.MaxQueuedBytes = int64(n+1) * payloadSize
	b := startBroker(t, env, cfg)

	slow := dialSmallReceiveBuffer(t, b.addr("tcp"), rcvbuf)
	if ack := slow.connect("slow", v3); ack.ReasonCode != 0 {
		t.Fatalf("CONNACK %#x", ack.ReasonCode)
	}
	slow.Subscribe("slow/#", 1)
	pub := b.connect("tcp", "pub", v3)

	padding := strings.Repeat("x", payloadSize-8)
	var want []string
	for i := 1; i <= n; i++ {
		want = append(want, fmt.Sprintf("%08d%s", i, padding))
		// Fails on a read timeout if the broker stops serving pub.
		if code := pub.Publish("slow/q", want[i-1], 1, false); code != 0 {
			t.Fatalf("message %d: PUBACK reason %#x", i, code)
		}
	}

	if got := payloadsOn(slow.readAll(pub, "slow/q", n), "slow/q"); !slices.Equal(got, want) {
		t.Errorf("subscriber received %d messages, want %d, once each and in order", len(got), n)
	}
	if got := b.Stats().Messages.Dropped; got != 0 {
		t.Errorf("dropped = %d, want 0", got)
	}
}

// maxSendBuffer is the largest send buffer Linux grows a TCP socket to.
func maxSendBuffer(t testing.TB) int {
	t.Helper()
	b, err := os.ReadFile("/proc/sys/net/ipv4/tcp_wmem")
	if err != nil {
		return 4 << 20 // the usual default
	}
	f := strings.Fields(string(b))
	if len(f) != 3 {
		t.Fatalf("tcp_wmem: %q", b)
	}
	n, err := strconv.Atoi(f[2])
	if err != nil {
		t.Fatalf("tcp_wmem: %v", err)
	}
	return n
}

// dialSmallReceiveBuffer connects to addr with a receive buffer of size
// bytes, so that a client that does not read fills it soon.
func dialSmallReceiveBuffer(t testing.TB, addr string, size int) *mqttConn {
	t.Helper()
	d := &net.Dialer{Timeout: ioTimeout, Control: func(_, _ string, c syscall.RawConn) error {
		var serr error
		err := c.Control(func(fd uintptr) {
			serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, size)
		})
		if err != nil {
			return err
		}
		return serr
	}}
	conn, err := d.DialContext(t.Context(), "tcp", addr)
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	return newMQTTConn(t, conn)
}
