package broker

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
	bolt "go.etcd.io/bbolt"

	"github.com/edgegate/edgegate/certs/ca"
	"github.com/edgegate/edgegate/certs/tlsconf"
	"github.com/edgegate/edgegate/gateway/config"
	"github.com/edgegate/edgegate/gateway/store"
)

// ioTimeout bounds every network wait of these tests; it is well below the
// listeners' 10 s handshake timeout so a test never passes by waiting it out.
const ioTimeout = 5 * time.Second

// itAllowAll lets every client connect, publish and subscribe: without a
// hook providing OnConnectAuthenticate mochi refuses every CONNECT.
type itAllowAll struct{ mqtt.HookBase }

func (*itAllowAll) ID() string { return "test-allow-all" }
func (*itAllowAll) Provides(b byte) bool {
	return b == mqtt.OnConnectAuthenticate || b == mqtt.OnACLCheck
}
func (*itAllowAll) OnConnectAuthenticate(*mqtt.Client, packets.Packet) bool { return true }
func (*itAllowAll) OnACLCheck(*mqtt.Client, string, bool) bool              { return true }

// itLogWriter forwards logs to t.Log until the test ends; mochi goroutines
// may log after that.
type itLogWriter struct {
	mu   sync.Mutex
	t    testing.TB
	done bool
}

func itLogger(t testing.TB) *slog.Logger {
	w := &itLogWriter{t: t}
	t.Cleanup(func() { w.mu.Lock(); w.done = true; w.mu.Unlock() })
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

func (w *itLogWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.done {
		w.t.Log(string(bytes.TrimRight(p, "\n")))
	}
	return len(p), nil
}

// itEnv is a store in a temporary directory and a local CA whose server
// certificate for 127.0.0.1 the TLS listeners present.
type itEnv struct {
	dir  string
	st   *store.Store
	db   *bolt.DB
	tls  *tlsconf.Manager
	pool *x509.CertPool // trusts the server certificate
}

func newEnv(t testing.TB) *itEnv {
	t.Helper()
	e := &itEnv{dir: t.TempDir()}
	e.open(t)
	a, err := ca.Open(e.db, ca.Options{DeviceName: "t"})
	if err != nil {
		t.Fatal(err)
	}
	cert, err := a.IssueServer([]string{"127.0.0.1"}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	e.tls = tlsconf.NewManager()
	e.tls.SetCertificate(cert)
	e.pool = a.Pool()
	return e
}

// open opens the store; the test's cleanup closes it after the brokers
// (cleanups run last-in first-out, and brokers are started later).
func (e *itEnv) open(t testing.TB) {
	t.Helper()
	st, err := store.Open(e.dir, store.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	e.st, e.db = st, st.DB()
	t.Cleanup(func() { _ = st.Close() })
}

// ListenerConfig implements TLSConfigs.
func (e *itEnv) ListenerConfig(string, config.Listener) (*tls.Config, error) {
	return e.tls.ServerConfig(tlsconf.ServerOptions{}), nil
}

// clientTLS trusts the local CA.
func (e *itEnv) clientTLS() *tls.Config {
	return &tls.Config{RootCAs: e.pool, MinVersion: tls.VersionTLS12}
}

// testConfig is config.Defaults with every listener on 127.0.0.1:0, or
// only the listeners given.
func testConfig(only map[string]config.Listener) config.Config {
	cfg := config.Defaults()
	if only != nil {
		cfg.Listeners = only
	}
	for name, l := range cfg.Listeners {
		l.Bind = "127.0.0.1:0"
		cfg.Listeners[name] = l
	}
	return cfg
}

// itBroker is a started Broker that the test's cleanup closes once.
type itBroker struct {
	*Broker
	t      testing.TB
	env    *itEnv
	closed bool
}

func startBroker(t testing.TB, env *itEnv, cfg config.Config) *itBroker {
	t.Helper()
	b, err := New(Options{
		Config:   cfg,
		DB:       env.db,
		TLS:      env,
		Auth:     new(itAllowAll),
		TraceDir: t.TempDir(),
		Version:  "test",
		Logger:   itLogger(t),
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	tb := &itBroker{Broker: b, t: t, env: env}
	t.Cleanup(tb.close)
	return tb
}

func (b *itBroker) close() {
	b.t.Helper()
	if b.closed {
		return
	}
	b.closed = true
	if err := b.Close(); err != nil {
		b.t.Errorf("close: %v", err)
	}
	if n := b.PersistErrors(); n != 0 {
		b.t.Errorf("%d store errors", n)
	}
}

// status returns the status of the named listener.
func (b *itBroker) status(name string) (ListenerStatus, bool) {
	for _, st := range b.Listeners() {
		if st.Name == name {
			return st, true
		}
	}
	return ListenerStatus{}, false
}

func (b *itBroker) addr(name string) string {
	b.t.Helper()
	st, ok := b.status(name)
	if !ok {
		b.t.Fatalf("no listener %q in %+v", name, b.Listeners())
	}
	return st.Address
}

// waitFor polls cond until it holds or ioTimeout passes.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(ioTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// waitClients waits until the named listener counts n connections.
func (b *itBroker) waitClients(name string, n int) {
	b.t.Helper()
	waitFor(b.t, fmt.Sprintf("listener %s to count %d connections", name, n), func() bool {
		st, ok := b.status(name)
		return ok && st.Clients == n
	})
}

// dial opens a transport to the named listener of the kind its type says,
// without sending anything over MQTT.
func (b *itBroker) dial(name string) *mqttConn {
	b.t.Helper()
	st, ok := b.status(name)
	if !ok {
		b.t.Fatalf("no listener %q", name)
	}
	switch st.Type {
	case config.TypeTCP:
		return dialTCP(b.t, st.Address, nil)
	case config.TypeTLS:
		return dialTCP(b.t, st.Address, b.env.clientTLS())
	case config.TypeWS:
		return dialWS(b.t, "ws://"+st.Address+st.Path, "mqtt", nil)
	case config.TypeWSS:
		return dialWS(b.t, "wss://"+st.Address+st.Path, "mqtt", b.env.clientTLS())
	}
	b.t.Fatalf("listener %q: unknown type %q", name, st.Type)
	return nil
}

// connect dials the named listener and connects as id; it fails the test
// unless the CONNACK accepts.
func (b *itBroker) connect(name, id string, o connectOpts) *mqttConn {
	b.t.Helper()
	c := b.dial(name)
	if ack := c.connect(id, o); ack.ReasonCode != 0 {
		b.t.Fatalf("%s on %s: CONNACK %#x", id, name, ack.ReasonCode)
	}
	return c
}

// transport is the byte stream under an MQTT client: TCP, TLS or
// WebSocket binary messages.
type transport interface {
	io.ReadWriteCloser
	SetReadDeadline(time.Time) error
	SetWriteDeadline(time.Time) error
}

// mqttConn is a minimal MQTT client speaking through mochi's packet codec,
// so a test controls and sees every packet.
type mqttConn struct {
	t       testing.TB
	id      string
	version byte
	tr      transport
	ws      *websocket.Conn // for WebSocket transports
	r       *bufio.Reader
	nextID  uint16
}

func newMQTTConn(t testing.TB, tr transport) *mqttConn {
	t.Cleanup(func() { _ = tr.Close() })
	return &mqttConn{t: t, version: 4, tr: tr, r: bufio.NewReader(tr)}
}

func dialTCP(t testing.TB, addr string, tlsConfig *tls.Config) *mqttConn {
	t.Helper()
	d := &net.Dialer{Timeout: ioTimeout}
	var conn net.Conn
	var err error
	if tlsConfig != nil {
		conn, err = (&tls.Dialer{NetDialer: d, Config: tlsConfig}).Dial("tcp", addr)
	} else {
		conn, err = d.Dial("tcp", addr)
	}
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	return newMQTTConn(t, conn)
}

func wsDialer(subprotocol string, tlsConfig *tls.Config) *websocket.Dialer {
	d := &websocket.Dialer{HandshakeTimeout: ioTimeout, TLSClientConfig: tlsConfig}
	if subprotocol != "" {
		d.Subprotocols = []string{subprotocol}
	}
	return d
}

func dialWS(t testing.TB, url, subprotocol string, tlsConfig *tls.Config) *mqttConn {
	t.Helper()
	ws, resp, err := wsDialer(subprotocol, tlsConfig).Dial(url, nil)
	if err != nil {
		t.Fatalf("dial %s: %v", url, err)
	}
	_ = resp.Body.Close()
	c := newMQTTConn(t, &wsTransport{ws: ws})
	c.ws = ws
	return c
}

// wsTransport carries a byte stream over WebSocket binary messages: each
// Write is one message.
type wsTransport struct {
	ws *websocket.Conn
	r  io.Reader
}

func (w *wsTransport) Read(p []byte) (int, error) {
	for {
		if w.r == nil {
			kind, r, err := w.ws.NextReader()
			if err != nil {
				return 0, err
			}
			if kind != websocket.BinaryMessage {
				return 0, fmt.Errorf("websocket message of type %d", kind)
			}
			w.r = r
		}
		n, err := w.r.Read(p)
		if errors.Is(err, io.EOF) {
			w.r = nil
			if n == 0 {
				continue
			}
			return n, nil
		}
		return n, err
	}
}

func (w *wsTransport) Write(p []byte) (int, error) {
	if err := w.ws.WriteMessage(websocket.BinaryMessage, p); err != nil {
		return 0, err
	}
	return len(p), nil
}

func (w *wsTransport) Close() error                       { return w.ws.Close() }
func (w *wsTransport) SetReadDeadline(t time.Time) error  { return w.ws.SetReadDeadline(t) }
func (w *wsTransport) SetWriteDeadline(t time.Time) error { return w.ws.SetWriteDeadline(t) }

type connectOpts struct {
	version  byte // 4 (3.1.1, the default) or 5
	username string
	expiry   uint32 // v5 session expiry; non-zero also means not clean (v3)
}

var (
	v3 = connectOpts{version: 4}
	v5 = connectOpts{version: 5}
)

// encode encodes pk as this client's protocol version.
func (c *mqttConn) encode(pk packets.Packet) []byte {
	c.t.Helper()
	pk.ProtocolVersion = c.version
	var buf bytes.Buffer
	var err error
	switch pk.FixedHeader.Type {
	case packets.Connect:
		err = pk.ConnectEncode(&buf)
	case packets.Publish:
		err = pk.PublishEncode(&buf)
	case packets.Puback:
		err = pk.PubackEncode(&buf)
	case packets.Subscribe:
		pk.FixedHeader.Qos = 1
		err = pk.SubscribeEncode(&buf)
	case packets.Pingreq:
		err = pk.PingreqEncode(&buf)
	case packets.Disconnect:
		err = pk.DisconnectEncode(&buf)
	default:
		err = fmt.Errorf("cannot send packet type %d", pk.FixedHeader.Type)
	}
	if err != nil {
		c.t.Fatalf("%s: encode: %v", c.id, err)
	}
	return buf.Bytes()
}

func (c *mqttConn) write(b []byte) {
	c.t.Helper()
	_ = c.tr.SetWriteDeadline(time.Now().Add(ioTimeout))
	if _, err := c.tr.Write(b); err != nil {
		c.t.Fatalf("%s: write: %v", c.id, err)
	}
}

func (c *mqttConn) send(pk packets.Packet) { c.t.Helper(); c.write(c.encode(pk)) }

func connectPacket(id string, o connectOpts) packets.Packet {
	pk := packets.Packet{
		FixedHeader:     packets.FixedHeader{Type: packets.Connect},
		ProtocolVersion: o.version,
		Connect: packets.ConnectParams{
			ProtocolName:     []byte("MQTT"),
			Clean:            o.expiry == 0,
			ClientIdentifier: id,
			Keepalive:        60,
		},
	}
	if o.username != "" {
		pk.Connect.Username = []byte(o.username)
		pk.Connect.UsernameFlag = true
	}
	if o.version == 5 && o.expiry > 0 {
		pk.Properties.SessionExpiryInterval = o.expiry
		pk.Properties.SessionExpiryIntervalFlag = true
	}
	return pk
}

// connect sends CONNECT and returns the CONNACK, whatever its code.
func (c *mqttConn) connect(id string, o connectOpts) packets.Packet {
	c.t.Helper()
	if o.version == 0 {
		o.version = 4
	}
	c.id, c.version = id, o.version
	c.send(connectPacket(id, o))
	ack := c.read()
	if ack.FixedHeader.Type != packets.Connack {
		c.t.Fatalf("%s: expected CONNACK, got %s", id, show(ack))
	}
	return ack
}

// readPacket reads and decodes one packet.
func (c *mqttConn) readPacket() (packets.Packet, error) {
	_ = c.tr.SetReadDeadline(time.Now().Add(ioTimeout))
	hb, err := c.r.ReadByte()
	if err != nil {
		return packets.Packet{}, err
	}
	pk := packets.Packet{ProtocolVersion: c.version}
	if err := pk.FixedHeader.Decode(hb); err != nil {
		return pk, err
	}
	n, _, err := packets.DecodeLength(c.r)
	if err != nil {
		return pk, err
	}
	pk.FixedHeader.Remaining = n
	body := make([]byte, n)
	if _, err := io.ReadFull(c.r, body); err != nil {
		return pk, err
	}
	switch pk.FixedHeader.Type {
	case packets.Connack:
		err = pk.ConnackDecode(body)
	case packets.Publish:
		err = pk.PublishDecode(body)
	case packets.Puback:
		err = pk.PubackDecode(body)
	case packets.Suback:
		err = pk.SubackDecode(body)
	case packets.Disconnect:
		err = pk.DisconnectDecode(body)
	case packets.Pingresp:
	default:
		err = fmt.Errorf("unexpected packet type %d", pk.FixedHeader.Type)
	}
	return pk, err
}

func (c *mqttConn) read() packets.Packet {
	c.t.Helper()
	pk, err := c.readPacket()
	if err != nil {
		c.t.Fatalf("%s: read: %v", c.id, err)
	}
	return pk
}

// expectClosed reads until the broker ends the connection and returns the
// packets received before the end. A read timeout fails the test.
func (c *mqttConn) expectClosed() []packets.Packet {
	c.t.Helper()
	var got []packets.Packet
	for {
		pk, err := c.readPacket()
		if err == nil {
			got = append(got, pk)
			continue
		}
		if ne, ok := errors.AsType[net.Error](err); ok && ne.Timeout() {
			c.t.Fatalf("%s: connection still open after %v (got %d packets)", c.id, ioTimeout, len(got))
		}
		return got
	}
}

// expectDisconnect waits until the broker ends the connection; a v5 client
// must have received DISCONNECT with reason code.
func (c *mqttConn) expectDisconnect(code byte) {
	c.t.Helper()
	got := c.expectClosed()
	if c.version < 5 {
		return
	}
	if len(got) == 0 || got[len(got)-1].FixedHeader.Type != packets.Disconnect || got[len(got)-1].ReasonCode != code {
		c.t.Fatalf("%s: want DISCONNECT %#x before the close, got %s", c.id, code, show(got...))
	}
}

// ping is a PINGREQ/PINGRESP round trip: the connection is alive and the
// broker handled everything sent before.
func (c *mqttConn) ping() {
	c.t.Helper()
	c.send(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Pingreq}})
	if pk := c.read(); pk.FixedHeader.Type != packets.Pingresp {
		c.t.Fatalf("%s: expected PINGRESP, got %s", c.id, show(pk))
	}
}

func (c *mqttConn) subscribe(filter string, qos byte) {
	c.t.Helper()
	c.nextID++
	id := c.nextID
	c.send(packets.Packet{
		FixedHeader: packets.FixedHeader{Type: packets.Subscribe},
		PacketID:    id,
		Filters:     packets.Subscriptions{{Filter: filter, Qos: qos}},
	})
	ack := c.read()
	if ack.FixedHeader.Type != packets.Suback || ack.PacketID != id || len(ack.ReasonCodes) != 1 || ack.ReasonCodes[0] != qos {
		c.t.Fatalf("%s: subscribe %s: got %s", c.id, filter, show(ack))
	}
}

// publish sends a QoS 0 message and waits until the broker handled it.
func (c *mqttConn) publish(topic, payload string, retain bool) {
	c.t.Helper()
	c.send(packets.Packet{
		FixedHeader: packets.FixedHeader{Type: packets.Publish, Retain: retain},
		TopicName:   topic,
		Payload:     []byte(payload),
	})
	c.ping()
}

// disconnect sends DISCONNECT and closes the connection.
func (c *mqttConn) disconnect() {
	c.t.Helper()
	c.send(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Disconnect}})
	_ = c.tr.Close()
}

// expectPublish reads the next packet, which must be a PUBLISH on topic.
func (c *mqttConn) expectPublish(topic, payload string) packets.Packet {
	c.t.Helper()
	pk := c.read()
	if pk.FixedHeader.Type != packets.Publish || pk.TopicName != topic || string(pk.Payload) != payload {
		c.t.Fatalf("%s: want PUBLISH %s %q, got %s", c.id, topic, payload, show(pk))
	}
	return pk
}

// refused reports whether a TCP connection to addr is refused.
func refused(addr string) bool {
	conn, err := net.DialTimeout("tcp", addr, ioTimeout)
	if err != nil {
		return true
	}
	_ = conn.Close()
	return false
}

// wsHandshakeStatus returns the status of a WebSocket handshake that failed.
func wsHandshakeStatus(t testing.TB, url, subprotocol string, tlsConfig *tls.Config) int {
	t.Helper()
	ws, resp, err := wsDialer(subprotocol, tlsConfig).Dial(url, nil)
	if err == nil {
		_ = ws.Close()
		t.Fatalf("dial %s: handshake succeeded", url)
	}
	if resp == nil {
		t.Fatalf("dial %s: %v", url, err)
	}
	_ = resp.Body.Close()
	return resp.StatusCode
}

// receiveAll returns every message the broker queued for c so far, in
// order, acknowledging QoS 1 ones. mochi writes messages from a queue and
// other packets directly, so a PINGRESP may overtake a message: after the
// PINGRESP (everything c sent before is handled) the broker publishes a
// marker on markerTopic, which c must be subscribed to and which is queued
// behind everything else.
func (c *mqttConn) receiveAll(b *itBroker, markerTopic string) []packets.Packet {
	c.t.Helper()
	var got []packets.Packet
	seen := func(pk packets.Packet) {
		if pk.FixedHeader.Type != packets.Publish {
			c.t.Fatalf("%s: want PUBLISH, got %s", c.id, show(pk))
		}
		if pk.FixedHeader.Qos == 1 {
			c.send(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Puback}, PacketID: pk.PacketID})
		}
		got = append(got, pk)
	}
	c.send(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Pingreq}})
	for pk := c.read(); pk.FixedHeader.Type != packets.Pingresp; pk = c.read() {
		seen(pk)
	}
	if err := b.Publish(Message{Topic: markerTopic, Payload: []byte("marker")}); err != nil {
		c.t.Fatal(err)
	}
	for pk := c.read(); pk.FixedHeader.Type != packets.Publish || pk.TopicName != markerTopic; pk = c.read() {
		seen(pk)
	}
	return got
}

// show describes packets briefly for failure messages.
func show(pks ...packets.Packet) string {
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
