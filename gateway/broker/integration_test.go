package broker

import (
	"errors"
	"maps"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/edgegate/edgegate/gateway/broker/internal/mqtttest"
	"github.com/edgegate/edgegate/gateway/config"
)

// Reason codes the tests expect.
const (
	codeV3ServerUnavailable = 0x03
	codeV3IdentifierRefused = 0x02
	codeIdentifierNotValid  = 0x85
	codeShuttingDown        = 0x8B
	codeQuotaExceeded       = 0x97
	codeAdministrative      = 0x98
)

func tcpListener(maxClients int) config.Listener {
	return config.Listener{Type: config.TypeTCP, Bind: "127.0.0.1:0", MaxClients: maxClients}
}

// listenerOfType is a listener of any type, on 127.0.0.1:0, with TLS
// client authentication off.
func listenerOfType(typ string, maxClients int) config.Listener {
	l := config.Listener{Type: typ, Bind: "127.0.0.1:0", MaxClients: maxClients}
	if l.IsWebSocket() {
		l.Path = "/mqtt"
	}
	if l.IsTLS() {
		l.TLS = &config.ListenerTLS{ClientAuth: config.ClientAuthNone}
	}
	return l
}

// TestStartCloseAllListenerTypes starts the default listeners of every type
// on ephemeral ports: Listeners reports the real bound addresses, a client
// connects over each, and Close disconnects every client (v5: DISCONNECT
// "server shutting down") and unbinds every port.
func TestStartCloseAllListenerTypes(t *testing.T) {
	env := newEnv(t)
	b := startBroker(t, env, testConfig(nil))

	want := []ListenerStatus{
		{Name: "tcp", Type: config.TypeTCP, MaxClients: 10000},
		{Name: "tls", Type: config.TypeTLS, MaxClients: 10000, ClientAuth: config.ClientAuthOptional},
		{Name: "ws", Type: config.TypeWS, Path: "/mqtt", MaxClients: 1000},
		{Name: "wss", Type: config.TypeWSS, Path: "/mqtt", MaxClients: 1000, ClientAuth: config.ClientAuthNone},
	}
	got := b.Listeners()
	if len(got) != len(want) {
		t.Fatalf("Listeners() = %+v, want %d listeners", got, len(want))
	}
	conns := map[string]*mqttConn{}
	for i, w := range want {
		st := got[i]
		host, port, err := net.SplitHostPort(st.Address)
		if err != nil || host != "127.0.0.1" || port == "0" || port == "" {
			t.Errorf("%s: address %q is not a bound 127.0.0.1 port (%v)", w.Name, st.Address, err)
		}
		w.Address = st.Address
		if st != w {
			t.Errorf("listener %d = %+v, want %+v", i, st, w)
		}
		c := b.connect(w.Name, "client-"+w.Name, v5)
		c.Ping()
		info, ok := b.Client("client-" + w.Name)
		if !ok || info.Listener != w.Name || !info.Connected {
			t.Errorf("%s: Client() = %+v, %v", w.Name, info, ok)
		}
		conns[w.Name] = c
	}
	for _, w := range want {
		b.waitClients(w.Name, 1)
	}

	b.close()
	for _, w := range want {
		conns[w.Name].expectDisconnect(codeShuttingDown)
	}
	for i, w := range want {
		if addr := got[i].Address; !refused(addr) {
			t.Errorf("%s: %s still accepts connections after Close", w.Name, addr)
		}
	}
}

// TestWebSocket covers MQTT over ws and wss: each subprotocol MQTT clients
// ask for is negotiated and carries a session; other paths are 404; a text
// frame ends the connection; packets may be split across or coalesced in
// binary messages.
func TestWebSocket(t *testing.T) {
	env := newEnv(t)
	b := startBroker(t, env, testConfig(map[string]config.Listener{
		"ws":  listenerOfType(config.TypeWS, 100),
		"wss": listenerOfType(config.TypeWSS, 100),
	}))
	for _, tr := range []struct {
		listener, scheme string
	}{
		{"ws", "ws"},
		{"wss", "wss"},
	} {
		tlsConfig := env.clientTLS()
		if tr.scheme == "ws" {
			tlsConfig = nil
		}
		base := tr.scheme + "://" + b.addr(tr.listener)

		for _, sub := range []string{"mqtt", "mqttv3.1", "mqttv3.1.1"} {
			t.Run(tr.listener+"/subprotocol "+sub, func(t *testing.T) {
				c := dialWS(t, base+"/mqtt", sub, tlsConfig)
				if got := c.ws.Subprotocol(); got != sub {
					t.Errorf("negotiated subprotocol %q, want %q", got, sub)
				}
				id := tr.listener + "-" + sub
				if ack := c.connect(id, v3); ack.ReasonCode != 0 {
					t.Fatalf("CONNACK %#x", ack.ReasonCode)
				}
				c.Ping()
				if info, ok := b.Client(id); !ok || info.Listener != tr.listener || info.Protocol != 4 {
					t.Errorf("Client(%q) = %+v, %v", id, info, ok)
				}
			})
		}

		t.Run(tr.listener+"/wrong path", func(t *testing.T) {
			for _, path := range []string{"/", "/mqtt/x", "/other"} {
				if got := wsHandshakeStatus(t, base+path, "mqtt", tlsConfig); got != http.StatusNotFound {
					t.Errorf("GET %s: status %d, want 404", path, got)
				}
			}
		})

		t.Run(tr.listener+"/text frame before CONNECT", func(t *testing.T) {
			c := dialWS(t, base+"/mqtt", "mqtt", tlsConfig)
			c.ID = "text-before"
			if err := c.ws.WriteMessage(websocket.TextMessage, c.Encode(mqtttest.ConnectPacket(c.ID, v3.options()))); err != nil {
				t.Fatal(err)
			}
			if got := c.expectClosed(); len(got) != 0 {
				t.Errorf("answered a CONNECT in a text frame with %s", mqtttest.Show(got...))
			}
			if _, ok := b.Client(c.ID); ok {
				t.Errorf("client %q registered", c.ID)
			}
		})

		t.Run(tr.listener+"/text frame after CONNECT", func(t *testing.T) {
			c := dialWS(t, base+"/mqtt", "mqtt", tlsConfig)
			id := tr.listener + "-text-after"
			if ack := c.connect(id, v5); ack.ReasonCode != 0 {
				t.Fatalf("CONNACK %#x", ack.ReasonCode)
			}
			ping := c.Encode(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Pingreq}})
			if err := c.ws.WriteMessage(websocket.TextMessage, ping); err != nil {
				t.Fatal(err)
			}
			if got := c.expectClosed(); len(got) != 0 {
				t.Errorf("answered a PINGREQ in a text frame with %s", mqtttest.Show(got...))
			}
			waitFor(t, "the client to be removed", func() bool { _, ok := b.Client(id); return !ok })
		})

		t.Run(tr.listener+"/packets across messages", func(t *testing.T) {
			c := dialWS(t, base+"/mqtt", "mqtt", tlsConfig)
			c.ID = tr.listener + "-split"
			connect := c.Encode(mqtttest.ConnectPacket(c.ID, v3.options()))
			for _, part := range [][]byte{connect[:3], connect[3:]} {
				c.Write(part)
			}
			if ack := c.Recv(); ack.FixedHeader.Type != packets.Connack || ack.ReasonCode != 0 {
				t.Fatalf("CONNECT in two messages: got %s", mqtttest.Show(ack))
			}
			ping := c.Encode(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Pingreq}})
			c.Write(append(append([]byte(nil), ping...), ping...))
			for range 2 {
				if pk := c.Recv(); pk.FixedHeader.Type != packets.Pingresp {
					t.Fatalf("two PINGREQs in one message: got %s", mqtttest.Show(pk))
				}
			}
		})
	}
}

// TestMaxClients fills a listener of each type to max_clients 2: further
// CONNECTs get "server unavailable" (3.1.1) or "quota exceeded" (5) and are
// closed; once a client leaves, a new one is accepted.
func TestMaxClients(t *testing.T) {
	env := newEnv(t)
	for _, typ := range []string{config.TypeTCP, config.TypeTLS, config.TypeWS, config.TypeWSS} {
		t.Run(typ, func(t *testing.T) {
			b := startBroker(t, env, testConfig(map[string]config.Listener{"l": listenerOfType(typ, 2)}))
			first := b.connect("l", "c1", v3)
			second := b.connect("l", "c2", v5)
			b.waitClients("l", 2)

			for _, tc := range []struct {
				id   string
				o    connectOpts
				code byte
			}{
				{"over-v3", v3, codeV3ServerUnavailable},
				{"over-v5", v5, codeQuotaExceeded},
			} {
				c := b.dial("l")
				ack := c.connect(tc.id, tc.o)
				if ack.ReasonCode != tc.code || ack.SessionPresent {
					t.Errorf("%s: CONNACK %#x (session present %v), want %#x", tc.id, ack.ReasonCode, ack.SessionPresent, tc.code)
				}
				if got := c.expectClosed(); len(got) != 0 {
					t.Errorf("%s: packets after the refusal: %s", tc.id, mqtttest.Show(got...))
				}
				if _, ok := b.Client(tc.id); ok {
					t.Errorf("%s: refused client registered", tc.id)
				}
			}
			b.waitClients("l", 2)
			second.Ping()

			first.disconnect()
			b.waitClients("l", 1)
			third := b.connect("l", "c3", v5)
			third.Ping()
			b.waitClients("l", 2)
			var ids []string
			for _, c := range b.Clients() {
				ids = append(ids, c.ClientID)
			}
			if want := []string{"c2", "c3"}; !slices.Equal(ids, want) {
				t.Errorf("Clients() = %v, want %v", ids, want)
			}
		})
	}
}

// TestInlineClientIDRefused refuses the broker's own inline client id, so
// no client can take over the session the gateway publishes through.
func TestInlineClientIDRefused(t *testing.T) {
	env := newEnv(t)
	b := startBroker(t, env, testConfig(map[string]config.Listener{"tcp": tcpListener(10)}))
	watcher := b.connect("tcp", "watcher", v3)
	watcher.Subscribe("check/#", 0)
	for _, tc := range []struct {
		name string
		o    connectOpts
		code byte
	}{
		{"v3.1.1", v3, codeV3IdentifierRefused},
		{"v5", v5, codeIdentifierNotValid},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := dialTCP(t, b.addr("tcp"), nil)
			if ack := c.connect(mqtt.InlineClientId, tc.o); ack.ReasonCode != tc.code {
				t.Errorf("CONNACK %#x, want %#x", ack.ReasonCode, tc.code)
			}
			c.expectClosed()
			if _, ok := b.Client(mqtt.InlineClientId); ok {
				t.Error("Client(inline) found")
			}
			// The gateway still publishes through its inline client.
			if err := b.Publish(Message{Topic: "check/" + tc.name, Payload: []byte("ok")}); err != nil {
				t.Fatal(err)
			}
			watcher.expectPublish("check/"+tc.name, "ok")
		})
	}
}

// TestAdmin covers the queries of the admin API: clients, subscriptions,
// retained messages, kick.
func TestAdmin(t *testing.T) {
	env := newEnv(t)
	b := startBroker(t, env, testConfig(map[string]config.Listener{
		"tcp": tcpListener(10),
		"ws":  listenerOfType(config.TypeWS, 10),
	}))

	// mochi's own $SYS/broker/... set is dropped at Start: not listed, not
	// sent to subscribers.
	for _, m := range b.Retained() {
		if strings.HasPrefix(m.Topic, "$SYS/") {
			t.Errorf("Retained() lists %s after Start", m.Topic)
		}
	}
	sysWatcher := b.connect("tcp", "sys-watcher", v3)
	sysWatcher.Subscribe("$SYS/broker/#", 0)
	if got := sysWatcher.receiveAll(b, "$SYS/broker/marker"); len(got) != 0 {
		t.Errorf("a $SYS/broker/# subscriber received %s", mqtttest.Show(got...))
	}
	sysWatcher.disconnect()
	waitFor(t, "sys-watcher to leave", func() bool { _, ok := b.Client("sys-watcher"); return !ok })

	start := time.Now()
	alice := b.connect("tcp", "alice", connectOpts{version: 5, username: "ualice"})
	bob := b.connect("ws", "bob", connectOpts{version: 4, username: "ubob"})
	carol := b.connect("tcp", "carol", connectOpts{version: 5, expiry: 3600})
	alice.Subscribe("a/#", 1)
	alice.Subscribe("a/b", 0)
	bob.Subscribe("b/+", 2)
	carol.Subscribe("c", 1)
	end := time.Now()

	t.Run("Clients", func(t *testing.T) {
		want := []ClientInfo{
			{ClientID: "alice", Username: "ualice", Listener: "tcp", Protocol: 5, CleanSession: true, Subscriptions: 2},
			{ClientID: "bob", Username: "ubob", Listener: "ws", Protocol: 4, CleanSession: true, Subscriptions: 1},
			{ClientID: "carol", Listener: "tcp", Protocol: 5, CleanSession: false, Subscriptions: 1},
		}
		got := b.Clients()
		if len(got) != len(want) {
			t.Fatalf("Clients() = %+v", got)
		}
		for i, w := range want {
			g := got[i]
			if g.ConnectedAt.Before(start.Add(-time.Second)) || g.ConnectedAt.After(end.Add(time.Second)) {
				t.Errorf("%s: ConnectedAt %v not within the connect [%v, %v]", w.ClientID, g.ConnectedAt, start, end)
			}
			if !strings.HasPrefix(g.Address, "127.0.0.1:") {
				t.Errorf("%s: address %q", w.ClientID, g.Address)
			}
			w.Connected, w.Keepalive = true, 60
			w.ConnectedAt, w.Address = g.ConnectedAt, g.Address
			if g != w {
				t.Errorf("client %d = %+v\nwant %+v", i, g, w)
			}
			if one, ok := b.Client(w.ClientID); !ok || one != g {
				t.Errorf("Client(%q) = %+v, %v; want %+v", w.ClientID, one, ok, g)
			}
		}
		for _, id := range []string{"nobody", mqtt.InlineClientId, "sys-watcher"} {
			if info, ok := b.Client(id); ok {
				t.Errorf("Client(%q) = %+v", id, info)
			}
		}
	})

	t.Run("Subscriptions", func(t *testing.T) {
		all := []Subscription{
			{ClientID: "alice", Filter: "a/#", QoS: 1},
			{ClientID: "alice", Filter: "a/b", QoS: 0},
			{ClientID: "bob", Filter: "b/+", QoS: 2},
			{ClientID: "carol", Filter: "c", QoS: 1},
		}
		for _, tc := range []struct {
			client string
			want   []Subscription
		}{
			{"", all},
			{"alice", all[:2]},
			{"bob", all[2:3]},
			{"nobody", nil},
			{mqtt.InlineClientId, nil},
		} {
			if got := b.Subscriptions(tc.client); !slices.Equal(got, tc.want) {
				t.Errorf("Subscriptions(%q) = %+v, want %+v", tc.client, got, tc.want)
			}
		}
	})

	t.Run("Retained", func(t *testing.T) {
		before := time.Now().Add(-time.Second)
		if err := b.Publish(Message{Topic: "r/gateway", Payload: []byte("p1"), QoS: 1, Retain: true, From: "test"}); err != nil {
			t.Fatal(err)
		}
		if err := b.Publish(Message{Topic: "r/not-retained", Payload: []byte("x")}); err != nil {
			t.Fatal(err)
		}
		bob.Publish("r/client", "p2", 0, true)
		got := b.Retained()
		want := []RetainedMessage{
			{Topic: "r/client", Payload: []byte("p2"), QoS: 0},
			{Topic: "r/gateway", Payload: []byte("p1"), QoS: 1},
		}
		if len(got) != len(want) {
			t.Fatalf("Retained() = %+v, want %+v", got, want)
		}
		for i, w := range want {
			g := got[i]
			if g.Topic != w.Topic || string(g.Payload) != string(w.Payload) || g.QoS != w.QoS || g.Created.Before(before.Truncate(time.Second)) {
				t.Errorf("retained %d = %+v, want %+v (created after %v)", i, g, w, before)
			}
		}

		for _, tc := range []struct {
			topic string
			err   error
		}{
			{"r/gateway", nil},
			{"r/gateway", ErrRetainedNotFound},
			{"r/not-retained", ErrRetainedNotFound},
			{"nope", ErrRetainedNotFound},
			{"r/client", nil},
		} {
			if err := b.DeleteRetained(tc.topic); !errors.Is(err, tc.err) {
				t.Errorf("DeleteRetained(%q) = %v, want %v", tc.topic, err, tc.err)
			}
		}
		if got := b.Retained(); len(got) != 0 {
			t.Errorf("Retained() after deleting all = %+v", got)
		}
		// A new subscription gets nothing retained either.
		bob.Subscribe("r/#", 0)
		if got := bob.receiveAll(b, "r/marker"); len(got) != 0 {
			t.Errorf("a r/# subscriber received %s", mqtttest.Show(got...))
		}
	})

	t.Run("Kick", func(t *testing.T) {
		for _, tc := range []struct {
			id   string
			conn *mqttConn
			err  error
			kept bool // a persistent session stays, disconnected
		}{
			{id: "nobody", err: ErrClientNotFound},
			{id: mqtt.InlineClientId, err: ErrClientNotFound},
			{id: "alice", conn: alice},
			{id: "bob", conn: bob},
			{id: "carol", conn: carol, kept: true},
		} {
			if err := b.Kick(tc.id); !errors.Is(err, tc.err) {
				t.Errorf("Kick(%q) = %v, want %v", tc.id, err, tc.err)
			}
			if tc.conn == nil {
				continue
			}
			tc.conn.expectDisconnect(codeAdministrative)
			if tc.kept {
				waitFor(t, tc.id+" to show disconnected", func() bool {
					info, ok := b.Client(tc.id)
					return ok && !info.Connected
				})
				if subs := b.Subscriptions(tc.id); len(subs) != 1 {
					t.Errorf("%s: subscriptions after kick: %+v", tc.id, subs)
				}
			} else {
				waitFor(t, tc.id+" to be removed", func() bool { _, ok := b.Client(tc.id); return !ok })
			}
		}
		b.waitClients("tcp", 0)
		b.waitClients("ws", 0)
	})
}

// TestApplyListeners changes the listener set of a running broker step by
// step: only listeners whose settings changed are restarted (their clients
// disconnected), the others keep their address and their clients.
func TestApplyListeners(t *testing.T) {
	env := newEnv(t)
	cur := map[string]config.Listener{"a": tcpListener(10), "b": tcpListener(10)}
	b := startBroker(t, env, testConfig(maps.Clone(cur)))

	clients := map[string]*mqttConn{}
	n := 0
	connect := func(name string) {
		n++
		clients[name] = b.connect(name, name+"-"+strconv.Itoa(n), v5)
	}

	steps := []struct {
		name                       string
		change                     func(m map[string]config.Listener)
		kept, rebound, gone, added []string
	}{
		{
			name:    "change only b's max_clients",
			change:  func(m map[string]config.Listener) { l := m["b"]; l.MaxClients = 20; m["b"] = l },
			kept:    []string{"a"},
			rebound: []string{"b"},
		},
		{
			name:   "same settings",
			change: func(map[string]config.Listener) {},
			kept:   []string{"a", "b"},
		},
		{
			name:   "remove a",
			change: func(m map[string]config.Listener) { delete(m, "a") },
			kept:   []string{"b"},
			gone:   []string{"a"},
		},
		{
			name:   "add c",
			change: func(m map[string]config.Listener) { m["c"] = tcpListener(5) },
			kept:   []string{"b"},
			added:  []string{"c"},
		},
		{
			name:   "disable b",
			change: func(m map[string]config.Listener) { l := m["b"]; l.Disabled = true; m["b"] = l },
			kept:   []string{"c"},
			gone:   []string{"b"},
		},
	}
	for _, step := range steps {
		t.Logf("step %q", step.name)
		for name := range cur {
			if _, ok := clients[name]; !ok && !cur[name].Disabled {
				connect(name)
			}
		}
		oldAddr := map[string]string{}
		oldImpl := map[string]*listener{}
		for _, st := range b.Listeners() {
			oldAddr[st.Name] = st.Address
			oldImpl[st.Name] = b.listeners[st.Name]
		}

		next := maps.Clone(cur)
		step.change(next)
		if err := b.ApplyListeners(next, env); err != nil {
			t.Fatalf("%s: ApplyListeners: %v", step.name, err)
		}

		var wantNames []string
		for name, l := range next {
			if !l.Disabled {
				wantNames = append(wantNames, name)
			}
		}
		slices.Sort(wantNames)
		var names []string
		for _, st := range b.Listeners() {
			names = append(names, st.Name)
			if l := next[st.Name]; st.MaxClients != l.MaxClients || st.Type != l.Type {
				t.Errorf("%s: listener %+v, want %+v", step.name, st, l)
			}
		}
		if !slices.Equal(names, wantNames) {
			t.Errorf("%s: listeners %v, want %v", step.name, names, wantNames)
		}

		for _, name := range step.kept {
			if addr := b.addr(name); addr != oldAddr[name] || b.listeners[name] != oldImpl[name] {
				t.Errorf("%s: kept listener %s restarted (%s → %s)", step.name, name, oldAddr[name], addr)
			}
			clients[name].Ping()
		}
		for _, name := range step.rebound {
			if b.listeners[name] == oldImpl[name] {
				t.Errorf("%s: listener %s not restarted", step.name, name)
			}
			if addr := b.addr(name); addr == oldAddr[name] {
				// An ephemeral port may, rarely, be handed out again.
				t.Logf("%s: listener %s rebound on the same address %s", step.name, name, addr)
			}
			clients[name].expectDisconnect(codeShuttingDown)
			connect(name)
			clients[name].Ping()
		}
		for _, name := range step.gone {
			clients[name].expectDisconnect(codeShuttingDown)
			delete(clients, name)
			if !refused(oldAddr[name]) {
				t.Errorf("%s: %s still accepts connections on %s", step.name, name, oldAddr[name])
			}
		}
		for _, name := range step.added {
			if _, ok := oldAddr[name]; ok {
				t.Fatalf("%s: %s was already running", step.name, name)
			}
			connect(name)
			clients[name].Ping()
		}
		cur = next
	}
}

// TestApplyListenersSilentConnection restarts a listener holding a
// connection that never sent CONNECT: ApplyListeners must close it rather
// than wait for its handshake timeout, and CONNECTs on other listeners
// must not wait for ApplyListeners.
func TestApplyListenersSilentConnection(t *testing.T) {
	env := newEnv(t)
	cur := map[string]config.Listener{"a": tcpListener(10), "b": tcpListener(10)}
	b := startBroker(t, env, testConfig(maps.Clone(cur)))
	kept := b.connect("a", "kept", v5)
	silent := b.dial("b")
	b.waitClients("b", 1)
	addrA := b.addr("a")

	next := maps.Clone(cur)
	l := next["b"]
	l.MaxClients = 11
	next["b"] = l
	done := make(chan error, 1)
	go func() { done <- b.ApplyListeners(next, env) }()
	// Until ApplyListeners holds the broker's lock (or is already done).
	waitFor(t, "ApplyListeners to start", func() bool {
		select {
		case err := <-done:
			done <- err
			return true
		default:
		}
		if b.mu.TryRLock() {
			b.mu.RUnlock()
			return false
		}
		return true
	})
	late := dialTCP(t, addrA, nil) // not b.dial: Listeners() waits for ApplyListeners
	if ack := late.connect("late", v5); ack.ReasonCode != 0 {
		t.Fatalf("CONNACK %#x", ack.ReasonCode)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(ioTimeout):
		t.Fatal("ApplyListeners waits for a connection that never sent CONNECT")
	}
	silent.expectClosed()
	kept.Ping()
	late.Ping()

	// ApplyListeners holds the broker's lock while a stopping listener waits
	// for its connection goroutines, one of which may be in OnConnect: a
	// CONNECT must go through with the lock held.
	func() {
		b.mu.Lock()
		defer b.mu.Unlock()
		c := dialTCP(t, addrA, nil)
		if ack := c.connect("while-locked", v5); ack.ReasonCode != 0 {
			t.Fatalf("CONNACK %#x", ack.ReasonCode)
		}
	}()
}

// TestCloseSilentConnections closes a broker holding, on each kind of
// listener, a connection that never sent CONNECT: Close ends it at once
// instead of waiting for the handshake timeout.
func TestCloseSilentConnections(t *testing.T) {
	env := newEnv(t)
	for _, tc := range []struct {
		name string
		typ  string
		raw  bool // a bare TCP connection: no TLS handshake, no HTTP request
	}{
		{"tcp", config.TypeTCP, true},
		{"tls before handshake", config.TypeTLS, true},
		{"tls after handshake", config.TypeTLS, false},
		{"ws before request", config.TypeWS, true},
		{"ws after upgrade", config.TypeWS, false},
		{"wss after upgrade", config.TypeWSS, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := startBroker(t, env, testConfig(map[string]config.Listener{"l": listenerOfType(tc.typ, 10)}))
			var silent *mqttConn
			if tc.raw {
				silent = dialTCP(t, b.addr("l"), nil)
			} else {
				silent = b.dial("l")
			}
			b.waitClients("l", 1)

			b.closed = true // this test closes it
			done := make(chan error, 1)
			go func() { done <- b.Close() }()
			select {
			case err := <-done:
				if err != nil {
					t.Fatal(err)
				}
			case <-time.After(ioTimeout):
				t.Fatal("Close waits for a connection that never sent CONNECT")
			}
			silent.expectClosed()
		})
	}
}

// TestRetainedSurvivesRestart stops a broker and starts a new one on the
// same store: retained messages published by the gateway or by clients are
// back, deleted ones stay deleted.
func TestRetainedSurvivesRestart(t *testing.T) {
	env := newEnv(t)
	cfg := testConfig(map[string]config.Listener{"tcp": tcpListener(10)})
	cases := []struct {
		topic, payload string
		qos            byte
		byClient       bool
		deleted        bool
	}{
		{topic: "keep/gateway/0", payload: "g0"},
		{topic: "keep/gateway/1", payload: "g1", qos: 1},
		{topic: "keep/client", payload: "c0", byClient: true},
		{topic: "gone/gateway", payload: "x", deleted: true},
		{topic: "gone/client", payload: "y", byClient: true, deleted: true},
	}

	first := startBroker(t, env, cfg)
	pub := first.connect("tcp", "publisher", v3)
	for _, tc := range cases {
		if tc.byClient {
			pub.Publish(tc.topic, tc.payload, 0, true)
		} else if err := first.Publish(Message{Topic: tc.topic, Payload: []byte(tc.payload), QoS: tc.qos, Retain: true}); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range cases {
		if tc.deleted {
			if err := first.DeleteRetained(tc.topic); err != nil {
				t.Fatal(err)
			}
		}
	}
	first.close()

	second := startBroker(t, env, cfg)
	want := map[string]string{}
	for _, tc := range cases {
		if !tc.deleted {
			want[tc.topic] = tc.payload
		}
	}
	got := map[string]string{}
	for _, m := range second.Retained() {
		got[m.Topic] = string(m.Payload)
		for _, tc := range cases {
			if tc.topic == m.Topic && tc.qos != m.QoS {
				t.Errorf("%s: QoS %d, want %d", m.Topic, m.QoS, tc.qos)
			}
		}
	}
	if !maps.Equal(got, want) {
		t.Errorf("Retained() after restart = %v, want %v", got, want)
	}

	// A subscriber receives them too.
	sub := second.connect("tcp", "subscriber", v3)
	sub.Subscribe("#", 1)
	received := map[string]string{}
	for _, pk := range sub.receiveAll(second, "marker") {
		if !pk.FixedHeader.Retain {
			t.Errorf("%s: retain flag not set", pk.TopicName)
		}
		received[pk.TopicName] = string(pk.Payload)
	}
	if !maps.Equal(received, want) {
		t.Errorf("subscriber received %v, want %v", received, want)
	}
}
