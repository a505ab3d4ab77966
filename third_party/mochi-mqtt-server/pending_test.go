// Tests of the edgegate patch "pending" (PATCHES.md): a QoS 1/2 packet that
// cannot be handed to a client's write loop at once is kept, in order, and
// sent later instead of being dropped.

package mqtt

import (
	"net"
	"strconv"
	"sync/atomic"
	"testing"

	"github.com/mochi-mqtt/server/v2/packets"
	"github.com/mochi-mqtt/server/v2/system"

	"github.com/stretchr/testify/require"
)

// newPendingClient is a client on a synchronous pipe (a write blocks until
// the test reads it), with a write queue of queue packets, the given send
// quota (0: the client set no receive maximum), and no write loop yet.
func newPendingClient(s *Server, queue int32, sendQuota int32) (cl *Client, r net.Conn) {
	r, w := net.Pipe()
	cl = newClient(w, &ops{
		info:  new(system.Info),
		hooks: new(Hooks),
		log:   logger,
		options: &Options{
			Capabilities: &Capabilities{
				MaximumInflight:            1000,
				MaximumClientWritesPending: queue,
				maximumPacketID:            65535,
			},
			ClientNetWriteBufferSize: 2048,
		},
	})
	cl.ID = "slow"
	cl.State.Inflight.ResetSendQuota(sendQuota)
	s.Clients.Add(cl)
	return cl, r
}

// publishQos1 publishes payload to cl as a QoS 1 message and returns its
// packet id.
func publishQos1(t *testing.T, s *Server, cl *Client, payload string) uint16 {
	t.Helper()
	pk := packets.Packet{
		FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: 1},
		TopicName:   "a/b",
		Payload:     []byte(payload),
	}
	out, err := s.publishToClient(cl, packets.Subscription{Filter: "a/b", Qos: 1}, pk)
	require.NoError(t, err)
	return out.PacketID
}

// publishReader reads the packets a client was sent from the other end of
// its pipe.
type publishReader struct {
	t  *testing.T
	rc *Client
}

func newPublishReader(t *testing.T, r net.Conn) *publishReader {
	return &publishReader{t: t, rc: newClient(r, &ops{info: new(system.Info), hooks: new(Hooks), log: logger,
		options: &Options{Capabilities: NewDefaultServerCapabilities(), ClientNetReadBufferSize: 1024}})}
}

// next reads the next packet, which must be a PUBLISH.
func (p *publishReader) next() packets.Packet {
	p.t.Helper()
	fh := new(packets.FixedHeader)
	require.NoError(p.t, p.rc.ReadFixedHeader(fh))
	pk, err := p.rc.ReadPacket(fh)
	require.NoError(p.t, err)
	require.Equal(p.t, packets.Publish, pk.FixedHeader.Type)
	return pk
}

func TestPendingInOrderWhenWriteQueueFull(t *testing.T) {
	s := newServer()
	cl, r := newPendingClient(s, 2, 0)
	defer r.Close()
	rd := newPublishReader(t, r)

	// No write loop: two packets fill the queue, the rest are pending.
	for i := 1; i <= 6; i++ {
		publishQos1(t, s, cl, strconv.Itoa(i))
	}
	require.Equal(t, 2, len(cl.State.outbound))
	require.Equal(t, 4, cl.State.Inflight.PendingLen())
	require.Equal(t, 6, cl.State.Inflight.Len())
	require.Equal(t, int64(0), atomic.LoadInt64(&s.Info.MessagesDropped))

	go cl.WriteLoop()
	defer cl.Stop(nil)
	require.Equal(t, "1", string(rd.next().Payload))

	// The queue has room now, but older packets may still be pending: a
	// new one must not overtake them.
	publishQos1(t, s, cl, "7")
	for i := 2; i <= 7; i++ {
		pk := rd.next()
		require.Equal(t, strconv.Itoa(i), string(pk.Payload))
		require.False(t, pk.FixedHeader.Dup)
	}

	// All still await their PUBACK; nothing is pending or dropped.
	require.Equal(t, 7, cl.State.Inflight.Len())
	require.Equal(t, 0, cl.State.Inflight.PendingLen())
	require.Equal(t, int64(0), atomic.LoadInt64(&s.Info.MessagesDropped))
}

func TestPendingQos0DroppedWhenWriteQueueFull(t *testing.T) {
	s := newServer()
	cl, r := newPendingClient(s, 1, 0)
	defer r.Close()

	publishQos1(t, s, cl, "queued")
	publishQos1(t, s, cl, "pending")
	_, err := s.publishToClient(cl, packets.Subscription{Filter: "a/b"}, packets.Packet{
		FixedHeader: packets.FixedHeader{Type: packets.Publish}, TopicName: "a/b", Payload: []byte("qos0"),
	})
	require.ErrorIs(t, err, packets.ErrPendingClientWritesExceeded)
	require.Equal(t, int64(1), atomic.LoadInt64(&s.Info.MessagesDropped))
	require.Equal(t, 1, cl.State.Inflight.PendingLen())
}

func TestPendingRespectsSendQuota(t *testing.T) {
	s := newServer()
	cl, r := newPendingClient(s, 10, 2)
	defer r.Close()
	rd := newPublishReader(t, r)

	var ids []uint16
	for i := 1; i <= 4; i++ {
		ids = append(ids, publishQos1(t, s, cl, strconv.Itoa(i)))
	}
	// The client's receive maximum is 2: two are queued, two wait.
	require.Equal(t, 2, len(cl.State.outbound))
	require.Equal(t, 2, cl.State.Inflight.PendingLen())
	require.Equal(t, int32(0), atomic.LoadInt32(&cl.State.Inflight.sendQuota))

	go cl.WriteLoop()
	defer cl.Stop(nil)
	require.Equal(t, "1", string(rd.next().Payload))
	require.Equal(t, "2", string(rd.next().Payload))
	require.Equal(t, 2, cl.State.Inflight.PendingLen()) // no quota, so not taken

	// Each PUBACK frees one unit of quota and lets the next one go.
	for k, want := range []string{"3", "4"} {
		go func() {
			_ = s.processPacket(cl, packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Puback}, PacketID: ids[k]})
		}()
		require.Equal(t, want, string(rd.next().Payload))
	}
	require.Equal(t, 0, cl.State.Inflight.PendingLen())
	require.Equal(t, 2, cl.State.Inflight.Len())
}

func TestPendingDeleted(t *testing.T) {
	s := newServer()
	cl, r := newPendingClient(s, 1, 0)
	defer r.Close()

	rd := newPublishReader(t, r)
	publishQos1(t, s, cl, "queued")
	a := publishQos1(t, s, cl, "a")
	publishQos1(t, s, cl, "b")
	require.Equal(t, 2, cl.State.Inflight.PendingLen())

	// Expired or cleared: no longer sent. A clone (session takeover) has no
	// pending marks, as its connection resends everything.
	require.True(t, cl.State.Inflight.Delete(a))
	require.Equal(t, 1, cl.State.Inflight.PendingLen())
	require.Equal(t, 0, cl.State.Inflight.Clone().PendingLen())

	go cl.WriteLoop()
	defer cl.Stop(nil)
	require.Equal(t, "queued", string(rd.next().Payload))
	require.Equal(t, "b", string(rd.next().Payload))
}

func TestInflightPendingFIFO(t *testing.T) {
	i := NewInflights()
	for _, id := range []uint16{3, 1, 2, 4} {
		i.Set(packets.Packet{PacketID: id})
		i.Lock()
		i.addPending(id)
		i.addPending(id) // once only
		i.Unlock()
	}
	require.Equal(t, 4, i.PendingLen())
	require.True(t, i.Delete(2))
	require.Equal(t, 3, i.PendingLen())

	i.Lock()
	defer i.Unlock()
	var got []uint16
	for {
		pk, ok := i.popPending()
		if !ok {
			break
		}
		got = append(got, pk.PacketID)
	}
	require.Equal(t, []uint16{3, 1, 4}, got)
	require.Equal(t, int32(0), atomic.LoadInt32(&i.pendingLen))
}

func TestPendingNotOvertakenByTopicAliasOnly(t *testing.T) {
	s := newServer()
	cl, r := newPendingClient(s, 10, 1)
	defer r.Close()
	cl.Properties.ProtocolVersion = 5
	cl.Properties.Props.TopicAliasMaximum = 5
	cl.State.TopicAliases.Outbound = NewOutboundTopicAliases(5)

	// The first carries the topic name and alias 1; the second, alias 1
	// only, waits for send quota.
	publishQos1(t, s, cl, "1")
	publishQos1(t, s, cl, "2")
	require.Equal(t, 1, cl.State.Inflight.PendingLen())

	qos0 := func(topic string) error {
		_, err := s.publishToClient(cl, packets.Subscription{Filter: topic}, packets.Packet{
			FixedHeader: packets.FixedHeader{Type: packets.Publish}, TopicName: topic, Payload: []byte("qos0"),
		})
		return err
	}
	// Alias 1 only: it must not be written before the pending message. A
	// new topic carries its name and may go ahead.
	require.ErrorIs(t, qos0("a/b"), packets.ErrPendingClientWritesExceeded)
	require.NoError(t, qos0("c/d"))
	require.Equal(t, int64(1), atomic.LoadInt64(&s.Info.MessagesDropped))
	require.Equal(t, 2, len(cl.State.outbound))
}
