package persist

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"log/slog"
	"net"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/listeners"
	"github.com/mochi-mqtt/server/v2/packets"
	"go.etcd.io/bbolt"
)

const ioTimeout = 10 * time.Second

func openDB(t testing.TB, path string) *bbolt.DB {
	t.Helper()
	db, err := bbolt.Open(path, 0o600, &bbolt.Options{Timeout: time.Second, NoSync: true})
	if err != nil {
		t.Fatalf("open %s: %v", path, err)
	}
	return db
}

func tempDB(t testing.TB) (*bbolt.DB, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "edgegate.db")
	db := openDB(t, path)
	t.Cleanup(func() { _ = db.Close() })
	return db, path
}

// testLogger forwards logs to t.Log until the test ends; mochi goroutines
// may log after that.
type testLogger struct {
	mu   sync.Mutex
	t    testing.TB
	done bool
}

func newTestLogger(t testing.TB) *slog.Logger {
	w := &testLogger{t: t}
	t.Cleanup(func() { w.mu.Lock(); w.done = true; w.mu.Unlock() })
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

func (w *testLogger) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.done {
		w.t.Log(string(bytes.TrimRight(p, "\n")))
	}
	return len(p), nil
}

// broker is a mochi server with the hook on a TCP listener.
type broker struct {
	t      testing.TB
	srv    *mqtt.Server
	hook   *Hook
	probe  *probe
	addr   string
	closed bool
}

// startBroker runs a broker on db the way gateway/broker does: other hooks
// first, then Attach, Serve, Replay. before are hooks added ahead of ours.
func startBroker(t testing.TB, db *bbolt.DB, o Options, caps *mqtt.Capabilities, before ...mqtt.Hook) *broker {
	t.Helper()
	log := newTestLogger(t)
	if caps == nil {
		caps = mqtt.NewDefaultServerCapabilities()
	}
	srv := mqtt.New(&mqtt.Options{InlineClient: true, Logger: log, Capabilities: caps})
	if err := srv.AddHook(new(allowAll), nil); err != nil {
		t.Fatal(err)
	}
	for _, hk := range before {
		if err := srv.AddHook(hk, nil); err != nil {
			t.Fatal(err)
		}
	}
	o.DB = db
	o.Logger = log
	h, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	if err := h.Attach(srv); err != nil {
		t.Fatal(err)
	}
	p := &probe{events: make(chan event, 1024)}
	if err := srv.AddHook(p, nil); err != nil { // after ours: when it sees an event, ours has handled it
		t.Fatal(err)
	}
	tcp := listeners.NewTCP(listeners.Config{ID: "t", Address: "127.0.0.1:0"})
	if err := srv.AddListener(tcp); err != nil {
		t.Fatal(err)
	}
	if err := srv.Serve(); err != nil {
		t.Fatal(err)
	}
	if err := h.Replay(Publisher(srv)); err != nil {
		t.Fatal(err)
	}
	b := &broker{t: t, srv: srv, hook: h, probe: p, addr: tcp.Address()}
	t.Cleanup(b.close)
	return b
}

func (b *broker) close() {
	if b.closed {
		return
	}
	b.closed = true
	_ = b.srv.Close() // stops the hook
	if n := b.hook.Errors(); n != 0 {
		b.t.Errorf("hook counted %d store errors", n)
	}
}

// synced waits until everything the hook queued so far is committed.
func (b *broker) synced() {
	b.t.Helper()
	if err := b.hook.w.sync(); err != nil {
		b.t.Fatal(err)
	}
}

// allowAll lets every client connect, publish and subscribe (mochi's
// hooks/auth would pull in yaml).
type allowAll struct{ mqtt.HookBase }

func (*allowAll) ID() string { return "allow-all" }
func (*allowAll) Provides(b byte) bool {
	return b == mqtt.OnConnectAuthenticate || b == mqtt.OnACLCheck
}
func (*allowAll) OnConnectAuthenticate(*mqtt.Client, packets.Packet) bool { return true }
func (*allowAll) OnACLCheck(*mqtt.Client, string, bool) bool              { return true }

// probe reports hook events to the test.
type probe struct {
	mqtt.HookBase
	events chan event
}

type event struct {
	kind   byte
	client string
}

func (p *probe) ID() string { return "probe" }
func (p *probe) Provides(b byte) bool {
	return b == mqtt.OnDisconnect || b == mqtt.OnSessionEstablished
}
func (p *probe) OnDisconnect(cl *mqtt.Client, _ error, _ bool) {
	p.events <- event{mqtt.OnDisconnect, cl.ID}
}
func (p *probe) OnSessionEstablished(cl *mqtt.Client, _ packets.Packet) {
	p.events <- event{mqtt.OnSessionEstablished, cl.ID}
}

// waitDisconnect waits until the broker has handled the disconnect of client.
func (b *broker) waitDisconnect(client string) {
	b.t.Helper()
	deadline := time.After(ioTimeout)
	for {
		select {
		case e := <-b.probe.events:
			if e.kind == mqtt.OnDisconnect && e.client == client {
				return
			}
		case <-deadline:
			b.t.Fatalf("no disconnect of %q", client)
		}
	}
}

// client is a minimal MQTT client speaking through mochi's packet codec, so
// a test controls every packet (and every acknowledgement).
type client struct {
	t       testing.TB
	id      string
	version byte
	conn    net.Conn
	r       *bufio.Reader
	nextID  uint16
}

type connectOpts struct {
	version byte   // 4 (3.1.1) or 5
	clean   bool   // clean session / clean start
	expiry  uint32 // v5 session expiry interval
}

var (
	persistentV5 = connectOpts{version: 5, expiry: 3600}
	persistentV3 = connectOpts{version: 4}
	cleanV5      = connectOpts{version: 5, clean: true}
	cleanV3      = connectOpts{version: 4, clean: true}
)

func (b *broker) connect(id string, o connectOpts) (*client, bool) {
	b.t.Helper()
	conn, err := net.DialTimeout("tcp", b.addr, ioTimeout)
	if err != nil {
		b.t.Fatal(err)
	}
	c := &client{t: b.t, id: id, version: o.version, conn: conn, r: bufio.NewReader(conn)}
	b.t.Cleanup(func() { _ = conn.Close() })
	pk := packets.Packet{
		FixedHeader:     packets.FixedHeader{Type: packets.Connect},
		ProtocolVersion: o.version,
		Connect: packets.ConnectParams{
			ProtocolName:     []byte("MQTT"),
			Clean:            o.clean,
			ClientIdentifier: id,
			Keepalive:        60,
		},
	}
	if o.version == 5 && o.expiry > 0 {
		pk.Properties.SessionExpiryInterval = o.expiry
		pk.Properties.SessionExpiryIntervalFlag = true
	}
	c.send(pk)
	ack := c.read()
	if ack.FixedHeader.Type != packets.Connack || ack.ReasonCode != 0 {
		b.t.Fatalf("%s: connect: got %+v", id, ack)
	}
	return c, ack.SessionPresent
}

func (c *client) send(pk packets.Packet) {
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
	_ = c.conn.SetWriteDeadline(time.Now().Add(ioTimeout))
	if _, err := c.conn.Write(buf.Bytes()); err != nil {
		c.t.Fatalf("%s: write: %v", c.id, err)
	}
}

func (c *client) read() packets.Packet {
	c.t.Helper()
	_ = c.conn.SetReadDeadline(time.Now().Add(ioTimeout))
	hb, err := c.r.ReadByte()
	if err != nil {
		c.t.Fatalf("%s: read: %v", c.id, err)
	}
	pk := packets.Packet{ProtocolVersion: c.version}
	if err := pk.FixedHeader.Decode(hb); err != nil {
		c.t.Fatalf("%s: fixed header: %v", c.id, err)
	}
	n, _, err := packets.DecodeLength(c.r)
	if err != nil {
		c.t.Fatalf("%s: length: %v", c.id, err)
	}
	pk.FixedHeader.Remaining = n
	body := make([]byte, n)
	if _, err := io.ReadFull(c.r, body); err != nil {
		c.t.Fatalf("%s: read body: %v", c.id, err)
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
	if err != nil {
		c.t.Fatalf("%s: decode: %v", c.id, err)
	}
	return pk
}

func (c *client) packetID() uint16 {
	c.nextID++
	return c.nextID
}

func (c *client) subscribe(filter string, qos byte) {
	c.t.Helper()
	id := c.packetID()
	c.send(packets.Packet{
		FixedHeader: packets.FixedHeader{Type: packets.Subscribe},
		PacketID:    id,
		Filters:     packets.Subscriptions{{Filter: filter, Qos: qos}},
	})
	ack := c.read()
	if ack.FixedHeader.Type != packets.Suback || ack.PacketID != id || len(ack.ReasonCodes) != 1 || ack.ReasonCodes[0] != qos {
		c.t.Fatalf("%s: subscribe %s: got %+v", c.id, filter, ack)
	}
}

// ping waits until the broker handled everything the client sent before.
func (c *client) ping() {
	c.t.Helper()
	c.send(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Pingreq}})
	if pk := c.read(); pk.FixedHeader.Type != packets.Pingresp {
		c.t.Fatalf("%s: expected PINGRESP, got %+v", c.id, pk)
	}
}

// publish sends a message and, for QoS 1, waits for its PUBACK and returns
// the reason code. It returns once the broker handed the message to the
// subscribers (mochi sends the PUBACK before that).
func (c *client) publish(topic, payload string, qos byte, retain bool) byte {
	c.t.Helper()
	pk := packets.Packet{
		FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: qos, Retain: retain},
		TopicName:   topic,
		Payload:     []byte(payload),
	}
	if qos > 0 {
		pk.PacketID = c.packetID()
	}
	c.send(pk)
	var code byte
	if qos > 0 {
		ack := c.read()
		if ack.FixedHeader.Type != packets.Puback || ack.PacketID != pk.PacketID {
			c.t.Fatalf("%s: publish %s: got %+v", c.id, topic, ack)
		}
		code = ack.ReasonCode
	}
	c.ping()
	return code
}

func (c *client) ack(pk packets.Packet) {
	if pk.FixedHeader.Qos == 1 {
		c.send(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Puback}, PacketID: pk.PacketID})
	}
}

// receive reads messages, acknowledging them if ack is set, until the
// broker's marker message on markerTopic (which the client must be
// subscribed to) arrives: the marker is queued behind everything the broker
// queued for the client before it, so nothing earlier is still on its way.
// With ack it then waits until the broker handled the acknowledgements.
func (c *client) receive(b *broker, markerTopic string, ack bool) []packets.Packet {
	c.t.Helper()
	// The ping is answered after every packet the client sent before it was
	// handled (SUBSCRIBE queues retained messages, PUBACKs free the queue).
	c.send(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Pingreq}})
	var got []packets.Packet
	for {
		pk := c.read()
		if pk.FixedHeader.Type == packets.Pingresp {
			break
		}
		got = append(got, c.onPublish(pk, ack))
	}
	if err := b.srv.Publish(markerTopic, []byte("marker"), false, 0); err != nil {
		c.t.Fatal(err)
	}
	for {
		pk := c.read()
		if pk.FixedHeader.Type == packets.Publish && pk.TopicName == markerTopic && string(pk.Payload) == "marker" {
			break
		}
		got = append(got, c.onPublish(pk, ack))
	}
	if ack {
		// Answered once the broker handled the acknowledgements.
		c.send(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Pingreq}})
		for {
			pk := c.read()
			if pk.FixedHeader.Type == packets.Pingresp {
				break
			}
			got = append(got, c.onPublish(pk, ack))
		}
	}
	return got
}

func (c *client) onPublish(pk packets.Packet, ack bool) packets.Packet {
	c.t.Helper()
	if pk.FixedHeader.Type != packets.Publish {
		c.t.Fatalf("%s: expected PUBLISH, got %+v", c.id, pk)
	}
	if ack {
		c.ack(pk)
	}
	return pk
}

// disconnect sends DISCONNECT (v5: with a new session expiry interval if
// expiry is not nil) and waits until the broker handled it.
func (c *client) disconnect(b *broker, expiry *uint32) {
	c.t.Helper()
	pk := packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Disconnect}}
	if expiry != nil {
		pk.Properties.SessionExpiryInterval = *expiry
		pk.Properties.SessionExpiryIntervalFlag = true
	}
	c.send(pk)
	_ = c.conn.Close()
	b.waitDisconnect(c.id)
}

// payloads returns the sorted payloads of pks: mochi resends a queue in no
// particular order when the messages were created in the same second.
func payloads(pks []packets.Packet) []string {
	out := make([]string, len(pks))
	for i, pk := range pks {
		out[i] = string(pk.Payload)
	}
	slices.Sort(out)
	return out
}

// keys returns the keys of a bucket.
func keys(t testing.TB, db *bbolt.DB, bucket []byte) []string {
	t.Helper()
	var out []string
	err := db.View(func(tx *bbolt.Tx) error {
		return tx.Bucket(bucket).ForEach(func(k, _ []byte) error {
			out = append(out, string(k))
			return nil
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// dropLog records OnDrop calls.
type dropLog struct {
	mu    sync.Mutex
	drops []string
}

func (d *dropLog) add(clientID string) {
	d.mu.Lock()
	d.drops = append(d.drops, clientID)
	d.mu.Unlock()
}

func (d *dropLog) get() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]string(nil), d.drops...)
}
