package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"time"
)

// A minimal MQTT 3.1.1 client: only what the scenarios need, written so
// that the load generator is cheap per message (append-style encoders, one
// bufio.Reader per connection, no allocation per packet). paho.golang
// speaks only MQTT 5 and allocates per message; the same client code for
// both brokers is what matters here.

// Packet types (MQTT 3.1.1 §2.2.1).
const (
	pktConnect    = 1
	pktConnack    = 2
	pktPublish    = 3
	pktPuback     = 4
	pktSubscribe  = 8
	pktSuback     = 9
	pktDisconnect = 14
)

// payloadSize is the size of every benchmark message's payload.
const payloadSize = 64

// keepalive is long enough that no scenario sees a PINGREQ; some brokers
// treat 0 specially, so it is not 0.
const keepalive = 600

var disconnectPacket = []byte{pktDisconnect << 4, 0}

var (
	errMalformedLength = errors.New("mqtt: malformed remaining length")
	errShortPacket     = errors.New("mqtt: packet too short")
)

func appendVarint(b []byte, n int) []byte {
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

func appendString(b []byte, s string) []byte {
	b = append(b, byte(len(s)>>8), byte(len(s)))
	return append(b, s...)
}

// appendConnect encodes a clean-session CONNECT without credentials.
func appendConnect(b []byte, clientID string, keepalive uint16) []byte {
	b = append(b, pktConnect<<4)
	b = appendVarint(b, 10+2+len(clientID))
	b = appendString(b, "MQTT")
	b = append(b, 4, 0x02, byte(keepalive>>8), byte(keepalive))
	return appendString(b, clientID)
}

func appendPublish(b []byte, topic string, qos byte, id uint16, payload []byte) []byte {
	n := 2 + len(topic) + len(payload)
	if qos > 0 {
		n += 2
	}
	b = append(b, pktPublish<<4|qos<<1)
	b = appendVarint(b, n)
	b = appendString(b, topic)
	if qos > 0 {
		b = append(b, byte(id>>8), byte(id))
	}
	return append(b, payload...)
}

func appendPuback(b []byte, id uint16) []byte {
	return append(b, pktPuback<<4, 2, byte(id>>8), byte(id))
}

func appendSubscribe(b []byte, id uint16, filter string, qos byte) []byte {
	b = append(b, pktSubscribe<<4|0x02)
	b = appendVarint(b, 2+2+len(filter)+1)
	b = append(b, byte(id>>8), byte(id))
	b = appendString(b, filter)
	return append(b, qos)
}

func readVarint(r io.ByteReader) (int, error) {
	n, mul := 0, 1
	for range 4 {
		b, err := r.ReadByte()
		if err != nil {
			return 0, err
		}
		n += int(b&0x7f) * mul
		if b&0x80 == 0 {
			return n, nil
		}
		mul *= 128
	}
	return 0, errMalformedLength
}

// packetReader reads whole packets from a connection.
type packetReader struct {
	r   *bufio.Reader
	buf []byte // for packets larger than r's buffer
}

// next returns the next packet's first byte and its body. The body is valid
// until the following call.
func (p *packetReader) next() (byte, []byte, error) {
	h, err := p.r.ReadByte()
	if err != nil {
		return 0, nil, err
	}
	n, err := readVarint(p.r)
	if err != nil {
		return 0, nil, err
	}
	if n <= p.r.Size() {
		body, err := p.r.Peek(n)
		if err != nil {
			return 0, nil, err
		}
		_, _ = p.r.Discard(n)
		return h, body, nil
	}
	if cap(p.buf) < n {
		p.buf = make([]byte, n)
	}
	body := p.buf[:n]
	if _, err := io.ReadFull(p.r, body); err != nil {
		return 0, nil, err
	}
	return h, body, nil
}

// parsePublish splits a PUBLISH body (first byte h) into packet id and
// payload.
func parsePublish(h byte, body []byte) (id uint16, payload []byte, err error) {
	if len(body) < 2 {
		return 0, nil, errShortPacket
	}
	off := 2 + int(binary.BigEndian.Uint16(body))
	if h>>1&3 > 0 {
		if len(body) < off+2 {
			return 0, nil, errShortPacket
		}
		id = binary.BigEndian.Uint16(body[off:])
		off += 2
	}
	if len(body) < off {
		return 0, nil, errShortPacket
	}
	return id, body[off:], nil
}

// message is what every benchmark payload carries: the publisher's index,
// its sequence number and the send time in nanoseconds on the generator's
// monotonic clock (the only clock the latencies use).
type message struct {
	pub  uint32
	seq  uint64
	sent int64
}

func (m message) encode(p *[payloadSize]byte) {
	binary.BigEndian.PutUint32(p[0:], m.pub)
	binary.BigEndian.PutUint64(p[4:], m.seq)
	binary.BigEndian.PutUint64(p[12:], uint64(m.sent))
}

func decodeMessage(p []byte) (message, error) {
	if len(p) < 20 {
		return message{}, errShortPacket
	}
	return message{
		pub:  binary.BigEndian.Uint32(p[0:]),
		seq:  binary.BigEndian.Uint64(p[4:]),
		sent: int64(binary.BigEndian.Uint64(p[12:])),
	}, nil
}

// client is one MQTT connection.
type client struct {
	conn net.Conn
	pr   packetReader
	w    *bufio.Writer
}

// endpoint is where and how to connect: plain TCP, or TLS with tls set.
type endpoint struct {
	addr string
	tls  *tls.Config
}

// connectTimeout bounds one connection setup (dial, TLS, CONNECT/CONNACK).
const connectTimeout = 10 * time.Second

// connect dials, runs the TLS handshake if any, and sends CONNECT; it
// returns once the CONNACK accepted the connection. rbuf and wbuf size the
// connection's buffers (idle connections get small ones).
func (t endpoint) connect(ctx context.Context, clientID string, rbuf, wbuf int) (*client, error) {
	ctx, cancel := context.WithTimeout(ctx, connectTimeout)
	defer cancel()
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", t.addr)
	if err != nil {
		return nil, err
	}
	deadline, _ := ctx.Deadline()
	_ = c.SetDeadline(deadline)
	if t.tls != nil {
		tc := tls.Client(c, t.tls)
		if err := tc.HandshakeContext(ctx); err != nil {
			_ = c.Close()
			return nil, fmt.Errorf("tls handshake: %w", err)
		}
		c = tc
	}
	cl := &client{conn: c, pr: packetReader{r: bufio.NewReaderSize(c, rbuf)}, w: bufio.NewWriterSize(c, wbuf)}
	if _, err := c.Write(appendConnect(nil, clientID, keepalive)); err != nil {
		_ = c.Close()
		return nil, fmt.Errorf("send CONNECT: %w", err)
	}
	for {
		h, body, err := cl.pr.next()
		if err != nil {
			_ = c.Close()
			return nil, fmt.Errorf("read CONNACK: %w", err)
		}
		if h>>4 != pktConnack {
			continue
		}
		if len(body) < 2 {
			_ = c.Close()
			return nil, fmt.Errorf("CONNACK: %w", errShortPacket)
		}
		if body[1] != 0 {
			_ = c.Close()
			return nil, fmt.Errorf("CONNACK return code %d", body[1])
		}
		break
	}
	_ = c.SetDeadline(time.Time{})
	return cl, nil
}

// subscribe subscribes to one filter and waits for the SUBACK.
func (c *client) subscribe(filter string, qos byte) error {
	_ = c.conn.SetDeadline(time.Now().Add(connectTimeout))
	defer func() { _ = c.conn.SetDeadline(time.Time{}) }()
	if _, err := c.conn.Write(appendSubscribe(nil, 1, filter, qos)); err != nil {
		return fmt.Errorf("send SUBSCRIBE: %w", err)
	}
	for {
		h, body, err := c.pr.next()
		if err != nil {
			return fmt.Errorf("read SUBACK: %w", err)
		}
		if h>>4 != pktSuback {
			continue
		}
		if len(body) < 3 {
			return fmt.Errorf("SUBACK: %w", errShortPacket)
		}
		if body[2] > 2 {
			return fmt.Errorf("subscription to %q refused (SUBACK 0x%02x)", filter, body[2])
		}
		return nil
	}
}

// disconnect sends DISCONNECT and waits, briefly, for the broker to close
// the connection, so the broker finishes its side of the session and the
// TIME_WAIT state stays on the broker's port instead of using up the
// generator's ephemeral ports.
func (c *client) disconnect() {
	_ = c.conn.SetDeadline(time.Now().Add(2 * time.Second))
	if _, err := c.conn.Write(disconnectPacket); err == nil {
		_, _ = io.Copy(io.Discard, c.conn)
	}
	_ = c.conn.Close()
}

func (c *client) close() { _ = c.conn.Close() }
