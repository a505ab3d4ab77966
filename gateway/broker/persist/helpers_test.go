package persist

import (
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
	"go.etcd.io/bbolt"

	"github.com/edgegate/edgegate/gateway/broker/internal/mqtttest"
)

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
	log := mqtttest.Logger(t)
	srv := mqtttest.NewServer(t, func(so *mqtt.Options) {
		so.Logger = log
		so.Capabilities = caps
		so.SysTopicResendInterval = 0 // mochi's 1 s default, so the hook's OnSysInfoTick runs during the tests
	})
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
	addr := mqtttest.ServeTCP(t, srv)
	if err := h.Replay(Publisher(srv)); err != nil {
		t.Fatal(err)
	}
	b := &broker{t: t, srv: srv, hook: h, probe: p, addr: addr}
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
	deadline := time.After(mqtttest.WaitLimit)
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

// client is a raw MQTT client of a broker, so a test controls every packet
// (and every acknowledgement).
type client struct {
	*mqtttest.RawClient
	t testing.TB
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

// connect connects as id, fails the test unless the broker accepts, and
// reports whether a session was present.
func (b *broker) connect(id string, o connectOpts) (*client, bool) {
	b.t.Helper()
	c := &client{RawClient: mqtttest.Dial(b.t, b.addr), t: b.t}
	ack := c.ConnectWith(id, mqtttest.ConnectOptions{Version: o.version, Clean: o.clean, Keepalive: 60, Expiry: o.expiry})
	if ack.ReasonCode != 0 {
		b.t.Fatalf("%s: connect: got %s", id, mqtttest.Show(ack))
	}
	return c, ack.SessionPresent
}

func (c *client) ack(pk packets.Packet) {
	if pk.FixedHeader.Qos == 1 {
		c.Send(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Puback}, PacketID: pk.PacketID})
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
	c.Send(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Pingreq}})
	var got []packets.Packet
	for {
		pk := c.Recv()
		if pk.FixedHeader.Type == packets.Pingresp {
			break
		}
		got = append(got, c.onPublish(pk, ack))
	}
	if err := b.srv.Publish(markerTopic, []byte("marker"), false, 0); err != nil {
		c.t.Fatal(err)
	}
	for {
		pk := c.Recv()
		if pk.FixedHeader.Type == packets.Publish && pk.TopicName == markerTopic && string(pk.Payload) == "marker" {
			break
		}
		got = append(got, c.onPublish(pk, ack))
	}
	if ack {
		// Answered once the broker handled the acknowledgements.
		c.Send(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Pingreq}})
		for {
			pk := c.Recv()
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
		c.t.Fatalf("%s: expected PUBLISH, got %s", c.ID, mqtttest.Show(pk))
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
	c.Send(pk)
	_ = c.Close()
	b.waitDisconnect(c.ID)
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
