package persist

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/hooks/storage"
	"github.com/mochi-mqtt/server/v2/packets"
	"go.etcd.io/bbolt"
)

// walEntry is a publish that has a log entry and has not reached
// OnPublished yet. mochi handles one connection's packets one after the
// other, so there is at most one per connection.
type walEntry struct {
	packetID uint16
	seq      uint64
}

const walKind = "WAL"

// OnPublish commits a QoS 1/2 publish from a client to the write-ahead log
// before mochi acknowledges it. Publishes from the inline client (Server.
// Publish, Replay) are not logged: nobody is acknowledged for them.
func (h *Hook) OnPublish(cl *mqtt.Client, pk packets.Packet) (packets.Packet, error) {
	if cl.Net.Inline || pk.FixedHeader.Qos == 0 {
		return pk, nil
	}
	rec := messageRecord(walKind, cl.ID, pk, 0)
	rec.Properties.TopicAlias = 0 // the topic is resolved; the alias means nothing to a later connection
	v, ok := h.marshal("write-ahead log entry", rec)
	if !ok {
		return pk, h.refuse(cl, pk, errors.New("encode failed"))
	}
	seq, err := h.w.append(bucketWAL, v, "append write-ahead log")
	if err != nil {
		return pk, h.refuse(cl, pk, err) // counted and logged by the writer
	}

	h.walMu.Lock()
	prev, had := h.wal[cl]
	h.wal[cl] = walEntry{packetID: pk.PacketID, seq: seq}
	h.walMu.Unlock()
	if had {
		// The connection's previous publish never reached OnPublished while
		// the connection lived on: a hook after this one rejected it, so it
		// must not be replayed.
		h.log.Warn("persist: a hook after "+HookID+" rejected a publish; attach this hook last", "client", cl.ID)
		h.w.enqueue(op{kind: opDelete, bucket: bucketWAL, key: walKey(prev.seq), what: "delete write-ahead log entry"})
	}
	return pk, nil
}

// refuse makes mochi refuse a publish whose log entry could not be written:
// an MQTT 5 QoS 1 publisher gets a PUBACK with "unspecified error" (mochi
// would answer a QoS 2 publish with a PUBACK too, so that one, and MQTT 3,
// get no acknowledgement and send the message again).
func (h *Hook) refuse(cl *mqtt.Client, pk packets.Packet, err error) error {
	h.log.Error("persist: publish refused, write-ahead log not written", "client", cl.ID, "topic", pk.TopicName, "error", err)
	if cl.Properties.ProtocolVersion == 5 && pk.FixedHeader.Qos == 1 {
		return packets.ErrUnspecifiedError
	}
	return packets.ErrRejectPacket
}

// OnPublished queues the deletion of the publish's log entry, behind the
// subscribers' queue records that the fan-out queued.
func (h *Hook) OnPublished(cl *mqtt.Client, pk packets.Packet) {
	if cl.Net.Inline || pk.FixedHeader.Qos == 0 {
		return
	}
	h.walMu.Lock()
	e, ok := h.wal[cl]
	if ok && e.packetID == pk.PacketID {
		delete(h.wal, cl)
	} else {
		ok = false
	}
	h.walMu.Unlock()
	if ok {
		h.w.enqueue(op{kind: opDelete, bucket: bucketWAL, key: walKey(e.seq), what: "delete write-ahead log entry"})
	}
}

// abandonWAL handles a connection that ends between OnPublish and
// OnPublished: mochi could not send the acknowledgement and gave up the
// fan-out, although the client may have received the acknowledgement. The
// message is published again now if Attach was called, or left for Replay.
func (h *Hook) abandonWAL(cl *mqtt.Client) {
	h.walMu.Lock()
	e, ok := h.wal[cl]
	delete(h.wal, cl)
	h.walMu.Unlock()
	if !ok {
		return
	}
	publish := h.republish.Load()
	if publish == nil {
		h.log.Warn("persist: publish not fanned out; left for replay", "client", cl.ID, "packet_id", e.packetID)
		return
	}
	if err := h.replay([]uint64{e.seq}, *publish); err != nil {
		h.log.Error("persist: publish again", "client", cl.ID, "error", err)
	}
}

// Replay publishes again, in their original order, the messages a crash
// left in the write-ahead log, and deletes their entries. Call it once,
// after the server's Serve (which loads the sessions that have to receive
// them) and before clients connect if possible. publish must inject the
// packet as its original publisher (pk.Origin) would; Publisher(srv) does.
// Messages are published with the retain flag cleared (the retained store
// was written before the acknowledgement) and without those whose message
// expiry passed while the broker was down.
func (h *Hook) Replay(publish func(pk packets.Packet)) error {
	if publish == nil {
		return errors.New("persist: Replay: publish is nil")
	}
	if h.w.isStopped() {
		return ErrStopped
	}
	var seqs []uint64
	err := h.db.View(func(tx *bbolt.Tx) error {
		c := tx.Bucket(bucketWAL).Cursor()
		for k, _ := c.First(); k != nil; k, _ = c.Next() {
			if len(k) != 8 {
				continue
			}
			seq := binary.BigEndian.Uint64(k)
			if seq > h.walBefore {
				break // logged by this process: a publish in progress
			}
			seqs = append(seqs, seq)
		}
		return nil
	})
	if err != nil {
		h.fail("persist: read write-ahead log", "error", err)
		return fmt.Errorf("persist: read write-ahead log: %w", err)
	}
	if len(seqs) > 0 {
		h.log.Info("persist: replaying messages left in the write-ahead log", "messages", len(seqs))
	}
	return h.replay(seqs, publish)
}

// replay publishes the log entries seqs and deletes them. Each deletion is
// queued after the writes its publish queued, and replay waits for it.
func (h *Hook) replay(seqs []uint64, publish func(pk packets.Packet)) error {
	now := time.Now().Unix()
	var maxExpiry int64
	if h.Opts != nil && h.Opts.Capabilities != nil {
		maxExpiry = h.Opts.Capabilities.MaximumMessageExpiryInterval
	}
	for _, seq := range seqs {
		key := walKey(seq)
		var v []byte
		err := h.db.View(func(tx *bbolt.Tx) error {
			v = bytes.Clone(tx.Bucket(bucketWAL).Get(key))
			return nil
		})
		if err != nil {
			h.fail("persist: read write-ahead log entry", "seq", seq, "error", err)
			return fmt.Errorf("persist: read write-ahead log entry %d: %w", seq, err)
		}
		if v == nil {
			continue // deleted meanwhile
		}
		var msg storage.Message
		if err := msg.UnmarshalBinary(v); err != nil {
			h.fail("persist: unreadable write-ahead log entry dropped", "seq", seq, "error", err)
		} else if pk, ok := replayPacket(msg, now, maxExpiry); ok {
			publish(pk)
		} else {
			h.log.Info("persist: logged message expired, not published again", "origin", msg.Origin, "topic", msg.TopicName)
		}
		h.w.enqueue(op{kind: opDelete, bucket: bucketWAL, key: key, what: "delete write-ahead log entry"})
	}
	if err := h.w.sync(); err != nil {
		return fmt.Errorf("persist: delete replayed write-ahead log entries: %w", err)
	}
	return nil
}

// replayPacket rebuilds a logged publish, or reports that it expired.
func replayPacket(msg storage.Message, now, maxExpiry int64) (packets.Packet, bool) {
	pk := msg.ToPacket()
	pk.FixedHeader.Type = packets.Publish
	pk.FixedHeader.Retain = false
	pk.FixedHeader.Dup = false
	pk.Origin = msg.Origin
	age := now - msg.Created
	if maxExpiry > 0 && msg.Created > 0 && age > maxExpiry {
		return pk, false
	}
	if exp := int64(pk.Properties.MessageExpiryInterval); exp > 0 && msg.Created > 0 {
		if age >= exp {
			return pk, false
		}
		pk.Properties.MessageExpiryInterval = uint32(exp - max(age, 0))
	}
	return pk, true
}

// Publisher returns the publish function for Replay: it injects the packet
// into srv through an inline client with the original publisher's ID, so
// the message skips ACL checks (it passed them when it was first
// published), keeps its QoS and origin (No Local subscriptions), and is not
// logged again.
func Publisher(srv *mqtt.Server) func(pk packets.Packet) {
	return func(pk packets.Packet) {
		cl := srv.NewClient(nil, mqtt.LocalListener, pk.Origin, true)
		cl.Properties.ProtocolVersion = 5 // keep the v5 properties of the message
		if err := srv.InjectPacket(cl, pk); err != nil {
			srv.Log.Error("persist: publish again", "origin", pk.Origin, "topic", pk.TopicName, "error", err)
		}
	}
}
