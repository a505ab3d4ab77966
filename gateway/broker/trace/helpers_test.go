package trace

import (
	"sync"
	"testing"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/edgegate/edgegate/gateway/broker/internal/mqtttest"
)

// dial connects a raw client that keeps in step with p: each send first
// waits until the broker's hooks saw all earlier traffic.
func dial(t *testing.T, addr string, p *probe) *mqtttest.RawClient {
	t.Helper()
	c := mqtttest.Dial(t, addr)
	c.OnSend = func() {
		p.settle(t)
		p.expect(&p.wantRead)
	}
	c.OnRecv = func() { p.expect(&p.wantSent) }
	return c
}

// probe is a hook added after the hook under test: when it sees an event,
// the hook under test has seen it too. Raw clients tell it what they sent
// and received, and wait for it to catch up before sending more, so the
// order of trace lines is the order of the test's script.
type probe struct {
	mqtt.HookBase
	mu                 sync.Mutex
	read, sent, wills  int
	wantRead, wantSent int
	changed            mqtttest.Signal
}

func newProbe() *probe { return &probe{changed: mqtttest.NewSignal()} }

func (p *probe) ID() string { return "test-probe" }

func (p *probe) Provides(b byte) bool {
	return b == mqtt.OnPacketRead || b == mqtt.OnPacketSent || b == mqtt.OnWillSent
}

func (p *probe) OnPacketRead(_ *mqtt.Client, pk packets.Packet) (packets.Packet, error) {
	p.bump(&p.read)
	return pk, nil
}

func (p *probe) OnPacketSent(*mqtt.Client, packets.Packet, []byte) { p.bump(&p.sent) }

func (p *probe) OnWillSent(*mqtt.Client, packets.Packet) { p.bump(&p.wills) }

func (p *probe) bump(n *int) {
	p.mu.Lock()
	*n++
	p.mu.Unlock()
	p.changed.Notify()
}

func (p *probe) expect(n *int) {
	p.mu.Lock()
	*n++
	p.mu.Unlock()
}

// settle waits until the hooks have seen every packet the clients sent and
// received so far.
func (p *probe) settle(t *testing.T) {
	t.Helper()
	p.wait(t, func() bool { return p.read >= p.wantRead && p.sent >= p.wantSent })
}

// wait waits until cond, called with p.mu held, is true.
func (p *probe) wait(t *testing.T, cond func() bool) {
	t.Helper()
	var r, s, w int
	ok := p.changed.Wait(func() bool {
		p.mu.Lock()
		defer p.mu.Unlock()
		r, s, w = p.read, p.sent, p.wills
		return cond()
	})
	if !ok {
		t.Fatalf("probe stuck at %d read, %d sent, %d wills", r, s, w)
	}
}
