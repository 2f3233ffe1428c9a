package reconcile

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"

	"github.com/shopspring/decimal"
)

// totals is an in-memory aggregation of Outputs, as the store would sum them.
type totals struct {
	counters map[CounterKey]Delta
	goals    map[string]GoalMeta
	tests    map[string]TestMeta
}

func newTotals() *totals {
	return &totals{counters: map[CounterKey]Delta{}, goals: map[string]GoalMeta{}, tests: map[string]TestMeta{}}
}

func (t *totals) merge(o *Output) {
	for k, d := range o.Counters {
		cur := t.counters[k]
		cur.Count += d.Count
		cur.Value = cur.Value.Add(d.Value)
		if cur.Count == 0 && cur.Value.IsZero() {
			delete(t.counters, k)
		} else {
			t.counters[k] = cur
		}
	}
	for name, g := range o.Goals {
		if m, ok := t.goals[name]; !ok || metaBefore(g.TS, g.ValueType, g.ValueFormat, m) {
			t.goals[name] = g
		}
	}
	for name, tm := range o.Tests {
		cur, ok := t.tests[name]
		if !ok {
			cur = TestMeta{Name: name, First: tm.First, Last: tm.Last}
		}
		cur.First = min(cur.First, tm.First)
		cur.Last = max(cur.Last, tm.Last)
		for _, p := range tm.Populations {
			if !slices.Contains(cur.Populations, p) {
				cur.Populations = append(cur.Populations, p)
			}
		}
		slices.Sort(cur.Populations)
		t.tests[name] = cur
	}
}

type filter struct {
	site      *int64
	rollup    string // "" → "all"
	bucket    *string
	test, pop string
}

func (t *totals) sum(kind Kind, goal string, f filter) (int64, decimal.Decimal) {
	rollup := f.rollup
	if rollup == "" {
		rollup = RollupAll
	}
	var n int64
	var v decimal.Decimal
	for k, d := range t.counters {
		if k.Kind != kind || k.Goal != goal || k.Rollup != rollup || k.Test != f.test || k.Population != f.pop {
			continue
		}
		if f.site != nil && k.Site != *f.site {
			continue
		}
		if f.bucket != nil && k.Bucket != *f.bucket {
			continue
		}
		n += d.Count
		v = v.Add(d.Value)
	}
	return n, v
}

// count implements count(goal[, test, population]) and count(test, population).
func (t *totals) count(goal string, f filter) int64 {
	switch {
	case goal == "":
		n, _ := t.sum(KindImpression, "", f)
		return n
	case f.test != "":
		n, _ := t.sum(KindVariantConversion, goal, f)
		return n
	}
	n, _ := t.sum(KindConversion, goal, f)
	return n
}

func (t *totals) value(goal string, f filter) decimal.Decimal {
	kind := KindConversion
	if f.test != "" {
		kind = KindVariantConversion
	}
	n, sum := t.sum(kind, goal, f)
	pv, _ := t.sum(kind, ViewedPage, f)
	return GoalValue(t.goals[goal].ValueType, sum, n, pv)
}

// dump renders totals canonically, for comparisons with readable diffs.
func (t *totals) dump() string {
	var lines []string
	for k, d := range t.counters {
		lines = append(lines, fmt.Sprintf("%v|%d|%q|%q|%q|%q|%q = %d %s", k.Kind, k.Site, k.Goal, k.Test, k.Population, k.Rollup, k.Bucket, d.Count, d.Value.String()))
	}
	for _, g := range t.goals {
		lines = append(lines, fmt.Sprintf("goal %q %q %q %d", g.Name, g.ValueType, g.ValueFormat, g.TS))
	}
	for _, tm := range t.tests {
		lines = append(lines, fmt.Sprintf("test %q %d %d %q", tm.Name, tm.First, tm.Last, tm.Populations))
	}
	slices.Sort(lines)
	return strings.Join(lines, "\n")
}

func sameTotals(t *testing.T, want, got *totals, what string) {
	t.Helper()
	w, g := want.dump(), got.dump()
	if w == g {
		return
	}
	wl, gl := strings.Split(w, "\n"), strings.Split(g, "\n")
	ws, gs := map[string]bool{}, map[string]bool{}
	for _, l := range wl {
		ws[l] = true
	}
	for _, l := range gl {
		gs[l] = true
	}
	var diff []string
	for _, l := range slices.Sorted(maps.Keys(ws)) {
		if !gs[l] {
			diff = append(diff, "- "+l)
		}
	}
	for _, l := range slices.Sorted(maps.Keys(gs)) {
		if !ws[l] {
			diff = append(diff, "+ "+l)
		}
	}
	if len(diff) > 20 {
		diff = diff[:20]
	}
	t.Fatalf("%s: totals differ (%d vs %d lines):\n%s", what, len(wl), len(gl), strings.Join(diff, "\n"))
}
