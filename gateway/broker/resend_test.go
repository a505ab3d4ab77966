package broker

import (
	"slices"
	"testing"

	"github.com/mochi-mqtt/server/v2/packets"
)

func TestSortQueued(t *testing.T) {
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
			sortQueued(tt.in)
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
