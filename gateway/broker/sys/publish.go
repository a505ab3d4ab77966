package sys

import (
	"errors"
	"strconv"
	"time"
)

const (
	sysPrefix  = "$SYS/"
	sysBrokers = "$SYS/brokers"
	// DatetimeLayout is the layout of $SYS/brokers/<node>/datetime, in the
	// time zone of Options.Now (the appliance's local time by default).
	DatetimeLayout = "2006-01-02 15:04:05"
)

// PublishNow publishes every periodic $SYS topic once (QoS 0, not
// retained), after evaluating alarms and sysmon: $SYS/brokers, then under
// $SYS/brokers/<node>/ version, uptime, datetime, sysdescr, stats/...,
// metrics/..., alarms/<id>/alert|clear for alarms raised or cleared since
// the previous call, and sysmon/long_gc, sysmon/large_heap when they apply.
// Run calls it on each tick; it returns the publish errors, joined.
func (h *Hook) PublishNow() error {
	h.tickMu.Lock()
	defer h.tickMu.Unlock()

	now := h.now()
	heap := h.heapBytes()
	gcPause := h.gcPause()
	loads := h.listeners()
	certs := h.certs()
	changes := h.evaluateAlarms(now, heap, loads, certs)
	s := h.snapshot(now, heap, loads, certs)

	var errs []error
	pub := func(topic, payload string) {
		if err := h.publish(topic, []byte(payload)); err != nil {
			errs = append(errs, err)
		}
	}
	pub(sysBrokers, h.node)
	for _, m := range h.periodic(s, now) {
		pub(h.prefix+m.topic, m.payload)
	}
	for _, c := range changes {
		pub(h.prefix+"alarms/"+c.alarm.ID+"/"+c.event, mustJSON(c.alarm))
	}
	for _, w := range h.sysmon(now, heap, gcPause) {
		pub(h.prefix+"sysmon/"+w.topic, w.payload)
	}
	return errors.Join(errs...)
}

type message struct{ topic, payload string }

// periodic lists the version, uptime, datetime, sysdescr, stats and metrics
// topics (relative to $SYS/brokers/<node>/) with their payloads.
func (h *Hook) periodic(s Stats, now time.Time) []message {
	u := func(v uint64) string { return strconv.FormatUint(v, 10) }
	i := func(v int64) string { return strconv.FormatInt(v, 10) }
	in, out := s.Packets.ReceivedByType, s.Packets.SentByType
	return []message{
		{"version", h.version},
		{"uptime", FormatUptime(now.Sub(h.started))},
		{"datetime", now.Format(DatetimeLayout)},
		{"sysdescr", h.sysdescr},

		{"stats/clients/count", i(s.Clients.Count)},
		{"stats/clients/max", i(s.Clients.Max)},
		{"stats/sessions/count", i(s.Sessions.Count)},
		{"stats/sessions/max", i(s.Sessions.Max)},
		{"stats/subscriptions/count", i(s.Subscriptions.Count)},
		{"stats/subscriptions/max", i(s.Subscriptions.Max)},
		{"stats/topics/count", i(s.Topics.Count)},
		{"stats/topics/max", i(s.Topics.Max)},

		{"metrics/bytes/received", u(s.Bytes.Received)},
		{"metrics/bytes/sent", u(s.Bytes.Sent)},
		{"metrics/packets/received", u(s.Packets.Received)},
		{"metrics/packets/sent", u(s.Packets.Sent)},
		{"metrics/packets/connect", u(in["connect"])},
		{"metrics/packets/connack", u(out["connack"])},
		{"metrics/packets/publish/received", u(in["publish"])},
		{"metrics/packets/publish/sent", u(out["publish"])},
		{"metrics/packets/puback/received", u(in["puback"])},
		{"metrics/packets/puback/sent", u(out["puback"])},
		{"metrics/packets/pubrec/received", u(in["pubrec"])},
		{"metrics/packets/pubrec/sent", u(out["pubrec"])},
		{"metrics/packets/pubrel/received", u(in["pubrel"])},
		{"metrics/packets/pubrel/sent", u(out["pubrel"])},
		{"metrics/packets/pubcomp/received", u(in["pubcomp"])},
		{"metrics/packets/pubcomp/sent", u(out["pubcomp"])},
		{"metrics/packets/subscribe", u(in["subscribe"])},
		{"metrics/packets/suback", u(out["suback"])},
		{"metrics/packets/unsubscribe", u(in["unsubscribe"])},
		{"metrics/packets/unsuback", u(out["unsuback"])},
		{"metrics/packets/pingreq", u(in["pingreq"])},
		{"metrics/packets/pingresp", u(out["pingresp"])},
		{"metrics/packets/disconnect", u(in["disconnect"])},
		{"metrics/messages/received", u(s.Messages.Received)},
		{"metrics/messages/sent", u(s.Messages.Sent)},
		{"metrics/messages/retained", i(s.Messages.Retained)},
		{"metrics/messages/stored", i(s.Messages.Stored)},
		{"metrics/messages/dropped", u(s.Messages.Dropped)},
	}
}
