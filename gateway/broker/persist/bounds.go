package persist

import (
	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
)

// The guard is the shared subscription Attach adds so that mochi calls
// OnSelectSubscribers for every publish (it only does when a shared
// subscription matches). Its group and client ID contain U+0000, which
// mochi's decoder refuses in any string from the wire, so no client can
// join the group or take the ID. OnSelectSubscribers removes it again; even
// if another hook kept it, mochi skips subscribers that are not clients.
const (
	guardClientID = "\x00edgegate-persist"
	guardFilter   = "$share/\x00edgegate-persist/#"
)

// session is what the hook tracks for one MQTT session, connected or not.
// Its memory is one entry per session plus one per message in the session's
// queue, which mochi already holds in full.
type session struct {
	persistent bool         // the session outlives its connection, so it is stored
	client     *mqtt.Client // the connection (or restored client) mochi delivers to
	bytes      int64        // payload bytes queued
	queued     map[uint16]queuedMsg
	// stale: mochi dropped a queued message without a hook event that says
	// which (OnPublishDropped names the publish, not the queue entry), so
	// the count may be high; recount from mochi's map before dropping.
	// (Upstream mochi does that when a client's write queue is full; the
	// patched copy in third_party keeps such messages queued instead.)
	stale bool
}

type queuedMsg struct {
	size   int32
	stored bool // has a record in the inflight bucket
}

func newSession(persistent bool) *session {
	return &session{persistent: persistent, queued: make(map[uint16]queuedMsg)}
}

func (s *session) add(packetID uint16, size int32, stored bool) {
	if old, ok := s.queued[packetID]; ok {
		s.bytes -= int64(old.size)
		stored = stored || old.stored // still has to be deleted
	}
	s.queued[packetID] = queuedMsg{size: size, stored: stored}
	s.bytes += int64(size)
}

// remove forgets a queue entry and reports whether it has a record to delete.
func (s *session) remove(packetID uint16) (stored bool) {
	old, ok := s.queued[packetID]
	if !ok {
		return false
	}
	delete(s.queued, packetID)
	s.bytes -= int64(old.size)
	return old.stored
}

// recount makes the tracking match mochi's inflight map of cl and returns
// the packet IDs of stored entries that are no longer queued.
func (s *session) recount(cl *mqtt.Client) (gone []uint16) {
	current := cl.State.Inflight.GetAll(false)
	queued := make(map[uint16]queuedMsg, len(current))
	var bytes int64
	for _, pk := range current {
		stored := s.persistent && storedInflight(pk)
		if old, ok := s.queued[pk.PacketID]; ok && old.stored {
			stored = true
		}
		queued[pk.PacketID] = queuedMsg{size: int32(len(pk.Payload)), stored: stored}
		bytes += int64(len(pk.Payload))
	}
	for id, m := range s.queued {
		if _, ok := queued[id]; !ok && m.stored {
			gone = append(gone, id)
		}
	}
	s.queued, s.bytes, s.stale = queued, bytes, false
	return gone
}

// full reports whether a message of size payload bytes would take the
// session over a bound.
func (h *Hook) full(s *session, size int64) bool {
	return (h.maxMsgs > 0 && len(s.queued) >= h.maxMsgs) || (h.maxBytes > 0 && s.bytes+size > h.maxBytes)
}

// OnQosPublish tracks a new (or resent) queue entry and stores it for a
// persistent session. The write is not waited for: a message from a client
// is in the write-ahead log until OnPublished, whose log deletion is queued
// after this write.
func (h *Hook) OnQosPublish(cl *mqtt.Client, pk packets.Packet, sent int64, _ int) {
	if cl.Net.Inline {
		return
	}
	h.mu.Lock()
	s := h.sessions[cl.ID]
	if s == nil {
		h.mu.Unlock()
		return // the session is gone
	}
	store := s.persistent && storedInflight(pk)
	s.add(pk.PacketID, int32(len(pk.Payload)), store)
	h.mu.Unlock()

	if store {
		if o, ok := h.putInflight(cl.ID, pk, sent); ok {
			h.w.enqueue(o)
		}
	}
}

// OnQosComplete forgets an acknowledged queue entry.
func (h *Hook) OnQosComplete(cl *mqtt.Client, pk packets.Packet) { h.dequeue(cl, pk.PacketID) }

// OnQosDropped forgets a queue entry mochi abandoned or expired.
func (h *Hook) OnQosDropped(cl *mqtt.Client, pk packets.Packet) { h.dequeue(cl, pk.PacketID) }

func (h *Hook) dequeue(cl *mqtt.Client, packetID uint16) {
	// On a takeover mochi clears the old connection's map after the new
	// connection copied it: those entries are still queued.
	if cl.Net.Inline || cl.IsTakenOver() {
		return
	}
	h.mu.Lock()
	s := h.sessions[cl.ID]
	stored := s != nil && s.remove(packetID)
	h.mu.Unlock()
	if stored {
		h.w.enqueue(deleteInflight(cl.ID, packetID))
	}
}

// OnPublishDropped marks the session for a recount: when upstream mochi
// cannot hand a QoS 1/2 message to a connected client's writer it removes
// it from the client's map again, without an event naming the entry. The
// patched copy in third_party/mochi-mqtt-server drops only QoS 0 messages
// there; the recount stays as a guard should that ever change.
func (h *Hook) OnPublishDropped(cl *mqtt.Client, pk packets.Packet) {
	if cl.Net.Inline || pk.FixedHeader.Qos == 0 {
		return
	}
	h.mu.Lock()
	if s := h.sessions[cl.ID]; s != nil {
		s.stale = true
	}
	h.mu.Unlock()
}

// OnSelectSubscribers removes the guard subscription and, for a QoS 1/2
// message, every subscriber whose queue the message would take over a
// bound; Options.OnDrop is called once for each. In a shared group a full
// member is skipped and the message goes to another; it is dropped only if
// every member is full.
func (h *Hook) OnSelectSubscribers(subs *mqtt.Subscribers, pk packets.Packet) *mqtt.Subscribers {
	delete(subs.Shared, guardFilter)
	delete(subs.SharedSelected, guardClientID)
	if pk.FixedHeader.Qos == 0 || (h.maxMsgs <= 0 && h.maxBytes <= 0) {
		return subs
	}
	size := int64(len(pk.Payload))
	var dropped []string
	var fixes []op

	h.mu.Lock()
	isFull := func(id string, sub packets.Subscription) bool {
		if sub.Qos == 0 || (sub.NoLocal && id == pk.Origin) {
			return false // not queued, or not delivered anyway
		}
		s := h.sessions[id]
		if s == nil || !h.full(s, size) {
			return false
		}
		if s.stale && s.client != nil {
			for _, gone := range s.recount(s.client) {
				fixes = append(fixes, deleteInflight(id, gone))
			}
			return h.full(s, size)
		}
		return true
	}
	drop := func(id string) {
		for _, d := range dropped {
			if d == id {
				return // one message, one drop per client
			}
		}
		dropped = append(dropped, id)
	}
	for id, sub := range subs.Subscriptions {
		if isFull(id, sub) {
			delete(subs.Subscriptions, id)
			drop(id)
		}
	}
	for id, sub := range subs.SharedSelected { // chosen by an earlier hook
		if isFull(id, sub) {
			delete(subs.SharedSelected, id)
			drop(id)
		}
	}
	for filter, group := range subs.Shared {
		var first string
		for id, sub := range group {
			if isFull(id, sub) {
				delete(group, id)
				if first == "" || id < first {
					first = id
				}
			}
		}
		if len(group) == 0 && first != "" {
			delete(subs.Shared, filter)
			drop(first)
		}
	}
	h.mu.Unlock()

	h.w.enqueue(fixes...)
	if h.onDrop != nil {
		for _, id := range dropped {
			h.onDrop(id)
		}
	}
	return subs
}
