package persist

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"sync"

	"go.etcd.io/bbolt"
)

type opKind uint8

const (
	opPut          opKind = iota
	opDelete              // delete key
	opDeletePrefix        // delete every key starting with key
	opAppend              // put value under the bucket's next sequence; the key is reported in op.seq
)

// op is one store write. what names it in error logs.
type op struct {
	kind   opKind
	bucket []byte
	key    []byte
	value  []byte
	what   string
	seq    uint64 // opAppend: the sequence it was stored under, once committed
}

// batch is the set of ops one transaction commits.
type batch struct {
	ops    []op
	done   chan struct{} // closed once the commit was attempted
	err    error         // the commit failed: no op of the batch was stored
	failed map[int]error // ops that failed on their own (the rest committed)
}

func newBatch() *batch { return &batch{done: make(chan struct{})} }

// result reports whether ops [first, first+n) of a finished batch were stored.
func (b *batch) result(first, n int) error {
	<-b.done
	if b.err != nil {
		return b.err
	}
	for i := first; i < first+n; i++ {
		if err := b.failed[i]; err != nil {
			return err
		}
	}
	return nil
}

// writer commits ops in the order they were submitted. One goroutine takes
// everything submitted so far and commits it in one transaction; ops that
// arrive meanwhile wait for the next one. Nothing waits for a timer, so a
// lone writer pays one commit, and n concurrent writers share about one.
//
// bbolt's DB.Batch would also group commits, but it holds every batch for
// MaxBatchDelay (a process-wide setting, 10ms by default) and gives no order
// between calls from different goroutines; the hook needs the order.
type writer struct {
	db     *bbolt.DB
	log    *slog.Logger
	failed func(n uint64)

	mu      sync.Mutex
	next    *batch // accumulating; nil once stopped
	stopped bool

	kick   chan struct{}
	quit   chan struct{}
	exited chan struct{}
}

func newWriter(db *bbolt.DB, log *slog.Logger, failed func(n uint64)) *writer {
	w := &writer{
		db:     db,
		log:    log,
		failed: failed,
		next:   newBatch(),
		kick:   make(chan struct{}, 1),
		quit:   make(chan struct{}),
		exited: make(chan struct{}),
	}
	go w.run()
	return w
}

func (w *writer) run() {
	defer close(w.exited)
	for {
		select {
		case <-w.kick:
		case <-w.quit:
			w.mu.Lock()
			b := w.next
			w.next = nil
			w.mu.Unlock()
			w.commit(b)
			return
		}
		w.mu.Lock()
		b := w.next
		w.next = newBatch()
		w.mu.Unlock()
		w.commit(b)
	}
}

// submit queues ops and returns the batch they will be committed in and the
// index of the first of them. After stop it commits them itself.
func (w *writer) submit(ops ...op) (*batch, int) {
	w.mu.Lock()
	if w.stopped {
		w.mu.Unlock()
		b := newBatch()
		b.ops = ops
		w.commit(b)
		return b, 0
	}
	b := w.next
	first := len(b.ops)
	b.ops = append(b.ops, ops...)
	w.mu.Unlock()
	select {
	case w.kick <- struct{}{}:
	default: // a commit is already due and will include these ops
	}
	return b, first
}

// enqueue queues ops without waiting for them.
func (w *writer) enqueue(ops ...op) {
	if len(ops) > 0 {
		w.submit(ops...)
	}
}

// write queues ops and waits until they are committed.
func (w *writer) write(ops ...op) error {
	b, first := w.submit(ops...)
	return b.result(first, len(ops))
}

// append stores value under the next sequence of bucket and waits for the
// commit.
func (w *writer) append(bucket, value []byte, what string) (uint64, error) {
	b, i := w.submit(op{kind: opAppend, bucket: bucket, value: value, what: what})
	if err := b.result(i, 1); err != nil {
		return 0, err
	}
	return b.ops[i].seq, nil
}

// sync waits until everything submitted before it is committed.
func (w *writer) sync() error {
	b, _ := w.submit()
	<-b.done
	return b.err
}

func (w *writer) isStopped() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.stopped
}

// stop commits what is queued and ends the goroutine. Writes submitted
// later are committed by their caller.
func (w *writer) stop() error {
	w.mu.Lock()
	if w.stopped {
		w.mu.Unlock()
		return nil
	}
	w.stopped = true
	last := w.next
	w.mu.Unlock()
	close(w.quit)
	<-w.exited
	<-last.done
	return last.err
}

func (w *writer) commit(b *batch) {
	defer close(b.done)
	if len(b.ops) == 0 {
		return
	}
	err := w.db.Update(func(tx *bbolt.Tx) error {
		for i := range b.ops {
			if err := apply(tx, &b.ops[i]); err != nil {
				// bbolt validates a put or delete before it changes
				// anything, so one bad op does not spoil the others.
				if b.failed == nil {
					b.failed = make(map[int]error)
				}
				b.failed[i] = err
			}
		}
		return nil
	})
	if err != nil {
		b.err = err
		w.failed(uint64(len(b.ops)))
		w.log.Error("persist: commit failed, writes lost", "writes", len(b.ops), "what", summarize(b.ops), "error", err)
		return
	}
	for i, err := range b.failed {
		o := &b.ops[i]
		w.failed(1)
		w.log.Error("persist: write failed", "what", o.what, "bucket", string(o.bucket), "key", printableKey(o.key), "error", err)
	}
}

func apply(tx *bbolt.Tx, o *op) error {
	bk := tx.Bucket(o.bucket)
	if bk == nil {
		return fmt.Errorf("bucket %q missing", o.bucket)
	}
	switch o.kind {
	case opPut:
		return bk.Put(o.key, o.value)
	case opDelete:
		return bk.Delete(o.key)
	case opDeletePrefix:
		// Collect first: deleting under a cursor makes it skip keys.
		var keys [][]byte
		c := bk.Cursor()
		for k, _ := c.Seek(o.key); k != nil && bytes.HasPrefix(k, o.key); k, _ = c.Next() {
			keys = append(keys, bytes.Clone(k))
		}
		for _, k := range keys {
			if err := bk.Delete(k); err != nil {
				return err
			}
		}
		return nil
	case opAppend:
		seq, err := bk.NextSequence()
		if err != nil {
			return err
		}
		o.seq = seq
		return bk.Put(walKey(seq), o.value)
	default:
		return errors.New("unknown op")
	}
}

// summarize counts ops by what, for one log line per failed commit.
func summarize(ops []op) string {
	n := make(map[string]int)
	for _, o := range ops {
		n[o.what]++
	}
	parts := make([]string, 0, len(n))
	for what, c := range n {
		parts = append(parts, fmt.Sprintf("%s×%d", what, c))
	}
	sort.Strings(parts)
	return strings.Join(parts, ", ")
}

// printableKey shows a key with its 0x00 separator and binary packet ID or
// sequence escaped.
func printableKey(k []byte) string {
	return fmt.Sprintf("%q", k)
}
