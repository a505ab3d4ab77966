package sys

import (
	"io"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"
)

// PrometheusContentType is the Content-Type of what WritePrometheus writes.
const PrometheusContentType = "text/plain; version=0.0.4; charset=utf-8"

// WritePrometheus writes s in the Prometheus text exposition format 0.0.4:
// for each metric family a # HELP and a # TYPE line, then its samples.
// Counters end in _total; gauges do not. Families:
//
//	edgegate_info{node,version} 1
//	edgegate_uptime_seconds
//	edgegate_clients_connected, edgegate_clients_connected_max
//	edgegate_sessions, edgegate_sessions_max
//	edgegate_subscriptions, edgegate_subscriptions_max
//	edgegate_topics, edgegate_topics_max
//	edgegate_bytes_received_total, edgegate_bytes_sent_total
//	edgegate_packets_received_total{type}, edgegate_packets_sent_total{type}
//	edgegate_messages_received_total, edgegate_messages_sent_total,
//	edgegate_messages_dropped_total, edgegate_messages_retained,
//	edgegate_messages_stored
//	edgegate_listener_clients{listener}, edgegate_listener_max_clients{listener}
//	edgegate_certificate_expiry_seconds{id,usage}, edgegate_certificate_disconnects_total
//	edgegate_alarms_active, edgegate_alarm_active{id} 1
//	edgegate_go_heap_bytes, edgegate_go_goroutines
//	edgegate_trust_applied_version, edgegate_trust_entries{list},
//	edgegate_trust_last_sync_timestamp_seconds, edgegate_trust_syncs_total,
//	edgegate_trust_sync_errors_total (when s.Trust is set)
func WritePrometheus(w io.Writer, s Stats) error {
	var p promWriter
	p.family("edgegate_info", "gauge", "Node name and edgegate version.")
	p.sample("edgegate_info", labels("node", s.Node, "version", s.Version), "1")
	p.single("edgegate_uptime_seconds", "gauge", "Seconds since the broker started.", i64(s.UptimeSeconds))

	p.single("edgegate_clients_connected", "gauge", "Connected MQTT clients.", i64(s.Clients.Count))
	p.single("edgegate_clients_connected_max", "gauge", "Most clients connected at once since start.", i64(s.Clients.Max))
	p.single("edgegate_sessions", "gauge", "Sessions held, connected or not.", i64(s.Sessions.Count))
	p.single("edgegate_sessions_max", "gauge", "Most sessions held at once since start.", i64(s.Sessions.Max))
	p.single("edgegate_subscriptions", "gauge", "Client subscriptions.", i64(s.Subscriptions.Count))
	p.single("edgegate_subscriptions_max", "gauge", "Most client subscriptions at once since start.", i64(s.Subscriptions.Max))
	p.single("edgegate_topics", "gauge", "Distinct topics holding a retained message or a subscription.", i64(s.Topics.Count))
	p.single("edgegate_topics_max", "gauge", "Most topics at once since start.", i64(s.Topics.Max))

	p.single("edgegate_bytes_received_total", "counter", "MQTT bytes received from clients.", u64(s.Bytes.Received))
	p.single("edgegate_bytes_sent_total", "counter", "MQTT bytes sent to clients.", u64(s.Bytes.Sent))
	for _, dir := range []struct {
		name, help string
		byType     map[string]uint64
	}{
		{"edgegate_packets_received_total", "MQTT packets received from clients, by packet type.", s.Packets.ReceivedByType},
		{"edgegate_packets_sent_total", "MQTT packets sent to clients, by packet type.", s.Packets.SentByType},
	} {
		p.family(dir.name, "counter", dir.help)
		for _, t := range packetTypeNames[1:] {
			p.sample(dir.name, labels("type", t), u64(dir.byType[t]))
		}
	}

	p.single("edgegate_messages_received_total", "counter", "Messages accepted for routing.", u64(s.Messages.Received))
	p.single("edgegate_messages_sent_total", "counter", "PUBLISH packets sent to clients.", u64(s.Messages.Sent))
	p.single("edgegate_messages_dropped_total", "counter", "Messages dropped for slow or full sessions.", u64(s.Messages.Dropped))
	p.single("edgegate_messages_retained", "gauge", "Retained messages held.", i64(s.Messages.Retained))
	p.single("edgegate_messages_stored", "gauge", "QoS 1/2 messages awaiting acknowledgement in sessions.", i64(s.Messages.Stored))

	p.family("edgegate_listener_clients", "gauge", "Clients connected to a listener.")
	for _, l := range s.Listeners {
		p.sample("edgegate_listener_clients", labels("listener", l.Name), strconv.Itoa(l.Clients))
	}
	p.family("edgegate_listener_max_clients", "gauge", "Client limit of a listener (0: unlimited).")
	for _, l := range s.Listeners {
		p.sample("edgegate_listener_max_clients", labels("listener", l.Name), strconv.Itoa(l.MaxClients))
	}

	p.family("edgegate_certificate_expiry_seconds", "gauge", "Seconds until a certificate in use expires (negative: expired).")
	for _, c := range s.Certificates {
		if c.Usage == "" {
			continue
		}
		p.sample("edgegate_certificate_expiry_seconds", labels("id", c.ID, "usage", c.Usage),
			strconv.FormatInt(int64(c.NotAfter.Sub(s.Time)/time.Second), 10))
	}

	p.single("edgegate_certificate_disconnects_total", "counter",
		"Clients disconnected because their certificate was revoked or expired while connected.", u64(s.CertificateDisconnects))

	p.single("edgegate_alarms_active", "gauge", "Active alarms.", strconv.Itoa(len(s.Alarms)))
	p.family("edgegate_alarm_active", "gauge", "1 for each active alarm.")
	for _, a := range s.Alarms {
		p.sample("edgegate_alarm_active", labels("id", a.ID), "1")
	}

	p.single("edgegate_go_heap_bytes", "gauge", "Bytes of live and not yet swept Go heap objects.", u64(s.Runtime.HeapBytes))
	p.single("edgegate_go_goroutines", "gauge", "Live goroutines.", strconv.Itoa(s.Runtime.Goroutines))

	if t := s.Trust; t != nil {
		p.single("edgegate_trust_applied_version", "gauge", "The trust lists' applied version (0: none applied).", u64(t.AppliedVersion))
		p.family("edgegate_trust_entries", "gauge", "Certificates in an applied list.")
		for _, l := range slices.Sorted(maps.Keys(t.Entries)) {
			p.sample("edgegate_trust_entries", labels("list", l), strconv.Itoa(t.Entries[l]))
		}
		if t.SyncEnabled {
			last := "0"
			if !t.LastSuccess.IsZero() {
				last = i64(t.LastSuccess.Unix())
			}
			p.single("edgegate_trust_last_sync_timestamp_seconds", "gauge", "Unix time of the last successful vault sync (0: none yet).", last)
			p.single("edgegate_trust_syncs_total", "counter", "Vault sync attempts.", u64(t.Syncs))
			p.single("edgegate_trust_sync_errors_total", "counter", "Vault sync attempts that failed.", u64(t.SyncErrors))
		}
	}

	_, err := io.WriteString(w, p.b.String())
	return err
}

type promWriter struct{ b strings.Builder }

func (p *promWriter) family(name, typ, help string) {
	p.b.WriteString("# HELP " + name + " " + helpEscaper.Replace(help) + "\n")
	p.b.WriteString("# TYPE " + name + " " + typ + "\n")
}

func (p *promWriter) sample(name, labels, value string) {
	p.b.WriteString(name + labels + " " + value + "\n")
}

// single writes a family with one unlabelled sample.
func (p *promWriter) single(name, typ, help, value string) {
	p.family(name, typ, help)
	p.sample(name, "", value)
}

var (
	helpEscaper  = strings.NewReplacer(`\`, `\\`, "\n", `\n`)
	labelEscaper = strings.NewReplacer(`\`, `\\`, "\n", `\n`, `"`, `\"`)
)

// labels formats name/value pairs as {name="value",...}.
func labels(kv ...string) string {
	var b strings.Builder
	b.WriteByte('{')
	for i := 0; i+1 < len(kv); i += 2 {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(kv[i] + `="` + labelEscaper.Replace(kv[i+1]) + `"`)
	}
	b.WriteByte('}')
	return b.String()
}

func i64(v int64) string  { return strconv.FormatInt(v, 10) }
func u64(v uint64) string { return strconv.FormatUint(v, 10) }
