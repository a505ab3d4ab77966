package sys

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/listeners"
	"github.com/mochi-mqtt/server/v2/packets"
)

// waitLimit bounds every wait of these tests; nothing should come close.
const waitLimit = 10 * time.Second

// newServer returns a mochi server with the inline client on and mochi's own
// $SYS timer pushed away, as the broker configures it. It is closed when
// the test ends.
func newServer(t *testing.T) *mqtt.Server {
	t.Helper()
	srv := mqtt.New(&mqtt.Options{
		InlineClient:           true,
		Logger:                 slog.New(slog.DiscardHandler),
		SysTopicResendInterval: math.MaxInt32,
	})
	t.Cleanup(func() { _ = srv.Close() })
	if err := srv.AddHook(new(allowAll), nil); err != nil {
		t.Fatal(err)
	}
	return srv
}

// allowAll lets every client connect, publish and subscribe (the broker's
// auth and ACL hooks are not under test here).
type allowAll struct{ mqtt.HookBase }

func (*allowAll) ID() string { return "test-allow-all" }

func (*allowAll) Provides(b byte) bool {
	return b == mqtt.OnConnectAuthenticate || b == mqtt.OnACLCheck
}

func (*allowAll) OnConnectAuthenticate(*mqtt.Client, packets.Packet) bool { return true }

func (*allowAll) OnACLCheck(*mqtt.Client, string, bool) bool { return true }

// serveTCP adds a TCP listener on 127.0.0.1:0, starts the server and
// returns the bound address (mochi's TCP Address() is the bound address
// once Init, run by AddListener, has listened).
func serveTCP(t *testing.T, srv *mqtt.Server) string {
	t.Helper()
	l := listeners.NewTCP(listeners.Config{ID: "tcp", Address: "127.0.0.1:0"})
	if err := srv.AddListener(l); err != nil {
		t.Fatal(err)
	}
	if err := srv.Serve(); err != nil {
		t.Fatal(err)
	}
	return l.Address()
}

// sysMessage is one message seen by the inline $SYS subscription.
type sysMessage struct {
	topic   string
	payload string
	retain  bool
	qos     byte
}

// collector gathers messages of an inline subscription.
type collector struct {
	ch chan sysMessage
}

// subscribe adds an inline subscription to filter.
func subscribe(t *testing.T, srv *mqtt.Server, filter string) *collector {
	t.Helper()
	c := &collector{ch: make(chan sysMessage, 4096)}
	err := srv.Subscribe(filter, 1, func(_ *mqtt.Client, _ packets.Subscription, pk packets.Packet) {
		c.ch <- sysMessage{pk.TopicName, string(pk.Payload), pk.FixedHeader.Retain, pk.FixedHeader.Qos}
	})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// drain returns what has arrived so far, without waiting.
func (c *collector) drain() []sysMessage {
	var out []sysMessage
	for {
		select {
		case m := <-c.ch:
			out = append(out, m)
		default:
			return out
		}
	}
}

// next waits for the next message whose topic ends with suffix, skipping
// others.
func (c *collector) next(t *testing.T, suffix string) sysMessage {
	t.Helper()
	deadline := time.After(waitLimit)
	for {
		select {
		case m := <-c.ch:
			if strings.HasSuffix(m.topic, suffix) {
				return m
			}
		case <-deadline:
			t.Fatalf("no message on *%s within %s", suffix, waitLimit)
		}
	}
}

// all waits until a message has arrived for each suffix, in any order,
// skipping others.
func (c *collector) all(t *testing.T, suffixes ...string) {
	t.Helper()
	missing := map[string]bool{}
	for _, s := range suffixes {
		missing[s] = true
	}
	deadline := time.After(waitLimit)
	for len(missing) > 0 {
		select {
		case m := <-c.ch:
			for s := range missing {
				if strings.HasSuffix(m.topic, s) {
					delete(missing, s)
				}
			}
		case <-deadline:
			t.Fatalf("no message on %v within %s", missing, waitLimit)
		}
	}
}

// rawClient speaks MQTT 3.1.1 with hand-made packets (mochi's codec), so a
// test knows every byte exchanged.
type rawClient struct {
	t       *testing.T
	conn    net.Conn
	r       *bufio.Reader
	written int // bytes sent to the broker
	read    int // bytes received from the broker
}

func dial(t *testing.T, addr string) *rawClient {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	_ = conn.SetDeadline(time.Now().Add(waitLimit))
	return &rawClient{t: t, conn: conn, r: bufio.NewReader(conn)}
}

// connect sends CONNECT (clean session) and expects a successful CONNACK.
func (c *rawClient) connect(id string, keepalive uint16) {
	c.t.Helper()
	c.send(packets.Packet{
		FixedHeader: packets.FixedHeader{Type: packets.Connect},
		Connect: packets.ConnectParams{
			ProtocolName:     []byte("MQTT"),
			Clean:            true,
			Keepalive:        keepalive,
			ClientIdentifier: id,
		},
	})
	if ack := c.expect(packets.Connack); ack.ReasonCode != 0 {
		c.t.Fatalf("CONNACK code %d", ack.ReasonCode)
	}
}

func (c *rawClient) send(pk packets.Packet) {
	c.t.Helper()
	pk.ProtocolVersion = 4
	var buf bytes.Buffer
	var err error
	switch pk.FixedHeader.Type {
	case packets.Connect:
		err = pk.ConnectEncode(&buf)
	case packets.Publish:
		err = pk.PublishEncode(&buf)
	case packets.Puback:
		err = pk.PubackEncode(&buf)
	case packets.Pubrec:
		err = pk.PubrecEncode(&buf)
	case packets.Pubrel:
		err = pk.PubrelEncode(&buf)
	case packets.Pubcomp:
		err = pk.PubcompEncode(&buf)
	case packets.Subscribe:
		err = pk.SubscribeEncode(&buf)
	case packets.Unsubscribe:
		err = pk.UnsubscribeEncode(&buf)
	case packets.Pingreq:
		err = pk.PingreqEncode(&buf)
	case packets.Disconnect:
		err = pk.DisconnectEncode(&buf)
	default:
		err = fmt.Errorf("test cannot send type %d", pk.FixedHeader.Type)
	}
	if err != nil {
		c.t.Fatal(err)
	}
	n, err := c.conn.Write(buf.Bytes())
	c.written += n
	if err != nil {
		c.t.Fatal(err)
	}
}

// recv reads and decodes one packet.
func (c *rawClient) recv() packets.Packet {
	c.t.Helper()
	b, err := c.r.ReadByte()
	if err != nil {
		c.t.Fatalf("read: %v", err)
	}
	var pk packets.Packet
	pk.ProtocolVersion = 4
	if err := pk.FixedHeader.Decode(b); err != nil {
		c.t.Fatal(err)
	}
	n, bu, err := packets.DecodeLength(c.r)
	if err != nil {
		c.t.Fatal(err)
	}
	pk.FixedHeader.Remaining = n
	body := make([]byte, n)
	if _, err := io.ReadFull(c.r, body); err != nil {
		c.t.Fatal(err)
	}
	c.read += 1 + bu + n
	switch pk.FixedHeader.Type {
	case packets.Connack:
		err = pk.ConnackDecode(body)
	case packets.Publish:
		err = pk.PublishDecode(body)
	case packets.Puback:
		err = pk.PubackDecode(body)
	case packets.Pubrec:
		err = pk.PubrecDecode(body)
	case packets.Pubrel:
		err = pk.PubrelDecode(body)
	case packets.Pubcomp:
		err = pk.PubcompDecode(body)
	case packets.Suback:
		err = pk.SubackDecode(body)
	case packets.Unsuback:
		err = pk.UnsubackDecode(body)
	case packets.Pingresp:
	default:
		err = fmt.Errorf("unexpected packet type %d", pk.FixedHeader.Type)
	}
	if err != nil {
		c.t.Fatal(err)
	}
	return pk
}

// expect reads one packet and checks its type.
func (c *rawClient) expect(typ byte) packets.Packet {
	c.t.Helper()
	pk := c.recv()
	if pk.FixedHeader.Type != typ {
		c.t.Fatalf("got %s, want %s", packets.PacketNames[pk.FixedHeader.Type], packets.PacketNames[typ])
	}
	return pk
}

// probe is a hook added after the hook under test: when it sees an event,
// the hook under test has seen it too, so a test can wait for the probe
// instead of sleeping.
type probe struct {
	mqtt.HookBase
	mu         sync.Mutex
	read, sent int
	changed    chan struct{}
}

func newProbe() *probe { return &probe{changed: make(chan struct{}, 1)} }

func (p *probe) ID() string { return "test-probe" }

func (p *probe) Provides(b byte) bool { return b == mqtt.OnPacketRead || b == mqtt.OnPacketSent }

func (p *probe) OnPacketRead(_ *mqtt.Client, pk packets.Packet) (packets.Packet, error) {
	p.bump(&p.read)
	return pk, nil
}

func (p *probe) OnPacketSent(*mqtt.Client, packets.Packet, []byte) { p.bump(&p.sent) }

func (p *probe) bump(n *int) {
	p.mu.Lock()
	*n++
	p.mu.Unlock()
	select {
	case p.changed <- struct{}{}:
	default:
	}
}

// waitFor waits until the probe has seen read packets read and sent sent.
func (p *probe) waitFor(t *testing.T, read, sent int) {
	t.Helper()
	deadline := time.After(waitLimit)
	for {
		p.mu.Lock()
		r, s := p.read, p.sent
		p.mu.Unlock()
		if r >= read && s >= sent {
			return
		}
		select {
		case <-p.changed:
		case <-deadline:
			t.Fatalf("probe saw %d read, %d sent; want %d, %d", r, s, read, sent)
		}
	}
}
