package broker

import (
	"errors"
	"time"
)

// ErrClientNotFound is returned when no session has the given client id.
var ErrClientNotFound = errors.New("broker: client not found")

// ErrRetainedNotFound is returned when no retained message has the topic.
var ErrRetainedNotFound = errors.New("broker: no retained message on topic")

// ClientInfo describes one session, connected or kept for a persistent client.
type ClientInfo struct {
	ClientID      string    `json:"clientid"`
	Username      string    `json:"username"`
	Address       string    `json:"address"`
	Listener      string    `json:"listener"`
	Protocol      byte      `json:"protocol"` // 3 (3.1), 4 (3.1.1) or 5
	Connected     bool      `json:"connected"`
	CleanSession  bool      `json:"clean_session"`
	ConnectedAt   time.Time `json:"connected_at"`
	Keepalive     uint16    `json:"keepalive"`
	Subscriptions int       `json:"subscriptions"`
	Inflight      int       `json:"inflight"`
	// TLSIdentity is the subject of a verified client certificate.
	TLSIdentity string `json:"tls_identity,omitempty"`
}

// Subscription is one client's subscription.
type Subscription struct {
	ClientID string `json:"clientid"`
	Filter   string `json:"filter"`
	QoS      byte   `json:"qos"`
}

// RetainedMessage is a message retained on a topic.
type RetainedMessage struct {
	Topic   string    `json:"topic"`
	Payload []byte    `json:"payload"`
	QoS     byte      `json:"qos"`
	Created time.Time `json:"created"`
}

// Message is a publish made by the gateway itself (HTTP publish, the UI).
type Message struct {
	Topic   string
	Payload []byte
	QoS     byte
	Retain  bool
	// From is recorded as the publisher's client id in traces and $SYS.
	From string
}

// ListenerStatus is a listener's configuration and live state.
type ListenerStatus struct {
	Name       string `json:"name"`
	Type       string `json:"type"`
	Address    string `json:"address"` // the bound address, e.g. 127.0.0.1:41883
	Path       string `json:"path,omitempty"`
	Clients    int    `json:"clients"`
	MaxClients int    `json:"max_clients"`
	ClientAuth string `json:"client_auth,omitempty"`
}

// PacketSize is the size of the MQTT 3.1.1 PUBLISH packet carrying m (no
// properties): fixed header, topic, packet id, payload. Compare it with
// mqtt.max_packet_size before publishing.
func (m Message) PacketSize() int64 {
	rest := int64(2 + len(m.Topic) + len(m.Payload))
	if m.QoS > 0 {
		rest += 2
	}
	lenBytes := int64(1)
	for n := rest; n >= 128; n /= 128 {
		lenBytes++
	}
	return 1 + lenBytes + rest
}
