package trace

import (
	"strconv"
	"unicode/utf8"

	"github.com/mochi-mqtt/server/v2/packets"
)

// typeNames are the upper-case names of MQTT packet types 1-15.
var typeNames = [16]string{
	packets.Connect: "CONNECT", packets.Connack: "CONNACK", packets.Publish: "PUBLISH",
	packets.Puback: "PUBACK", packets.Pubrec: "PUBREC", packets.Pubrel: "PUBREL",
	packets.Pubcomp: "PUBCOMP", packets.Subscribe: "SUBSCRIBE", packets.Suback: "SUBACK",
	packets.Unsubscribe: "UNSUBSCRIBE", packets.Unsuback: "UNSUBACK", packets.Pingreq: "PINGREQ",
	packets.Pingresp: "PINGRESP", packets.Disconnect: "DISCONNECT", packets.Auth: "AUTH",
}

// previewBytes is the most payload a line shows.
const previewBytes = 64

// appendStarted appends the rest of a trace's first line.
func appendStarted(b []byte, kind Kind, target string) []byte {
	b = append(b, " trace started: "...)
	b = append(b, kind...)
	b = append(b, ' ')
	b = strconv.AppendQuote(b, target)
	return append(b, '\n')
}

// appendPacket appends the packet type and fields of a client-trace line
// (without the newline). See the package comment for the format.
func appendPacket(b []byte, pk packets.Packet) []byte {
	t := pk.FixedHeader.Type & 0x0f
	if t == packets.Reserved {
		b = append(b, "RESERVED"...)
	}
	b = append(b, typeNames[t]...)
	v5 := pk.ProtocolVersion == 5
	switch t {
	case packets.Connect:
		b = appendInt(b, " proto=", int(pk.ProtocolVersion))
		b = appendBool(b, " clean=", pk.Connect.Clean)
		b = appendInt(b, " keepalive=", int(pk.Connect.Keepalive))
		if pk.Connect.UsernameFlag {
			b = append(b, " username="...)
			b = strconv.AppendQuote(b, string(pk.Connect.Username))
		}
		b = appendBool(b, " will=", pk.Connect.WillFlag)
	case packets.Connack:
		b = appendInt(b, " code=", int(pk.ReasonCode))
		b = appendBool(b, " session=", pk.SessionPresent)
	case packets.Publish:
		b = appendInt(b, " id=", int(pk.PacketID))
		b = appendMessage(b, pk, true)
	case packets.Puback, packets.Pubrec, packets.Pubrel, packets.Pubcomp:
		b = appendInt(b, " id=", int(pk.PacketID))
		if v5 {
			b = appendInt(b, " code=", int(pk.ReasonCode))
		}
	case packets.Subscribe, packets.Unsubscribe:
		b = appendInt(b, " id=", int(pk.PacketID))
		for _, f := range pk.Filters {
			b = append(b, " filter="...)
			b = strconv.AppendQuote(b, f.Filter)
			if t == packets.Subscribe {
				b = appendInt(b, " qos=", int(f.Qos))
			}
		}
	case packets.Suback, packets.Unsuback:
		b = appendInt(b, " id=", int(pk.PacketID))
		if len(pk.ReasonCodes) > 0 && (v5 || t == packets.Suback) {
			b = append(b, " codes="...)
			for i, c := range pk.ReasonCodes {
				if i > 0 {
					b = append(b, ',')
				}
				b = strconv.AppendInt(b, int64(c), 10)
			}
		}
	case packets.Disconnect, packets.Auth:
		if v5 {
			b = appendInt(b, " code=", int(pk.ReasonCode))
		}
	}
	return b
}

// appendMessage appends the fields of a message: topic, qos, retain, dup
// (client traces only), alias (when used), size and the payload preview.
func appendMessage(b []byte, pk packets.Packet, withDup bool) []byte {
	b = append(b, " topic="...)
	b = strconv.AppendQuote(b, pk.TopicName)
	b = appendInt(b, " qos=", int(pk.FixedHeader.Qos))
	b = appendBool(b, " retain=", pk.FixedHeader.Retain)
	if withDup {
		b = appendBool(b, " dup=", pk.FixedHeader.Dup)
	}
	if pk.Properties.TopicAliasFlag && pk.Properties.TopicAlias > 0 {
		b = appendInt(b, " alias=", int(pk.Properties.TopicAlias))
	}
	b = appendInt(b, " size=", len(pk.Payload))
	b = append(b, " payload="...)
	return appendPreview(b, pk.Payload)
}

// appendPreview appends the quoted first previewBytes of p, cut at a rune
// boundary, and "..." when p is longer.
func appendPreview(b, p []byte) []byte {
	if len(p) <= previewBytes {
		return strconv.AppendQuote(b, string(p))
	}
	n := previewBytes
	for n > previewBytes-utf8.UTFMax && !utf8.RuneStart(p[n]) {
		n--
	}
	b = strconv.AppendQuote(b, string(p[:n]))
	return append(b, "..."...)
}

func appendInt(b []byte, key string, v int) []byte {
	return strconv.AppendInt(append(b, key...), int64(v), 10)
}

func appendBool(b []byte, key string, v bool) []byte {
	return strconv.AppendBool(append(b, key...), v)
}
