package sys

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/eclipse/paho.golang/paho"
	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/edgegate/edgegate/gateway/broker/internal/mqtttest"
	"github.com/edgegate/edgegate/gateway/config"
)

// clock is a settable Options.Now.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Date(2025, 1, 2, 15, 4, 5, 0, time.UTC)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// addHook adds h (and then any probes) to srv.
func addHooks(t *testing.T, srv *mqtt.Server, hooks ...mqtt.Hook) {
	t.Helper()
	for _, h := range hooks {
		if err := srv.AddHook(h, nil); err != nil {
			t.Fatal(err)
		}
	}
}

func quietRuntime(o Options) Options {
	if o.HeapBytes == nil {
		o.HeapBytes = func() uint64 { return 1 << 20 }
	}
	if o.MaxGCPause == nil {
		o.MaxGCPause = func() time.Duration { return 0 }
	}
	return o
}

func TestPublishNowTopics(t *testing.T) {
	t.Parallel()
	srv := mqtttest.NewServer(t)
	clk := newClock()
	h := New(quietRuntime(Options{
		Server:   srv,
		Node:     "gw1@edge",
		Version:  "1.2.3",
		Sysdescr: "edgegate test broker",
		Now:      clk.Now,
	}))
	addHooks(t, srv, h)
	sys := subscribe(t, srv, "$SYS/#")
	clk.Add(26*time.Hour + 3*time.Minute + 4*time.Second)

	if err := h.PublishNow(); err != nil {
		t.Fatal(err)
	}
	got := map[string]sysMessage{}
	var order []string
	for _, m := range sys.drain() {
		if _, dup := got[m.topic]; dup {
			t.Errorf("topic %s published twice", m.topic)
		}
		got[m.topic] = m
		order = append(order, m.topic)
	}

	p := "$SYS/brokers/gw1@edge/"
	want := map[string]string{
		"$SYS/brokers":                  "gw1@edge",
		p + "version":                   "1.2.3",
		p + "uptime":                    "1 days, 2 hours, 3 minutes, 4 seconds",
		p + "datetime":                  "2025-01-03 17:07:09",
		p + "sysdescr":                  "edgegate test broker",
		p + "stats/clients/count":       "0",
		p + "stats/clients/max":         "0",
		p + "stats/sessions/count":      "0",
		p + "stats/sessions/max":        "0",
		p + "stats/subscriptions/count": "0",
		p + "stats/subscriptions/max":   "0",
		p + "stats/topics/count":        "0",
		p + "stats/topics/max":          "0",
	}
	for _, m := range []string{
		"bytes/received", "bytes/sent", "packets/received", "packets/sent", "packets/connect", "packets/connack",
		"packets/publish/received", "packets/publish/sent", "packets/puback/received", "packets/puback/sent",
		"packets/pubrec/received", "packets/pubrec/sent", "packets/pubrel/received", "packets/pubrel/sent",
		"packets/pubcomp/received", "packets/pubcomp/sent", "packets/subscribe", "packets/suback",
		"packets/unsubscribe", "packets/unsuback", "packets/pingreq", "packets/pingresp", "packets/disconnect",
		"messages/received", "messages/sent", "messages/retained", "messages/stored", "messages/dropped",
	} {
		want[p+"metrics/"+m] = "0"
	}
	for topic, payload := range want {
		m, ok := got[topic]
		switch {
		case !ok:
			t.Errorf("%s not published", topic)
		case m.payload != payload:
			t.Errorf("%s = %q, want %q", topic, m.payload, payload)
		case m.retain || m.qos != 0:
			t.Errorf("%s: retain=%v qos=%d, want not retained, QoS 0", topic, m.retain, m.qos)
		}
	}
	for topic := range got {
		if _, ok := want[topic]; !ok {
			t.Errorf("unexpected topic %s", topic)
		}
	}
	if len(order) > 0 && order[0] != "$SYS/brokers" {
		t.Errorf("first topic %s, want $SYS/brokers", order[0])
	}
}

// TestCountersScriptedExchange runs a known MQTT 3.1.1 exchange and checks
// every counter exactly: packets by type, bytes both ways, messages, and the
// gauges in the middle of it.
func TestCountersScriptedExchange(t *testing.T) {
	t.Parallel()
	srv := mqtttest.NewServer(t)
	h := New(quietRuntime(Options{Server: srv, Node: "n"}))
	pr := newProbe()
	addHooks(t, srv, h, pr)
	events := subscribe(t, srv, "$SYS/brokers/n/clients/#")
	addr := mqtttest.ServeTCP(t, srv)

	sub := mqtttest.Dial(t, addr)
	sub.Connect("sub", 60)
	sub.Send(packets.Packet{
		FixedHeader: packets.FixedHeader{Type: packets.Subscribe, Qos: 1},
		PacketID:    1,
		Filters:     packets.Subscriptions{{Filter: "t/#", Qos: 2}},
	})
	if ack := sub.Expect(packets.Suback); len(ack.ReasonCodes) != 1 || ack.ReasonCodes[0] != 2 {
		t.Fatalf("SUBACK codes %v", ack.ReasonCodes)
	}
	pub := mqtttest.Dial(t, addr)
	pub.Connect("pub", 60)

	publish := func(qos byte, id uint16, retain bool, topic, payload string) packets.Packet {
		return packets.Packet{
			FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: qos, Retain: retain},
			PacketID:    id,
			TopicName:   topic,
			Payload:     []byte(payload),
		}
	}
	ack := func(typ byte, id uint16) packets.Packet {
		fh := packets.FixedHeader{Type: typ}
		if typ == packets.Pubrel {
			fh.Qos = 1
		}
		return packets.Packet{FixedHeader: fh, PacketID: id}
	}

	// QoS 0.
	pub.Send(publish(0, 0, false, "t/a", "hello"))
	if m := sub.Expect(packets.Publish); string(m.Payload) != "hello" {
		t.Fatalf("sub got %q", m.Payload)
	}
	// QoS 1.
	pub.Send(publish(1, 1, false, "t/b", "x"))
	pub.Expect(packets.Puback)
	m := sub.Expect(packets.Publish)
	sub.Send(ack(packets.Puback, m.PacketID))
	// QoS 2, retained.
	pub.Send(publish(2, 2, true, "t/c", "yz"))
	pub.Expect(packets.Pubrec)
	m = sub.Expect(packets.Publish)
	sub.Send(ack(packets.Pubrec, m.PacketID))
	sub.Expect(packets.Pubrel)
	sub.Send(ack(packets.Pubcomp, m.PacketID))
	pub.Send(ack(packets.Pubrel, 2))
	pub.Expect(packets.Pubcomp)
	// A ping each: the broker has processed everything before it.
	pub.Send(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Pingreq}})
	pub.Expect(packets.Pingresp)
	sub.Send(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Pingreq}})
	sub.Expect(packets.Pingresp)

	mid := h.Snapshot()
	for name, g := range map[string]Gauge{
		"clients": mid.Clients, "sessions": mid.Sessions, "subscriptions": mid.Subscriptions, "topics": mid.Topics,
	} {
		want := map[string]Gauge{
			"clients": {2, 2}, "sessions": {2, 2}, "subscriptions": {1, 1},
			"topics": {2, 2}, // "t/#" subscribed, "t/c" retained
		}[name]
		if g != want {
			t.Errorf("%s = %+v, want %+v", name, g, want)
		}
	}
	if mid.Messages.Retained != 1 || mid.Messages.Stored != 0 {
		t.Errorf("retained %d stored %d, want 1, 0", mid.Messages.Retained, mid.Messages.Stored)
	}

	sub.Send(packets.Packet{
		FixedHeader: packets.FixedHeader{Type: packets.Unsubscribe, Qos: 1},
		PacketID:    3,
		Filters:     packets.Subscriptions{{Filter: "t/#"}},
	})
	sub.Expect(packets.Unsuback)
	pub.Send(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Disconnect}})
	sub.Send(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Disconnect}})
	events.all(t, "/pub/disconnected", "/sub/disconnected")
	const wantRead, wantSent = 15, 13
	pr.waitFor(t, wantRead, wantSent)
	h.AddDropped(2)

	s := h.Snapshot()
	wantIn := map[string]uint64{
		"connect": 2, "publish": 3, "puback": 1, "pubrec": 1, "pubrel": 1, "pubcomp": 1,
		"subscribe": 1, "unsubscribe": 1, "pingreq": 2, "disconnect": 2,
	}
	wantOut := map[string]uint64{
		"connack": 2, "publish": 3, "puback": 1, "pubrec": 1, "pubrel": 1, "pubcomp": 1,
		"suback": 1, "unsuback": 1, "pingresp": 2,
	}
	for _, typ := range packetTypeNames[1:] {
		if s.Packets.ReceivedByType[typ] != wantIn[typ] {
			t.Errorf("received %s = %d, want %d", typ, s.Packets.ReceivedByType[typ], wantIn[typ])
		}
		if s.Packets.SentByType[typ] != wantOut[typ] {
			t.Errorf("sent %s = %d, want %d", typ, s.Packets.SentByType[typ], wantOut[typ])
		}
	}
	if s.Packets.Received != wantRead || s.Packets.Sent != wantSent {
		t.Errorf("packets received/sent = %d/%d, want %d/%d", s.Packets.Received, s.Packets.Sent, wantRead, wantSent)
	}
	if want := uint64(sub.BytesSent() + pub.BytesSent()); s.Bytes.Received != want {
		t.Errorf("bytes received = %d, want %d", s.Bytes.Received, want)
	}
	if want := uint64(sub.BytesReceived() + pub.BytesReceived()); s.Bytes.Sent != want {
		t.Errorf("bytes sent = %d, want %d", s.Bytes.Sent, want)
	}
	wantMsgs := MessageStats{Received: 3, Sent: 3, Dropped: 2, Retained: 1, Stored: 0}
	if s.Messages != wantMsgs {
		t.Errorf("messages = %+v, want %+v", s.Messages, wantMsgs)
	}
	if s.Clients.Max != 2 || s.Subscriptions.Max != 1 || s.Topics.Max != 2 {
		t.Errorf("max clients/subscriptions/topics = %d/%d/%d, want 2/1/2", s.Clients.Max, s.Subscriptions.Max, s.Topics.Max)
	}

	// The same figures reach $SYS.
	sys := subscribe(t, srv, "$SYS/brokers/n/metrics/#")
	if err := h.PublishNow(); err != nil {
		t.Fatal(err)
	}
	metrics := map[string]string{}
	for _, m := range sys.drain() {
		metrics[strings.TrimPrefix(m.topic, "$SYS/brokers/n/metrics/")] = m.payload
	}
	for topic, want := range map[string]string{
		"packets/received": "15", "packets/sent": "13", "packets/connect": "2", "packets/connack": "2",
		"packets/publish/received": "3", "packets/publish/sent": "3", "packets/pingreq": "2",
		"packets/disconnect": "2", "messages/received": "3", "messages/dropped": "2", "messages/retained": "1",
		"bytes/received": strconv.Itoa(sub.BytesSent() + pub.BytesSent()),
	} {
		if metrics[topic] != want {
			t.Errorf("metrics/%s = %q, want %q", topic, metrics[topic], want)
		}
	}
}

// TestClientPresence checks the connected and disconnected events and
// their reasons.
func TestClientPresence(t *testing.T) {
	t.Parallel()
	srv := mqtttest.NewServer(t)
	clk := newClock()
	h := New(quietRuntime(Options{Server: srv, Node: "n", Now: clk.Now}))
	addHooks(t, srv, h)
	events := subscribe(t, srv, "$SYS/brokers/n/clients/#")
	addr := mqtttest.ServeTCP(t, srv)
	ts := clk.Now().Unix()

	decode := func(m sysMessage) map[string]any {
		t.Helper()
		var v map[string]any
		dec := json.NewDecoder(strings.NewReader(m.payload))
		dec.UseNumber()
		if err := dec.Decode(&v); err != nil {
			t.Fatalf("%s: %v: %s", m.topic, err, m.payload)
		}
		return v
	}
	check := func(m sysMessage, want map[string]any) {
		t.Helper()
		got := decode(m)
		if len(got) != len(want) {
			t.Errorf("%s: fields %v, want %v", m.topic, got, want)
		}
		for k, v := range want {
			if fmt.Sprint(got[k]) != fmt.Sprint(v) {
				t.Errorf("%s: %s = %v, want %v", m.topic, k, got[k], v)
			}
		}
	}

	t.Run("mqtt5 persistent, clean disconnect", func(t *testing.T) {
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		c := paho.NewClient(paho.ClientConfig{Conn: conn})
		expiry := uint32(300)
		ctx, cancel := context.WithTimeout(t.Context(), mqtttest.WaitLimit)
		defer cancel()
		ca, err := c.Connect(ctx, &paho.Connect{
			ClientID: "p5", KeepAlive: 30, CleanStart: false,
			Username: "u1", UsernameFlag: true, Password: []byte("secret"), PasswordFlag: true,
			Properties: &paho.ConnectProperties{SessionExpiryInterval: &expiry},
		})
		if err != nil || ca.ReasonCode != 0 {
			t.Fatalf("connect: %v %+v", err, ca)
		}
		check(events.next(t, "/p5/connected"), map[string]any{
			"clientid": "p5", "username": "u1", "ipaddress": "127.0.0.1", "session": true,
			"protocol": 5, "connack": 0, "ts": ts,
		})
		if err := c.Disconnect(&paho.Disconnect{ReasonCode: 0}); err != nil {
			t.Fatal(err)
		}
		check(events.next(t, "/p5/disconnected"), map[string]any{
			"clientid": "p5", "username": "u1", "reason": "normal", "ts": ts,
		})
	})

	t.Run("mqtt3 connection closed", func(t *testing.T) {
		c := mqtttest.Dial(t, addr)
		c.Connect("r1", 60)
		check(events.next(t, "/r1/connected"), map[string]any{
			"clientid": "r1", "username": "", "ipaddress": "127.0.0.1", "session": false,
			"protocol": 4, "connack": 0, "ts": ts,
		})
		_ = c.Close()
		check(events.next(t, "/r1/disconnected"), map[string]any{
			"clientid": "r1", "username": "", "reason": "closed", "ts": ts,
		})
	})

	t.Run("taken over", func(t *testing.T) {
		first := mqtttest.Dial(t, addr)
		first.Connect("dup", 60)
		events.next(t, "/dup/connected")
		second := mqtttest.Dial(t, addr)
		second.Connect("dup", 60)
		if got := decode(events.next(t, "/dup/disconnected"))["reason"]; got != "taken_over" {
			t.Errorf("reason %v, want taken_over", got)
		}
	})

	t.Run("keepalive timeout", func(t *testing.T) {
		c := mqtttest.Dial(t, addr)
		c.Connect("idle", 1) // read deadline 1.5 s
		events.next(t, "/idle/connected")
		if got := decode(events.next(t, "/idle/disconnected"))["reason"]; got != "keepalive_timeout" {
			t.Errorf("reason %v, want keepalive_timeout", got)
		}
	})

	t.Run("clientid with topic characters", func(t *testing.T) {
		c := mqtttest.Dial(t, addr)
		c.Connect("a/b+c", 60)
		m := events.next(t, "/connected")
		if m.topic != "$SYS/brokers/n/clients/a_b_c/connected" || decode(m)["clientid"] != "a/b+c" {
			t.Errorf("topic %s payload %s", m.topic, m.payload)
		}
	})
}

func TestDisconnectReason(t *testing.T) {
	t.Parallel()
	timeout := &net.OpError{Op: "read", Net: "tcp", Err: os.ErrDeadlineExceeded}
	closed := fmt.Errorf("read: %w", net.ErrClosed)
	for _, tc := range []struct {
		cause, err error
		want       string
	}{
		{packets.CodeDisconnect, nil, "normal"},
		{nil, packets.CodeDisconnectWillMessage, "normal"},
		{packets.CodeDisconnectWillMessage, packets.CodeDisconnectWillMessage, "normal"},
		{packets.ErrSessionTakenOver, closed, "taken_over"},
		{packets.ErrSessionTakenOver, nil, "taken_over"},
		{timeout, timeout, "keepalive_timeout"},
		{io.EOF, io.EOF, "closed"},
		{closed, nil, "closed"},
		{packets.ErrServerShuttingDown, closed, "server_shutdown"},
		{packets.ErrProtocolViolationSecondConnect, nil, packets.ErrProtocolViolationSecondConnect.Reason},
		{packets.ErrNotAuthorized, nil, "not authorized"},
		{errors.New("boom"), nil, "boom"},
		{nil, nil, "closed"},
	} {
		if got := DisconnectReason(tc.cause, tc.err); got != tc.want {
			t.Errorf("DisconnectReason(%v, %v) = %q, want %q", tc.cause, tc.err, got, tc.want)
		}
	}
}

// fakeRuntime is a settable heap, GC pause and listener load source.
type fakeRuntime struct {
	heap  atomic.Uint64
	pause atomic.Int64
	mu    sync.Mutex
	loads map[string]ListenerLoad
}

func (f *fakeRuntime) setLoads(l map[string]ListenerLoad) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.loads = l
}

func (f *fakeRuntime) listenerLimits() map[string]ListenerLoad {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.loads
}

func TestAlarmsAndSysmon(t *testing.T) {
	t.Parallel()
	srv := mqtttest.NewServer(t)
	clk := newClock()
	f := &fakeRuntime{}
	h := New(Options{
		Server: srv,
		Node:   "n",
		Now:    clk.Now,
		Settings: config.Sys{
			HeapAlarmBytes:      1000,
			ClientsAlarmPercent: 90,
			LongGC:              config.Duration(100 * time.Millisecond),
		},
		ListenerLimits: f.listenerLimits,
		HeapBytes:      f.heap.Load,
		MaxGCPause:     func() time.Duration { return time.Duration(f.pause.Swap(0)) },
	})
	events := subscribe(t, srv, "$SYS/brokers/n/+/#") // alarms and sysmon
	tick := func() map[string]string {
		t.Helper()
		clk.Add(time.Minute)
		if err := h.PublishNow(); err != nil {
			t.Fatal(err)
		}
		out := map[string]string{}
		for _, m := range events.drain() {
			rest := strings.TrimPrefix(m.topic, "$SYS/brokers/n/")
			if strings.HasPrefix(rest, "alarms/") || strings.HasPrefix(rest, "sysmon/") {
				out[rest] = m.payload
			}
		}
		return out
	}
	keys := func(m map[string]string) string {
		var k []string
		for key := range m {
			k = append(k, key)
		}
		slices.Sort(k)
		return fmt.Sprint(k)
	}
	alarm := func(payload string) Alarm {
		t.Helper()
		var a Alarm
		if err := json.Unmarshal([]byte(payload), &a); err != nil {
			t.Fatal(err)
		}
		return a
	}

	// All quiet.
	f.heap.Store(500)
	f.setLoads(map[string]ListenerLoad{"tcp": {Clients: 5, MaxClients: 10}, "ws": {Clients: 3}})
	if got := tick(); len(got) != 0 {
		t.Fatalf("quiet tick published %s", keys(got))
	}

	// Heap above 80 %, a long GC pause, tcp at 90 %.
	f.heap.Store(900)
	f.pause.Store(int64(150 * time.Millisecond))
	f.setLoads(map[string]ListenerLoad{"tcp": {Clients: 9, MaxClients: 10}, "ws": {Clients: 3}})
	raisedAt := clk.Now().Add(time.Minute).Unix()
	got := tick()
	if want := "[alarms/clients_near_max/tcp/alert sysmon/large_heap sysmon/long_gc]"; keys(got) != want {
		t.Fatalf("published %s, want %s", keys(got), want)
	}
	if a := alarm(got["alarms/clients_near_max/tcp/alert"]); a.ID != "clients_near_max/tcp" ||
		a.Value != 9 || a.Threshold != 9 || a.TS != raisedAt || a.Message == "" {
		t.Errorf("alert payload %+v", a)
	}
	var gc map[string]float64
	if err := json.Unmarshal([]byte(got["sysmon/long_gc"]), &gc); err != nil || gc["pause_ms"] != 150 || gc["threshold_ms"] != 100 {
		t.Errorf("long_gc payload %s (%v)", got["sysmon/long_gc"], err)
	}
	var heap map[string]uint64
	if err := json.Unmarshal([]byte(got["sysmon/large_heap"]), &heap); err != nil || heap["heap_bytes"] != 900 || heap["limit_bytes"] != 800 {
		t.Errorf("large_heap payload %s (%v)", got["sysmon/large_heap"], err)
	}

	// Heap above the alarm; the clients alarm is not raised again.
	f.heap.Store(1500)
	got = tick()
	if want := "[alarms/high_memory/alert sysmon/large_heap]"; keys(got) != want {
		t.Fatalf("published %s, want %s", keys(got), want)
	}
	active := h.ActiveAlarms()
	if len(active) != 2 || active[0].ID != "clients_near_max/tcp" || active[1].ID != "high_memory" ||
		active[0].TS != raisedAt || active[1].Value != 1500 {
		t.Errorf("active alarms %+v", active)
	}
	if s := h.Snapshot(); len(s.Alarms) != 2 {
		t.Errorf("snapshot alarms %+v", s.Alarms)
	}

	// Both conditions gone: both cleared, with the current values.
	f.heap.Store(100)
	f.setLoads(map[string]ListenerLoad{"tcp": {Clients: 1, MaxClients: 10}})
	got = tick()
	if want := "[alarms/clients_near_max/tcp/clear alarms/high_memory/clear]"; keys(got) != want {
		t.Fatalf("published %s, want %s", keys(got), want)
	}
	if a := alarm(got["alarms/high_memory/clear"]); a.Value != 100 || a.TS != clk.Now().Unix() {
		t.Errorf("clear payload %+v", a)
	}
	if active := h.ActiveAlarms(); len(active) != 0 {
		t.Errorf("active alarms after clear %+v", active)
	}
}

// TestRunTicks runs Run in a synctest bubble: it publishes at once, then
// every interval, and returns when its context ends.
func TestRunTicks(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		srv := mqtttest.NewServer(t)
		h := New(quietRuntime(Options{
			Server:   srv,
			Node:     "n",
			Settings: config.Sys{Interval: config.Duration(10 * time.Second)},
		}))
		uptime := subscribe(t, srv, "$SYS/brokers/n/uptime")
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error)
		go func() { done <- h.Run(ctx) }()

		synctest.Wait()
		if got := uptime.drain(); len(got) != 1 || got[0].payload != "0 seconds" {
			t.Fatalf("at start: %+v", got)
		}
		time.Sleep(10 * time.Second)
		synctest.Wait()
		if got := uptime.drain(); len(got) != 1 || got[0].payload != "10 seconds" {
			t.Fatalf("after one interval: %+v", got)
		}
		time.Sleep(50 * time.Second)
		synctest.Wait()
		got := uptime.drain()
		if len(got) != 5 || got[4].payload != "1 minutes, 0 seconds" {
			t.Fatalf("after six intervals: %+v", got)
		}
		cancel()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	})
}

func TestFormatUptime(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		d    time.Duration
		want string
	}{
		{0, "0 seconds"},
		{1500 * time.Millisecond, "1 seconds"},
		{59 * time.Second, "59 seconds"},
		{time.Minute, "1 minutes, 0 seconds"},
		{3*time.Minute + 4*time.Second, "3 minutes, 4 seconds"},
		{time.Hour, "1 hours, 0 minutes, 0 seconds"},
		{2*time.Hour + 5*time.Second, "2 hours, 0 minutes, 5 seconds"},
		{24 * time.Hour, "1 days, 0 hours, 0 minutes, 0 seconds"},
		{26*time.Hour + 3*time.Minute + 4*time.Second, "1 days, 2 hours, 3 minutes, 4 seconds"},
		{400 * 24 * time.Hour, "400 days, 0 hours, 0 minutes, 0 seconds"},
		{-time.Second, "0 seconds"},
	} {
		if got := FormatUptime(tc.d); got != tc.want {
			t.Errorf("FormatUptime(%s) = %q, want %q", tc.d, got, tc.want)
		}
	}
}

func TestWireSize(t *testing.T) {
	t.Parallel()
	for _, rem := range []int{0, 1, 127, 128, 16383, 16384, 2097151, 2097152, 268435455} {
		fh := packets.FixedHeader{Type: packets.Publish, Remaining: rem}
		var buf bytes.Buffer
		fh.Encode(&buf)
		if got, want := wireSize(rem), uint64(buf.Len()+rem); got != want {
			t.Errorf("wireSize(%d) = %d, want %d", rem, got, want)
		}
	}
}

// TestHotPathAllocations: counting a packet or a message allocates nothing.
func TestHotPathAllocations(t *testing.T) {
	srv := mqtttest.NewServer(t)
	h := New(quietRuntime(Options{Server: srv}))
	cl := srv.NewClient(nil, "tcp", "c1", false)
	pk := packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Publish, Remaining: 12}, TopicName: "a/b"}
	wire := make([]byte, 14)
	allocs := testing.AllocsPerRun(1000, func() {
		_, _ = h.OnPacketRead(cl, pk)
		h.OnPacketSent(cl, pk, wire)
		h.OnPublished(cl, pk)
	})
	if allocs != 0 {
		t.Errorf("hot path allocates %.1f times per packet", allocs)
	}
}

// promSample is a sample line: name{labels} value.
var promSample = regexp.MustCompile(`^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(?:[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\[\\"n])*"(?:,[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\[\\"n])*")*)?\})? (\S+)$`)

// parsePrometheus checks text line by line against the exposition format
// and returns the samples by "name{labels}".
func parsePrometheus(t *testing.T, text string) map[string]float64 {
	t.Helper()
	if !strings.HasSuffix(text, "\n") {
		t.Error("output does not end with a newline")
	}
	helped := map[string]bool{}
	typed := map[string]string{}
	samples := map[string]float64{}
	for i, line := range strings.Split(strings.TrimSuffix(text, "\n"), "\n") {
		n := i + 1
		switch {
		case strings.HasPrefix(line, "# HELP "):
			name, help, ok := strings.Cut(strings.TrimPrefix(line, "# HELP "), " ")
			if !ok || help == "" || helped[name] {
				t.Errorf("line %d: bad or repeated HELP: %q", n, line)
			}
			helped[name] = true
		case strings.HasPrefix(line, "# TYPE "):
			name, typ, _ := strings.Cut(strings.TrimPrefix(line, "# TYPE "), " ")
			if typ != "counter" && typ != "gauge" {
				t.Errorf("line %d: type %q", n, typ)
			}
			if _, dup := typed[name]; dup || !helped[name] {
				t.Errorf("line %d: TYPE repeated or without HELP: %q", n, line)
			}
			if typ == "counter" && !strings.HasSuffix(name, "_total") {
				t.Errorf("line %d: counter %s does not end in _total", n, name)
			}
			typed[name] = typ
		default:
			m := promSample.FindStringSubmatch(line)
			if m == nil {
				t.Errorf("line %d: not a sample: %q", n, line)
				continue
			}
			if _, ok := typed[m[1]]; !ok {
				t.Errorf("line %d: sample of undeclared family %s", n, m[1])
			}
			v, err := strconv.ParseFloat(m[3], 64)
			if err != nil {
				t.Errorf("line %d: value %q: %v", n, m[3], err)
			}
			key := m[1] + m[2]
			if _, dup := samples[key]; dup {
				t.Errorf("line %d: duplicate sample %s", n, key)
			}
			samples[key] = v
		}
	}
	return samples
}

func TestWritePrometheus(t *testing.T) {
	t.Parallel()
	srv := mqtttest.NewServer(t)
	f := &fakeRuntime{}
	f.heap.Store(2000)
	f.setLoads(map[string]ListenerLoad{
		"tcp":        {Clients: 9, MaxClients: 10},
		`we"ird\one`: {Clients: 1},
	})
	h := New(Options{
		Server:         srv,
		Node:           "gw1",
		Version:        "1.2.3",
		Settings:       config.Sys{HeapAlarmBytes: 1000, ClientsAlarmPercent: 90, LongGC: config.Duration(time.Second)},
		ListenerLimits: f.listenerLimits,
		HeapBytes:      f.heap.Load,
		MaxGCPause:     func() time.Duration { return 0 },
	})
	cl := srv.NewClient(nil, "tcp", "c1", false)
	for range 3 {
		_, _ = h.OnPacketRead(cl, packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Publish, Remaining: 8}})
	}
	h.OnPacketSent(cl, packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Connack, Remaining: 2}}, nil)
	h.AddDropped(7)
	if err := h.PublishNow(); err != nil { // raises the alarms
		t.Fatal(err)
	}

	var b strings.Builder
	if err := WritePrometheus(&b, h.Snapshot()); err != nil {
		t.Fatal(err)
	}
	samples := parsePrometheus(t, b.String())
	for key, want := range map[string]float64{
		`edgegate_info{node="gw1",version="1.2.3"}`:          1,
		`edgegate_clients_connected`:                         0,
		`edgegate_packets_received_total{type="publish"}`:    3,
		`edgegate_packets_received_total{type="connect"}`:    0,
		`edgegate_packets_sent_total{type="connack"}`:        1,
		`edgegate_bytes_received_total`:                      30,
		`edgegate_bytes_sent_total`:                          4,
		`edgegate_messages_dropped_total`:                    7,
		`edgegate_listener_clients{listener="tcp"}`:          9,
		`edgegate_listener_max_clients{listener="tcp"}`:      10,
		`edgegate_listener_clients{listener="we\"ird\\one"}`: 1,
		`edgegate_alarms_active`:                             2,
		`edgegate_alarm_active{id="high_memory"}`:            1,
		`edgegate_alarm_active{id="clients_near_max/tcp"}`:   1,
		`edgegate_go_heap_bytes`:                             2000,
		`edgegate_messages_received_total`:                   0,
	} {
		got, ok := samples[key]
		if !ok {
			t.Errorf("no sample %s", key)
		} else if got != want {
			t.Errorf("%s = %v, want %v", key, got, want)
		}
	}
	if t.Failed() {
		t.Log(b.String())
	}
}

func TestSnapshotJSON(t *testing.T) {
	t.Parallel()
	srv := mqtttest.NewServer(t)
	h := New(quietRuntime(Options{Server: srv, Node: "n", Version: "v"}))
	b, err := json.Marshal(h.Snapshot())
	if err != nil {
		t.Fatal(err)
	}
	var v map[string]any
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{"node", "version", "uptime_seconds", "clients", "sessions", "subscriptions",
		"topics", "bytes", "packets", "messages", "listeners", "alarms", "runtime"} {
		if _, ok := v[key]; !ok {
			t.Errorf("stats JSON has no %q: %s", key, b)
		}
	}
}

// TestDefaultRuntimeReaders: the runtime/metrics readers used when no fakes
// are given find their metrics.
func TestDefaultRuntimeReaders(t *testing.T) {
	t.Parallel()
	if heap := readHeapBytes(); heap == 0 {
		t.Error("heap reads 0 bytes")
	}
	r := newGCPauseReader()
	if len(r.prev) == 0 {
		t.Fatalf("%s is not a histogram", gcPauseMetric)
	}
	runtime.GC()
	if d := r.maxSince(); d < 0 || d > time.Minute {
		t.Errorf("longest GC pause since the last read: %s", d)
	}
}

// A certificate in use raises a new alert at 30, 14 and 7 days before it
// expires; renewing it clears them. The expiry is a Prometheus gauge.
func TestCertificateExpiryAlarms(t *testing.T) {
	t.Parallel()
	srv := mqtttest.NewServer(t)
	clk := newClock()
	var mu sync.Mutex
	notAfter := clk.Now().Add(45 * 24 * time.Hour)
	h := New(Options{
		Server: srv, Node: "n", Now: clk.Now, ListenerLimits: (&fakeRuntime{}).listenerLimits,
		HeapBytes: func() uint64 { return 0 }, MaxGCPause: func() time.Duration { return 0 },
		Certificates: func() []CertificateExpiry {
			mu.Lock()
			defer mu.Unlock()
			return []CertificateExpiry{{ID: "local-server", Usage: "server", NotAfter: notAfter}}
		},
	})
	events := subscribe(t, srv, "$SYS/brokers/n/alarms/#")
	advance := func(d time.Duration) []string {
		t.Helper()
		clk.Add(d)
		if err := h.PublishNow(); err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, m := range events.drain() {
			out = append(out, strings.TrimPrefix(m.topic, "$SYS/brokers/n/alarms/"))
		}
		slices.Sort(out)
		return out
	}
	for _, step := range []struct {
		d    time.Duration
		want string
	}{
		{0, "[]"},
		{16 * 24 * time.Hour, "[certificate_expires_30d/local-server/alert]"}, // 29 days left
		{24 * time.Hour, "[]"},
		{14 * 24 * time.Hour, "[certificate_expires_14d/local-server/alert]"}, // 14 days left
		{7 * 24 * time.Hour, "[certificate_expires_7d/local-server/alert]"},
	} {
		if got := fmt.Sprint(advance(step.d)); got != step.want {
			t.Fatalf("after %v: published %s, want %s", step.d, got, step.want)
		}
	}

	var b strings.Builder
	if err := WritePrometheus(&b, h.Snapshot()); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(b.String(), `edgegate_certificate_expiry_seconds{id="local-server",usage="server"} 604800`+"\n") {
		t.Errorf("expiry gauge missing or wrong:\n%s", b.String())
	}

	mu.Lock()
	notAfter = clk.Now().Add(90 * 24 * time.Hour) // renewed
	mu.Unlock()
	want := "[certificate_expires_14d/local-server/clear certificate_expires_30d/local-server/clear certificate_expires_7d/local-server/clear]"
	if got := fmt.Sprint(advance(time.Minute)); got != want {
		t.Fatalf("after renewal: published %s, want %s", got, want)
	}
}

// A certificate whose renewal keeps failing raises an alarm until it renews,
// whether or not it is in use.
func TestRenewalFailingAlarm(t *testing.T) {
	t.Parallel()
	srv := mqtttest.NewServer(t)
	clk := newClock()
	var mu sync.Mutex
	renewalError := "acme: obtain: connection refused"
	h := New(Options{
		Server: srv, Node: "n", Now: clk.Now, ListenerLimits: (&fakeRuntime{}).listenerLimits,
		HeapBytes: func() uint64 { return 0 }, MaxGCPause: func() time.Duration { return 0 },
		Certificates: func() []CertificateExpiry {
			mu.Lock()
			defer mu.Unlock()
			return []CertificateExpiry{{ID: "acme-gw", NotAfter: clk.Now().Add(60 * 24 * time.Hour), RenewalError: renewalError}}
		},
	})
	events := subscribe(t, srv, "$SYS/brokers/n/alarms/#")
	publish := func() []string {
		t.Helper()
		if err := h.PublishNow(); err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, m := range events.drain() {
			out = append(out, strings.TrimPrefix(m.topic, "$SYS/brokers/n/alarms/"))
		}
		return out
	}
	if got := fmt.Sprint(publish()); got != "[certificate_renewal_failing/acme-gw/alert]" {
		t.Fatalf("published %s", got)
	}
	if a := h.ActiveAlarms(); len(a) != 1 || !strings.Contains(a[0].Message, "connection refused") {
		t.Fatalf("active alarms %+v", a)
	}
	mu.Lock()
	renewalError = ""
	mu.Unlock()
	if got := fmt.Sprint(publish()); got != "[certificate_renewal_failing/acme-gw/clear]" {
		t.Fatalf("published %s", got)
	}
}
