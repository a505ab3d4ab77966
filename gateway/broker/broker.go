// Package broker runs the MQTT broker: mochi-mqtt with edgegate's own
// listeners (tcp, tls, ws, wss; socket activation; per-listener
// max_clients), its persistence on the process's bbolt store, $SYS topics,
// traces, and the queries the admin API and UI make. It is the only package
// outside gateway/auth that imports mochi.
package broker

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"math"
	"net"
	"sort"
	"strings"
	"sync"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
	bolt "go.etcd.io/bbolt"

	"github.com/edgegate/edgegate/gateway/broker/persist"
	"github.com/edgegate/edgegate/gateway/broker/sys"
	"github.com/edgegate/edgegate/gateway/broker/trace"
	"github.com/edgegate/edgegate/gateway/config"
)

// TLSConfigs builds the *tls.Config of a TLS listener; certs/tlsconf
// provides it so certificate rotation never restarts a listener.
type TLSConfigs interface {
	ListenerConfig(name string, l config.Listener) (*tls.Config, error)
}

// Options are a broker's dependencies.
type Options struct {
	Config config.Config
	DB     *bolt.DB
	// TLS builds the configs of tls and wss listeners.
	TLS TLSConfigs
	// Auth authenticates and authorizes clients (gateway/auth).
	Auth mqtt.Hook
	// Activated are listeners handed over by systemd, by listener name.
	Activated map[string]net.Listener
	// Certificates reports the certificates in use, for $SYS alarms and
	// metrics (see sys.Options.Certificates).
	Certificates func() []sys.CertificateExpiry
	// TraceDir is where trace files are written.
	TraceDir string
	Version  string
	Logger   *slog.Logger
}

// Broker is a running MQTT broker.
type Broker struct {
	server    *mqtt.Server
	cfg       config.Config
	mu        sync.RWMutex // guards listeners and order against ApplyListeners
	listeners map[string]*listener
	order     []string // listener names, sorted
	conns     *connHook
	persist   *persist.Hook
	sys       *sys.Hook
	tracer    *trace.Tracer
	log       *slog.Logger

	clientWatchers clientWatchers

	// live mirrors listeners for connHook.OnConnect, which must not take
	// mu: ApplyListeners holds mu while a stopping listener waits for its
	// connection goroutines, one of which may be in OnConnect.
	live sync.Map // listener name → *listener

	wg     sync.WaitGroup // the $SYS loop
	cancel context.CancelFunc
}

// New builds a broker; nothing listens until Start.
func New(o Options) (*Broker, error) {
	cfg := o.Config
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	caps := mqtt.NewDefaultServerCapabilities()
	caps.MaximumPacketSize = cfg.MQTT.MaxPacketSize
	caps.ReceiveMaximum = cfg.MQTT.ReceiveMaximum
	caps.MaximumInflight = uint16(min(cfg.MQTT.MaxQueuedMessages, math.MaxUint16))
	caps.MaximumSessionExpiryInterval = uint32(min(cfg.MQTT.MaxSessionExpiry.Std()/time.Second, math.MaxUint32))
	caps.MaximumClientWritesPending = int32(cfg.MQTT.ClientWriteQueue)
	caps.RetainAvailable = boolByte(cfg.MQTT.RetainAvailable)
	server := mqtt.New(&mqtt.Options{
		Capabilities: caps,
		Logger:       log.With("component", "mqtt"),
		InlineClient: true,
		// edgegate publishes EMQ-style $SYS topics itself (package sys);
		// mochi's own $SYS/broker/... set is published once at start and
		// removed in Start, and its timer is pushed out of the way.
		SysTopicResendInterval: math.MaxInt32,
	})
	b := &Broker{server: server, cfg: cfg, listeners: map[string]*listener{}, log: log}

	for name, lc := range cfg.Listeners {
		if lc.Disabled {
			continue
		}
		var tlsConfig *tls.Config
		if lc.IsTLS() {
			if o.TLS == nil {
				return nil, fmt.Errorf("listener %q: TLS listener without a TLS source", name)
			}
			var err error
			if tlsConfig, err = o.TLS.ListenerConfig(name, lc); err != nil {
				return nil, fmt.Errorf("listener %q: %w", name, err)
			}
		}
		b.listeners[name] = newListener(name, lc, tlsConfig, o.Activated[name])
		b.live.Store(name, b.listeners[name])
		b.order = append(b.order, name)
	}
	sort.Strings(b.order)

	var err error
	b.persist, err = persist.New(persist.Options{
		DB:                o.DB,
		MaxQueuedMessages: cfg.MQTT.MaxQueuedMessages,
		MaxQueuedBytes:    cfg.SessionQueueBytes(),
		OnDrop:            func(string) { b.sys.AddDropped(1) },
		Logger:            log.With("component", "persist"),
	})
	if err != nil {
		return nil, fmt.Errorf("broker: persistence: %w", err)
	}
	b.sys = sys.New(sys.Options{
		Server:         server,
		Node:           cfg.Node,
		Version:        o.Version,
		Sysdescr:       "edgegate MQTT broker",
		Settings:       cfg.Sys,
		ListenerLimits: b.listenerLoads,
		Certificates:   o.Certificates,
		Logger:         log.With("component", "sys"),
	})
	b.tracer = trace.New(trace.Options{Dir: o.TraceDir, MaxBytes: cfg.Trace.MaxBytes, Logger: log.With("component", "trace")})

	// Order matters: counters and traces see every packet; limits refuse a
	// connection before auth does any work; persistence comes last so that
	// no later hook can reject a publish whose log entry it wrote.
	b.conns = &connHook{broker: b}
	hooks := []mqtt.Hook{b.sys, b.tracer, b.conns}
	if o.Auth != nil {
		hooks = append(hooks, o.Auth)
	}
	for _, h := range hooks {
		if err := server.AddHook(h, nil); err != nil {
			return nil, fmt.Errorf("broker: add hook %s: %w", h.ID(), err)
		}
	}
	if err := b.persist.Attach(server); err != nil {
		return nil, fmt.Errorf("broker: attach persistence: %w", err)
	}
	return b, nil
}

func boolByte(v bool) byte {
	if v {
		return 1
	}
	return 0
}

// Start binds every listener, restores persisted state, replays messages a
// crash left unfinished and starts the $SYS publisher. When it returns,
// every listener accepts connections.
func (b *Broker) Start(ctx context.Context) error {
	for _, name := range b.order {
		if err := b.server.AddListener(b.listeners[name]); err != nil {
			b.closeBound()
			return fmt.Errorf("listener %q on %s: %w", name, b.listeners[name].cfg.Bind, err)
		}
	}
	if err := b.server.Serve(); err != nil {
		return fmt.Errorf("broker: serve: %w", err)
	}
	b.dropMochiSysTopics()
	if err := b.persist.Replay(persist.Publisher(b.server)); err != nil {
		return fmt.Errorf("broker: replay unfinished publishes: %w", err)
	}
	ctx, b.cancel = context.WithCancel(ctx)
	b.wg.Add(1)
	go func() {
		defer b.wg.Done()
		if err := b.sys.Run(ctx); err != nil {
			b.log.Error("$SYS publisher stopped", "error", err)
		}
	}()
	return nil
}

// closeBound closes listeners bound before a later one failed.
func (b *Broker) closeBound() {
	for _, name := range b.order {
		if l := b.listeners[name]; l.ln != nil {
			_ = l.ln.Close()
		}
	}
}

func (b *Broker) dropMochiSysTopics() {
	for topic := range b.server.Topics.Retained.GetAll() {
		if strings.HasPrefix(topic, mqtt.SysPrefix+"/broker/") {
			// An empty retained payload removes the message and prunes the
			// topic tree node.
			b.server.Topics.RetainMessage(packets.Packet{TopicName: topic})
		}
	}
}

// Close disconnects every client, stops the listeners and flushes state.
func (b *Broker) Close() error {
	if b.cancel != nil {
		b.cancel()
	}
	b.wg.Wait()
	if err := b.server.Close(); err != nil {
		return fmt.Errorf("broker: close: %w", err)
	}
	return nil
}

// Listeners returns each listener's bound address and load.
func (b *Broker) Listeners() []ListenerStatus {
	b.mu.RLock()
	defer b.mu.RUnlock()
	out := make([]ListenerStatus, 0, len(b.order))
	for _, name := range b.order {
		l := b.listeners[name]
		st := ListenerStatus{
			Name: name, Type: l.cfg.Type, Address: l.Address(), Path: l.cfg.Path,
			Clients: int(l.active.Load()), MaxClients: l.cfg.MaxClients,
		}
		if l.cfg.TLS != nil {
			st.ClientAuth = l.cfg.TLS.ClientAuth
		}
		out = append(out, st)
	}
	return out
}

func (b *Broker) listenerLoads() map[string]sys.ListenerLoad {
	b.mu.RLock()
	defer b.mu.RUnlock()
	out := make(map[string]sys.ListenerLoad, len(b.listeners))
	for name, l := range b.listeners {
		out[name] = sys.ListenerLoad{Clients: int(l.active.Load()), MaxClients: l.cfg.MaxClients}
	}
	return out
}

// Tracer returns the broker's tracer.
func (b *Broker) Tracer() *trace.Tracer { return b.tracer }

// Stats returns the current statistics.
func (b *Broker) Stats() sys.Stats { return b.sys.Snapshot() }

// PersistErrors counts failed store writes since start.
func (b *Broker) PersistErrors() uint64 { return b.persist.Errors() }
