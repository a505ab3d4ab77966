package mqtttest

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/mochi-mqtt/server/v2/packets"
)

// Transport is the byte stream under a RawClient: a net.Conn, or a
// test's own (WebSocket messages, say).
type Transport interface {
	io.ReadWriteCloser
	SetReadDeadline(time.Time) error
	SetWriteDeadline(time.Time) error
}

// encoders and decoders are mochi's codec for the packets a client sends
// and receives.
var (
	encoders = map[byte]func(*packets.Packet, *bytes.Buffer) error{
		packets.Connect:     (*packets.Packet).ConnectEncode,
		packets.Publish:     (*packets.Packet).PublishEncode,
		packets.Puback:      (*packets.Packet).PubackEncode,
		packets.Pubrec:      (*packets.Packet).PubrecEncode,
		packets.Pubrel:      (*packets.Packet).PubrelEncode,
		packets.Pubcomp:     (*packets.Packet).PubcompEncode,
		packets.Subscribe:   (*packets.Packet).SubscribeEncode,
		packets.Unsubscribe: (*packets.Packet).UnsubscribeEncode,
		packets.Pingreq:     (*packets.Packet).PingreqEncode,
		packets.Disconnect:  (*packets.Packet).DisconnectEncode,
	}
	decoders = map[byte]func(*packets.Packet, []byte) error{
		packets.Connack:    (*packets.Packet).ConnackDecode,
		packets.Publish:    (*packets.Packet).PublishDecode,
		packets.Puback:     (*packets.Packet).PubackDecode,
		packets.Pubrec:     (*packets.Packet).PubrecDecode,
		packets.Pubrel:     (*packets.Packet).PubrelDecode,
		packets.Pubcomp:    (*packets.Packet).PubcompDecode,
		packets.Suback:     (*packets.Packet).SubackDecode,
		packets.Unsuback:   (*packets.Packet).UnsubackDecode,
		packets.Pingresp:   (*packets.Packet).PingrespDecode,
		packets.Disconnect: (*packets.Packet).DisconnectDecode,
	}
)

// RawClient speaks MQTT with hand-made packets through mochi's codec, so a
// test controls and sees every packet and every byte exchanged. Its
// methods fail the test on any error, except ReadPacket, which returns it.
type RawClient struct {
	// ID names the client in failure messages; Connect and ConnectWith
	// set it.
	ID string
	// Version is the protocol version packets are encoded and decoded
	// with: 4 (3.1.1, the default) or 5. ConnectWith sets it.
	Version byte
	// Timeout bounds each read and each write; WaitLimit by default.
	Timeout time.Duration
	// OnSend, when set, is called before each Send; OnRecv after each
	// packet is read, before it is decoded. A test uses them to keep in
	// step with hooks that see the same traffic.
	OnSend, OnRecv func()

	t      testing.TB
	tr     Transport
	r      *bufio.Reader
	nextID uint16
	sent   int // bytes written to the broker
	recvd  int // bytes read from the broker
}

// NewRawClient returns a client over tr, which is closed when the test ends.
func NewRawClient(t testing.TB, tr Transport) *RawClient {
	t.Cleanup(func() { _ = tr.Close() })
	return &RawClient{Version: 4, Timeout: WaitLimit, t: t, tr: tr, r: bufio.NewReader(tr)}
}

// Dial connects to a TCP address and returns a client that has sent
// nothing yet.
func Dial(t testing.TB, addr string) *RawClient {
	t.Helper()
	conn, err := (&net.Dialer{Timeout: WaitLimit}).DialContext(t.Context(), "tcp", addr)
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	return NewRawClient(t, conn)
}

// fatalf fails the test, naming the client once it has an ID.
func (c *RawClient) fatalf(format string, args ...any) {
	c.t.Helper()
	if c.ID != "" {
		format, args = "%s: "+format, append([]any{c.ID}, args...)
	}
	c.t.Fatalf(format, args...)
}

// ConnectOptions are the parts of a CONNECT tests vary.
type ConnectOptions struct {
	Version   byte // 4 (3.1.1, the default) or 5
	Clean     bool // clean session (3.1.1) or clean start (5)
	Keepalive uint16
	Username  string // sent if not empty
	Expiry    uint32 // v5 session expiry interval, sent if not 0
}

// ConnectPacket returns the CONNECT of a client id with o.
func ConnectPacket(id string, o ConnectOptions) packets.Packet {
	if o.Version == 0 {
		o.Version = 4
	}
	pk := packets.Packet{
		FixedHeader:     packets.FixedHeader{Type: packets.Connect},
		ProtocolVersion: o.Version,
		Connect: packets.ConnectParams{
			ProtocolName:     []byte("MQTT"),
			Clean:            o.Clean,
			ClientIdentifier: id,
			Keepalive:        o.Keepalive,
		},
	}
	if o.Username != "" {
		pk.Connect.Username = []byte(o.Username)
		pk.Connect.UsernameFlag = true
	}
	if o.Version == 5 && o.Expiry > 0 {
		pk.Properties.SessionExpiryInterval = o.Expiry
		pk.Properties.SessionExpiryIntervalFlag = true
	}
	return pk
}

// Connect sends an MQTT 3.1.1 CONNECT with a clean session and expects a
// CONNACK that accepts it.
func (c *RawClient) Connect(id string, keepalive uint16) {
	c.t.Helper()
	if ack := c.ConnectWith(id, ConnectOptions{Clean: true, Keepalive: keepalive}); ack.ReasonCode != 0 {
		c.fatalf("CONNACK code %d", ack.ReasonCode)
	}
}

// ConnectWith sends CONNECT, from now on speaking o.Version, and returns
// the CONNACK, whatever its code.
func (c *RawClient) ConnectWith(id string, o ConnectOptions) packets.Packet {
	c.t.Helper()
	if o.Version == 0 {
		o.Version = 4
	}
	c.ID, c.Version = id, o.Version
	c.Send(ConnectPacket(id, o))
	ack := c.Recv()
	if ack.FixedHeader.Type != packets.Connack {
		c.fatalf("expected CONNACK, got %s", Show(ack))
	}
	return ack
}

// Encode encodes pk as this client's protocol version. A SUBSCRIBE gets
// the fixed header flags the protocol requires.
func (c *RawClient) Encode(pk packets.Packet) []byte {
	c.t.Helper()
	pk.ProtocolVersion = c.Version
	if pk.FixedHeader.Type == packets.Subscribe {
		pk.FixedHeader.Qos = 1
	}
	encode, ok := encoders[pk.FixedHeader.Type]
	if !ok {
		c.fatalf("cannot send packet type %d", pk.FixedHeader.Type)
	}
	var buf bytes.Buffer
	if err := encode(&pk, &buf); err != nil {
		c.fatalf("encode: %v", err)
	}
	return buf.Bytes()
}

// Write writes bytes as they are: part of a packet, or several.
func (c *RawClient) Write(b []byte) {
	c.t.Helper()
	_ = c.tr.SetWriteDeadline(time.Now().Add(c.Timeout))
	n, err := c.tr.Write(b)
	c.sent += n
	if err != nil {
		c.fatalf("write: %v", err)
	}
}

// Send encodes and writes one packet.
func (c *RawClient) Send(pk packets.Packet) {
	c.t.Helper()
	if c.OnSend != nil {
		c.OnSend()
	}
	c.Write(c.Encode(pk))
}

// ReadPacket reads and decodes one packet; a test that expects the broker
// to close the connection looks at the error.
func (c *RawClient) ReadPacket() (packets.Packet, error) {
	_ = c.tr.SetReadDeadline(time.Now().Add(c.Timeout))
	hb, err := c.r.ReadByte()
	if err != nil {
		return packets.Packet{}, err
	}
	pk := packets.Packet{ProtocolVersion: c.Version}
	if err := pk.FixedHeader.Decode(hb); err != nil {
		return pk, err
	}
	n, lenBytes, err := packets.DecodeLength(c.r)
	if err != nil {
		return pk, err
	}
	pk.FixedHeader.Remaining = n
	body := make([]byte, n)
	if _, err := io.ReadFull(c.r, body); err != nil {
		return pk, err
	}
	c.recvd += 1 + lenBytes + n
	if c.OnRecv != nil {
		c.OnRecv()
	}
	decode, ok := decoders[pk.FixedHeader.Type]
	if !ok {
		return pk, fmt.Errorf("unexpected packet type %d", pk.FixedHeader.Type)
	}
	err = decode(&pk, body) // not in the return: pk would be read in no set order
	return pk, err
}

// Recv reads and decodes one packet.
func (c *RawClient) Recv() packets.Packet {
	c.t.Helper()
	pk, err := c.ReadPacket()
	if err != nil {
		c.fatalf("read: %v", err)
	}
	return pk
}

// Expect reads one packet and checks its type.
func (c *RawClient) Expect(typ byte) packets.Packet {
	c.t.Helper()
	pk := c.Recv()
	if pk.FixedHeader.Type != typ {
		c.fatalf("got %s, want %s", packets.PacketNames[pk.FixedHeader.Type], packets.PacketNames[typ])
	}
	return pk
}

// NextPacketID returns a packet identifier the client has not used yet.
func (c *RawClient) NextPacketID() uint16 {
	c.nextID++
	return c.nextID
}

// Subscribe subscribes to filter and expects the SUBACK to grant qos.
func (c *RawClient) Subscribe(filter string, qos byte) {
	c.t.Helper()
	id := c.NextPacketID()
	c.Send(packets.Packet{
		FixedHeader: packets.FixedHeader{Type: packets.Subscribe},
		PacketID:    id,
		Filters:     packets.Subscriptions{{Filter: filter, Qos: qos}},
	})
	ack := c.Recv()
	if ack.FixedHeader.Type != packets.Suback || ack.PacketID != id || len(ack.ReasonCodes) != 1 || ack.ReasonCodes[0] != qos {
		c.fatalf("subscribe %s: got %s", filter, Show(ack))
	}
}

// Ping is a PINGREQ/PINGRESP round trip: the connection is alive and the
// broker handled everything sent before.
func (c *RawClient) Ping() {
	c.t.Helper()
	c.Send(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Pingreq}})
	if pk := c.Recv(); pk.FixedHeader.Type != packets.Pingresp {
		c.fatalf("expected PINGRESP, got %s", Show(pk))
	}
}

// Publish sends a message and, above QoS 0, waits for its PUBACK and
// returns the reason code. It returns once the broker handed the message
// to the subscribers (mochi sends the PUBACK before that).
func (c *RawClient) Publish(topic, payload string, qos byte, retain bool) byte {
	c.t.Helper()
	pk := packets.Packet{
		FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: qos, Retain: retain},
		TopicName:   topic,
		Payload:     []byte(payload),
	}
	if qos > 0 {
		pk.PacketID = c.NextPacketID()
	}
	c.Send(pk)
	var code byte
	if qos > 0 {
		ack := c.Recv()
		if ack.FixedHeader.Type != packets.Puback || ack.PacketID != pk.PacketID {
			c.fatalf("publish %s: got %s", topic, Show(ack))
		}
		code = ack.ReasonCode
	}
	c.Ping()
	return code
}

// Close closes the connection without a DISCONNECT.
func (c *RawClient) Close() error { return c.tr.Close() }

// BytesSent returns how many bytes the client has written to the broker.
func (c *RawClient) BytesSent() int { return c.sent }

// BytesReceived returns how many bytes of whole packets the client has
// read from the broker.
func (c *RawClient) BytesReceived() int { return c.recvd }

// Show describes packets briefly for failure messages.
func Show(pks ...packets.Packet) string {
	var parts []string
	for _, pk := range pks {
		s := packets.PacketNames[pk.FixedHeader.Type]
		switch pk.FixedHeader.Type {
		case packets.Publish:
			s += fmt.Sprintf("(%s %q qos=%d retain=%v)", pk.TopicName, pk.Payload, pk.FixedHeader.Qos, pk.FixedHeader.Retain)
		case packets.Connack, packets.Disconnect:
			s += fmt.Sprintf("(%#x)", pk.ReasonCode)
		case packets.Suback:
			s += fmt.Sprintf("(id=%d %v)", pk.PacketID, pk.ReasonCodes)
		}
		parts = append(parts, s)
	}
	return "[" + strings.Join(parts, " ") + "]"
}
