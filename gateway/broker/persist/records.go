package persist

import (
	"bytes"
	"encoding/binary"
	"sync/atomic"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/hooks/storage"
	"github.com/mochi-mqtt/server/v2/packets"
)

// Buckets. Values are mochi's storage records (JSON through their
// MarshalBinary), so what mochi's readStore loads is what its own storage
// hooks would have returned.
var (
	bucketClients       = []byte("mqtt_clients")       // client ID → storage.Client
	bucketSubscriptions = []byte("mqtt_subscriptions") // client ID 0x00 filter → storage.Subscription
	bucketInflight      = []byte("mqtt_inflight")      // client ID 0x00 packet ID (uint16 BE) → storage.Message
	bucketRetained      = []byte("mqtt_retained")      // topic → storage.Message
	bucketSys           = []byte("mqtt_sys")           // "info" → storage.SystemInfo
	bucketWAL           = []byte("mqtt_wal")           // sequence (uint64 BE) → storage.Message

	allBuckets = [][]byte{bucketClients, bucketSubscriptions, bucketInflight, bucketRetained, bucketSys, bucketWAL}

	keySysInfo = []byte("info")
)

// clientPrefix is the key prefix of everything stored for one client. MQTT
// strings cannot contain U+0000 and mochi's decoder rejects them, so a
// client ID never contains the separator and the prefix of one client is
// never the prefix of another's.
func clientPrefix(clientID string) []byte {
	k := make([]byte, 0, len(clientID)+1+16)
	k = append(k, clientID...)
	return append(k, 0)
}

func subscriptionKey(clientID, filter string) []byte {
	return append(clientPrefix(clientID), filter...)
}

func inflightKey(clientID string, packetID uint16) []byte {
	return binary.BigEndian.AppendUint16(clientPrefix(clientID), packetID)
}

// splitInflightKey returns the client ID and packet ID of an inflight key.
func splitInflightKey(k []byte) (clientID string, packetID uint16, ok bool) {
	if len(k) < 3 || k[len(k)-3] != 0 {
		return "", 0, false
	}
	return string(k[:len(k)-3]), binary.BigEndian.Uint16(k[len(k)-2:]), true
}

// splitSubscriptionKey returns the client ID of a subscription key.
func splitSubscriptionKey(k []byte) (clientID string, ok bool) {
	i := bytes.IndexByte(k, 0)
	if i < 0 {
		return "", false
	}
	return string(k[:i]), true
}

func walKey(seq uint64) []byte {
	return binary.BigEndian.AppendUint64(nil, seq)
}

// survivesDisconnect reports whether cl's session outlives its connection,
// with the rule mochi applies in attachClient and loadClients.
func survivesDisconnect(cl *mqtt.Client) bool {
	if cl.Properties.ProtocolVersion == 5 {
		return cl.Properties.Props.SessionExpiryInterval > 0
	}
	return !cl.Properties.Clean
}

func clientRecord(cl *mqtt.Client) storage.Client {
	props := cl.Properties.Props.Copy(false)
	will := cl.Properties.Will
	will.Flag = atomic.LoadUint32(&cl.Properties.Will.Flag) // mochi clears it concurrently when it sends a delayed will
	return storage.Client{
		ID:              cl.ID,
		T:               storage.ClientKey,
		Remote:          cl.Net.Remote,
		Listener:        cl.Net.Listener,
		Username:        cl.Properties.Username,
		Clean:           cl.Properties.Clean,
		ProtocolVersion: cl.Properties.ProtocolVersion,
		Properties: storage.ClientProperties{
			SessionExpiryInterval:     props.SessionExpiryInterval,
			SessionExpiryIntervalFlag: props.SessionExpiryIntervalFlag, // mochi's own hooks drop it, and then a v5 session never expires after a restart
			AuthenticationMethod:      props.AuthenticationMethod,
			AuthenticationData:        props.AuthenticationData,
			RequestProblemInfo:        props.RequestProblemInfo,
			RequestProblemInfoFlag:    props.RequestProblemInfoFlag,
			RequestResponseInfo:       props.RequestResponseInfo,
			ReceiveMaximum:            props.ReceiveMaximum,
			TopicAliasMaximum:         props.TopicAliasMaximum,
			User:                      props.User,
			MaximumPacketSize:         props.MaximumPacketSize,
		},
		Will: storage.ClientWill(will),
	}
}

func subscriptionRecord(clientID string, sub packets.Subscription) storage.Subscription {
	return storage.Subscription{
		T:                 storage.SubscriptionKey,
		Client:            clientID,
		Filter:            sub.Filter,
		Identifier:        sub.Identifier,
		RetainHandling:    sub.RetainHandling,
		Qos:               sub.Qos,
		RetainAsPublished: sub.RetainAsPublished,
		NoLocal:           sub.NoLocal,
	}
}

// messageRecord converts a publish (or a QoS flow packet) to its stored form.
// Unlike mochi's bolt hook it keeps the packet ID, without which all of a
// client's inflight messages load under packet ID 0.
func messageRecord(kind, clientID string, pk packets.Packet, sent int64) storage.Message {
	return storage.Message{
		T:           kind,
		Client:      clientID,
		Origin:      pk.Origin,
		TopicName:   pk.TopicName,
		Payload:     pk.Payload,
		FixedHeader: pk.FixedHeader,
		PacketID:    pk.PacketID,
		Created:     pk.Created,
		Sent:        sent,
		Properties: storage.MessageProperties{
			PayloadFormat:          pk.Properties.PayloadFormat,
			PayloadFormatFlag:      pk.Properties.PayloadFormatFlag,
			MessageExpiryInterval:  pk.Properties.MessageExpiryInterval,
			ContentType:            pk.Properties.ContentType,
			ResponseTopic:          pk.Properties.ResponseTopic,
			CorrelationData:        pk.Properties.CorrelationData,
			SubscriptionIdentifier: pk.Properties.SubscriptionIdentifier,
			TopicAlias:             pk.Properties.TopicAlias,
			User:                   pk.Properties.User,
		},
	}
}

// storedInflight reports whether an inflight packet is worth storing: an
// outbound PUBLISH waiting for its acknowledgement, or the PUBREC of an
// inbound QoS 2 publish (which keeps a resent PUBLISH from being delivered
// twice). mochi also puts the PUBACK of an inbound QoS 1 publish into the
// map, and removes it a moment later.
func storedInflight(pk packets.Packet) bool {
	return pk.FixedHeader.Type == packets.Publish || pk.FixedHeader.Type == packets.Pubrec
}
