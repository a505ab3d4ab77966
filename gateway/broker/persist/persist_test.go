package persist

import (
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
	"go.etcd.io/bbolt"

	"github.com/edgegate/edgegate/gateway/broker/internal/mqtttest"
)

// snapshotHook copies the database the moment mochi fans out a chosen
// message: after the publisher's PUBACK was sent, before any subscriber
// queued the message. A copy of the committed state is what a kill -9 at
// that moment leaves on disk.
type snapshotHook struct {
	mqtt.HookBase
	db      *bbolt.DB
	path    string
	trigger string
	taken   atomic.Bool
	err     atomic.Value
}

func (s *snapshotHook) ID() string           { return "snapshot" }
func (s *snapshotHook) Provides(b byte) bool { return b == mqtt.OnSelectSubscribers }
func (s *snapshotHook) OnSelectSubscribers(subs *mqtt.Subscribers, pk packets.Packet) *mqtt.Subscribers {
	if string(pk.Payload) == s.trigger && !s.taken.Swap(true) {
		if err := s.db.View(func(tx *bbolt.Tx) error { return tx.CopyFile(s.path, 0o600) }); err != nil {
			s.err.Store(err)
		}
	}
	return subs
}

func TestAcknowledgedMessagesSurviveRestartAndCrash(t *testing.T) {
	const n = 20
	dir := t.TempDir()
	path := filepath.Join(dir, "edgegate.db")
	crashPath := filepath.Join(dir, "crash.db")
	db := openDB(t, path)
	snap := &snapshotHook{db: db, path: crashPath, trigger: fmt.Sprintf("m%d", n)}

	b := startBroker(t, db, Options{}, nil, snap)
	subscribers := map[string]connectOpts{"sub-v5": persistentV5, "sub-v3": persistentV3}
	for id, o := range subscribers {
		c, _ := b.connect(id, o)
		c.Subscribe("data/#", 1)
		c.disconnect(b, nil)
	}
	pub, _ := b.connect("pub", cleanV5)
	for i := 1; i <= n; i++ {
		if code := pub.Publish("data/x", fmt.Sprintf("m%d", i), 1, false); code != 0 {
			t.Fatalf("PUBACK reason %#x", code)
		}
	}
	if !snap.taken.Load() || snap.err.Load() != nil {
		t.Fatalf("snapshot not taken: %v", snap.err.Load())
	}
	b.close()
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	// The crash copy must hold the last message in the log only, or it
	// does not test the window between acknowledgement and fan-out.
	crashDB := openDB(t, crashPath)
	if wal := keys(t, crashDB, bucketWAL); len(wal) == 0 {
		t.Fatal("crash copy has no write-ahead log entry")
	}
	_ = crashDB.Close()

	for _, tc := range []struct{ name, path string }{{"restart", path}, {"crash", crashPath}} {
		t.Run(tc.name, func(t *testing.T) {
			db := openDB(t, tc.path)
			defer db.Close()
			b := startBroker(t, db, Options{}, nil)
			defer b.close()
			if wal := keys(t, db, bucketWAL); len(wal) != 0 {
				t.Fatalf("write-ahead log not empty after Replay: %d entries", len(wal))
			}
			for id, o := range subscribers {
				c, present := b.connect(id, o)
				if !present {
					t.Fatalf("%s: session not present", id)
				}
				seen := map[string]bool{}
				for _, p := range payloads(c.receive(b, "data/marker", true)) {
					seen[p] = true // duplicates are allowed after a crash
				}
				for i := 1; i <= n; i++ {
					if !seen[fmt.Sprintf("m%d", i)] {
						t.Errorf("%s: m%d lost; got %v", id, i, seen)
					}
				}
			}
			// Every message was acknowledged: nothing may stay queued.
			b.synced()
			if left := keys(t, db, bucketInflight); len(left) != 0 {
				t.Errorf("queue records left after acknowledgement: %q", left)
			}
		})
	}
}

func TestReplayPublishesWhatACrashLeftInTheLog(t *testing.T) {
	db, _ := tempDB(t)
	srv := mqtt.New(&mqtt.Options{Logger: mqtttest.Logger(t)})
	now := time.Now().Unix()
	logged := packets.Packet{
		FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: 1, Retain: true},
		TopicName:   "w/1",
		Payload:     []byte("payload"),
		PacketID:    7,
		Origin:      "pub",
		Created:     now,
		Properties:  packets.Properties{User: []packets.UserProperty{{Key: "k", Val: "v"}}, MessageExpiryInterval: 3600},
	}
	expired := logged
	expired.TopicName, expired.PacketID = "w/expired", 8
	expired.Created, expired.Properties.MessageExpiryInterval = now-100, 10

	h1, err := New(Options{DB: db, Logger: mqtttest.Logger(t)})
	if err != nil {
		t.Fatal(err)
	}
	for i, pk := range []packets.Packet{logged, expired} {
		// OnPublish without OnPublished: the process died after the PUBACK.
		// (One connection per publish: a connection's next publish means
		// its previous one was refused.)
		pub := srv.NewClient(nil, "t", "pub", false)
		pub.Properties.ProtocolVersion = 5
		if _, err := h1.OnPublish(pub, pk); err != nil {
			t.Fatalf("publish %d: %v", i, err)
		}
	}
	if err := h1.Stop(); err != nil {
		t.Fatal(err)
	}

	h2, err := New(Options{DB: db, Logger: mqtttest.Logger(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = h2.Stop() }()
	// A publish in progress in the new process is not the crash's to replay.
	live := srv.NewClient(nil, "t", "live", false)
	inProgress := packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: 1}, TopicName: "w/live", PacketID: 1, Origin: "live", Created: now}
	if _, err := h2.OnPublish(live, inProgress); err != nil {
		t.Fatal(err)
	}

	var got []packets.Packet
	if err := h2.Replay(func(pk packets.Packet) { got = append(got, pk) }); err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 {
		t.Fatalf("replayed %d messages, want 1: %+v", len(got), got)
	}
	pk := got[0]
	if pk.TopicName != "w/1" || string(pk.Payload) != "payload" || pk.FixedHeader.Qos != 1 || pk.Origin != "pub" ||
		pk.PacketID != 7 || pk.FixedHeader.Retain || len(pk.Properties.User) != 1 ||
		pk.Properties.MessageExpiryInterval == 0 || pk.Properties.MessageExpiryInterval > 3600 {
		t.Errorf("replayed %+v", pk)
	}
	if wal := keys(t, db, bucketWAL); len(wal) != 1 {
		t.Fatalf("log has %d entries after Replay, want only the one in progress", len(wal))
	}
	h2.OnPublished(live, inProgress)
	if err := h2.w.sync(); err != nil {
		t.Fatal(err)
	}
	if wal := keys(t, db, bucketWAL); len(wal) != 0 {
		t.Fatalf("log has %d entries after OnPublished", len(wal))
	}
	if h1.Errors()+h2.Errors() != 0 {
		t.Errorf("errors counted: %d", h1.Errors()+h2.Errors())
	}
}

func TestRetainedMessagesSurviveRestart(t *testing.T) {
	db, _ := tempDB(t)
	run := func(publish func(pub *client)) []string {
		t.Helper()
		b := startBroker(t, db, Options{}, nil)
		defer b.close()
		if publish != nil {
			pub, _ := b.connect("pub", cleanV3)
			publish(pub)
			return nil
		}
		c, _ := b.connect("reader", cleanV5)
		c.Subscribe("r/#", 1)
		got := c.receive(b, "r/marker", true)
		out := make([]string, len(got))
		for i, pk := range got {
			out[i] = pk.TopicName + "=" + string(pk.Payload)
		}
		slices.Sort(out)
		return out
	}

	run(func(pub *client) {
		pub.Publish("r/1", "one", 1, true)
		pub.Publish("r/2", "two", 0, true)
		pub.Publish("r/3", "three", 1, true)
		pub.Publish("r/3", "three-new", 1, true)
	})
	if got, want := run(nil), []string{"r/1=one", "r/2=two", "r/3=three-new"}; !slices.Equal(got, want) {
		t.Fatalf("after restart: %v, want %v", got, want)
	}
	run(func(pub *client) {
		pub.Publish("r/1", "", 1, true) // deletes the retained message
	})
	if got, want := run(nil), []string{"r/2=two", "r/3=three-new"}; !slices.Equal(got, want) {
		t.Fatalf("after deletion and restart: %v, want %v", got, want)
	}
}

func TestSessionsAndSubscriptions(t *testing.T) {
	db, _ := tempDB(t)
	b := startBroker(t, db, Options{}, nil)

	// A persistent session and its subscriptions are stored.
	ps, _ := b.connect("ps", persistentV5)
	ps.Subscribe("a/+", 1)
	ps.Subscribe("b/#", 0)
	ps.disconnect(b, nil)

	// A clean session never touches the store.
	c3, _ := b.connect("c3", cleanV3)
	c3.Subscribe("a/+", 1)
	c3.receive(b, "a/marker", true)
	b.synced()
	if slices.Contains(keys(t, db, bucketClients), "c3") {
		t.Error("clean session stored")
	}
	c3.disconnect(b, nil)

	// A persistent session that ends with session expiry 0 is deleted.
	gone, _ := b.connect("gone", persistentV5)
	gone.Subscribe("g/#", 1)
	if err := b.srv.Publish("g/1", []byte("queued"), false, 1); err != nil {
		t.Fatal(err)
	}
	zero := uint32(0)
	gone.disconnect(b, &zero)

	// A clean start over a persistent session drops its subscriptions.
	re, _ := b.connect("restart", persistentV3)
	re.Subscribe("old/#", 1)
	re.disconnect(b, nil)
	re2, present := b.connect("restart", connectOpts{version: 5, clean: true, expiry: 3600})
	if present {
		t.Fatal("clean start: session present")
	}
	re2.Subscribe("new/#", 1)
	re2.disconnect(b, nil)

	b.synced()
	wantClients := []string{"ps", "restart"}
	wantSubs := []string{"ps\x00a/+", "ps\x00b/#", "restart\x00new/#"}
	if got := keys(t, db, bucketClients); !slices.Equal(got, wantClients) {
		t.Errorf("clients %q, want %q", got, wantClients)
	}
	if got := keys(t, db, bucketSubscriptions); !slices.Equal(got, wantSubs) {
		t.Errorf("subscriptions %q, want %q", got, wantSubs)
	}
	if got := keys(t, db, bucketInflight); len(got) != 0 {
		t.Errorf("queue records %q, want none", got)
	}
	b.hook.mu.Lock()
	for _, id := range []string{"c3", "gone"} {
		if b.hook.sessions[id] != nil {
			t.Errorf("session %q still tracked", id)
		}
	}
	b.hook.mu.Unlock()
	b.close()

	// After a restart the subscriptions route messages to the offline session.
	b = startBroker(t, db, Options{}, nil)
	defer b.close()
	if err := b.srv.Publish("a/x", []byte("for-ps"), false, 1); err != nil {
		t.Fatal(err)
	}
	if err := b.srv.Publish("b/y", []byte("qos0-not-queued"), false, 1); err != nil {
		t.Fatal(err)
	}
	ps, present = b.connect("ps", persistentV5)
	if !present {
		t.Fatal("ps: session not present after restart")
	}
	if got := payloads(ps.receive(b, "a/marker", true)); !slices.Equal(got, []string{"for-ps"}) {
		t.Errorf("ps got %q after restart", got)
	}
}

func TestSessionTakeoverKeepsQueue(t *testing.T) {
	db, _ := tempDB(t)
	b := startBroker(t, db, Options{}, nil)
	defer b.close()
	first, _ := b.connect("sub", persistentV5)
	first.Subscribe("q/#", 1)
	if err := b.srv.Publish("q/1", []byte("m1"), false, 1); err != nil {
		t.Fatal(err)
	}
	if err := b.srv.Publish("q/2", []byte("m2"), false, 1); err != nil {
		t.Fatal(err)
	}
	// Received, never acknowledged.
	if got := payloads(first.receive(b, "q/marker", false)); !slices.Equal(got, []string{"m1", "m2"}) {
		t.Fatalf("first connection got %q", got)
	}

	second, present := b.connect("sub", persistentV5) // takes the session over
	if !present {
		t.Fatal("session not present")
	}
	b.waitDisconnect("sub") // the first connection's end is handled
	b.synced()
	if got := keys(t, db, bucketInflight); len(got) != 2 {
		t.Fatalf("queue records after takeover: %q, want 2", got)
	}
	if got := payloads(second.receive(b, "q/marker", true)); !slices.Equal(got, []string{"m1", "m2"}) {
		t.Fatalf("second connection got %q", got)
	}
	b.synced()
	if got := keys(t, db, bucketInflight); len(got) != 0 {
		t.Fatalf("queue records after acknowledgement: %q", got)
	}
}

func TestQueueBounds(t *testing.T) {
	t.Run("messages", func(t *testing.T) {
		db, _ := tempDB(t)
		var drops dropLog
		caps := mqtt.NewDefaultServerCapabilities()
		caps.MaximumInflight = 3
		b := startBroker(t, db, Options{MaxQueuedMessages: 3, OnDrop: drops.add}, caps)
		defer b.close()

		slow, _ := b.connect("slow", persistentV5)
		slow.Subscribe("q/#", 1)
		slow.disconnect(b, nil)
		fast, _ := b.connect("fast", cleanV5)
		fast.Subscribe("q/#", 0) // QoS 0: nothing is queued, nothing dropped

		pub, _ := b.connect("pub", cleanV5)
		for i := 1; i <= 5; i++ {
			pub.Publish("q/1", fmt.Sprintf("m%d", i), 1, false)
		}
		if got := drops.get(); !slices.Equal(got, []string{"slow", "slow"}) {
			t.Fatalf("drops %q, want two for slow", got)
		}
		if got := payloads(fast.receive(b, "q/marker", true)); len(got) != 5 {
			t.Fatalf("QoS 0 subscriber got %q", got)
		}
		slow, _ = b.connect("slow", persistentV5)
		if got := payloads(slow.receive(b, "q/marker", true)); !slices.Equal(got, []string{"m1", "m2", "m3"}) {
			t.Fatalf("slow got %q, want the first three", got)
		}
		// Acknowledged: room again.
		pub.Publish("q/1", "m6", 1, false)
		if got := payloads(slow.receive(b, "q/marker", true)); !slices.Equal(got, []string{"m6"}) {
			t.Fatalf("slow got %q after acknowledging", got)
		}
		if got := drops.get(); len(got) != 2 {
			t.Fatalf("drops %q, want still two", got)
		}
	})

	t.Run("bytes", func(t *testing.T) {
		db, _ := tempDB(t)
		var drops dropLog
		b := startBroker(t, db, Options{MaxQueuedBytes: 10, OnDrop: drops.add}, nil)
		defer b.close()
		slow, _ := b.connect("slow", persistentV3)
		slow.Subscribe("q/#", 1)
		slow.disconnect(b, nil)
		pub, _ := b.connect("pub", cleanV3)
		for _, p := range []string{"aaaa", "bbbb", "cccc", "d"} { // 4+4 fit, +4 does not, +1 does
			pub.Publish("q/1", p, 1, false)
		}
		if got := drops.get(); !slices.Equal(got, []string{"slow"}) {
			t.Fatalf("drops %q, want one for slow", got)
		}
		b.close()

		// The bound counts what was restored from the store.
		b = startBroker(t, db, Options{MaxQueuedBytes: 10, OnDrop: drops.add}, nil)
		defer b.close()
		if err := b.srv.Publish("q/1", []byte("ee"), false, 1); err != nil { // 9+2 > 10
			t.Fatal(err)
		}
		if got := drops.get(); !slices.Equal(got, []string{"slow", "slow"}) {
			t.Fatalf("drops %q after restart, want two for slow", got)
		}
		slow, _ = b.connect("slow", persistentV3)
		if got := payloads(slow.receive(b, "q/marker", true)); !slices.Equal(got, []string{"aaaa", "bbbb", "d"}) {
			t.Fatalf("slow got %q", got)
		}
	})

	t.Run("shared", func(t *testing.T) {
		db, _ := tempDB(t)
		var drops dropLog
		b := startBroker(t, db, Options{MaxQueuedMessages: 1, OnDrop: drops.add}, nil)
		defer b.close()
		for _, id := range []string{"w1", "w2"} {
			c, _ := b.connect(id, persistentV5)
			c.Subscribe("$share/workers/jobs/#", 1)
			c.disconnect(b, nil)
		}
		for i := 1; i <= 3; i++ {
			if err := b.srv.Publish("jobs/1", []byte(fmt.Sprintf("j%d", i)), false, 1); err != nil {
				t.Fatal(err)
			}
		}
		// One job each; the third finds both full.
		if got := drops.get(); len(got) != 1 {
			t.Fatalf("drops %q, want one", got)
		}
		b.hook.mu.Lock()
		defer b.hook.mu.Unlock()
		for _, id := range []string{"w1", "w2"} {
			if n := len(b.hook.sessions[id].queued); n != 1 {
				t.Errorf("%s has %d queued, want 1", id, n)
			}
		}
	})
}

func TestFailedWritesAreCounted(t *testing.T) {
	srv := mqtt.New(&mqtt.Options{Logger: mqtttest.Logger(t)})
	newClient := func(id string, version byte) *mqtt.Client {
		cl := srv.NewClient(nil, "t", id, false)
		cl.Properties.ProtocolVersion = version
		return cl
	}
	qos1 := packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: 1}, TopicName: "t", Payload: []byte("x"), PacketID: 1}
	retained := packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Publish, Retain: true}, TopicName: "t", Payload: []byte("x")}

	t.Run("closed", func(t *testing.T) {
		db, _ := tempDB(t)
		h, err := New(Options{DB: db, Logger: mqtttest.Logger(t)})
		if err != nil {
			t.Fatal(err)
		}
		defer func() { _ = h.Stop() }()
		if err := db.Close(); err != nil {
			t.Fatal(err)
		}
		h.OnRetainMessage(newClient("c", 5), retained, 1)
		if h.Errors() != 1 {
			t.Fatalf("Errors() = %d after a failed retained write, want 1", h.Errors())
		}
		// The publish is refused, not acknowledged.
		if _, err := h.OnPublish(newClient("c", 5), qos1); !errors.Is(err, packets.ErrUnspecifiedError) {
			t.Fatalf("OnPublish: %v, want ErrUnspecifiedError", err)
		}
		if h.Errors() != 2 {
			t.Fatalf("Errors() = %d, want 2", h.Errors())
		}
	})

	t.Run("read-only", func(t *testing.T) {
		db, path := tempDB(t)
		h, err := New(Options{DB: db, Logger: mqtttest.Logger(t)})
		if err != nil {
			t.Fatal(err)
		}
		_ = h.Stop()
		_ = db.Close()
		ro, err := bbolt.Open(path, 0o600, &bbolt.Options{ReadOnly: true, Timeout: time.Second})
		if err != nil {
			t.Fatal(err)
		}
		defer ro.Close()
		h, err = New(Options{DB: ro, Logger: mqtttest.Logger(t)})
		if err != nil {
			t.Fatal(err)
		}
		defer func() { _ = h.Stop() }()
		if _, err := h.OnPublish(newClient("c", 4), qos1); !errors.Is(err, packets.ErrRejectPacket) {
			t.Fatalf("OnPublish: %v, want ErrRejectPacket", err)
		}
		if h.Errors() != 1 {
			t.Fatalf("Errors() = %d, want 1", h.Errors())
		}
	})
}

func TestStopCommitsEverything(t *testing.T) {
	db, _ := tempDB(t)
	h, err := New(Options{DB: db, Logger: mqtttest.Logger(t)})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 100 {
		h.OnRetainedExpired(fmt.Sprintf("t/%d", i)) // queued, not waited for
	}
	h.w.enqueue(op{kind: opPut, bucket: bucketRetained, key: []byte("kept"), value: []byte("{}"), what: "test"})
	if err := h.Stop(); err != nil {
		t.Fatal(err)
	}
	if got := keys(t, db, bucketRetained); !slices.Equal(got, []string{"kept"}) {
		t.Fatalf("retained keys %q after Stop", got)
	}
	// Late events are still written, by their caller.
	h.OnRetainedExpired("kept")
	if got := keys(t, db, bucketRetained); len(got) != 0 {
		t.Fatalf("retained keys %q after a late delete", got)
	}
}

func TestKeys(t *testing.T) {
	k := inflightKey("client", 0x0100)
	id, pid, ok := splitInflightKey(k)
	if !ok || id != "client" || pid != 0x0100 {
		t.Errorf("splitInflightKey = %q, %#x, %v", id, pid, ok)
	}
	if id, ok := splitSubscriptionKey(subscriptionKey("c", "a/b/#")); !ok || id != "c" {
		t.Errorf("splitSubscriptionKey = %q, %v", id, ok)
	}
	// One client's prefix is never another's: "a" must not cover "ab".
	if p := clientPrefix("a"); string(inflightKey("ab", 1)[:len(p)]) == string(p) {
		t.Error("prefix of a covers ab")
	}
}
