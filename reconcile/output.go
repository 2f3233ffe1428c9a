package reconcile

import (
	"slices"

	"github.com/shopspring/decimal"
)

// NewOutput returns an empty Output.
func NewOutput() *Output {
	return &Output{
		Counters: map[CounterKey]*Delta{},
		Goals:    map[string]GoalMeta{},
		Tests:    map[string]*TestMeta{},
	}
}

// Reset empties o for the next batch, keeping its maps' memory.
func (o *Output) Reset() {
	clear(o.Counters)
	clear(o.Goals)
	clear(o.Tests)
}

// add records one conversion: +1 visitor when isNew, plus the value.
func (o *Output) add(k CounterKey, isNew bool, v decimal.Decimal, hasValue bool) {
	d := o.Counters[k]
	if d == nil {
		d = &Delta{}
		o.Counters[k] = d
	}
	if isNew {
		d.Count++
	}
	if hasValue {
		if d.Value == (decimal.Decimal{}) {
			d.Value = v // decimals are immutable: share, don't allocate
		} else {
			d.Value = d.Value.Add(v)
		}
	}
}

func (o *Output) addCount(k CounterKey, n int64) {
	d := o.Counters[k]
	if d == nil {
		d = &Delta{}
		o.Counters[k] = d
	}
	d.Count += n
}

// goalMeta keeps the metadata of the earliest conversion; ties go to the
// smaller (type, format) so the result never depends on arrival order.
func (o *Output) goalMeta(name, vt, vf string, ts int64) {
	if m, ok := o.Goals[name]; ok && !metaBefore(ts, vt, vf, m) {
		return
	}
	o.Goals[name] = GoalMeta{Name: name, ValueType: vt, ValueFormat: vf, TS: ts}
}

func metaBefore(ts int64, vt, vf string, m GoalMeta) bool {
	if ts != m.TS {
		return ts < m.TS
	}
	if vt != m.ValueType {
		return vt < m.ValueType
	}
	return vf < m.ValueFormat
}

// MergeGoal merges m into o.Goals with the same earliest-wins rule the engine
// uses, for callers combining metadata from several sources.
func (o *Output) MergeGoal(m GoalMeta) {
	o.goalMeta(m.Name, m.ValueType, m.ValueFormat, m.TS)
}

func (o *Output) testMeta(test, pop string, ts int64) {
	t := o.Tests[test]
	if t == nil {
		o.Tests[test] = &TestMeta{Name: test, First: ts, Last: ts, Populations: []string{pop}}
		return
	}
	t.First = min(t.First, ts)
	t.Last = max(t.Last, ts)
	if i, found := slices.BinarySearch(t.Populations, pop); !found {
		t.Populations = slices.Insert(t.Populations, i, pop)
	}
}

// GoalValue is the query rule for value(goal): no value type → the count;
// S → sum; A → sum ÷ conversions; I, R → sum ÷ page views; 0 when dividing
// by 0.
func GoalValue(valueType string, sum decimal.Decimal, conversions, pageViews int64) decimal.Decimal {
	switch valueType {
	case "S":
		return sum
	case "A":
		if conversions == 0 {
			return decimal.Zero
		}
		return sum.Div(decimal.NewFromInt(conversions))
	case "I", "R":
		if pageViews == 0 {
			return decimal.Zero
		}
		return sum.Div(decimal.NewFromInt(pageViews))
	}
	return decimal.NewFromInt(conversions)
}
