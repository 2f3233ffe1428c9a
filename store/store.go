// Package store keeps the pipeline's results in ClickHouse, over the native
// protocol (clickhouse://host:9000/db) or in-process through chDB
// (chdb:///path/to/dir), with the same DDL and SQL on both.
package store

import (
	"context"

	"github.com/shopspring/decimal"

	"github.com/manhattan-go/manhattan/event"
	"github.com/manhattan-go/manhattan/reconcile"
)

// Record is one Kafka record as stored in the events table. Event points
// at the decoded event rather than copying it: a flush holds tens of
// thousands of records.
type Record struct {
	Partition int32
	Offset    int64
	Event     *event.Event
}

// State is one serialized visitor state, valid up to Version (the next offset
// of its partition to read).
type State struct {
	VID     string
	Version int64
	Data    []byte
}

// Batch is everything one flush of one partition writes. From is the
// partition's previous mark (0 on first flush), To the new mark b: the next
// offset to read. The store adds the telescoping offset counter row (count
// To−From) to the counters insert and the partition sentinel (version To) to
// the states insert.
type Batch struct {
	Partition int32
	From, To  int64
	Records   []Record
	Counters  map[reconcile.CounterKey]*reconcile.Delta
	Goals     map[string]reconcile.GoalMeta
	Tests     map[string]*reconcile.TestMeta
	States    []State
}

// Marks are a partition's recovery marks: HWC = sum of its offset counter
// rows (counters are stored up to here), HWS = its sentinel state version
// (states are stored up to here). HWS ≤ HWC. Found is false when neither exists.
type Marks struct {
	HWC, HWS int64
	Found    bool
}

// CounterQuery selects counters; empty fields are not filtered on, except
// Rollup which defaults to "all". Site nil means every site.
type CounterQuery struct {
	Kind       reconcile.Kind
	Goal       string
	Test       string
	Population string
	Rollup     string
	Bucket     string
	// BucketSet filters on Bucket even when it is empty: the browser
	// rollup's bucket for an unknown or missing user agent is "".
	BucketSet bool
	Site      *int64
}

// Totals is a summed counter.
type Totals struct {
	Count int64
	Value decimal.Decimal
}

// BucketTotals is one point of a time series.
type BucketTotals struct {
	Bucket string
	Totals
}

// PopulationTotals is one population of a test.
type PopulationTotals struct {
	Population string
	Totals
}

// Store is what the consumer and the query API need. Both implementations
// (clickhouse://, chdb://) satisfy it.
type Store interface {
	// Migrate applies the DDL (idempotent; schema version table).
	Migrate(ctx context.Context) error
	Ping(ctx context.Context) error
	Close() error

	// Flush runs the four write steps in order: InsertEvents, InsertCounters,
	// UpsertMeta, InsertStates. Each step is exposed for crash tests.
	Flush(ctx context.Context, b *Batch) error
	InsertEvents(ctx context.Context, b *Batch) error
	InsertCounters(ctx context.Context, b *Batch) error // ONE insert: deltas + offset row
	UpsertMeta(ctx context.Context, b *Batch) error
	InsertStates(ctx context.Context, b *Batch) error // ONE insert: states + sentinel

	// Recovery reads.
	Marks(ctx context.Context, partition int32) (Marks, error)
	// LoadStates returns the newest stored state of each id (absent ids are
	// left out), in one query.
	LoadStates(ctx context.Context, vids []string) (map[string][]byte, error)

	// Query reads (parameterised, never string-built from input).
	Counter(ctx context.Context, q CounterQuery) (Totals, error)
	Series(ctx context.Context, q CounterQuery, fromBucket, toBucket string) ([]BucketTotals, error)
	Populations(ctx context.Context, q CounterQuery) ([]PopulationTotals, error) // impressions per population of q.Test, sorted
	Goals(ctx context.Context) ([]reconcile.GoalMeta, error)                     // sorted by name
	Goal(ctx context.Context, name string) (reconcile.GoalMeta, bool, error)
	Tests(ctx context.Context) ([]reconcile.TestMeta, error) // newest Last first
	Test(ctx context.Context, name string) (reconcile.TestMeta, bool, error)
}

// Open connects by URL: clickhouse://host:port/db?… or chdb:///path/to/dir.
// Implemented in open.go:
//
//	func Open(ctx context.Context, url string) (Store, error)
