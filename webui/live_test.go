package webui

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/edgegate/edgegate/gateway/admin"
	"github.com/edgegate/edgegate/gateway/broker"
	"github.com/edgegate/edgegate/gateway/broker/sys"
	"github.com/edgegate/edgegate/gateway/config"
	"github.com/edgegate/edgegate/gateway/store"
)

// liveFakeBroker counts up its figures on every Stats call and records
// the live hub's watchers so a test can fire events.
type liveFakeBroker struct {
	Broker // methods the live feed does not use panic

	mu       sync.Mutex
	calls    uint64
	onClient func(broker.ClientEvent)
	onMsg    func(broker.WatchedMessage)
	filter   string
}

func (b *liveFakeBroker) Stats() sys.Stats {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.calls++
	return sys.Stats{
		Time:     time.Now(),
		Clients:  sys.Gauge{Count: 3},
		Messages: sys.MessageStats{Received: b.calls * 100},
	}
}

func (b *liveFakeBroker) WatchClients(fn func(broker.ClientEvent)) func() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.onClient = fn
	return func() {}
}

func (b *liveFakeBroker) WatchMessages(filter string, fn func(broker.WatchedMessage)) (func(), error) {
	if strings.Contains(filter, "##") {
		return nil, broker.ErrClientNotFound // any error: the hub reports a bad filter
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.filter, b.onMsg = filter, fn
	return func() {
		b.mu.Lock()
		defer b.mu.Unlock()
		b.onMsg = nil
	}, nil
}

func (b *liveFakeBroker) watcher() func(broker.WatchedMessage) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.onMsg
}

type liveFakeAdmin struct{ Admin }

func (liveFakeAdmin) SetupDone() (bool, error) { return true, nil }

type liveFakeSettings struct{}

func (liveFakeSettings) Effective() config.Effective {
	return config.Effective{Config: config.Defaults()}
}
func (liveFakeSettings) Apply(context.Context, []byte, string) (store.SettingsVersion, error) {
	return store.SettingsVersion{}, nil
}

// liveServer runs a UI on a TLS test server and returns it with a
// logged-in session's cookie.
func liveServer(t *testing.T) (*UI, *liveFakeBroker, *httptest.Server, *session) {
	t.Helper()
	b := &liveFakeBroker{}
	u := New(Options{Admin: liveFakeAdmin{}, Broker: b, Settings: liveFakeSettings{}, Limiter: admin.NewFailLimiter(10, time.Minute)})
	srv := httptest.NewTLSServer(u.Handler())
	t.Cleanup(func() {
		u.Close()
		srv.Close()
	})
	return u, b, srv, u.sessions.create()
}

// dialLive opens the page websocket; status is the handshake's HTTP
// status (0 without a response).
func dialLive(t *testing.T, srv *httptest.Server, ss *session, origin, feeds string) (ws *websocket.Conn, status int, err error) {
	t.Helper()
	d := websocket.Dialer{TLSClientConfig: srv.Client().Transport.(*http.Transport).TLSClientConfig, HandshakeTimeout: 5 * time.Second}
	h := http.Header{}
	if origin != "" {
		h.Set("Origin", origin)
	}
	if ss != nil {
		h.Set("Cookie", sessionCookie+"="+ss.id)
	}
	ws, resp, err := d.Dial("wss"+strings.TrimPrefix(srv.URL, "https")+"/live?feeds="+feeds, h)
	if resp != nil {
		status = resp.StatusCode
		resp.Body.Close()
	}
	return ws, status, err
}

// nextEvent reads events until one of type typ arrives.
func nextEvent(t *testing.T, ws *websocket.Conn, typ string) json.RawMessage {
	t.Helper()
	_ = ws.SetReadDeadline(time.Now().Add(10 * time.Second))
	for {
		var ev struct {
			Type string          `json:"type"`
			Data json.RawMessage `json:"data"`
		}
		if err := ws.ReadJSON(&ev); err != nil {
			t.Fatalf("waiting for a %q event: %v", typ, err)
		}
		if ev.Type == typ {
			return ev.Data
		}
	}
}

func TestLiveFeedsStatsAndClientEvents(t *testing.T) {
	u, b, srv, ss := liveServer(t)
	ws, _, err := dialLive(t, srv, ss, srv.URL, "stats,clients")
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()

	var first, second struct {
		Point statsPoint `json:"point"`
	}
	if err := json.Unmarshal(nextEvent(t, ws, "stats"), &first); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(nextEvent(t, ws, "stats"), &second); err != nil {
		t.Fatal(err)
	}
	if second.Point.Clients != 3 || second.Point.MsgsIn <= 0 {
		t.Fatalf("second stats point %+v; want 3 clients and a positive message rate", second.Point)
	}
	if h := u.live.statsHistory(); len(h) < 2 {
		t.Fatalf("history kept %d points; want the points sent", len(h))
	}

	b.mu.Lock()
	fire := b.onClient
	b.mu.Unlock()
	fire(broker.ClientEvent{Event: "connected", ClientID: "sensor-1"})
	var ev broker.ClientEvent
	if err := json.Unmarshal(nextEvent(t, ws, "client"), &ev); err != nil || ev.ClientID != "sensor-1" || ev.Event != "connected" {
		t.Fatalf("client event %+v, %v", ev, err)
	}
}

func TestLiveClosesOnLogout(t *testing.T) {
	u, _, srv, ss := liveServer(t)
	ws, _, err := dialLive(t, srv, ss, srv.URL, "stats")
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	nextEvent(t, ws, "stats") // registered and serving
	u.sessions.delete(ss.id)
	u.live.closeSession(ss.id)
	_ = ws.SetReadDeadline(time.Now().Add(10 * time.Second))
	for {
		if _, _, err := ws.ReadMessage(); err != nil {
			if !websocket.IsCloseError(err, websocket.CloseNormalClosure) {
				t.Fatalf("after logout: %v; want a normal close", err)
			}
			return
		}
	}
}

func TestLiveRefusesOtherOriginsAndAnonymous(t *testing.T) {
	_, _, srv, ss := liveServer(t)
	for _, tc := range []struct {
		name   string
		ss     *session
		origin string
	}{
		{"another site", ss, "https://evil.example"},
		{"no origin", ss, ""},
		{"no session", nil, srv.URL},
	} {
		ws, status, err := dialLive(t, srv, tc.ss, tc.origin, "stats")
		if err == nil {
			ws.Close()
			t.Errorf("%s: websocket accepted", tc.name)
			continue
		}
		if status == 0 || status == http.StatusSwitchingProtocols {
			t.Errorf("%s: %v; want an HTTP refusal", tc.name, err)
		}
	}
}

func TestLiveInspector(t *testing.T) {
	_, b, srv, ss := liveServer(t)
	ws, _, err := dialLive(t, srv, ss, srv.URL, "")
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()

	if err := ws.WriteJSON(inspectorCommand{Type: "watch", Filter: "a/##"}); err != nil {
		t.Fatal(err)
	}
	nextEvent(t, ws, "watch_error")
	if err := ws.WriteJSON(inspectorCommand{Type: "watch", Filter: "$share/g/plant/#"}); err != nil {
		t.Fatal(err)
	}
	nextEvent(t, ws, "watch_error")
	if b.watcher() != nil {
		t.Fatal("a shared subscription was joined by the inspector")
	}

	if err := ws.WriteJSON(inspectorCommand{Type: "watch", Filter: "plant/#"}); err != nil {
		t.Fatal(err)
	}
	nextEvent(t, ws, "watching")
	b.watcher()(broker.WatchedMessage{Topic: "plant/1", Payload: []byte(`{"c":21}`), QoS: 1, Time: time.Now()})
	var m messagePreview
	if err := json.Unmarshal(nextEvent(t, ws, "message"), &m); err != nil {
		t.Fatal(err)
	}
	if m.Topic != "plant/1" || m.JSON != "{\n  \"c\": 21\n}" || m.Hex != "7b2263223a32317d" {
		t.Fatalf("preview %+v", m)
	}

	if err := ws.WriteJSON(inspectorCommand{Type: "unwatch"}); err != nil {
		t.Fatal(err)
	}
	nextEvent(t, ws, "watching")
	if b.watcher() != nil {
		t.Fatal("unwatch left the broker subscription in place")
	}
}

func TestInspectorRateLimit(t *testing.T) {
	c := &liveConn{send: make(chan []byte, 2*inspectorRate)}
	for range inspectorRate + 10 {
		c.inspect(broker.WatchedMessage{Topic: "t", Payload: []byte("x"), Time: time.Now()})
	}
	if len(c.send) != inspectorRate || c.skipped != 10 {
		t.Fatalf("queued %d, skipped %d; want %d and 10 within one second", len(c.send), c.skipped, inspectorRate)
	}
}

func TestPreviewFormats(t *testing.T) {
	bin := preview(broker.WatchedMessage{Payload: []byte{0xff, 0x00}})
	if bin.Text != "" || bin.JSON != "" || bin.Hex != "ff00" {
		t.Fatalf("binary payload preview %+v", bin)
	}
	big := preview(broker.WatchedMessage{Payload: []byte(strings.Repeat("a", previewBytes+1))})
	if !big.Truncated || len(big.Text) != previewBytes || big.Size != previewBytes+1 {
		t.Fatalf("large payload preview: truncated %v, %d text bytes, size %d", big.Truncated, len(big.Text), big.Size)
	}
}
