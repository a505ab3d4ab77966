package e2e

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"testing"
	"time"
)

// rawClient is a minimal synchronous MQTT 3.1 / 3.1.1 client: paho.golang
// speaks MQTT 5 only, and several checks need the MQTT 3 wire answers
// (CONNACK return codes, SUBACK 0x80) or bytes no library would send.
type rawClient struct {
	t      testing.TB
	conn   net.Conn
	r      *bufio.Reader
	nextID uint16
}

// MQTT 3 CONNACK return codes.
const (
	connackAccepted          = 0
	connackBadProtocol       = 1
	connackServerUnavailable = 3
	connackBadCredentials    = 4
	connackNotAuthorized     = 5
)

// rawPacket is one control packet as read from the wire.
type rawPacket struct {
	header byte // first byte: type << 4 | flags
	body   []byte
}

func (p rawPacket) kind() byte { return p.header >> 4 }

// rawOpts are the CONNECT fields of a raw client.
type rawOpts struct {
	// level is 3 (MQTT 3.1, "MQIsdp") or 4 (3.1.1, "MQTT"); 0 means 4.
	level    byte
	clientID string
	username string
	password string
	clean    bool
	// keepalive in seconds; 0 means 30.
	keepalive uint16
}

// dialRaw opens a connection for a raw client.
func dialRaw(ctx context.Context, t testing.TB, dial dialer) *rawClient {
	t.Helper()
	conn, err := dial(ctx)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(dl)
	}
	return &rawClient{t: t, conn: conn, r: bufio.NewReader(conn), nextID: 1}
}

func appendString(b []byte, s string) []byte {
	b = binary.BigEndian.AppendUint16(b, uint16(len(s)))
	return append(b, s...)
}

func appendRemainingLength(b []byte, n int) []byte {
	for {
		d := byte(n % 128)
		n /= 128
		if n > 0 {
			d |= 0x80
		}
		b = append(b, d)
		if n == 0 {
			return b
		}
	}
}

// packet encodes a control packet.
func packet(header byte, body []byte) []byte {
	b := appendRemainingLength([]byte{header}, len(body))
	return append(b, body...)
}

func connectPacket(o rawOpts) []byte {
	var body []byte
	switch o.level {
	case 3:
		body = appendString(body, "MQIsdp")
		body = append(body, 3)
	default:
		body = appendString(body, "MQTT")
		body = append(body, 4)
	}
	var flags byte
	if o.clean {
		flags |= 0x02
	}
	if o.username != "" {
		flags |= 0x80
	}
	if o.password != "" {
		flags |= 0x40
	}
	keepalive := o.keepalive
	if keepalive == 0 {
		keepalive = 30
	}
	body = append(body, flags, byte(keepalive>>8), byte(keepalive))
	body = appendString(body, o.clientID)
	if o.username != "" {
		body = appendString(body, o.username)
	}
	if o.password != "" {
		body = appendString(body, o.password)
	}
	return packet(0x10, body)
}

func (c *rawClient) write(b []byte) error {
	_, err := c.conn.Write(b)
	return err
}

// read reads one control packet.
func (c *rawClient) read() (rawPacket, error) {
	h, err := c.r.ReadByte()
	if err != nil {
		return rawPacket{}, err
	}
	n, mult := 0, 1
	for i := 0; ; i++ {
		d, err := c.r.ReadByte()
		if err != nil {
			return rawPacket{}, err
		}
		n += int(d&0x7f) * mult
		if d&0x80 == 0 {
			break
		}
		if i == 3 {
			return rawPacket{}, errors.New("malformed remaining length from server")
		}
		mult *= 128
	}
	body := make([]byte, n)
	if _, err := io.ReadFull(c.r, body); err != nil {
		return rawPacket{}, err
	}
	return rawPacket{header: h, body: body}, nil
}

// readKind reads the next packet and requires its type.
func (c *rawClient) readKind(kind byte) (rawPacket, error) {
	p, err := c.read()
	if err != nil {
		return p, err
	}
	if p.kind() != kind {
		return p, fmt.Errorf("got packet type %d (% x), want %d", p.kind(), p.body, kind)
	}
	return p, nil
}

// connect sends CONNECT and returns the CONNACK return code.
func (c *rawClient) connect(o rawOpts) (code byte, sessionPresent bool, err error) {
	if err := c.write(connectPacket(o)); err != nil {
		return 0, false, err
	}
	p, err := c.readKind(2)
	if err != nil {
		return 0, false, fmt.Errorf("waiting for CONNACK: %w", err)
	}
	if len(p.body) != 2 {
		return 0, false, fmt.Errorf("CONNACK body % x", p.body)
	}
	return p.body[1], p.body[0]&1 == 1, nil
}

// mustConnect connects and requires the CONNECT to be accepted.
func (c *rawClient) mustConnect(o rawOpts) {
	c.t.Helper()
	code, _, err := c.connect(o)
	if err != nil {
		c.t.Fatalf("raw CONNECT %q: %v", o.clientID, err)
	}
	if code != connackAccepted {
		c.t.Fatalf("raw CONNECT %q: return code %d, want 0", o.clientID, code)
	}
}

func (c *rawClient) id() uint16 {
	id := c.nextID
	c.nextID++
	return id
}

// subscribe subscribes to one filter and returns the SUBACK return code.
func (c *rawClient) subscribe(filter string, qos byte) (byte, error) {
	id := c.id()
	body := binary.BigEndian.AppendUint16(nil, id)
	body = appendString(body, filter)
	body = append(body, qos)
	if err := c.write(packet(0x82, body)); err != nil {
		return 0, err
	}
	p, err := c.readKind(9)
	if err != nil {
		return 0, fmt.Errorf("waiting for SUBACK: %w", err)
	}
	if len(p.body) != 3 || binary.BigEndian.Uint16(p.body) != id {
		return 0, fmt.Errorf("SUBACK body % x", p.body)
	}
	return p.body[2], nil
}

func (c *rawClient) mustSubscribe(filter string, qos byte) {
	c.t.Helper()
	code, err := c.subscribe(filter, qos)
	if err != nil {
		c.t.Fatalf("raw SUBSCRIBE %q: %v", filter, err)
	}
	if code != qos {
		c.t.Fatalf("raw SUBSCRIBE %q: return code 0x%02x, want %d", filter, code, qos)
	}
}

func publishPacket(topic string, qos byte, retain bool, id uint16, payload string) []byte {
	h := byte(0x30) | qos<<1
	if retain {
		h |= 1
	}
	body := appendString(nil, topic)
	if qos > 0 {
		body = binary.BigEndian.AppendUint16(body, id)
	}
	body = append(body, payload...)
	return packet(h, body)
}

// publish publishes and completes the QoS 1 (PUBACK) or QoS 2
// (PUBREC, PUBREL, PUBCOMP) exchange.
func (c *rawClient) publish(topic string, qos byte, retain bool, payload string) error {
	id := c.id()
	if err := c.write(publishPacket(topic, qos, retain, id, payload)); err != nil {
		return err
	}
	switch qos {
	case 1:
		return c.expectAck(4, id)
	case 2:
		if err := c.expectAck(5, id); err != nil {
			return err
		}
		if err := c.write(packet(0x62, binary.BigEndian.AppendUint16(nil, id))); err != nil {
			return err
		}
		return c.expectAck(7, id)
	}
	return nil
}

func (c *rawClient) mustPublish(topic string, qos byte, retain bool, payload string) {
	c.t.Helper()
	if err := c.publish(topic, qos, retain, payload); err != nil {
		c.t.Fatalf("raw PUBLISH %q QoS %d: %v", topic, qos, err)
	}
}

func (c *rawClient) expectAck(kind byte, id uint16) error {
	p, err := c.readKind(kind)
	if err != nil {
		return err
	}
	if len(p.body) < 2 || binary.BigEndian.Uint16(p.body) != id {
		return fmt.Errorf("ack type %d body % x, want packet id %d", kind, p.body, id)
	}
	return nil
}

// rawMessage is a PUBLISH received by a raw client.
type rawMessage struct {
	topic   string
	payload string
	qos     byte
	retain  bool
}

// receive reads the next PUBLISH and acknowledges it (PUBACK, or PUBREC
// then PUBREL then PUBCOMP).
func (c *rawClient) receive() (rawMessage, error) {
	p, err := c.readKind(3)
	if err != nil {
		return rawMessage{}, err
	}
	m := rawMessage{qos: (p.header >> 1) & 3, retain: p.header&1 == 1}
	b := p.body
	if len(b) < 2 {
		return m, fmt.Errorf("PUBLISH body % x", b)
	}
	n := int(binary.BigEndian.Uint16(b))
	if len(b) < 2+n {
		return m, fmt.Errorf("PUBLISH body % x", b)
	}
	m.topic, b = string(b[2:2+n]), b[2+n:]
	var id uint16
	if m.qos > 0 {
		if len(b) < 2 {
			return m, fmt.Errorf("PUBLISH without packet id")
		}
		id, b = binary.BigEndian.Uint16(b), b[2:]
	}
	m.payload = string(b)
	idb := binary.BigEndian.AppendUint16(nil, id)
	switch m.qos {
	case 1:
		err = c.write(packet(0x40, idb))
	case 2:
		if err = c.write(packet(0x50, idb)); err != nil {
			return m, err
		}
		if err = c.expectAck(6, id); err != nil {
			return m, fmt.Errorf("waiting for PUBREL: %w", err)
		}
		err = c.write(packet(0x70, idb))
	}
	return m, err
}

// expect receives the next message and checks it.
func (c *rawClient) expect(topic, payload string, qos byte) rawMessage {
	c.t.Helper()
	m, err := c.receive()
	if err != nil {
		c.t.Fatalf("waiting for %q on %q: %v", payload, topic, err)
	}
	if m.topic != topic || m.payload != payload || m.qos != qos {
		c.t.Fatalf("received %q on %q QoS %d, want %q on %q QoS %d", m.payload, m.topic, m.qos, payload, topic, qos)
	}
	return m
}

// waitClosedByServer reads until the server closes the connection and
// returns what it read before (it may send a CONNACK or DISCONNECT first).
// It fails if the connection is still open at limit.
func (c *rawClient) waitClosedByServer(limit time.Duration) ([]rawPacket, error) {
	_ = c.conn.SetReadDeadline(time.Now().Add(limit))
	var got []rawPacket
	for {
		p, err := c.read()
		if err == nil {
			got = append(got, p)
			continue
		}
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			return got, fmt.Errorf("the server kept the connection open for %s", limit)
		}
		return got, nil // EOF or reset: closed
	}
}
