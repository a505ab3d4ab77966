package sys

import (
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/mochi-mqtt/server/v2/packets"
)

// Stats is a snapshot of the broker's figures, as served by GET
// /api/v1/stats and written by WritePrometheus. The package comment defines
// each figure.
type Stats struct {
	Node          string          `json:"node"`
	Version       string          `json:"version"`
	Sysdescr      string          `json:"sysdescr"`
	Time          time.Time       `json:"time"`
	UptimeSeconds int64           `json:"uptime_seconds"`
	Clients       Gauge           `json:"clients"`
	Sessions      Gauge           `json:"sessions"`
	Subscriptions Gauge           `json:"subscriptions"`
	Topics        Gauge           `json:"topics"`
	Bytes         Traffic         `json:"bytes"`
	Packets       PacketStats     `json:"packets"`
	Messages      MessageStats    `json:"messages"`
	Listeners     []ListenerStats `json:"listeners"` // sorted by name
	Alarms        []Alarm         `json:"alarms"`    // active, sorted by ID
	// Certificates are the certificates in use, by ID.
	Certificates []CertificateExpiry `json:"certificates"`
	// CertificateDisconnects counts clients disconnected because their
	// certificate was revoked or expired while they were connected.
	CertificateDisconnects uint64       `json:"certificate_disconnects"`
	Runtime                RuntimeStats `json:"runtime"`
	// Trust is the trust lists' state; the broker leaves it nil, the API
	// fills it in.
	Trust *TrustStats `json:"trust,omitempty"`
}

// TrustStats are the trust and issuer lists and their vault sync.
type TrustStats struct {
	AppliedVersion uint64         `json:"applied_version"`
	Entries        map[string]int `json:"entries"` // by list
	SyncEnabled    bool           `json:"sync_enabled"`
	// LastSuccess is the last successful vault sync (zero: none).
	LastSuccess time.Time `json:"last_success,omitzero"`
	Syncs       uint64    `json:"syncs"`
	SyncErrors  uint64    `json:"sync_errors"`
}

// CertificateExpiry is a certificate the gateway uses, or one whose
// renewal keeps failing, and when it expires.
type CertificateExpiry struct {
	ID       string    `json:"id"`
	Usage    string    `json:"usage"` // e.g. "server", "client-ca"; "" when not in use
	NotAfter time.Time `json:"not_after"`
	// RenewalError is the last renewal failure; "" when renewal is fine.
	RenewalError string `json:"renewal_error,omitempty"`
}

// Gauge is a current value and its high-water mark since start.
type Gauge struct {
	Count int64 `json:"count"`
	Max   int64 `json:"max"`
}

// Traffic counts bytes on the wire.
type Traffic struct {
	Received uint64 `json:"received"`
	Sent     uint64 `json:"sent"`
}

// PacketStats counts MQTT packets on the wire, in total and by lower-case
// packet type name ("connect", "publish", "puback", … "auth"). Both maps
// hold every type, zero or not.
type PacketStats struct {
	Received       uint64            `json:"received"`
	Sent           uint64            `json:"sent"`
	ReceivedByType map[string]uint64 `json:"received_by_type"`
	SentByType     map[string]uint64 `json:"sent_by_type"`
}

// MessageStats counts application messages.
type MessageStats struct {
	Received uint64 `json:"received"`
	Sent     uint64 `json:"sent"`
	Dropped  uint64 `json:"dropped"`
	Retained int64  `json:"retained"`
	Stored   int64  `json:"stored"`
}

// ListenerStats is the load of one listener.
type ListenerStats struct {
	Name       string `json:"name"`
	Clients    int    `json:"clients"`
	MaxClients int    `json:"max_clients"`
}

// RuntimeStats describes the Go process.
type RuntimeStats struct {
	HeapBytes  uint64 `json:"heap_bytes"`
	Goroutines int    `json:"goroutines"`
}

// packetTypeNames are the lower-case names of MQTT packet types 1-15.
var packetTypeNames = [16]string{
	packets.Connect: "connect", packets.Connack: "connack", packets.Publish: "publish",
	packets.Puback: "puback", packets.Pubrec: "pubrec", packets.Pubrel: "pubrel",
	packets.Pubcomp: "pubcomp", packets.Subscribe: "subscribe", packets.Suback: "suback",
	packets.Unsubscribe: "unsubscribe", packets.Unsuback: "unsuback", packets.Pingreq: "pingreq",
	packets.Pingresp: "pingresp", packets.Disconnect: "disconnect", packets.Auth: "auth",
}

// Snapshot samples every figure now. It copies mochi's client and retained
// maps to count topics, so it costs O(sessions + subscriptions + retained).
func (h *Hook) Snapshot() Stats {
	return h.snapshot(h.now(), h.heapBytes(), h.listeners(), h.certs())
}

// snapshot builds Stats from figures the caller already sampled.
func (h *Hook) snapshot(now time.Time, heap uint64, loads map[string]ListenerLoad, certs []CertificateExpiry) Stats {
	info := h.srv.Info
	topics, retained := h.topicsAndRetained()
	s := Stats{
		Node:          h.node,
		Version:       h.version,
		Sysdescr:      h.sysdescr,
		Time:          now,
		UptimeSeconds: int64(now.Sub(h.started) / time.Second),
		Clients:       gauge(&h.clientsMax, atomic.LoadInt64(&info.ClientsConnected)),
		Sessions:      gauge(&h.sessionsMax, h.sessionCount()),
		Subscriptions: gauge(&h.subsMax, atomic.LoadInt64(&info.Subscriptions)),
		Topics:        gauge(&h.topicsMax, topics),
		Bytes:         Traffic{Received: h.bytesIn.Load(), Sent: h.bytesOut.Load()},
		Packets: PacketStats{
			ReceivedByType: make(map[string]uint64, 15),
			SentByType:     make(map[string]uint64, 15),
		},
		Messages: MessageStats{
			Received: h.messagesIn.Load(),
			Sent:     h.packetsOut[packets.Publish].Load(),
			Dropped: uint64(max(0, atomic.LoadInt64(&info.MessagesDropped))) +
				uint64(max(0, atomic.LoadInt64(&info.InflightDropped))) + h.dropped.Load(),
			Retained: retained,
			Stored:   max(0, atomic.LoadInt64(&info.Inflight)),
		},
		Alarms:                 h.ActiveAlarms(),
		Certificates:           certs,
		CertificateDisconnects: h.certDisconnects.Load(),
		Runtime:                RuntimeStats{HeapBytes: heap, Goroutines: runtime.NumGoroutine()},
	}
	if s.Certificates == nil {
		s.Certificates = []CertificateExpiry{}
	}
	for t := packets.Connect; t <= packets.Auth; t++ {
		in, out := h.packetsIn[t].Load(), h.packetsOut[t].Load()
		s.Packets.ReceivedByType[packetTypeNames[t]] = in
		s.Packets.SentByType[packetTypeNames[t]] = out
		s.Packets.Received += in
		s.Packets.Sent += out
	}
	for name, l := range loads {
		s.Listeners = append(s.Listeners, ListenerStats{Name: name, Clients: l.Clients, MaxClients: l.MaxClients})
	}
	slices.SortFunc(s.Listeners, func(a, b ListenerStats) int { return strings.Compare(a.Name, b.Name) })
	return s
}

// gauge raises the high-water mark m to n and returns both.
func gauge(m *atomic.Int64, n int64) Gauge {
	storeMax(m, n)
	return Gauge{Count: n, Max: m.Load()}
}

// FormatUptime writes d the way EMQ's $SYS uptime does: whole seconds,
// leading zero units left out, every unit plural — "4 seconds",
// "3 minutes, 4 seconds", "1 days, 2 hours, 3 minutes, 4 seconds".
func FormatUptime(d time.Duration) string {
	secs := max(int64(d/time.Second), 0)
	days, hours, minutes := secs/86400, secs/3600%24, secs/60%60
	var b strings.Builder
	unit := func(v int64, name string) {
		b.WriteString(strconv.FormatInt(v, 10))
		b.WriteString(name)
	}
	switch {
	case days > 0:
		unit(days, " days, ")
		fallthrough
	case hours > 0:
		unit(hours, " hours, ")
		fallthrough
	case minutes > 0:
		unit(minutes, " minutes, ")
	}
	unit(secs%60, " seconds")
	return b.String()
}
