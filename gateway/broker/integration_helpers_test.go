package broker

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
	bolt "go.etcd.io/bbolt"

	"github.com/edgegate/edgegate/certs/ca"
	"github.com/edgegate/edgegate/certs/tlsconf"
	"github.com/edgegate/edgegate/gateway/broker/internal/mqtttest"
	"github.com/edgegate/edgegate/gateway/config"
	"github.com/edgegate/edgegate/gateway/store"
)

// ioTimeout bounds every network wait of these tests; it is well below the
// listeners' 10 s handshake timeout so a test never passes by waiting it out.
const ioTimeout = 5 * time.Second

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
	return startBrokerWithAuth(t, env, cfg, new(mqtttest.AllowAll))
}

// startBrokerWithAuth starts a broker whose auth hook is auth, which must
// let the test's clients in.
func startBrokerWithAuth(t testing.TB, env *itEnv, cfg config.Config, auth mqtt.Hook) *itBroker {
	t.Helper()
	b, err := New(Options{
		Config:   cfg,
		DB:       env.db,
		TLS:      env,
		Auth:     auth,
		TraceDir: t.TempDir(),
		Version:  "test",
		Logger:   mqtttest.Logger(t),
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

// mqttConn is a raw MQTT client of a listener, with the WebSocket
// connection under it when there is one.
type mqttConn struct {
	*mqtttest.RawClient
	t  testing.TB
	ws *websocket.Conn
}

func newMQTTConn(t testing.TB, tr mqtttest.Transport) *mqttConn {
	c := mqtttest.NewRawClient(t, tr)
	c.Timeout = ioTimeout
	return &mqttConn{RawClient: c, t: t}
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

// options are o as a CONNECT: keepalive 60, a clean session unless there
// is a session expiry.
func (o connectOpts) options() mqtttest.ConnectOptions {
	return mqtttest.ConnectOptions{Version: o.version, Clean: o.expiry == 0, Keepalive: 60, Username: o.username, Expiry: o.expiry}
}

// connect sends CONNECT and returns the CONNACK, whatever its code.
func (c *mqttConn) connect(id string, o connectOpts) packets.Packet {
	c.t.Helper()
	return c.ConnectWith(id, o.options())
}

// expectClosed reads until the broker ends the connection and returns the
// packets received before the end. A read timeout fails the test.
func (c *mqttConn) expectClosed() []packets.Packet {
	c.t.Helper()
	var got []packets.Packet
	for {
		pk, err := c.ReadPacket()
		if err == nil {
			got = append(got, pk)
			continue
		}
		if ne, ok := errors.AsType[net.Error](err); ok && ne.Timeout() {
			c.t.Fatalf("%s: connection still open after %v (got %d packets)", c.ID, ioTimeout, len(got))
		}
		return got
	}
}

// expectDisconnect waits until the broker ends the connection; a v5 client
// must have received DISCONNECT with reason code.
func (c *mqttConn) expectDisconnect(code byte) {
	c.t.Helper()
	got := c.expectClosed()
	if c.Version < 5 {
		return
	}
	if len(got) == 0 || got[len(got)-1].FixedHeader.Type != packets.Disconnect || got[len(got)-1].ReasonCode != code {
		c.t.Fatalf("%s: want DISCONNECT %#x before the close, got %s", c.ID, code, mqtttest.Show(got...))
	}
}

// disconnect sends DISCONNECT and closes the connection.
func (c *mqttConn) disconnect() {
	c.t.Helper()
	c.Send(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Disconnect}})
	_ = c.Close()
}

// expectPublish reads the next packet, which must be a PUBLISH on topic.
func (c *mqttConn) expectPublish(topic, payload string) packets.Packet {
	c.t.Helper()
	pk := c.Recv()
	if pk.FixedHeader.Type != packets.Publish || pk.TopicName != topic || string(pk.Payload) != payload {
		c.t.Fatalf("%s: want PUBLISH %s %q, got %s", c.ID, topic, payload, mqtttest.Show(pk))
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
			c.t.Fatalf("%s: want PUBLISH, got %s", c.ID, mqtttest.Show(pk))
		}
		if pk.FixedHeader.Qos == 1 {
			c.Send(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Puback}, PacketID: pk.PacketID})
		}
		got = append(got, pk)
	}
	c.Send(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Pingreq}})
	for pk := c.Recv(); pk.FixedHeader.Type != packets.Pingresp; pk = c.Recv() {
		seen(pk)
	}
	if err := b.Publish(Message{Topic: markerTopic, Payload: []byte("marker")}); err != nil {
		c.t.Fatal(err)
	}
	for pk := c.Recv(); pk.FixedHeader.Type != packets.Publish || pk.TopicName != markerTopic; pk = c.Recv() {
		seen(pk)
	}
	return got
}
