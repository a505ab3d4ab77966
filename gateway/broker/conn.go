package broker

import (
	"errors"
	"sync"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
)

// connHook enforces max_clients per listener, remembers when each client
// connected, and resends a resumed session's queue in order (resend.go).
type connHook struct {
	mqtt.HookBase
	broker      *Broker
	connectedAt sync.Map // client id → time.Time
	held        sync.Map // *mqtt.Client → []packets.Packet, between session establish and established
	order       sync.Map // client id → *queueOrder
}

func (h *connHook) ID() string { return "edgegate-connections" }

func (h *connHook) Provides(b byte) bool {
	switch b {
	case mqtt.OnConnect, mqtt.OnSessionEstablish, mqtt.OnSessionEstablished, mqtt.OnDisconnect,
		mqtt.OnQosPublish, mqtt.OnQosComplete, mqtt.OnQosDropped, mqtt.OnClientExpired:
		return true
	}
	return false
}

// errListenerFull is returned to mochi for a CONNECT refused by max_clients.
var errListenerFull = errors.New("listener at max_clients")

// OnConnect refuses the inline client's id, and a CONNECT beyond its
// listener's max_clients with a clean CONNACK: "server unavailable" for
// MQTT 3, "quota exceeded" for MQTT 5.
func (h *connHook) OnConnect(cl *mqtt.Client, _ packets.Packet) error {
	if cl.ID == mqtt.InlineClientId {
		// The id is the broker's own inline client; taking it over would
		// cut the broker's publishing.
		_ = h.broker.server.SendConnack(cl, packets.ErrClientIdentifierNotValid, false, nil)
		return packets.ErrClientIdentifierNotValid
	}
	v, ok := h.broker.live.Load(cl.Net.Listener)
	if !ok {
		return nil
	}
	l := v.(*listener)
	if l.active.Load() <= int64(l.cfg.MaxClients) {
		return nil
	}
	h.broker.log.Warn("connection refused: listener full", "listener", l.name, "max_clients", l.cfg.MaxClients, "remote", cl.Net.Remote)
	code := packets.ErrQuotaExceeded
	if cl.Properties.ProtocolVersion < 5 {
		code = packets.ErrServerUnavailable
	}
	_ = h.broker.server.SendConnack(cl, code, false, nil)
	return errListenerFull
}

// OnSessionEstablish runs after authentication and before mochi inherits
// an existing session.
func (h *connHook) OnSessionEstablish(cl *mqtt.Client, pk packets.Packet) {
	if held := h.holdQueued(cl, pk); len(held) > 0 {
		h.held.Store(cl, held)
	}
}

// OnSessionEstablished runs once the CONNACK is sent.
func (h *connHook) OnSessionEstablished(cl *mqtt.Client, _ packets.Packet) {
	h.connectedAt.Store(cl.ID, time.Now().UTC())
	h.broker.clientWatchers.notify("connected", cl)
	if held, ok := h.held.LoadAndDelete(cl); ok {
		if err := resendHeld(cl, held.([]packets.Packet)); err != nil {
			h.broker.log.Debug("resend queued messages", "client", cl.ID, "error", err)
		}
	}
}

func (h *connHook) OnDisconnect(cl *mqtt.Client, _ error, expire bool) {
	h.broker.clientWatchers.notify("disconnected", cl)
	if expire && !cl.IsTakenOver() {
		h.connectedAt.Delete(cl.ID)
		h.order.Delete(cl.ID)
	}
}

func (h *connHook) OnClientExpired(cl *mqtt.Client) {
	h.connectedAt.Delete(cl.ID)
	h.order.Delete(cl.ID)
}

func (h *connHook) OnQosPublish(cl *mqtt.Client, pk packets.Packet, _ int64, _ int) {
	h.numberQueued(cl, pk)
}

func (h *connHook) OnQosComplete(cl *mqtt.Client, pk packets.Packet) { h.forgetQueued(cl, pk) }

func (h *connHook) OnQosDropped(cl *mqtt.Client, pk packets.Packet) { h.forgetQueued(cl, pk) }
