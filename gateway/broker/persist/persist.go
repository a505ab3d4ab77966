package persist

import (
	"encoding"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/hooks/storage"
	"github.com/mochi-mqtt/server/v2/packets"
	"github.com/mochi-mqtt/server/v2/system"
	"go.etcd.io/bbolt"
)

// HookID is the mochi hook ID of the persistence hook.
const HookID = "edgegate-persist"

// sysInfoSaveInterval limits how often the $SYS counters are written: every
// tick (one second by default) would be a commit a second, which flash
// storage does not need.
const sysInfoSaveInterval = time.Minute

// ErrStopped is returned by Replay when the hook was already stopped.
var ErrStopped = errors.New("persist: hook stopped")

// Options configure New.
type Options struct {
	// DB is the process's one database; New creates the hook's buckets
	// (names starting with "mqtt_") in it. Required.
	DB *bbolt.DB

	// MaxQueuedMessages bounds the QoS 1/2 messages kept for one client
	// (sent but not yet acknowledged, plus queued). A message that would
	// exceed it is dropped for that client. Zero or less: no bound beyond
	// mochi's Capabilities.MaximumInflight, which should be set to the same
	// value.
	MaxQueuedMessages int

	// MaxQueuedBytes bounds the payload bytes of those messages. Zero or
	// less: no bound.
	MaxQueuedBytes int64

	// OnDrop is called once for every message dropped for a client because
	// of the bounds. It runs in the publisher's goroutine and must not block.
	OnDrop func(clientID string)

	// Logger receives the hook's logs. Default: slog.Default().
	Logger *slog.Logger
}

// Hook is the mochi-mqtt storage hook. Create it with New, add it to the
// server with Attach, and call Replay after the server's Serve.
type Hook struct {
	mqtt.HookBase

	db       *bbolt.DB
	log      *slog.Logger
	maxMsgs  int
	maxBytes int64
	onDrop   func(clientID string)

	w        *writer
	errs     atomic.Uint64
	stopOnce sync.Once
	stopErr  error

	mu       sync.Mutex
	sessions map[string]*session // by client ID; see bounds.go

	walMu sync.Mutex
	wal   map[*mqtt.Client]walEntry // publishes between OnPublish and OnPublished, by connection
	// walBefore: log entries up to this sequence were left by an earlier
	// process; Replay publishes those and no others.
	walBefore uint64
	republish atomic.Pointer[func(packets.Packet)]
	attached  atomic.Bool

	sysMu    sync.Mutex
	sysLast  *storage.SystemInfo
	sysDirty bool
	sysSaved time.Time
}

// New returns a hook that stores the broker state in o.DB. It starts the
// goroutine that commits the hook's writes; Stop, which the server's Close
// calls, ends it.
func New(o Options) (*Hook, error) {
	if o.DB == nil {
		return nil, errors.New("persist: Options.DB is nil")
	}
	log := o.Logger
	if log == nil {
		log = slog.Default()
	}
	walBefore, err := prepare(o.DB)
	if err != nil {
		return nil, err
	}
	h := &Hook{
		db:        o.DB,
		log:       log,
		maxMsgs:   o.MaxQueuedMessages,
		maxBytes:  o.MaxQueuedBytes,
		onDrop:    o.OnDrop,
		sessions:  make(map[string]*session),
		wal:       make(map[*mqtt.Client]walEntry),
		walBefore: walBefore,
	}
	h.w = newWriter(o.DB, log, func(n uint64) { h.errs.Add(n) })
	return h, nil
}

// prepare creates the buckets if needed (a read-only database that has them
// is fine) and returns the last write-ahead log sequence.
func prepare(db *bbolt.DB) (walSeq uint64, err error) {
	missing := false
	err = db.View(func(tx *bbolt.Tx) error {
		for _, name := range allBuckets {
			if tx.Bucket(name) == nil {
				missing = true
				return nil
			}
		}
		walSeq = tx.Bucket(bucketWAL).Sequence()
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("persist: read buckets: %w", err)
	}
	if !missing {
		return walSeq, nil
	}
	err = db.Update(func(tx *bbolt.Tx) error {
		for _, name := range allBuckets {
			if _, err := tx.CreateBucketIfNotExists(name); err != nil {
				return fmt.Errorf("create bucket %s: %w", name, err)
			}
		}
		walSeq = tx.Bucket(bucketWAL).Sequence()
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("persist: %w", err)
	}
	return walSeq, nil
}

// Attach adds h to srv and installs the catch-all shared subscription that
// makes mochi call OnSelectSubscribers for every publish (see the package
// comment). Call it after every other hook has been added: a hook after this
// one that rejects a publish in OnPublish would leave a log entry behind.
// It also lets the hook publish again, through srv, a message whose fan-out
// mochi abandoned after the log write (when it could not send the
// acknowledgement).
func (h *Hook) Attach(srv *mqtt.Server) error {
	h.attached.Store(true)
	if err := srv.AddHook(h, nil); err != nil {
		return fmt.Errorf("persist: add hook: %w", err)
	}
	srv.Topics.Subscribe(guardClientID, packets.Subscription{Filter: guardFilter})
	publish := Publisher(srv)
	h.republish.Store(&publish)
	if caps := srv.Options.Capabilities; h.maxMsgs > 0 && int(caps.MaximumInflight) < h.maxMsgs {
		h.log.Warn("persist: Capabilities.MaximumInflight is below MaxQueuedMessages; mochi drops over it without OnDrop",
			"maximum_inflight", caps.MaximumInflight, "max_queued_messages", h.maxMsgs)
	}
	return nil
}

// Init is called by mochi's AddHook.
func (h *Hook) Init(any) error {
	if !h.attached.Load() {
		h.log.Warn("persist: hook added without Attach: queue bounds hold for shared subscriptions only, and a publish mochi abandons waits for the next Replay")
	}
	return nil
}

// ID returns the hook's ID.
func (h *Hook) ID() string { return HookID }

// Provides reports the hook events the hook handles.
func (h *Hook) Provides(b byte) bool {
	switch b {
	case mqtt.OnSessionEstablished,
		mqtt.OnDisconnect,
		mqtt.OnSubscribed,
		mqtt.OnUnsubscribed,
		mqtt.OnSelectSubscribers,
		mqtt.OnPublish,
		mqtt.OnPublished,
		mqtt.OnPublishDropped,
		mqtt.OnRetainMessage,
		mqtt.OnQosPublish,
		mqtt.OnQosComplete,
		mqtt.OnQosDropped,
		mqtt.OnWillSent,
		mqtt.OnClientExpired,
		mqtt.OnRetainedExpired,
		mqtt.OnSysInfoTick,
		mqtt.StoredClients,
		mqtt.StoredSubscriptions,
		mqtt.StoredInflightMessages,
		mqtt.StoredRetainedMessages,
		mqtt.StoredSysInfo:
		return true
	}
	return false
}

// Errors returns how many store operations failed so far: writes that were
// lost and stored records that could not be read. Each was logged at error
// level.
func (h *Hook) Errors() uint64 { return h.errs.Load() }

// Stop commits everything queued, including the latest $SYS counters, and
// ends the hook's goroutine. mochi calls it from Server.Close, after all
// clients are gone. Events that still arrive are written synchronously.
// It does not close the database.
func (h *Hook) Stop() error {
	h.stopOnce.Do(func() {
		h.saveSysInfo(true)
		if err := h.w.stop(); err != nil {
			h.stopErr = fmt.Errorf("persist: final commit: %w", err)
		}
	})
	return h.stopErr
}

// fail counts and logs a failed store operation that did not go through the
// writer (which does both itself).
func (h *Hook) fail(msg string, args ...any) {
	h.errs.Add(1)
	h.log.Error(msg, args...)
}

func (h *Hook) marshal(what string, v encoding.BinaryMarshaler) ([]byte, bool) {
	b, err := v.MarshalBinary()
	if err != nil {
		h.fail("persist: encode record", "what", what, "error", err)
		return nil, false
	}
	return b, true
}

// Session records.

func (h *Hook) putClient(cl *mqtt.Client) (op, bool) {
	v, ok := h.marshal("client", clientRecord(cl))
	return op{kind: opPut, bucket: bucketClients, key: []byte(cl.ID), value: v, what: "save session"}, ok
}

func (h *Hook) putSubscription(clientID string, sub packets.Subscription) (op, bool) {
	v, ok := h.marshal("subscription", subscriptionRecord(clientID, sub))
	return op{kind: opPut, bucket: bucketSubscriptions, key: subscriptionKey(clientID, sub.Filter), value: v, what: "save subscription"}, ok
}

func (h *Hook) putInflight(clientID string, pk packets.Packet, sent int64) (op, bool) {
	v, ok := h.marshal("inflight message", messageRecord(storage.InflightKey, clientID, pk, sent))
	return op{kind: opPut, bucket: bucketInflight, key: inflightKey(clientID, pk.PacketID), value: v, what: "save queued message"}, ok
}

func deleteInflight(clientID string, packetID uint16) op {
	return op{kind: opDelete, bucket: bucketInflight, key: inflightKey(clientID, packetID), what: "delete queued message"}
}

// deleteSession removes a session and everything stored for it.
func deleteSession(clientID string) []op {
	p := clientPrefix(clientID)
	return []op{
		{kind: opDelete, bucket: bucketClients, key: []byte(clientID), what: "delete session"},
		{kind: opDeletePrefix, bucket: bucketSubscriptions, key: p, what: "delete session subscriptions"},
		{kind: opDeletePrefix, bucket: bucketInflight, key: p, what: "delete session queue"},
	}
}

// OnSessionEstablished saves a session that outlives its connection, with
// whatever it inherited from an earlier connection, and forgets a stored one
// that the client has just replaced with a session that does not.
func (h *Hook) OnSessionEstablished(cl *mqtt.Client, _ packets.Packet) {
	if cl.Net.Inline {
		return
	}
	persistent := survivesDisconnect(cl)

	h.mu.Lock()
	s := h.sessions[cl.ID]
	if s == nil {
		s = newSession(persistent)
		h.sessions[cl.ID] = s
	}
	wasPersistent := s.persistent
	s.persistent = persistent
	s.client = cl
	gone := s.recount(cl) // mochi's map is right now; our count may be off after a takeover
	h.mu.Unlock()

	var ops []op
	switch {
	case persistent:
		if o, ok := h.putClient(cl); ok {
			ops = append(ops, o)
		}
		if !wasPersistent {
			// Inherited from a connection whose session was not stored.
			for _, sub := range cl.State.Subscriptions.GetAll() {
				if o, ok := h.putSubscription(cl.ID, sub); ok {
					ops = append(ops, o)
				}
			}
			for _, pk := range cl.State.Inflight.GetAll(false) {
				if storedInflight(pk) {
					if o, ok := h.putInflight(cl.ID, pk, pk.Created); ok {
						ops = append(ops, o)
					}
				}
			}
		}
		for _, id := range gone {
			ops = append(ops, deleteInflight(cl.ID, id))
		}
	case wasPersistent:
		ops = deleteSession(cl.ID)
	}
	h.w.enqueue(ops...)
}

// OnDisconnect forgets a session that ends with its connection. A session
// taken over by a new connection belongs to that one now.
func (h *Hook) OnDisconnect(cl *mqtt.Client, _ error, expire bool) {
	if cl.Net.Inline {
		return
	}
	h.abandonWAL(cl)
	if cl.IsTakenOver() || errors.Is(cl.StopCause(), packets.ErrSessionTakenOver) {
		return
	}

	h.mu.Lock()
	s := h.sessions[cl.ID]
	if s != nil && s.client != nil && s.client != cl {
		h.mu.Unlock() // a newer connection has the session
		return
	}
	if expire {
		delete(h.sessions, cl.ID)
		h.mu.Unlock()
		if s == nil || s.persistent {
			h.w.enqueue(deleteSession(cl.ID)...)
		}
		return
	}
	if s == nil {
		h.mu.Unlock()
		return
	}
	restored := s.client == nil // mochi reports sessions restored from the store as disconnected
	s.client = cl
	persistent := s.persistent
	h.mu.Unlock()

	if persistent && !restored {
		// A v5 DISCONNECT can change the session expiry interval.
		if o, ok := h.putClient(cl); ok {
			h.w.enqueue(o)
		}
	}
}

// OnClientExpired forgets a session mochi expired.
func (h *Hook) OnClientExpired(cl *mqtt.Client) {
	h.mu.Lock()
	if s := h.sessions[cl.ID]; s != nil && (s.client == nil || s.client == cl) {
		delete(h.sessions, cl.ID)
	}
	h.mu.Unlock()
	h.w.enqueue(deleteSession(cl.ID)...)
}

// OnWillSent saves the session with its will cleared.
func (h *Hook) OnWillSent(cl *mqtt.Client, _ packets.Packet) {
	if cl.Net.Inline || !h.persistent(cl.ID) {
		return
	}
	if o, ok := h.putClient(cl); ok {
		h.w.enqueue(o)
	}
}

func (h *Hook) persistent(clientID string) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	s := h.sessions[clientID]
	return s != nil && s.persistent
}

// OnSubscribed stores the granted subscriptions of a persistent session.
func (h *Hook) OnSubscribed(cl *mqtt.Client, pk packets.Packet, reasonCodes []byte) {
	if cl.Net.Inline || !h.persistent(cl.ID) {
		return
	}
	ops := make([]op, 0, len(pk.Filters))
	for i, sub := range pk.Filters {
		if i >= len(reasonCodes) || reasonCodes[i] >= packets.ErrUnspecifiedError.Code {
			continue // refused
		}
		sub.Qos = reasonCodes[i] // the granted QoS
		if o, ok := h.putSubscription(cl.ID, sub); ok {
			ops = append(ops, o)
		}
	}
	h.w.enqueue(ops...)
}

// OnUnsubscribed deletes subscriptions of a persistent session.
func (h *Hook) OnUnsubscribed(cl *mqtt.Client, pk packets.Packet) {
	if cl.Net.Inline || !h.persistent(cl.ID) {
		return
	}
	ops := make([]op, 0, len(pk.Filters))
	for _, sub := range pk.Filters {
		ops = append(ops, op{kind: opDelete, bucket: bucketSubscriptions, key: subscriptionKey(cl.ID, sub.Filter), what: "delete subscription"})
	}
	h.w.enqueue(ops...)
}

// OnRetainMessage stores or deletes a retained message and waits for the
// commit: mochi acknowledges the publish after this returns.
func (h *Hook) OnRetainMessage(cl *mqtt.Client, pk packets.Packet, _ int64) {
	o := op{kind: opDelete, bucket: bucketRetained, key: []byte(pk.TopicName), what: "delete retained message"}
	if len(pk.Payload) > 0 {
		v, ok := h.marshal("retained message", messageRecord(storage.RetainedKey, cl.ID, pk, 0))
		if !ok {
			return
		}
		o = op{kind: opPut, bucket: bucketRetained, key: []byte(pk.TopicName), value: v, what: "save retained message"}
	}
	_ = h.w.write(o) // a failure is logged and counted by the writer
}

// OnRetainedExpired deletes a retained message mochi expired.
func (h *Hook) OnRetainedExpired(topic string) {
	h.w.enqueue(op{kind: opDelete, bucket: bucketRetained, key: []byte(topic), what: "delete retained message"})
}

// OnSysInfoTick keeps the latest $SYS counters; they are written at most
// once per sysInfoSaveInterval and on Stop.
func (h *Hook) OnSysInfoTick(info *system.Info) {
	rec := &storage.SystemInfo{ID: storage.SysInfoKey, T: storage.SysInfoKey, Info: *info.Clone()}
	h.sysMu.Lock()
	h.sysLast = rec
	h.sysDirty = true
	h.sysMu.Unlock()
	h.saveSysInfo(false)
}

func (h *Hook) saveSysInfo(force bool) {
	h.sysMu.Lock()
	if !h.sysDirty || (!force && time.Since(h.sysSaved) < sysInfoSaveInterval) {
		h.sysMu.Unlock()
		return
	}
	rec := h.sysLast
	h.sysDirty = false
	h.sysSaved = time.Now()
	h.sysMu.Unlock()
	if v, ok := h.marshal("$SYS info", rec); ok {
		h.w.enqueue(op{kind: opPut, bucket: bucketSys, key: keySysInfo, value: v, what: "save $SYS info"})
	}
}
