// Package sys gives the broker the EMQ-style observability of seed 002: the
// $SYS/brokers/<node>/... topics (version, uptime, stats, metrics, client
// presence, alarms, sysmon warnings), the counters behind them, a Stats
// snapshot for the admin API and the Prometheus text exposition of it.
//
// A Hook is a mochi hook that counts packets, bytes and messages on the hot
// path with atomic adds only (no locks, no allocations) and publishes client
// connected/disconnected events as they happen. Everything else is sampled
// when asked: Snapshot for the API, PublishNow on each tick of Run.
//
// # Definitions
//
//   - packets and bytes are counted on the wire: a packet read from a network
//     client (every type, CONNECT included) or written to one. Messages the
//     broker publishes itself through mochi's inline client have no wire and
//     are not counted as packets.
//   - messages/received counts messages accepted for routing: PUBLISH packets
//     that passed the ACL (any QoS), wills sent on a client's behalf, and
//     messages published in-process (the HTTP publish API) — but not the
//     $SYS messages this package publishes. messages/sent counts PUBLISH
//     packets written to clients.
//   - messages/retained is the number of retained messages held now (those
//     on $SYS topics left out),
//     messages/stored the QoS 1/2 messages kept in sessions awaiting
//     acknowledgement (mochi's Info.Inflight), messages/dropped the messages
//     dropped for slow or full sessions (mochi's MessagesDropped and
//     InflightDropped plus drops the broker reports with AddDropped).
//   - clients are connected network clients; sessions are the sessions the
//     broker knows, connected or not (persistent sessions of disconnected
//     clients included, mochi's inline client excluded); subscriptions are
//     client subscriptions (a filter per session); topics are the distinct
//     topic names and filters that hold a retained message or at least one
//     client subscription (a shared subscription counts as its inner
//     filter).
//   - every "max" is the high-water mark since the Hook was created. Clients,
//     sessions and subscriptions are checked as they grow; topics when they
//     are sampled (each tick and each Snapshot).
package sys

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/edgegate/edgegate/gateway/config"
)

// HookID is the mochi hook ID of a Hook.
const HookID = "edgegate-sys"

// ListenerLoad is how full one listener is.
type ListenerLoad struct {
	Clients    int `json:"clients"`
	MaxClients int `json:"max_clients"` // 0 means unlimited
}

// Options are the dependencies of a Hook.
type Options struct {
	// Server is the broker: the hook publishes through its inline client
	// (Options.InlineClient must be on) and reads Info, Clients and Topics.
	Server   *mqtt.Server
	Node     string // $SYS/brokers/<Node>/...; "edgegate" when empty
	Version  string
	Sysdescr string
	Settings config.Sys
	// ListenerLimits reports each listener's load by listener name; nil
	// means no listener figures (and no clients_near_max alarms).
	ListenerLimits func() map[string]ListenerLoad
	Logger         *slog.Logger
	Now            func() time.Time
	// HeapBytes reports the Go heap watched by the high_memory alarm and the
	// large_heap warning; nil reads /memory/classes/heap/objects:bytes from
	// runtime/metrics (the same figure as MemStats.HeapAlloc, without
	// stopping the world).
	HeapBytes func() uint64
	// Certificates reports the certificates the gateway uses, for the
	// certificate_expires_* alarms and the expiry metric; nil means none.
	Certificates func() []CertificateExpiry
	// MaxGCPause reports the longest GC stop-the-world pause since its
	// previous call (0 if none); nil reads the /sched/pauses/total/gc:seconds
	// histogram of runtime/metrics.
	MaxGCPause func() time.Duration
}

// Hook counts traffic, publishes $SYS topics and keeps alarms. Create it
// with New, add it to the server with AddHook and start Run.
type Hook struct {
	mqtt.HookBase

	srv       *mqtt.Server
	node      string
	version   string
	sysdescr  string
	settings  config.Sys
	listeners func() map[string]ListenerLoad
	log       *slog.Logger
	now       func() time.Time
	heapBytes func() uint64
	gcPause   func() time.Duration
	certs     func() []CertificateExpiry
	started   time.Time
	prefix    string // "$SYS/brokers/<node>/"

	// Hot-path counters, indexed by packet type.
	packetsIn  [16]atomic.Uint64
	packetsOut [16]atomic.Uint64
	bytesIn    atomic.Uint64
	bytesOut   atomic.Uint64
	messagesIn atomic.Uint64
	dropped    atomic.Uint64 // reported by the broker

	certDisconnects atomic.Uint64 // reported by the broker

	clientsMax  atomic.Int64
	sessionsMax atomic.Int64
	subsMax     atomic.Int64
	topicsMax   atomic.Int64

	tickMu sync.Mutex // serialises PublishNow: alarm transitions, GC sampler

	alarmMu sync.Mutex
	alarms  map[string]Alarm // active, by ID
}

// New returns a Hook for o.Server.
func New(o Options) *Hook {
	h := &Hook{
		srv:       o.Server,
		node:      o.Node,
		version:   o.Version,
		sysdescr:  o.Sysdescr,
		settings:  o.Settings,
		listeners: o.ListenerLimits,
		log:       o.Logger,
		now:       o.Now,
		heapBytes: o.HeapBytes,
		gcPause:   o.MaxGCPause,
		certs:     o.Certificates,
		alarms:    map[string]Alarm{},
	}
	if h.node == "" {
		h.node = "edgegate"
	}
	if h.certs == nil {
		h.certs = func() []CertificateExpiry { return nil }
	}
	if h.log == nil {
		h.log = slog.New(slog.DiscardHandler)
	}
	if h.now == nil {
		h.now = time.Now
	}
	if h.heapBytes == nil {
		h.heapBytes = readHeapBytes
	}
	if h.gcPause == nil {
		h.gcPause = newGCPauseReader().maxSince
	}
	if h.listeners == nil {
		h.listeners = func() map[string]ListenerLoad { return nil }
	}
	h.started = h.now()
	h.prefix = sysBrokers + "/" + topicLevel(h.node) + "/"
	return h
}

// ID returns the hook's ID, "edgegate-sys".
func (h *Hook) ID() string { return HookID }

// Provides reports the mochi events the hook handles.
func (h *Hook) Provides(b byte) bool {
	switch b {
	case mqtt.OnPacketRead, mqtt.OnPacketSent, mqtt.OnPublished, mqtt.OnWillSent,
		mqtt.OnSessionEstablished, mqtt.OnDisconnect, mqtt.OnSubscribed:
		return true
	}
	return false
}

// AddDropped counts n messages the broker dropped outside mochi's own
// accounting (for example a full offline queue) in messages/dropped.
func (h *Hook) AddDropped(n uint64) { h.dropped.Add(n) }

// AddCertificateDisconnects counts clients disconnected because their
// certificate was revoked or expired while they were connected.
func (h *Hook) AddCertificateDisconnects(n uint64) { h.certDisconnects.Add(n) }

// OnPacketRead counts a packet read from a client. It never changes or
// rejects the packet.
func (h *Hook) OnPacketRead(_ *mqtt.Client, pk packets.Packet) (packets.Packet, error) {
	h.packetsIn[pk.FixedHeader.Type&0x0f].Add(1)
	h.bytesIn.Add(wireSize(pk.FixedHeader.Remaining))
	return pk, nil
}

// OnPacketSent counts a packet written to a client. The size comes from
// the packet's fixed header, which mochi's encoder fills in: the byte slice
// mochi passes is empty when it wrote the packet straight to the
// connection (bytes.Buffer.WriteTo drains it).
func (h *Hook) OnPacketSent(_ *mqtt.Client, pk packets.Packet, _ []byte) {
	h.packetsOut[pk.FixedHeader.Type&0x0f].Add(1)
	h.bytesOut.Add(wireSize(pk.FixedHeader.Remaining))
}

// OnPublished counts a message accepted for routing, except the $SYS
// messages the broker publishes itself.
func (h *Hook) OnPublished(cl *mqtt.Client, pk packets.Packet) {
	if cl != nil && cl.Net.Inline && strings.HasPrefix(pk.TopicName, sysPrefix) {
		return
	}
	h.messagesIn.Add(1)
}

// OnWillSent counts a will message, which the broker publishes for the
// client that went away.
func (h *Hook) OnWillSent(_ *mqtt.Client, _ packets.Packet) { h.messagesIn.Add(1) }

// OnSubscribed keeps the subscriptions high-water mark.
func (h *Hook) OnSubscribed(_ *mqtt.Client, _ packets.Packet, _ []byte) {
	storeMax(&h.subsMax, atomic.LoadInt64(&h.srv.Info.Subscriptions))
}

// connected is the payload of clients/<clientid>/connected.
type connected struct {
	ClientID  string `json:"clientid"`
	Username  string `json:"username"`
	IPAddress string `json:"ipaddress"`
	// Session is true when the session outlives the connection (MQTT 3:
	// clean session false; MQTT 5: a session expiry interval above 0).
	Session  bool  `json:"session"`
	Protocol byte  `json:"protocol"`
	Connack  byte  `json:"connack"`
	TS       int64 `json:"ts"`
}

// disconnected is the payload of clients/<clientid>/disconnected.
type disconnected struct {
	ClientID string `json:"clientid"`
	Username string `json:"username"`
	Reason   string `json:"reason"`
	TS       int64  `json:"ts"`
}

// OnSessionEstablished publishes clients/<clientid>/connected and keeps the
// clients and sessions high-water marks.
func (h *Hook) OnSessionEstablished(cl *mqtt.Client, pk packets.Packet) {
	storeMax(&h.clientsMax, atomic.LoadInt64(&h.srv.Info.ClientsConnected))
	storeMax(&h.sessionsMax, h.sessionCount())
	if cl.Net.Inline {
		return
	}
	persistent := !pk.Connect.Clean
	if cl.Properties.ProtocolVersion == 5 {
		persistent = cl.Properties.Props.SessionExpiryInterval > 0
	}
	h.publishJSON(h.prefix+"clients/"+topicLevel(cl.ID)+"/connected", connected{
		ClientID:  cl.ID,
		Username:  string(cl.Properties.Username),
		IPAddress: hostOf(cl.Net.Remote),
		Session:   persistent,
		Protocol:  cl.Properties.ProtocolVersion,
		Connack:   0,
		TS:        h.now().Unix(),
	})
}

// OnDisconnect publishes clients/<clientid>/disconnected.
func (h *Hook) OnDisconnect(cl *mqtt.Client, err error, _ bool) {
	if cl.Net.Inline {
		return
	}
	h.publishJSON(h.prefix+"clients/"+topicLevel(cl.ID)+"/disconnected", disconnected{
		ClientID: cl.ID,
		Username: string(cl.Properties.Username),
		Reason:   DisconnectReason(cl.StopCause(), err),
		TS:       h.now().Unix(),
	})
}

// DisconnectReason names why a client went away, EMQ style, from the cause
// mochi recorded when it stopped the client (Client.StopCause) and the
// error its read loop ended with: "normal" (a DISCONNECT packet, with or
// without will), "taken_over" (another connection took the client id),
// "keepalive_timeout" (nothing read within 1.5 × keepalive), "closed" (the
// connection was closed or reset without DISCONNECT), "server_shutdown",
// else the MQTT reason string or the error text.
func DisconnectReason(cause, err error) string {
	for _, e := range []error{cause, err} {
		switch {
		case e == nil:
			continue
		case errors.Is(e, packets.CodeDisconnect), errors.Is(e, packets.CodeDisconnectWillMessage):
			return "normal"
		case errors.Is(e, packets.ErrSessionTakenOver):
			return "taken_over"
		case errors.Is(e, os.ErrDeadlineExceeded), errors.Is(e, packets.ErrKeepAliveTimeout):
			return "keepalive_timeout"
		case errors.Is(e, packets.ErrServerShuttingDown):
			return "server_shutdown"
		case errors.Is(e, io.EOF), errors.Is(e, io.ErrUnexpectedEOF), errors.Is(e, net.ErrClosed),
			errors.Is(e, syscall.ECONNRESET), errors.Is(e, syscall.EPIPE), errors.Is(e, mqtt.ErrConnectionClosed):
			return "closed"
		}
		var code packets.Code
		if errors.As(e, &code) {
			return code.Reason
		}
		return e.Error()
	}
	// The read loop ended without an error after something stopped the
	// client without saying why.
	return "closed"
}

// Run publishes the $SYS topics now and then every Settings.Interval (60 s
// when unset), evaluating alarms and sysmon each time, until ctx ends. It
// returns nil when ctx ends.
func (h *Hook) Run(ctx context.Context) error {
	interval := h.settings.Interval.Std()
	if interval <= 0 {
		interval = time.Minute
	}
	ticker := time.NewTicker(interval)
	defer ticker.Stop()
	h.publishLogged()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-ticker.C:
			h.publishLogged()
		}
	}
}

func (h *Hook) publishLogged() {
	if err := h.PublishNow(); err != nil {
		h.log.Error("publish $SYS topics", "error", err)
	}
}

// publish sends one $SYS message: QoS 0, not retained.
func (h *Hook) publish(topic string, payload []byte) error {
	return h.srv.Publish(topic, payload, false, 0)
}

func (h *Hook) publishJSON(topic string, v any) {
	b, err := json.Marshal(v)
	if err == nil {
		err = h.publish(topic, b)
	}
	if err != nil {
		h.log.Error("publish $SYS event", "topic", topic, "error", err)
	}
}

// sessionCount is the number of sessions mochi holds, without its inline
// client.
func (h *Hook) sessionCount() int64 {
	n := int64(h.srv.Clients.Len())
	if cl, ok := h.srv.Clients.Get(mqtt.InlineClientId); ok && cl.Net.Inline {
		n--
	}
	return n
}

// topicsAndRetained counts the distinct topics holding a retained message
// or a client subscription, and the retained messages. Retained messages on
// $SYS topics are left out of both: they are broker internals (mochi
// retains its own $SYS/broker/... set when it starts). It copies mochi's
// maps, so it is for ticks and snapshots, not the hot path.
func (h *Hook) topicsAndRetained() (topics, retained int64) {
	seen := map[string]struct{}{}
	for _, cl := range h.srv.Clients.GetAll() {
		if cl.Net.Inline {
			continue
		}
		for filter := range cl.State.Subscriptions.GetAll() {
			seen[innerFilter(filter)] = struct{}{}
		}
	}
	for topic := range h.srv.Topics.Retained.GetAll() {
		if strings.HasPrefix(topic, sysPrefix) {
			continue
		}
		seen[topic] = struct{}{}
		retained++
	}
	return int64(len(seen)), retained
}

// innerFilter strips the "$share/<group>/" of a shared subscription.
func innerFilter(filter string) string {
	rest, ok := strings.CutPrefix(filter, mqtt.SharePrefix+"/")
	if !ok {
		return filter
	}
	if _, inner, ok := strings.Cut(rest, "/"); ok {
		return inner
	}
	return filter
}

// wireSize is the size on the wire of a packet whose fixed header says
// remaining bytes follow: the type byte, the variable-length remaining
// length, and the rest.
func wireSize(remaining int) uint64 {
	n := uint64(1 + remaining)
	switch {
	case remaining < 128:
		return n + 1
	case remaining < 16384:
		return n + 2
	case remaining < 2097152:
		return n + 3
	}
	return n + 4
}

// storeMax raises m to v if v is larger.
func storeMax(m *atomic.Int64, v int64) {
	for {
		cur := m.Load()
		if v <= cur || m.CompareAndSwap(cur, v) {
			return
		}
	}
}

// topicLevel makes s safe as one topic level: "/", "+", "#" and NUL become
// "_". The payloads carry the exact value.
func topicLevel(s string) string {
	if !strings.ContainsAny(s, "/+#\x00") {
		return s
	}
	return strings.Map(func(r rune) rune {
		switch r {
		case '/', '+', '#', 0:
			return '_'
		}
		return r
	}, s)
}

// hostOf returns the host part of a remote address.
func hostOf(addr string) string {
	if host, _, err := net.SplitHostPort(addr); err == nil {
		return host
	}
	return addr
}
