package broker

import (
	"slices"
	"testing"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
)

func TestSortRestored(t *testing.T) {
	pk := func(created int64, id uint16) packets.Packet {
		return packets.Packet{Created: created, PacketID: id}
	}
	tests := []struct {
		name string
		in   []packets.Packet
		want []uint16
	}{
		{"same second, ids ascending", []packets.Packet{pk(100, 3), pk(100, 1), pk(100, 2)}, []uint16{1, 2, 3}},
		{"ids wrapped within a second", []packets.Packet{pk(100, 1), pk(100, 65535), pk(100, 2), pk(100, 65534)}, []uint16{65534, 65535, 1, 2}},
		{"seconds first", []packets.Packet{pk(101, 1), pk(100, 9)}, []uint16{9, 1}},
		{"16-bit second boundary", []packets.Packet{pk(65536, 2), pk(65535, 1)}, []uint16{1, 2}},
		{"one", []packets.Packet{pk(5, 7)}, []uint16{7}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sortRestored(tt.in)
			var got []uint16
			for _, p := range tt.in {
				got = append(got, p.PacketID)
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("order = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestSortQueuedByNumber(t *testing.T) {
	h := &connHook{}
	cl := &mqtt.Client{ID: "c"}
	publish := func(id uint16) packets.Packet {
		return packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Publish}, PacketID: id, Created: 100}
	}
	// Queued in this order; ids were reused after acknowledgements, so id
	// order says nothing.
	for _, id := range []uint16{8, 1, 2, 9} {
		h.numberQueued(cl, publish(id))
	}
	h.numberQueued(cl, publish(8)) // a resend keeps its number
	h.forgetQueued(cl, publish(2))
	h.numberQueued(cl, publish(2)) // acknowledged, then reused: now the newest
	pks := []packets.Packet{publish(9), publish(2), publish(1), publish(8), publish(40000), publish(40001)}
	h.sortQueued("c", pks)
	var got []uint16
	for _, p := range pks {
		got = append(got, p.PacketID)
	}
	// 40000 and 40001 have no number (restored from the store): first.
	if want := []uint16{40000, 40001, 8, 1, 9, 2}; !slices.Equal(got, want) {
		t.Errorf("order = %v, want %v", got, want)
	}
}

func TestStaleNumberNotReused(t *testing.T) {
	h := &connHook{}
	cl := &mqtt.Client{ID: "c"}
	old := packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Publish}, PacketID: 5, Created: 100, Payload: []byte("old")}
	h.numberQueued(cl, old)
	first := packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Publish}, PacketID: 1, Created: 101, Payload: []byte("a")}
	h.numberQueued(cl, first)
	// mochi freed id 5 without a hook; a newer packet reuses it.
	reused := packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Publish}, PacketID: 5, Created: 101, Payload: []byte("newer")}
	h.numberQueued(cl, reused)
	pks := []packets.Packet{reused, first}
	h.sortQueued("c", pks)
	if pks[0].PacketID != 1 || pks[1].PacketID != 5 {
		t.Errorf("order = %d, %d; want 1 then the reused 5", pks[0].PacketID, pks[1].PacketID)
	}
}
