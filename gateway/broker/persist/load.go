package persist

import (
	"errors"
	"fmt"

	"github.com/mochi-mqtt/server/v2/hooks/storage"
	"go.etcd.io/bbolt"
)

// mochi's readStore calls the Stored* methods in this order on Serve:
// clients, subscriptions, inflight messages, retained messages, $SYS info.
// Between the first two it reports every restored client to OnDisconnect,
// which forgets the sessions that do not outlive a disconnect.

// scan calls fn for every record of bucket. An unreadable record is
// skipped, logged and counted: one bad record must not keep the broker from
// starting.
func (h *Hook) scan(bucket []byte, fn func(k, v []byte) error) error {
	err := h.db.View(func(tx *bbolt.Tx) error {
		bk := tx.Bucket(bucket)
		if bk == nil {
			return fmt.Errorf("bucket %s missing", bucket)
		}
		return bk.ForEach(fn)
	})
	if err != nil {
		h.fail("persist: load", "bucket", string(bucket), "error", err)
		return fmt.Errorf("persist: load %s: %w", bucket, err)
	}
	return nil
}

func (h *Hook) unreadable(bucket, k []byte, err error) {
	h.fail("persist: unreadable record skipped", "bucket", string(bucket), "key", printableKey(k), "error", err)
}

// StoredClients returns the stored sessions and starts tracking them.
func (h *Hook) StoredClients() ([]storage.Client, error) {
	var out []storage.Client
	err := h.scan(bucketClients, func(k, v []byte) error {
		var c storage.Client
		if err := c.UnmarshalBinary(v); err != nil {
			h.unreadable(bucketClients, k, err)
			return nil
		}
		c.ID = string(k)
		out = append(out, c)
		return nil
	})
	if err != nil {
		return nil, err
	}
	h.mu.Lock()
	for _, c := range out {
		if h.sessions[c.ID] == nil {
			h.sessions[c.ID] = newSession(true)
		}
	}
	h.mu.Unlock()
	return out, nil
}

// StoredSubscriptions returns the subscriptions of the restored sessions.
// Records of a session that no longer exists are deleted: mochi would
// subscribe them anyway, for a client it does not know.
func (h *Hook) StoredSubscriptions() ([]storage.Subscription, error) {
	var out []storage.Subscription
	var orphans [][]byte
	err := h.scan(bucketSubscriptions, func(k, v []byte) error {
		clientID, ok := splitSubscriptionKey(k)
		if !ok {
			h.unreadable(bucketSubscriptions, k, errors.New("malformed key"))
			return nil
		}
		if !h.persistent(clientID) {
			orphans = append(orphans, append([]byte(nil), k...))
			return nil
		}
		var s storage.Subscription
		if err := s.UnmarshalBinary(v); err != nil {
			h.unreadable(bucketSubscriptions, k, err)
			return nil
		}
		s.Client = clientID
		out = append(out, s)
		return nil
	})
	if err != nil {
		return nil, err
	}
	h.deleteOrphans(bucketSubscriptions, orphans)
	return out, nil
}

// StoredInflightMessages returns the queues of the restored sessions and
// counts them against the bounds.
func (h *Hook) StoredInflightMessages() ([]storage.Message, error) {
	var out []storage.Message
	var orphans [][]byte
	err := h.scan(bucketInflight, func(k, v []byte) error {
		clientID, packetID, ok := splitInflightKey(k)
		if !ok {
			h.unreadable(bucketInflight, k, errors.New("malformed key"))
			return nil
		}
		var m storage.Message
		if err := m.UnmarshalBinary(v); err != nil {
			h.unreadable(bucketInflight, k, err)
			return nil
		}
		h.mu.Lock()
		s := h.sessions[clientID]
		if s != nil && s.persistent {
			s.add(packetID, int32(len(m.Payload)), true)
		}
		h.mu.Unlock()
		if s == nil || !s.persistent {
			orphans = append(orphans, append([]byte(nil), k...))
			return nil
		}
		m.Client, m.PacketID = clientID, packetID
		out = append(out, m)
		return nil
	})
	if err != nil {
		return nil, err
	}
	h.deleteOrphans(bucketInflight, orphans)
	return out, nil
}

func (h *Hook) deleteOrphans(bucket []byte, keys [][]byte) {
	if len(keys) == 0 {
		return
	}
	h.log.Warn("persist: deleting records of sessions that no longer exist", "bucket", string(bucket), "records", len(keys))
	ops := make([]op, len(keys))
	for i, k := range keys {
		ops[i] = op{kind: opDelete, bucket: bucket, key: k, what: "delete orphaned record"}
	}
	h.w.enqueue(ops...)
}

// StoredRetainedMessages returns the retained messages.
func (h *Hook) StoredRetainedMessages() ([]storage.Message, error) {
	var out []storage.Message
	err := h.scan(bucketRetained, func(k, v []byte) error {
		var m storage.Message
		if err := m.UnmarshalBinary(v); err != nil {
			h.unreadable(bucketRetained, k, err)
			return nil
		}
		m.TopicName = string(k)
		out = append(out, m)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// StoredSysInfo returns the $SYS counters saved last.
func (h *Hook) StoredSysInfo() (storage.SystemInfo, error) {
	var info storage.SystemInfo
	var raw []byte
	err := h.db.View(func(tx *bbolt.Tx) error {
		if bk := tx.Bucket(bucketSys); bk != nil {
			raw = append(raw, bk.Get(keySysInfo)...)
		}
		return nil
	})
	if err != nil {
		h.fail("persist: load $SYS info", "error", err)
		return info, fmt.Errorf("persist: load $SYS info: %w", err)
	}
	if len(raw) > 0 {
		if err := info.UnmarshalBinary(raw); err != nil {
			h.unreadable(bucketSys, keySysInfo, err)
			return storage.SystemInfo{}, nil
		}
	}
	return info, nil
}
