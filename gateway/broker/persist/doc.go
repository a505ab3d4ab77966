// Package persist keeps the MQTT broker's state in the process's one bbolt
// database: sessions, their subscriptions and queued QoS 1/2 messages,
// retained messages and the $SYS counters. It is a mochi-mqtt hook that
// replaces mochi's bolt hook, which opens its own file and drops write
// errors; here every failed store operation is logged at error level and
// counted in [Hook.Errors].
//
// # Writes
//
// All writes go through one ordered queue that a single goroutine commits
// in bbolt transactions. Whatever was queued while the previous commit was
// syncing goes into the next one, so concurrent publishers and subscribers
// share commits (group commit) without waiting for a timer. Events whose
// effect only has to become durable eventually (a queued message for a
// subscriber, a PUBACK that removes one, a new subscription) enqueue and
// return; the two that must be durable before mochi carries on wait for
// their commit: the write-ahead log entry of a QoS 1/2 publish and a
// retained message. Because the queue has one order, a write is never
// committed after a write that was queued later — which is what lets the
// write-ahead log entry be removed without waiting for anything.
//
// # Write-ahead log
//
// mochi acknowledges a QoS 1/2 publish (PUBACK/PUBREC) before it fans the
// message out to the subscribers' queues. OnPublish, which runs before the
// acknowledgement, therefore commits the message to the write-ahead log;
// OnPublished, after the fan-out, queues its removal behind the
// subscribers' queue records. [Hook.Replay], called once after the server
// started, publishes again whatever a crash left in the log. If the log
// cannot be written the publish is refused (MQTT 5 QoS 1: PUBACK with
// reason 0x80; otherwise no acknowledgement, so the client sends it again):
// the broker never acknowledges a message it could not make durable.
//
// # What a crash or a power cut can lose
//
// bbolt syncs every commit to disk before it returns, so a process crash
// (kill -9) and a power cut lose the same thing: what was not yet
// committed. The database file itself stays consistent in both cases.
//
//   - A QoS 1/2 message acknowledged to its publisher is not lost. Its log
//     entry was committed before the acknowledgement; after a restart it is
//     in every persistent subscriber's queue, or it is still in the log and
//     Replay publishes it again, so some subscribers may get it twice.
//     QoS 1 is at-least-once anyway; after a crash QoS 2 is at-least-once too.
//   - A QoS 1/2 message not yet acknowledged can be lost; its publisher still
//     holds it and sends it again.
//   - QoS 0 messages are never stored.
//   - A retained message, and the removal of one, is durable once its
//     OnRetainMessage write committed, which mochi does before it
//     acknowledges the publish. Replay publishes with the retain flag cleared:
//     the retained store is already right and a replay must not overwrite a
//     newer retained message.
//   - Delivery progress can be lost: a message whose PUBACK arrived in the
//     last few milliseconds before the crash is delivered again (DUP).
//   - Session changes from those last milliseconds (a new subscription, a
//     new session) can be lost; the client's CONNACK/SUBACK had been sent.
//   - $SYS counters are saved at most once a minute and on Stop.
//
// This holds only if a commit really reaches stable storage: with bbolt's
// NoSync (tests) or a disk that acknowledges flushes it has not done, a
// power cut can lose committed data (a process crash still cannot, as the
// kernel's page cache survives it).
//
// # Bounded queues
//
// A persistent session's queue is mochi's inflight map, whose length mochi
// bounds with Capabilities.MaximumInflight. The hook adds a bound on the
// queued payload bytes and enforces both bounds itself before mochi queues a
// message, in OnSelectSubscribers, so that every message it drops is
// reported through Options.OnDrop. mochi only calls OnSelectSubscribers
// when a shared subscription matches the topic; [Hook.Attach] therefore
// installs one that matches every topic and is removed again before
// delivery.
package persist
