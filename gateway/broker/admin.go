package broker

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"iter"
	"sort"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
)

// Clients returns every session, sorted by client id.
func (b *Broker) Clients() []ClientInfo {
	all := b.server.Clients.GetAll()
	out := make([]ClientInfo, 0, len(all))
	for _, cl := range all {
		if cl.Net.Inline {
			continue
		}
		out = append(out, b.clientInfo(cl))
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ClientID < out[j].ClientID })
	return out
}

// Client returns one session.
func (b *Broker) Client(id string) (ClientInfo, bool) {
	cl, ok := b.server.Clients.Get(id)
	if !ok || cl.Net.Inline {
		return ClientInfo{}, false
	}
	return b.clientInfo(cl), true
}

func (b *Broker) clientInfo(cl *mqtt.Client) ClientInfo {
	info := ClientInfo{
		ClientID:      cl.ID,
		Username:      string(cl.Properties.Username),
		Address:       cl.Net.Remote,
		Listener:      cl.Net.Listener,
		Protocol:      cl.Properties.ProtocolVersion,
		Connected:     !cl.Closed(),
		CleanSession:  cl.Properties.Clean,
		Keepalive:     cl.State.Keepalive,
		Subscriptions: cl.State.Subscriptions.Len(),
		Inflight:      cl.State.Inflight.Len(),
	}
	if t, ok := b.conns.connectedAt.Load(cl.ID); ok {
		info.ConnectedAt = t.(time.Time)
	}
	if st, ok := cl.Net.Conn.(interface{ ConnectionState() tls.ConnectionState }); ok {
		if cs := st.ConnectionState(); len(cs.VerifiedChains) > 0 {
			info.TLSIdentity = cs.VerifiedChains[0][0].Subject.String()
		}
	}
	return info
}

// Kick disconnects a client. Its persistent session, if any, stays.
func (b *Broker) Kick(id string) error {
	cl, ok := b.server.Clients.Get(id)
	if !ok || cl.Net.Inline {
		return ErrClientNotFound
	}
	// DisconnectClient returns the reason code it disconnected with.
	if err := b.server.DisconnectClient(cl, packets.ErrAdministrativeAction); err != nil && !errors.Is(err, packets.ErrAdministrativeAction) {
		return err
	}
	return nil
}

// DisconnectRefused disconnects every client whose TLS client certificate
// check now refuses (revoked or expired since it connected), logs each and
// returns how many. A client without a certificate is left alone.
func (b *Broker) DisconnectRefused(check func(chain []*x509.Certificate) error) int {
	n := 0
	for cl, chain := range b.clientChains() {
		err := check(chain)
		if err == nil {
			continue
		}
		b.log.Warn("disconnecting a client whose certificate is no longer accepted",
			"client", cl.ID, "listener", cl.Net.Listener, "subject", chain[0].Subject.String(),
			"serial", chain[0].SerialNumber.Text(16), "reason", err)
		_ = b.server.DisconnectClient(cl, packets.ErrNotAuthorized)
		b.sys.AddCertificateDisconnects(1)
		n++
	}
	return n
}

// CountClientChains returns how many connected clients have a TLS client
// certificate chain that match accepts.
func (b *Broker) CountClientChains(match func(chain []*x509.Certificate) bool) int {
	n := 0
	for _, chain := range b.clientChains() {
		if match(chain) {
			n++
		}
	}
	return n
}

// clientChains yields each connected client with a TLS client certificate
// and its chain: the verified one (leaf first), else what the client sent.
func (b *Broker) clientChains() iter.Seq2[*mqtt.Client, []*x509.Certificate] {
	return func(yield func(*mqtt.Client, []*x509.Certificate) bool) {
		for _, cl := range b.server.Clients.GetAll() {
			if cl.Net.Inline || cl.Closed() {
				continue
			}
			st, ok := cl.Net.Conn.(interface{ ConnectionState() tls.ConnectionState })
			if !ok {
				continue
			}
			cs := st.ConnectionState()
			chain := cs.PeerCertificates
			if len(cs.VerifiedChains) > 0 {
				chain = cs.VerifiedChains[0]
			}
			if len(chain) > 0 && !yield(cl, chain) {
				return
			}
		}
	}
}

// Subscriptions lists the subscriptions of one client, or of every client
// when clientID is empty.
func (b *Broker) Subscriptions(clientID string) []Subscription {
	var out []Subscription
	for _, cl := range b.server.Clients.GetAll() {
		if cl.Net.Inline || (clientID != "" && cl.ID != clientID) {
			continue
		}
		for filter, sub := range cl.State.Subscriptions.GetAll() {
			out = append(out, Subscription{ClientID: cl.ID, Filter: filter, QoS: sub.Qos})
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].ClientID != out[j].ClientID {
			return out[i].ClientID < out[j].ClientID
		}
		return out[i].Filter < out[j].Filter
	})
	return out
}

// Retained lists the retained messages, sorted by topic.
func (b *Broker) Retained() []RetainedMessage {
	all := b.server.Topics.Retained.GetAll()
	out := make([]RetainedMessage, 0, len(all))
	for topic, pk := range all {
		out = append(out, RetainedMessage{
			Topic: topic, Payload: pk.Payload, QoS: pk.FixedHeader.Qos, Created: time.Unix(pk.Created, 0).UTC(),
		})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Topic < out[j].Topic })
	return out
}

// DeleteRetained removes the retained message of a topic, as a client
// would by publishing an empty retained message, so the store follows.
func (b *Broker) DeleteRetained(topic string) error {
	if _, ok := b.server.Topics.Retained.Get(topic); !ok {
		return ErrRetainedNotFound
	}
	return b.server.Publish(topic, nil, true, 0)
}

// Publish publishes a message on behalf of the gateway.
func (b *Broker) Publish(m Message) error {
	b.log.Debug("gateway publish", "topic", m.Topic, "from", m.From, "qos", m.QoS, "retain", m.Retain, "bytes", len(m.Payload))
	return b.server.Publish(m.Topic, m.Payload, m.Retain, m.QoS)
}
