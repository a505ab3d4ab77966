package broker

import (
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
)

// ClientEvent says that a client connected or disconnected.
type ClientEvent struct {
	Event    string    `json:"event"` // "connected" or "disconnected"
	ClientID string    `json:"clientid"`
	Username string    `json:"username,omitempty"`
	Address  string    `json:"address,omitempty"`
	Listener string    `json:"listener,omitempty"`
	Time     time.Time `json:"time"`
}

// WatchedMessage is a message seen by WatchMessages.
type WatchedMessage struct {
	Topic   string    `json:"topic"`
	Payload []byte    `json:"payload"`
	QoS     byte      `json:"qos"`
	Retain  bool      `json:"retain"`
	From    string    `json:"from"`
	Time    time.Time `json:"time"`
}

// clientWatchers calls the registered functions on every connect and
// disconnect.
type clientWatchers struct {
	mu   sync.RWMutex
	next int
	fns  map[int]func(ClientEvent)
}

func (w *clientWatchers) add(fn func(ClientEvent)) (remove func()) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.fns == nil {
		w.fns = map[int]func(ClientEvent){}
	}
	id := w.next
	w.next++
	w.fns[id] = fn
	return func() {
		w.mu.Lock()
		defer w.mu.Unlock()
		delete(w.fns, id)
	}
}

func (w *clientWatchers) notify(kind string, cl *mqtt.Client) {
	w.mu.RLock()
	defer w.mu.RUnlock()
	if len(w.fns) == 0 {
		return
	}
	ev := ClientEvent{
		Event: kind, ClientID: cl.ID, Username: string(cl.Properties.Username),
		Address: cl.Net.Remote, Listener: cl.Net.Listener, Time: time.Now().UTC(),
	}
	for _, fn := range w.fns {
		fn(ev)
	}
}

// WatchClients calls fn on every client connect and disconnect until
// stop is called. fn runs on the connection's goroutine: it must not block.
func (b *Broker) WatchClients(fn func(ClientEvent)) (stop func()) {
	return b.clientWatchers.add(fn)
}

// watchIDs numbers inline subscriptions so each can be removed alone.
var watchIDs atomic.Int64

// WatchMessages calls fn with every message published on a topic matching
// filter, retained ones first, until stop is called. It sees every topic,
// whatever the ACL says: it is for the administrator. fn runs on the
// publisher's goroutine: it must not block.
func (b *Broker) WatchMessages(filter string, fn func(WatchedMessage)) (stop func(), err error) {
	id := int(watchIDs.Add(1))
	handler := func(_ *mqtt.Client, _ packets.Subscription, pk packets.Packet) {
		fn(WatchedMessage{
			Topic: pk.TopicName, Payload: pk.Payload, QoS: pk.FixedHeader.Qos,
			Retain: pk.FixedHeader.Retain, From: pk.Origin, Time: time.Now().UTC(),
		})
	}
	if err := b.server.Subscribe(filter, id, handler); err != nil {
		return nil, fmt.Errorf("watch %q: %w", filter, err)
	}
	var once sync.Once
	return func() {
		once.Do(func() { _ = b.server.Unsubscribe(filter, id) })
	}, nil
}
