// Package consumer runs the events topic through the reconciliation engine
// into the store as a Kafka consumer group (segmentio/kafka-go generations):
// one worker per assigned partition, counting exactly once across crashes,
// restarts and rebalances.
//
// A partition worker:
//
//   - recovers: reads the store's marks hw_c/hw_s, seeks to hw_s (with no
//     marks, to the group's committed offset or the earliest), and replays
//     records below hw_c with counting suppressed, so states catch up
//     without counting anything twice;
//   - fetches with kafka.Conn, one fetch request per batch, decodes each
//     record (a record that does not decode or validate, or whose key is not
//     its visitor id, goes to the dead-letter topic), loads the batch's
//     missing visitor states in one query and applies the engine in offset
//     order;
//   - flushes every FlushEvents records or FlushInterval, and before giving
//     the partition up: dead letters, then the store's four steps in order
//     (events, counters + offset mark, metadata, states + sentinel). The
//     counters insert is the one step that is not idempotent: it is fenced
//     (the stored hw_c must still be the batch's From) and never cancelled
//     midway; after a failure, a stored hw_c equal to To means it landed.
//     Each step is retried with capped exponential backoff while the store
//     is down; the batch is kept and nothing is committed past what is
//     stored. Then the offset is committed to the group, for lag tools.
//
// Processing is a pure function of (state, record): no wall clock or
// randomness reaches the store, and states with unflushed changes are never
// evicted from the cache.
package consumer
