// Package trace implements seed 002's traces: write every MQTT packet to
// and from one client id, or every message published to topics matching a
// filter, to a text file, until stopped or until the file reaches its size
// limit.
//
// A Tracer is a mochi hook. While no trace runs, its hot-path methods cost
// one atomic load each; a running trace formats a line under its own mutex
// and writes it straight to its file (no buffering, so the file can be read
// while the trace runs).
//
// # File format
//
// One event per line, UTF-8 text. Every line starts with the time in UTC,
// millisecond precision, fixed width (2025-01-02T15:04:05.123Z), then a
// space. Strings (topics, filters, user names, payload previews) are Go
// quoted (strconv.Quote). Passwords, AUTH data and will payloads are never
// written.
//
//	<time> trace started: client "c1"             first line of a client trace
//	<time> trace started: topic "sensors/#"       first line of a topic trace
//	<time> trace stopped                          last line after StopTrace or server stop
//	<time> trace stopped: size limit reached      last line when MaxBytes is reached
//	<time> trace stopped: write error             when the file could not be written
//
// Client traces: <dir> is RECV (client to broker) or SENT (broker to
// client), followed by the packet type and its fields. Reason codes that
// only MQTT 5 carries (code= of acks, DISCONNECT and AUTH, codes= of
// UNSUBACK) are written for MQTT 5 clients only.
//
//	RECV CONNECT proto=4 clean=true keepalive=60 username="u" will=false
//	SENT CONNACK code=0 session=false
//	RECV PUBLISH id=1 topic="a/b" qos=1 retain=false dup=false size=5 payload="hello"
//	SENT PUBACK id=1                        (PUBREC, PUBREL, PUBCOMP alike; MQTT 5: id=1 code=0)
//	RECV SUBSCRIBE id=2 filter="a/#" qos=1 filter="b" qos=0
//	SENT SUBACK id=2 codes=1,0
//	RECV UNSUBSCRIBE id=3 filter="a/#"
//	SENT UNSUBACK id=3                      (MQTT 5: id=3 codes=0)
//	RECV PINGREQ
//	SENT PINGRESP
//	RECV DISCONNECT                         (MQTT 5: DISCONNECT code=0)
//	RECV AUTH code=24                       (MQTT 5 only)
//
// username= is left out when the CONNECT has no user name. A PUBLISH that
// uses a topic alias also has alias=<n> before size=.
//
// Topic traces: one line per message accepted for routing whose topic
// matches the filter (wills included), with the publishing client id:
//
//	PUBLISH from="c1" topic="a/b" qos=1 retain=false size=5 payload="hello"
//	WILL from="c1" topic="a/status" qos=0 retain=true size=7 payload="offline"
//
// payload= is a preview of at most 64 bytes of the payload; when the
// payload is longer, the quoted preview is followed by "...". size= is the
// full payload length.
package trace

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/edgegate/edgegate/gateway/acl"
)

// HookID is the mochi hook ID of a Tracer.
const HookID = "edgegate-trace"

// Kind is what a trace follows.
type Kind string

// Kinds of trace.
const (
	Client Kind = "client" // every packet to and from one client id
	Topic  Kind = "topic"  // every message whose topic matches a filter
)

// Reasons a trace stopped, in Info.StopReason. A running trace has "".
const (
	ReasonStopped    = "stopped"     // StopTrace or the server stopped
	ReasonSizeLimit  = "size limit"  // the file reached MaxBytes
	ReasonWriteError = "write error" // the file could not be written
)

var (
	// ErrNotFound is returned by StopTrace when no trace of that kind and
	// target is running.
	ErrNotFound = errors.New("trace not found")
	// ErrExists is returned by Start when a trace of the same kind and
	// target is already running.
	ErrExists = errors.New("already traced")
	// ErrFileInUse is returned by Start when a running trace already writes
	// to the file the name maps to.
	ErrFileInUse = errors.New("trace file in use by another trace")
	// ErrBadName is returned by Start when the file name is not 1-128 of
	// [A-Za-z0-9._-], or starts with a dot.
	ErrBadName = errors.New("invalid trace name")
	// ErrBadTarget is returned by Start for an unknown kind, an empty client
	// id or an invalid (or shared) topic filter.
	ErrBadTarget = errors.New("invalid trace target")
)

// keptStopped is how many stopped traces List keeps showing.
const keptStopped = 32

// Options are the dependencies of a Tracer.
type Options struct {
	// Dir holds the trace files; Start creates it if needed.
	Dir string
	// MaxBytes caps each trace file, final line included; 0 means no cap.
	MaxBytes int64
	Logger   *slog.Logger
	Now      func() time.Time
}

// Info describes a trace, running or stopped.
type Info struct {
	Kind       Kind      `json:"kind"`
	Target     string    `json:"target"` // client id or topic filter
	Name       string    `json:"name"`
	File       string    `json:"file"` // path of the trace file
	Bytes      int64     `json:"bytes"`
	Started    time.Time `json:"started"`
	Stopped    time.Time `json:"stopped,omitzero"`
	StopReason string    `json:"stop_reason"` // "" while running
}

// Tracer runs traces. It is a mochi hook: add it to the server with
// AddHook. Its hook Stop (called when the server closes) stops every trace;
// a single trace is stopped with StopTrace (the name Stop is the hook's).
type Tracer struct {
	mqtt.HookBase

	dir      string
	maxBytes int64
	log      *slog.Logger
	now      func() time.Time

	// Running-trace counts, read before any lock on the hot path.
	clientCount atomic.Int32
	topicCount  atomic.Int32

	mu      sync.RWMutex
	clients map[string]*trace // running client traces by client id
	topics  map[string]*trace // running topic traces by filter
	stopped []*trace          // most recent last, at most keptStopped
}

// New returns a Tracer writing into o.Dir.
func New(o Options) *Tracer {
	t := &Tracer{
		dir:      o.Dir,
		maxBytes: o.MaxBytes,
		log:      o.Logger,
		now:      o.Now,
		clients:  map[string]*trace{},
		topics:   map[string]*trace{},
	}
	if t.log == nil {
		t.log = slog.New(slog.DiscardHandler)
	}
	if t.now == nil {
		t.now = time.Now
	}
	return t
}

// ID returns the hook's ID, "edgegate-trace".
func (t *Tracer) ID() string { return HookID }

// Provides reports the mochi events the hook handles.
func (t *Tracer) Provides(b byte) bool {
	switch b {
	case mqtt.OnPacketRead, mqtt.OnPacketSent, mqtt.OnPublished, mqtt.OnWillSent:
		return true
	}
	return false
}

var validName = regexp.MustCompile(`^[A-Za-z0-9_-][A-Za-z0-9._-]{0,127}$`)

// fileName maps a trace name to its file name: the name itself when it
// ends in ".log", else name + ".log". Names are 1-128 of [A-Za-z0-9._-]
// not starting with a dot, so no name can leave Dir or hide a file.
func fileName(name string) (string, error) {
	if !validName.MatchString(name) {
		return "", fmt.Errorf("%w %q: use 1-128 letters, digits, '.', '_' or '-', not starting with '.'", ErrBadName, name)
	}
	if strings.HasSuffix(name, ".log") {
		return name, nil
	}
	return name + ".log", nil
}

// Start begins a trace of kind for target (a client id, or a topic filter
// such as "sensors/+/temp"), writing to the file derived from name in Dir
// (truncated if it exists).
func (t *Tracer) Start(kind Kind, target, name string) (Info, error) {
	switch kind {
	case Client:
		if target == "" {
			return Info{}, fmt.Errorf("%w: empty client id", ErrBadTarget)
		}
	case Topic:
		if err := acl.ValidFilter(target); err != nil {
			return Info{}, fmt.Errorf("%w: %w", ErrBadTarget, err)
		}
		if _, _, shared := acl.SplitShared(target); shared {
			return Info{}, fmt.Errorf("%w: a topic trace takes a plain topic filter, not a shared subscription", ErrBadTarget)
		}
	default:
		return Info{}, fmt.Errorf("%w: unknown kind %q", ErrBadTarget, kind)
	}
	file, err := fileName(name)
	if err != nil {
		return Info{}, err
	}
	path := filepath.Join(t.dir, file)

	t.mu.Lock()
	defer t.mu.Unlock()
	running := t.running(kind)
	if _, ok := running[target]; ok {
		return Info{}, fmt.Errorf("%s %q: %w", kind, target, ErrExists)
	}
	for _, m := range []map[string]*trace{t.clients, t.topics} {
		for _, other := range m {
			if other.info.File == path {
				return Info{}, fmt.Errorf("%w: %s (%s %q)", ErrFileInUse, file, other.info.Kind, other.info.Target)
			}
		}
	}
	f, err := t.create(file)
	if err != nil {
		return Info{}, fmt.Errorf("start trace %s %q: %w", kind, target, err)
	}
	tr := &trace{
		tracer:   t,
		file:     f,
		maxBytes: t.maxBytes,
		info: Info{
			Kind:    kind,
			Target:  target,
			Name:    name,
			File:    path,
			Started: t.now(),
		},
	}
	tr.mu.Lock()
	stoppedAtOnce := !tr.writeLocked(appendStarted(tr.line(), kind, target))
	info := tr.info
	tr.mu.Unlock()
	if stoppedAtOnce { // MaxBytes too small for even the first line
		t.retireLocked(tr)
		return info, nil
	}
	running[target] = tr
	t.count(kind).Add(1)
	t.log.Info("trace started", "kind", kind, "target", target, "file", path)
	return info, nil
}

// create makes Dir if needed and creates file in it, through an os.Root so
// that nothing (a symlink included) can take the write outside Dir.
func (t *Tracer) create(file string) (*os.File, error) {
	if err := os.MkdirAll(t.dir, 0o750); err != nil {
		return nil, err
	}
	root, err := os.OpenRoot(t.dir)
	if err != nil {
		return nil, err
	}
	defer root.Close()
	return root.OpenFile(file, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o640)
}

// StopTrace stops the running trace of kind for target, writing a final
// "trace stopped" line. It returns ErrNotFound if there is none.
func (t *Tracer) StopTrace(kind Kind, target string) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	tr, ok := t.running(kind)[target]
	if !ok {
		return fmt.Errorf("%s %q: %w", kind, target, ErrNotFound)
	}
	tr.stop(ReasonStopped) // before it shows in the stopped list
	t.removeLocked(tr)
	return nil
}

// Stop is the hook's Stop, called when the server closes: it stops every
// running trace.
func (t *Tracer) Stop() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	var all []*trace
	for _, m := range []map[string]*trace{t.clients, t.topics} {
		for _, tr := range m {
			all = append(all, tr)
		}
	}
	for _, tr := range all {
		tr.stop(ReasonStopped)
		t.removeLocked(tr)
	}
	return nil
}

// List returns the running traces, then the most recently stopped ones;
// each group sorted by kind and target.
func (t *Tracer) List() []Info {
	t.mu.RLock()
	var running, stopped []*trace
	for _, m := range []map[string]*trace{t.clients, t.topics} {
		for _, tr := range m {
			running = append(running, tr)
		}
	}
	stopped = append(stopped, t.stopped...)
	t.mu.RUnlock()

	out := make([]Info, 0, len(running)+len(stopped))
	for _, group := range [][]*trace{running, stopped} {
		start := len(out)
		for _, tr := range group {
			out = append(out, tr.snapshot())
		}
		slices.SortStableFunc(out[start:], func(a, b Info) int {
			if c := strings.Compare(string(a.Kind), string(b.Kind)); c != 0 {
				return c
			}
			return strings.Compare(a.Target, b.Target)
		})
	}
	return out
}

func (t *Tracer) running(kind Kind) map[string]*trace {
	if kind == Client {
		return t.clients
	}
	return t.topics
}

func (t *Tracer) count(kind Kind) *atomic.Int32 {
	if kind == Client {
		return &t.clientCount
	}
	return &t.topicCount
}

// removeLocked takes a running trace out of the running set (if it is still
// there) and into the stopped list. t.mu must be held.
func (t *Tracer) removeLocked(tr *trace) {
	m := t.running(tr.info.Kind)
	if m[tr.info.Target] != tr {
		return
	}
	delete(m, tr.info.Target)
	t.count(tr.info.Kind).Add(-1)
	t.retireLocked(tr)
}

// retireLocked appends tr to the stopped list, keeping it short.
func (t *Tracer) retireLocked(tr *trace) {
	t.stopped = append(t.stopped, tr)
	if n := len(t.stopped) - keptStopped; n > 0 {
		t.stopped = slices.Delete(t.stopped, 0, n)
	}
}

// retire moves a trace that stopped itself (size limit, write error) out of
// the running set; it does nothing if the trace is no longer there. It is
// called without tr.mu held: the lock order is Tracer.mu, then trace.mu.
func (t *Tracer) retire(tr *trace) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.removeLocked(tr)
}

// OnPacketRead writes a packet from a traced client. It never changes or
// rejects the packet.
func (t *Tracer) OnPacketRead(cl *mqtt.Client, pk packets.Packet) (packets.Packet, error) {
	if t.clientCount.Load() == 0 {
		return pk, nil
	}
	id := cl.ID
	if pk.FixedHeader.Type == packets.Connect {
		id = pk.Connect.ClientIdentifier // mochi sets cl.ID after reading CONNECT
	}
	if tr := t.clientTrace(id); tr != nil {
		tr.packet("RECV", pk)
	}
	return pk, nil
}

// OnPacketSent writes a packet sent to a traced client.
func (t *Tracer) OnPacketSent(cl *mqtt.Client, pk packets.Packet, _ []byte) {
	if t.clientCount.Load() == 0 {
		return
	}
	if tr := t.clientTrace(cl.ID); tr != nil {
		tr.packet("SENT", pk)
	}
}

// OnPublished writes a message to the topic traces whose filter matches.
func (t *Tracer) OnPublished(cl *mqtt.Client, pk packets.Packet) {
	if t.topicCount.Load() == 0 {
		return
	}
	t.message("PUBLISH", cl, pk)
}

// OnWillSent writes a will message to the topic traces whose filter
// matches.
func (t *Tracer) OnWillSent(cl *mqtt.Client, pk packets.Packet) {
	if t.topicCount.Load() == 0 {
		return
	}
	t.message("WILL", cl, pk)
}

func (t *Tracer) clientTrace(id string) *trace {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return t.clients[id]
}

func (t *Tracer) message(what string, cl *mqtt.Client, pk packets.Packet) {
	t.mu.RLock()
	var matched []*trace
	for filter, tr := range t.topics {
		if acl.MatchFilter(filter, pk.TopicName) {
			matched = append(matched, tr)
		}
	}
	t.mu.RUnlock()
	from := pk.Origin
	if cl != nil {
		from = cl.ID
	}
	for _, tr := range matched {
		tr.message(what, from, pk)
	}
}

// trace is one running or stopped trace.
type trace struct {
	tracer   *Tracer
	maxBytes int64

	mu   sync.Mutex
	file *os.File // nil once stopped
	info Info
	buf  []byte // line scratch, reused
}

func (tr *trace) snapshot() Info {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	return tr.info
}

// line starts a line in the scratch buffer with the time. tr.mu must be
// held.
func (tr *trace) line() []byte {
	return tr.tracer.now().UTC().AppendFormat(tr.buf[:0], timeLayout)
}

// timeLayout has a fixed width in UTC, so every final line has the same
// length and the size cap can reserve room for it.
const timeLayout = "2006-01-02T15:04:05.000Z07:00"

const (
	finalStopped   = " trace stopped\n"
	finalSizeLimit = " trace stopped: size limit reached\n"
	finalWriteErr  = " trace stopped: write error\n"
)

// finalReserve is the room kept for the size-limit line: the UTC time is
// always 24 bytes.
const finalReserve = int64(len("2006-01-02T15:04:05.000Z") + len(finalSizeLimit))

func (tr *trace) packet(dir string, pk packets.Packet) {
	tr.mu.Lock()
	running := tr.file != nil
	if running {
		b := append(tr.line(), ' ')
		b = append(b, dir...)
		b = appendPacket(append(b, ' '), pk)
		running = tr.writeLocked(append(b, '\n'))
	}
	tr.mu.Unlock()
	if !running {
		tr.tracer.retire(tr)
	}
}

func (tr *trace) message(what, from string, pk packets.Packet) {
	tr.mu.Lock()
	running := tr.file != nil
	if running {
		b := append(tr.line(), ' ')
		b = append(b, what...)
		b = append(b, " from="...)
		b = strconv.AppendQuote(b, from)
		b = appendMessage(b, pk, false)
		running = tr.writeLocked(append(b, '\n'))
	}
	tr.mu.Unlock()
	if !running {
		tr.tracer.retire(tr)
	}
}

// writeLocked writes b, or ends the trace if b does not fit. It reports
// whether the trace is still running. tr.mu must be held.
func (tr *trace) writeLocked(b []byte) bool {
	tr.buf = b[:0]
	if tr.maxBytes > 0 && tr.info.Bytes+int64(len(b))+finalReserve > tr.maxBytes {
		tr.finishLocked(ReasonSizeLimit)
		return false
	}
	n, err := tr.file.Write(b)
	tr.info.Bytes += int64(n)
	if err != nil {
		tr.tracer.log.Error("write trace", "file", tr.info.File, "error", err)
		tr.finishLocked(ReasonWriteError)
		return false
	}
	return true
}

// stop ends a trace. The lock order is Tracer.mu, then trace.mu: the hot
// path never holds both.
func (tr *trace) stop(reason string) {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	tr.finishLocked(reason)
}

// finishLocked writes the final line and closes the file, once.
func (tr *trace) finishLocked(reason string) {
	if tr.file == nil {
		return
	}
	final := finalStopped
	switch reason {
	case ReasonSizeLimit:
		final = finalSizeLimit
	case ReasonWriteError:
		final = finalWriteErr
	}
	b := append(tr.line(), final...)
	if reason != ReasonWriteError {
		n, _ := tr.file.Write(b)
		tr.info.Bytes += int64(n)
	}
	if err := tr.file.Close(); err != nil {
		tr.tracer.log.Error("close trace", "file", tr.info.File, "error", err)
	}
	tr.file = nil
	tr.info.Stopped = tr.tracer.now()
	tr.info.StopReason = reason
	tr.tracer.log.Info("trace stopped", "kind", tr.info.Kind, "target", tr.info.Target, "reason", reason)
}
