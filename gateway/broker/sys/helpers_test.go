package sys

import (
	"strings"
	"sync"
	"testing"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/edgegate/edgegate/gateway/broker/internal/mqtttest"
)

// sysMessage is one message seen by the inline $SYS subscription.
type sysMessage struct {
	topic   string
	payload string
	retain  bool
	qos     byte
}

// collector gathers messages of an inline subscription.
type collector struct {
	ch chan sysMessage
}

// subscribe adds an inline subscription to filter.
func subscribe(t *testing.T, srv *mqtt.Server, filter string) *collector {
	t.Helper()
	c := &collector{ch: make(chan sysMessage, 4096)}
	err := srv.Subscribe(filter, 1, func(_ *mqtt.Client, _ packets.Subscription, pk packets.Packet) {
		c.ch <- sysMessage{pk.TopicName, string(pk.Payload), pk.FixedHeader.Retain, pk.FixedHeader.Qos}
	})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// drain returns what has arrived so far, without waiting.
func (c *collector) drain() []sysMessage {
	var out []sysMessage
	for {
		select {
		case m := <-c.ch:
			out = append(out, m)
		default:
			return out
		}
	}
}

// next waits for the next message whose topic ends with suffix, skipping
// others.
func (c *collector) next(t *testing.T, suffix string) sysMessage {
	t.Helper()
	deadline := time.After(mqtttest.WaitLimit)
	for {
		select {
		case m := <-c.ch:
			if strings.HasSuffix(m.topic, suffix) {
				return m
			}
		case <-deadline:
			t.Fatalf("no message on *%s within %s", suffix, mqtttest.WaitLimit)
		}
	}
}

// all waits until a message has arrived for each suffix, in any order,
// skipping others.
func (c *collector) all(t *testing.T, suffixes ...string) {
	t.Helper()
	missing := map[string]bool{}
	for _, s := range suffixes {
		missing[s] = true
	}
	deadline := time.After(mqtttest.WaitLimit)
	for len(missing) > 0 {
		select {
		case m := <-c.ch:
			for s := range missing {
				if strings.HasSuffix(m.topic, s) {
					delete(missing, s)
				}
			}
		case <-deadline:
			t.Fatalf("no message on %v within %s", missing, mqtttest.WaitLimit)
		}
	}
}

// probe is a hook added after the hook under test: when it sees an event,
// the hook under test has seen it too, so a test can wait for the probe
// instead of sleeping.
type probe struct {
	mqtt.HookBase
	mu         sync.Mutex
	read, sent int
	changed    mqtttest.Signal
}

func newProbe() *probe { return &probe{changed: mqtttest.NewSignal()} }

func (p *probe) ID() string { return "test-probe" }

func (p *probe) Provides(b byte) bool { return b == mqtt.OnPacketRead || b == mqtt.OnPacketSent }

func (p *probe) OnPacketRead(_ *mqtt.Client, pk packets.Packet) (packets.Packet, error) {
	p.bump(&p.read)
	return pk, nil
}

func (p *probe) OnPacketSent(*mqtt.Client, packets.Packet, []byte) { p.bump(&p.sent) }

func (p *probe) bump(n *int) {
	p.mu.Lock()
	*n++
	p.mu.Unlock()
	p.changed.Notify()
}

// waitFor waits until the probe has seen read packets read and sent sent.
func (p *probe) waitFor(t *testing.T, read, sent int) {
	t.Helper()
	var r, s int
	ok := p.changed.Wait(func() bool {
		p.mu.Lock()
		defer p.mu.Unlock()
		r, s = p.read, p.sent
		return r >= read && s >= sent
	})
	if !ok {
		t.Fatalf("probe saw %d read, %d sent; want %d, %d", r, s, read, sent)
	}
}
