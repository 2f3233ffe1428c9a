// Package reconcile is the pure visitor-reconciliation engine: given a
// visitor's state and its next record it updates the state and emits counter
// deltas. No Kafka, no ClickHouse, no clock, no randomness.
package reconcile

import (
	"github.com/shopspring/decimal"
)

// ViewedPage is the built-in goal every counted page view converts.
const ViewedPage = "viewed page"

// Rollup kinds.
const (
	RollupAll     = "all"
	RollupHour    = "hour"
	RollupDay     = "day"
	RollupWeek    = "week"
	RollupMonth   = "month"
	RollupBrowser = "browser"
)

// Rollup is one configured rollup: every count is kept per rollup and bucket.
type Rollup struct {
	Name     string `mapstructure:"name" json:"name" yaml:"name"`
	Kind     string `mapstructure:"kind" json:"kind" yaml:"kind"`
	Timezone string `mapstructure:"timezone" json:"timezone,omitempty" yaml:"timezone"`
}

// ComplexGoal converts when the include set is complete and no exclude goal
// has been reached.
type ComplexGoal struct {
	Name    string   `mapstructure:"name" json:"name" yaml:"name"`
	Include []string `mapstructure:"include" json:"include" yaml:"include"`
	Exclude []string `mapstructure:"exclude" json:"exclude" yaml:"exclude"`
}

// Config configures an Engine. An empty Rollups list means just {all, all}.
type Config struct {
	Rollups      []Rollup
	ComplexGoals []ComplexGoal
}

// Kind is the kind of a counter row.
type Kind uint8

// Counter kinds. KindOffset is written by the store only (the telescoping
// per-partition offset mark), never by the engine.
const (
	KindConversion        Kind = iota + 1 // "conversion"
	KindImpression                        // "impression"
	KindVariantConversion                 // "variant_conversion"
	KindOffset                            // "offset"
)

// String returns the name stored in ClickHouse.
func (k Kind) String() string {
	switch k {
	case KindConversion:
		return "conversion"
	case KindImpression:
		return "impression"
	case KindVariantConversion:
		return "variant_conversion"
	case KindOffset:
		return "offset"
	}
	return "unknown"
}

// CounterKey identifies one counter. Conversion: Goal set, Test and
// Population empty. Impression: Test and Population set, Goal empty.
// VariantConversion: all three set.
type CounterKey struct {
	Kind       Kind
	Site       int64
	Goal       string
	Test       string
	Population string
	Rollup     string
	Bucket     string
}

// Delta is the change of one counter: Count visitors (may be negative for a
// complex goal taken back) and Value, the exact sum of goal values.
type Delta struct {
	Count int64
	Value decimal.Decimal
}

// GoalMeta is a goal's value type and format, from its first conversion seen
// (TS, Unix microseconds, orders "first" across batches: keep the one with the
// smallest TS).
type GoalMeta struct {
	Name        string
	ValueType   string
	ValueFormat string
	TS          int64
}

// TestMeta is what a batch saw of a split test: first and last impression
// time (Unix microseconds) and the populations.
type TestMeta struct {
	Name        string
	First       int64
	Last        int64
	Populations []string // sorted, distinct
}

// Output accumulates the effects of applying records: counter deltas summed
// per key, goal and test metadata merged. Reset it after each flush.
type Output struct {
	Counters map[CounterKey]*Delta
	Goals    map[string]GoalMeta
	Tests    map[string]*TestMeta
}

// The rest of the contract, implemented in this package:
//
//	func New(cfg Config) (*Engine, error)    // validates rollups (kind, IANA zone), complex goals
//	func NewOutput() *Output
//	func (o *Output) Reset()
//	func NewState() *State
//	func (s *State) MarshalBinary() ([]byte, error)
//	func (s *State) UnmarshalBinary(data []byte) error   // errors on truncated/corrupt input, never panics
//	// Apply applies one record, in offset order, to the visitor's state. When
//	// counted is false (replay below the partition's hw_c mark) the state is
//	// updated exactly as usual but no counter deltas are added to out (goal and
//	// test metadata may still be). It reports whether st changed.
//	func (e *Engine) Apply(st *State, ev *event.Event, counted bool, out *Output) (changed bool)
//	// GoalValue is the query rule for value(goal): no value type → count;
//	// S → sum; A → sum ÷ conversions; I, R → sum ÷ pageViews; 0 when dividing by 0.
//	func GoalValue(valueType string, sum decimal.Decimal, conversions, pageViews int64) decimal.Decimal
//
// Cache (write-back LRU over hashicorp/golang-lru/v2), one per partition worker:
//
//	func NewCache(size int) (*Cache, error)
//	func (c *Cache) Get(vid string) (*State, bool)
//	func (c *Cache) Add(vid string, st *State)        // a clean state (new or loaded from the store)
//	func (c *Cache) MarkDirty(vid string)             // st changed; must not be evicted until flushed
//	func (c *Cache) Missing(vids []string) []string   // distinct ids not cached, sorted
//	func (c *Cache) Dirty() []DirtyState              // {VID string; State *State}, in no order
//	func (c *Cache) MarkFlushed()                     // all dirty → clean; evicts back down to size
//	func (c *Cache) Len() int
