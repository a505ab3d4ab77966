package mqtttest

import (
	"sync/atomic"
	"testing"

	"github.com/mochi-mqtt/server/v2/packets"
)

// TestRoundTrip runs a v5 subscriber and a 3.1.1 publisher through a
// server: what one publishes at QoS 1 the other receives.
func TestRoundTrip(t *testing.T) {
	t.Parallel()
	srv := NewServer(t)
	addr := ServeTCP(t, srv)

	sub := Dial(t, addr)
	ack := sub.ConnectWith("sub", ConnectOptions{Version: 5, Keepalive: 60, Username: "u", Expiry: 60})
	if ack.ReasonCode != 0 || sub.Version != 5 || sub.ID != "sub" {
		t.Fatalf("CONNACK %s; client version %d id %q", Show(ack), sub.Version, sub.ID)
	}
	cl, ok := srv.Clients.Get("sub")
	if !ok || string(cl.Properties.Username) != "u" || cl.Properties.ProtocolVersion != 5 {
		t.Fatalf("server sees %+v, %v", cl, ok)
	}
	sub.Subscribe("t/#", 1)

	pub := Dial(t, addr)
	pub.Connect("pub", 60)
	if code := pub.Publish("t/a", "hello", 1, false); code != 0 {
		t.Fatalf("PUBACK code %#x", code)
	}
	m := sub.Expect(packets.Publish)
	if m.TopicName != "t/a" || string(m.Payload) != "hello" || m.FixedHeader.Qos != 1 {
		t.Fatalf("received %s", Show(m))
	}
	sub.Send(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Puback}, PacketID: m.PacketID})
	sub.Ping()
	if pub.BytesSent() == 0 || pub.BytesReceived() == 0 {
		t.Errorf("bytes sent %d, received %d", pub.BytesSent(), pub.BytesReceived())
	}
}

// TestClosedByTheTest: a server the test closed itself is not closed again
// when the test ends (mochi's Close panics the second time).
func TestClosedByTheTest(t *testing.T) {
	t.Parallel()
	srv := NewServer(t)
	ServeTCP(t, srv)
	if err := srv.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestSignal(t *testing.T) {
	t.Parallel()
	s := NewSignal()
	var n atomic.Int32
	go func() {
		for range 3 {
			n.Add(1)
			s.Notify()
		}
	}()
	if !s.Wait(func() bool { return n.Load() == 3 }) {
		t.Fatalf("n = %d after WaitLimit", n.Load())
	}
}
