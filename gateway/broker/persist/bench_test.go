package persist

import (
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
	"go.etcd.io/bbolt"
)

// BenchmarkQoS1PublishPersist measures what the write-ahead log costs a
// QoS 1 publish: OnPublish (commit before the PUBACK) and OnPublished
// (deletion, committed with a later batch). The database syncs every commit,
// as in production. commits/op below 1 in the parallel runs is the group
// commit: publishers arriving while a commit syncs share the next one.
func BenchmarkQoS1PublishPersist(b *testing.B) {
	for _, publishers := range []int{1, 16, 64} {
		b.Run(fmt.Sprintf("publishers=%d", publishers), func(b *testing.B) {
			db, err := bbolt.Open(filepath.Join(b.TempDir(), "bench.db"), 0o600, &bbolt.Options{Timeout: time.Second})
			if err != nil {
				b.Fatal(err)
			}
			defer db.Close()
			log := slog.New(slog.NewTextHandler(io.Discard, nil))
			h, err := New(Options{DB: db, Logger: log})
			if err != nil {
				b.Fatal(err)
			}
			srv := mqtt.New(&mqtt.Options{Logger: log})
			payload := make([]byte, 64)
			var next atomic.Int64

			startTx := txID(b, db)
			// RunParallel starts parallelism × GOMAXPROCS goroutines.
			b.SetParallelism(max(1, publishers/runtime.GOMAXPROCS(0)))
			b.ReportAllocs()
			b.ResetTimer()
			run := func(pb interface{ Next() bool }) {
				cl := srv.NewClient(nil, "bench", fmt.Sprintf("pub-%d", next.Add(1)), false)
				cl.Properties.ProtocolVersion = 4
				var id uint16
				for pb.Next() {
					id++
					if id == 0 {
						id = 1
					}
					pk := packets.Packet{
						FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: 1},
						TopicName:   "sensors/bench",
						Payload:     payload,
						PacketID:    id,
						Origin:      cl.ID,
						Created:     time.Now().Unix(),
					}
					if _, err := h.OnPublish(cl, pk); err != nil {
						b.Error(err)
						return
					}
					h.OnPublished(cl, pk)
				}
			}
			if publishers == 1 {
				run(&serial{n: b.N})
			} else {
				b.RunParallel(func(pb *testing.PB) { run(pb) })
			}
			if err := h.Stop(); err != nil {
				b.Fatal(err)
			}
			b.StopTimer()
			b.ReportMetric(float64(txID(b, db)-startTx)/float64(b.N), "commits/op")
			if n := h.Errors(); n != 0 {
				b.Fatalf("%d store errors", n)
			}
		})
	}
}

type serial struct{ n int }

func (s *serial) Next() bool { s.n--; return s.n >= 0 }

func txID(b *testing.B, db *bbolt.DB) int {
	var id int
	if err := db.View(func(tx *bbolt.Tx) error { id = tx.ID(); return nil }); err != nil {
		b.Fatal(err)
	}
	return id
}
