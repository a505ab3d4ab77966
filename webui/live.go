package webui

import (
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/gorilla/websocket"

	"github.com/edgegate/edgegate/gateway/broker"
	"github.com/edgegate/edgegate/gateway/broker/sys"
)

// Live feeds a page can ask for on its websocket (?feeds=a,b).
const (
	feedStats   = "stats"   // figures every second, with alarms
	feedClients = "clients" // client connects and disconnects
	feedLogs    = "logs"    // new log lines
)

var knownFeeds = []string{feedStats, feedClients, feedLogs}

// Live connection limits: a dead or slow browser costs at most one
// buffered queue and is cut off, it never blocks the broker.
const (
	liveWriteWait   = 10 * time.Second
	livePongWait    = 60 * time.Second
	livePingEvery   = 25 * time.Second
	liveQueue       = 256
	liveReadLimit   = 4 << 10
	statsEvery      = time.Second
	statsHistoryLen = 300 // five minutes of one-second points
	// inspectorRate bounds the messages per second one inspector shows;
	// the rest are counted as skipped.
	inspectorRate = 50
	// previewBytes is how much of a payload the inspector shows.
	previewBytes = 2048
)

// statsPoint is one second of the dashboard's chart and counters.
type statsPoint struct {
	Time       int64   `json:"t"` // unix milliseconds
	Clients    int64   `json:"clients"`
	MsgsIn     float64 `json:"msgs_in"` // per second
	MsgsOut    float64 `json:"msgs_out"`
	BytesIn    float64 `json:"bytes_in"`
	BytesOut   float64 `json:"bytes_out"`
	Dropped    uint64  `json:"dropped"`
	Uptime     int64   `json:"uptime"`
	HeapBytes  uint64  `json:"heap"`
	Goroutines int     `json:"goroutines"`
}

// hub owns the live websockets and the goroutine that samples the broker.
type hub struct {
	u        *UI
	upgrader websocket.Upgrader

	mu      sync.Mutex
	conns   map[*liveConn]struct{}
	history []statsPoint
	alarms  []sys.Alarm
	last    *sys.Stats

	stopClients func()
	done        chan struct{}
	wg          sync.WaitGroup
}

func newHub(u *UI) *hub {
	h := &hub{u: u, conns: map[*liveConn]struct{}{}, done: make(chan struct{})}
	h.upgrader = websocket.Upgrader{
		ReadBufferSize:  1024,
		WriteBufferSize: 4096,
		CheckOrigin:     sameOrigin,
	}
	if u.o.Broker != nil {
		h.stopClients = u.o.Broker.WatchClients(func(ev broker.ClientEvent) {
			h.publish(feedClients, liveEvent{Type: "client", Data: ev})
		})
		h.wg.Add(1)
		go h.sample()
	}
	return h
}

// sameOrigin accepts a websocket only from a page of this host: a page
// elsewhere cannot ride the session cookie (cross-site websocket hijacking).
func sameOrigin(r *http.Request) bool {
	origin := r.Header.Get("Origin")
	if origin == "" {
		return false
	}
	u, err := url.Parse(origin)
	return err == nil && strings.EqualFold(u.Host, r.Host)
}

// liveEvent is one message to a browser.
type liveEvent struct {
	Type string `json:"type"`
	Data any    `json:"data"`
}

// sample reads the broker's figures every second while a page watches
// them, and keeps the last minutes for a dashboard that opens later.
func (h *hub) sample() {
	defer h.wg.Done()
	tick := time.NewTicker(statsEvery)
	defer tick.Stop()
	for {
		select {
		case <-h.done:
			return
		case <-tick.C:
			if !h.anyWants(feedStats) {
				h.mu.Lock()
				h.last = nil // rates restart from the next watched second
				h.mu.Unlock()
				continue
			}
			st := h.u.o.Broker.Stats()
			h.mu.Lock()
			p := point(h.last, &st)
			h.last = &st
			h.history = append(h.history, p)
			if len(h.history) > statsHistoryLen {
				h.history = slices.Delete(h.history, 0, len(h.history)-statsHistoryLen)
			}
			h.alarms = st.Alarms
			h.mu.Unlock()
			h.publish(feedStats, liveEvent{Type: "stats", Data: map[string]any{"point": p, "alarms": st.Alarms}})
		}
	}
}

// point turns two samples into per-second rates.
func point(prev, cur *sys.Stats) statsPoint {
	p := statsPoint{
		Time: cur.Time.UnixMilli(), Clients: cur.Clients.Count, Dropped: cur.Messages.Dropped,
		Uptime: cur.UptimeSeconds, HeapBytes: cur.Runtime.HeapBytes, Goroutines: cur.Runtime.Goroutines,
	}
	if prev == nil {
		return p
	}
	secs := cur.Time.Sub(prev.Time).Seconds()
	if secs <= 0 {
		return p
	}
	rate := func(a, b uint64) float64 {
		if b < a {
			return 0
		}
		return float64(b-a) / secs
	}
	p.MsgsIn = rate(prev.Messages.Received, cur.Messages.Received)
	p.MsgsOut = rate(prev.Messages.Sent, cur.Messages.Sent)
	p.BytesIn = rate(prev.Bytes.Received, cur.Bytes.Received)
	p.BytesOut = rate(prev.Bytes.Sent, cur.Bytes.Sent)
	return p
}

// statsHistory returns the points kept for the dashboard chart.
func (h *hub) statsHistory() []statsPoint {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.history)
}

func (h *hub) anyWants(feed string) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	for c := range h.conns {
		if c.feeds[feed] {
			return true
		}
	}
	return false
}

// publish sends v to every connection on feed; a connection whose queue
// is full misses it (the next stats tick catches it up).
func (h *hub) publish(feed string, v liveEvent) {
	var msg []byte
	h.mu.Lock()
	defer h.mu.Unlock()
	for c := range h.conns {
		if !c.feeds[feed] {
			continue
		}
		if msg == nil {
			var err error
			if msg, err = json.Marshal(v); err != nil {
				h.u.log.Error("encode live event", "type", v.Type, "error", err)
				return
			}
		}
		c.offer(msg)
	}
}

// closeSession closes the websockets of a session that logged out.
func (h *hub) closeSession(id string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for c := range h.conns {
		if c.session == id {
			c.close()
		}
	}
}

func (h *hub) close() {
	select {
	case <-h.done:
		return
	default:
	}
	close(h.done)
	if h.stopClients != nil {
		h.stopClients()
	}
	h.mu.Lock()
	for c := range h.conns {
		c.close()
	}
	h.mu.Unlock()
	h.wg.Wait()
}

// serveLive upgrades a logged-in page's request to its websocket.
func (u *UI) serveLive(w http.ResponseWriter, r *http.Request, ss *session) error {
	feeds := map[string]bool{}
	for _, f := range strings.Split(r.URL.Query().Get("feeds"), ",") {
		if slices.Contains(knownFeeds, f) {
			feeds[f] = true
		}
	}
	ws, err := u.live.upgrader.Upgrade(w, r, nil)
	if err != nil {
		return nil // the upgrader answered the request
	}
	c := &liveConn{
		hub: u.live, ws: ws, session: ss.id, feeds: feeds,
		send: make(chan []byte, liveQueue), closed: make(chan struct{}),
	}
	h := u.live
	h.mu.Lock()
	select {
	case <-h.done:
		h.mu.Unlock()
		_ = ws.Close()
		return nil
	default:
	}
	h.conns[c] = struct{}{}
	h.wg.Add(2)
	h.mu.Unlock()
	go c.writeLoop()
	go c.readLoop()
	return nil
}

// liveConn is one page's websocket.
type liveConn struct {
	hub     *hub
	ws      *websocket.Conn
	session string
	feeds   map[string]bool
	send    chan []byte

	closeOnce sync.Once
	closed    chan struct{}

	// The message inspector of this page, if watching.
	watchMu    sync.Mutex
	stopWatch  func()
	watchFrom  time.Time
	watchShown int
	skipped    int
}

func (c *liveConn) offer(msg []byte) bool {
	select {
	case c.send <- msg:
		return true
	default:
		return false
	}
}

func (c *liveConn) close() {
	c.closeOnce.Do(func() { close(c.closed) })
}

func (c *liveConn) writeLoop() {
	defer c.hub.wg.Done()
	ping := time.NewTicker(livePingEvery)
	defer ping.Stop()
	defer c.shutdown()
	for {
		select {
		case <-c.closed:
			_ = c.ws.WriteControl(websocket.CloseMessage,
				websocket.FormatCloseMessage(websocket.CloseNormalClosure, "session ended"), time.Now().Add(time.Second))
			return
		case msg := <-c.send:
			_ = c.ws.SetWriteDeadline(time.Now().Add(liveWriteWait))
			if err := c.ws.WriteMessage(websocket.TextMessage, msg); err != nil {
				return
			}
		case <-ping.C:
			if !c.hub.u.sessions.alive(c.session) {
				return
			}
			if err := c.ws.WriteControl(websocket.PingMessage, nil, time.Now().Add(liveWriteWait)); err != nil {
				return
			}
		}
	}
}

// shutdown unregisters the connection and releases what it holds.
func (c *liveConn) shutdown() {
	c.close()
	c.hub.mu.Lock()
	delete(c.hub.conns, c)
	c.hub.mu.Unlock()
	c.unwatch()
	_ = c.ws.Close()
}

// inspectorCommand is what a page sends: {"type":"watch","filter":"a/#"}
// or {"type":"unwatch"}.
type inspectorCommand struct {
	Type   string `json:"type"`
	Filter string `json:"filter"`
}

func (c *liveConn) readLoop() {
	defer c.hub.wg.Done()
	defer c.close()
	c.ws.SetReadLimit(liveReadLimit)
	_ = c.ws.SetReadDeadline(time.Now().Add(livePongWait))
	c.ws.SetPongHandler(func(string) error {
		return c.ws.SetReadDeadline(time.Now().Add(livePongWait))
	})
	for {
		var cmd inspectorCommand
		if err := c.ws.ReadJSON(&cmd); err != nil {
			return
		}
		switch cmd.Type {
		case "watch":
			c.watch(cmd.Filter)
		case "unwatch":
			c.unwatch()
			c.offerEvent(liveEvent{Type: "watching", Data: map[string]any{"filter": ""}})
		}
	}
}

func (c *liveConn) offerEvent(ev liveEvent) {
	msg, err := json.Marshal(ev)
	if err == nil {
		c.offer(msg)
	}
}

// watch starts the message inspector on filter, replacing the previous one.
func (c *liveConn) watch(filter string) {
	c.unwatch()
	if strings.HasPrefix(filter, "$share/") {
		// Joining a share group would take messages away from its members.
		c.offerEvent(liveEvent{Type: "watch_error", Data: map[string]any{"filter": filter, "error": "shared subscriptions cannot be inspected; watch the topic filter after $share/<group>/"}})
		return
	}
	b := c.hub.u.o.Broker
	stop, err := b.WatchMessages(filter, c.inspect)
	if err != nil {
		c.offerEvent(liveEvent{Type: "watch_error", Data: map[string]any{"filter": filter, "error": "not a valid topic filter"}})
		return
	}
	c.watchMu.Lock()
	c.stopWatch = stop
	c.watchMu.Unlock()
	c.offerEvent(liveEvent{Type: "watching", Data: map[string]any{"filter": filter}})
}

func (c *liveConn) unwatch() {
	c.watchMu.Lock()
	stop := c.stopWatch
	c.stopWatch = nil
	c.watchMu.Unlock()
	if stop != nil {
		stop()
	}
}

// inspect runs on the publisher's goroutine: it formats and queues a
// message, or counts it as skipped beyond inspectorRate per second.
func (c *liveConn) inspect(m broker.WatchedMessage) {
	c.watchMu.Lock()
	now := time.Now()
	if now.Sub(c.watchFrom) >= time.Second {
		if c.skipped > 0 {
			c.offerEvent(liveEvent{Type: "skipped", Data: map[string]int{"count": c.skipped}})
		}
		c.watchFrom, c.watchShown, c.skipped = now, 0, 0
	}
	if c.watchShown >= inspectorRate {
		c.skipped++
		c.watchMu.Unlock()
		return
	}
	c.watchShown++
	c.watchMu.Unlock()
	if !c.offer(mustJSON(liveEvent{Type: "message", Data: preview(m)})) {
		c.watchMu.Lock()
		c.skipped++
		c.watchMu.Unlock()
	}
}

func mustJSON(v any) []byte {
	b, _ := json.Marshal(v) // previews hold only strings, numbers and bools
	return b
}
