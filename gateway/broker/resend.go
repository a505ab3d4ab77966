package broker

import (
	"sort"
	"sync"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
)

// mochi v2.7.9 resends a resumed session's queued messages sorted by their
// creation time in seconds truncated to 16 bits: messages queued within the
// same second come out in map order, which breaks MQTT's ordered-topic rule
// (MQTT 3.1.1 §4.6, MQTT 5 §4.6). connHook therefore numbers each queued
// PUBLISH as mochi queues it (OnQosPublish), takes the queued packets out of
// the old session before mochi inherits it, so mochi finds nothing to
// resend, and sends them itself in queue order once the CONNACK is out.
// Packets restored from the store after a restart carry no number; they are
// older than any numbered one and are ordered by creation second and packet
// id.

// queueOrder numbers one session's queued packets by packet id.
type queueOrder struct {
	mu   sync.Mutex
	last uint64
	seq  map[uint16]queuedPacket
}

// queuedPacket is the number of a queued packet and what identifies the
// packet beyond its id: mochi may free an id without telling hooks
// (upstream v2.7.9 forgets "immediate" packets once written; the patched
// copy in third_party does not), so a number left behind must not be taken
// for a later packet's that reuses the id.
type queuedPacket struct {
	seq     uint64
	created int64
	origin  string
	size    int
}

func identify(pk packets.Packet) queuedPacket {
	return queuedPacket{created: pk.Created, origin: pk.Origin, size: len(pk.Payload)}
}

// number returns the packet's number, if it has one.
func (o *queueOrder) number(pk packets.Packet) (uint64, bool) {
	q, ok := o.seq[pk.PacketID]
	want := identify(pk)
	want.seq = q.seq
	return q.seq, ok && q == want
}

func (h *connHook) orderOf(clientID string) *queueOrder {
	if o, ok := h.order.Load(clientID); ok {
		return o.(*queueOrder)
	}
	o, _ := h.order.LoadOrStore(clientID, &queueOrder{seq: map[uint16]queuedPacket{}})
	return o.(*queueOrder)
}

// numberQueued gives a newly queued PUBLISH the next number of its session;
// a resend keeps the number it has.
func (h *connHook) numberQueued(cl *mqtt.Client, pk packets.Packet) {
	if pk.FixedHeader.Type != packets.Publish || cl.Net.Inline {
		return
	}
	o := h.orderOf(cl.ID)
	o.mu.Lock()
	if _, ok := o.number(pk); !ok {
		o.last++
		q := identify(pk)
		q.seq = o.last
		o.seq[pk.PacketID] = q
	}
	o.mu.Unlock()
}

// forgetQueued drops the number of a packet that left the queue.
func (h *connHook) forgetQueued(cl *mqtt.Client, pk packets.Packet) {
	if o, ok := h.order.Load(cl.ID); ok {
		q := o.(*queueOrder)
		q.mu.Lock()
		delete(q.seq, pk.PacketID)
		q.mu.Unlock()
	}
}

// holdQueued removes the queued outbound PUBLISH packets of the session cl
// is about to resume and returns them in the order they were queued, with
// any the old session itself still held (its CONNACK failed before they
// were resent).
func (h *connHook) holdQueued(cl *mqtt.Client, pk packets.Packet) []packets.Packet {
	existing, ok := h.broker.server.Clients.Get(cl.ID)
	if !ok || existing == cl {
		return nil
	}
	var held []packets.Packet
	if prev, ok := h.held.LoadAndDelete(existing); ok {
		held = prev.([]packets.Packet)
	}
	if pk.Connect.Clean {
		return nil // the old session is discarded, queue and all
	}
	for _, m := range existing.State.Inflight.GetAll(false) {
		if m.FixedHeader.Type != packets.Publish {
			continue // acknowledgements of inbound QoS 2 flows: order does not matter
		}
		if existing.State.Inflight.Delete(m.PacketID) {
			held = append(held, m)
		}
	}
	h.sortQueued(cl.ID, held)
	return held
}

// resendHeld puts the held packets into the resumed session and sends them
// in order. All are registered before the first write, so a failed write
// leaves the rest queued for the next connection.
func resendHeld(cl *mqtt.Client, held []packets.Packet) error {
	for i := range held {
		held[i].FixedHeader.Dup = true // [MQTT-3.3.1-1]
		cl.State.Inflight.Set(held[i])
	}
	for _, m := range held {
		if err := cl.WritePacket(m); err != nil {
			return err
		}
	}
	return nil
}

// sortQueued orders a session's packets as they were queued: unnumbered
// (restored) packets first, then by number.
func (h *connHook) sortQueued(clientID string, pks []packets.Packet) {
	o := h.orderOf(clientID)
	o.mu.Lock()
	seqs := make(map[uint16]uint64, len(pks))
	for _, pk := range pks {
		if n, ok := o.number(pk); ok {
			seqs[pk.PacketID] = n
		}
	}
	o.mu.Unlock()
	var restored, numbered []packets.Packet
	for _, pk := range pks {
		if _, ok := seqs[pk.PacketID]; ok {
			numbered = append(numbered, pk)
		} else {
			restored = append(restored, pk)
		}
	}
	sortRestored(restored)
	sort.Slice(numbered, func(i, j int) bool { return seqs[numbered[i].PacketID] < seqs[numbered[j].PacketID] })
	copy(pks, restored)
	copy(pks[len(restored):], numbered)
}

// sortRestored orders packets that carry no queue number: by creation
// second, and within a second by packet id, which a session hands out in
// increasing order modulo 65535 — so a run of ids that wrapped starts after
// the largest gap between them.
func sortRestored(pks []packets.Packet) {
	sort.Slice(pks, func(i, j int) bool {
		if pks[i].Created != pks[j].Created {
			return pks[i].Created < pks[j].Created
		}
		return pks[i].PacketID < pks[j].PacketID
	})
	for start := 0; start < len(pks); {
		end := start + 1
		for end < len(pks) && pks[end].Created == pks[start].Created {
			end++
		}
		rotateAfterLargestGap(pks[start:end])
		start = end
	}
}

// rotateAfterLargestGap rotates ids sorted ascending so that they start
// after the largest circular gap, e.g. [1 2 65534 65535] → [65534 65535 1 2].
func rotateAfterLargestGap(pks []packets.Packet) {
	if len(pks) < 2 {
		return
	}
	best, bestGap := 0, int(pks[0].PacketID)+65535-int(pks[len(pks)-1].PacketID)
	for i := 1; i < len(pks); i++ {
		if gap := int(pks[i].PacketID) - int(pks[i-1].PacketID); gap > bestGap {
			best, bestGap = i, gap
		}
	}
	if best == 0 {
		return
	}
	rotated := append(append([]packets.Packet{}, pks[best:]...), pks[:best]...)
	copy(pks, rotated)
}
