package broker

import (
	"sort"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
)

// mochi v2.7.9 resends a resumed session's queued messages sorted by their
// creation time in seconds truncated to 16 bits: messages queued within the
// same second come out in map order, which breaks MQTT's ordered-topic rule
// (MQTT 3.1.1 §4.6, MQTT 5 §4.6). connHook therefore takes the queued
// PUBLISH packets out of the old session before mochi inherits it, so mochi
// finds nothing to resend, and sends them itself in queue order once the
// CONNACK is out.

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
	sortQueued(held)
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

// sortQueued orders packets as they were queued: by creation second, and
// within a second by packet id, which a session hands out in increasing
// order modulo 65535 — so a run of ids that wrapped starts after the largest
// gap between them.
func sortQueued(pks []packets.Packet) {
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
