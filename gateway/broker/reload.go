package broker

import (
	"crypto/tls"
	"errors"
	"fmt"
	"reflect"
	"sort"

	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/edgegate/edgegate/gateway/config"
)

// ApplyListeners brings the running listeners to next: a listener whose
// settings changed is closed (disconnecting its clients) and bound again,
// removed ones are closed, new ones started; the others, and their clients,
// are untouched.
func (b *Broker) ApplyListeners(next map[string]config.Listener, tlsConfigs TLSConfigs) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	var errs []error
	for _, name := range b.order {
		l := b.listeners[name]
		want, keep := next[name]
		if keep && !want.Disabled && reflect.DeepEqual(want, l.cfg) {
			continue
		}
		b.stopListener(l)
	}
	names := make([]string, 0, len(next))
	for name := range next {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		lc := next[name]
		if lc.Disabled {
			continue
		}
		if _, running := b.listeners[name]; running {
			continue
		}
		if err := b.startListener(name, lc, tlsConfigs); err != nil {
			errs = append(errs, fmt.Errorf("listener %q: %w", name, err))
		}
	}
	b.order = b.order[:0]
	for name := range b.listeners {
		b.order = append(b.order, name)
	}
	sort.Strings(b.order)
	return errors.Join(errs...)
}

func (b *Broker) stopListener(l *listener) {
	l.Close(func(id string) {
		for _, cl := range b.server.Clients.GetByListener(id) {
			_ = b.server.DisconnectClient(cl, packets.ErrServerShuttingDown)
		}
	})
	b.server.Listeners.Delete(l.name)
	delete(b.listeners, l.name)
	b.live.Delete(l.name)
	b.log.Info("listener stopped", "listener", l.name)
}

func (b *Broker) startListener(name string, lc config.Listener, tlsConfigs TLSConfigs) error {
	var tlsConfig *tls.Config
	if lc.IsTLS() {
		var err error
		if tlsConfig, err = tlsConfigs.ListenerConfig(name, lc); err != nil {
			return err
		}
	}
	l := newListener(name, lc, tlsConfig, nil)
	if err := b.server.AddListener(l); err != nil {
		return err
	}
	b.listeners[name] = l
	b.live.Store(name, l)
	b.server.Listeners.Serve(name, b.server.EstablishConnection)
	b.log.Info("listener started", "listener", name, "address", l.Address())
	return nil
}
