package bench

import (
	"bytes"
	"testing"

	"github.com/mochi-mqtt/server/v2/packets"
)

// The codec benchmarks follow the path mochi takes for every packet the
// broker handles: on the way in, ReadFixedHeader (first byte + remaining
// length) and ReadPacket (copy of the body, then the type's Decode); on the
// way out, the type's Encode into a buffer. Payloads are 64 bytes, the size
// make bench uses.

var benchPayload = bytes.Repeat([]byte{0xa5}, 64)

// codecCase is one packet as the broker sees it.
type codecCase struct {
	name string
	pk   packets.Packet
}

// encode and decode dispatch with a switch, as mochi does: calling the
// methods through func values would move every Packet (~900 bytes) to the
// heap and charge the benchmark for it.
func encode(pk *packets.Packet, buf *bytes.Buffer) error {
	switch pk.FixedHeader.Type {
	case packets.Publish:
		return pk.PublishEncode(buf)
	case packets.Puback:
		return pk.PubackEncode(buf)
	case packets.Connect:
		return pk.ConnectEncode(buf)
	case packets.Subscribe:
		return pk.SubscribeEncode(buf)
	}
	return packets.ErrNoValidPacketAvailable
}

func decode(pk *packets.Packet, body []byte) error {
	switch pk.FixedHeader.Type {
	case packets.Publish:
		return pk.PublishDecode(body)
	case packets.Puback:
		return pk.PubackDecode(body)
	case packets.Connect:
		return pk.ConnectDecode(body)
	case packets.Subscribe:
		return pk.SubscribeDecode(body)
	}
	return packets.ErrNoValidPacketAvailable
}

func codecCases() []codecCase {
	publish := func(qos byte, version byte) packets.Packet {
		pk := packets.Packet{
			FixedHeader:     packets.FixedHeader{Type: packets.Publish, Qos: qos},
			TopicName:       "sensors/hall-3/temperature",
			Payload:         benchPayload,
			ProtocolVersion: version,
		}
		if qos > 0 {
			pk.PacketID = 4711
		}
		if version == 5 {
			pk.Properties.MessageExpiryInterval = 3600
			pk.Properties.User = []packets.UserProperty{{Key: "unit", Val: "C"}}
		}
		return pk
	}
	return []codecCase{
		{"publish-qos0-v311", publish(0, 4)},
		{"publish-qos1-v311", publish(1, 4)},
		{"publish-qos1-v5-props", publish(1, 5)},
		{"puback-v311", packets.Packet{
			FixedHeader: packets.FixedHeader{Type: packets.Puback}, PacketID: 4711, ProtocolVersion: 4}},
		{"connect-v311", packets.Packet{
			FixedHeader:     packets.FixedHeader{Type: packets.Connect},
			ProtocolVersion: 4,
			Connect: packets.ConnectParams{
				ProtocolName: []byte("MQTT"), Clean: true, Keepalive: 60,
				ClientIdentifier: "sensor-000123",
				UsernameFlag:     true, Username: []byte("sensor1"),
				PasswordFlag: true, Password: []byte("s3cret"),
			}}},
		{"subscribe-v311", packets.Packet{
			FixedHeader:     packets.FixedHeader{Type: packets.Subscribe, Qos: 1},
			ProtocolVersion: 4, PacketID: 7,
			Filters: packets.Subscriptions{{Filter: "sensors/+/temperature", Qos: 1}}}},
	}
}

func BenchmarkPacketEncode(b *testing.B) {
	for _, c := range codecCases() {
		b.Run(c.name, func(b *testing.B) {
			var buf bytes.Buffer
			b.ReportAllocs()
			for b.Loop() {
				buf.Reset()
				pk := c.pk // Encode sets FixedHeader.Remaining
				if err := encode(&pk, &buf); err != nil {
					b.Fatal(err)
				}
			}
			b.SetBytes(int64(buf.Len()))
		})
	}
}

func BenchmarkPacketDecode(b *testing.B) {
	for _, c := range codecCases() {
		b.Run(c.name, func(b *testing.B) {
			var wire bytes.Buffer
			pk := c.pk
			if err := encode(&pk, &wire); err != nil {
				b.Fatal(err)
			}
			raw := wire.Bytes()
			r := bytes.NewReader(nil)
			b.SetBytes(int64(len(raw)))
			b.ReportAllocs()
			for b.Loop() {
				r.Reset(raw)
				hb, _ := r.ReadByte()
				var out packets.Packet
				if err := out.FixedHeader.Decode(hb); err != nil {
					b.Fatal(err)
				}
				n, _, err := packets.DecodeLength(r)
				if err != nil {
					b.Fatal(err)
				}
				out.FixedHeader.Remaining = n
				out.ProtocolVersion = c.pk.ProtocolVersion
				// mochi copies the body out of its read buffer before decoding.
				body := make([]byte, n)
				if _, err := r.Read(body); err != nil {
					b.Fatal(err)
				}
				if err := decode(&out, body); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// TestCodecRoundTrip keeps the benchmarks honest: every case decodes to
// what was encoded.
func TestCodecRoundTrip(t *testing.T) {
	for _, c := range codecCases() {
		t.Run(c.name, func(t *testing.T) {
			var wire bytes.Buffer
			pk := c.pk
			if err := encode(&pk, &wire); err != nil {
				t.Fatal(err)
			}
			r := bytes.NewReader(wire.Bytes())
			hb, _ := r.ReadByte()
			var out packets.Packet
			if err := out.FixedHeader.Decode(hb); err != nil {
				t.Fatal(err)
			}
			n, _, err := packets.DecodeLength(r)
			if err != nil {
				t.Fatal(err)
			}
			if n != r.Len() {
				t.Fatalf("remaining length %d, %d bytes left", n, r.Len())
			}
			out.ProtocolVersion = c.pk.ProtocolVersion
			if err := decode(&out, wire.Bytes()[wire.Len()-n:]); err != nil {
				t.Fatal(err)
			}
			if out.FixedHeader.Type != c.pk.FixedHeader.Type || out.PacketID != c.pk.PacketID ||
				out.TopicName != c.pk.TopicName || !bytes.Equal(out.Payload, c.pk.Payload) {
				t.Fatalf("decoded %+v, want %+v", out, c.pk)
			}
			if c.pk.Connect.ClientIdentifier != out.Connect.ClientIdentifier {
				t.Fatalf("client id %q, want %q", out.Connect.ClientIdentifier, c.pk.Connect.ClientIdentifier)
			}
			if len(c.pk.Filters) != len(out.Filters) || (len(out.Filters) > 0 && out.Filters[0].Filter != c.pk.Filters[0].Filter) {
				t.Fatalf("filters %+v, want %+v", out.Filters, c.pk.Filters)
			}
		})
	}
}
