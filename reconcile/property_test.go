package reconcile

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/manhattan-go/manhattan/event"
)

var propConfig = Config{
	Rollups: []Rollup{
		{Name: "all", Kind: RollupAll},
		{Name: "h", Kind: RollupHour, Timezone: "Asia/Kolkata"},
		{Name: "d", Kind: RollupDay, Timezone: "America/Los_Angeles"},
		{Name: "w", Kind: RollupWeek, Timezone: "Europe/Berlin"},
		{Name: "m", Kind: RollupMonth, Timezone: "UTC"},
		{Name: "b", Kind: RollupBrowser},
	},
	ComplexGoals: []ComplexGoal{
		{Name: "cart abandoned", Include: []string{"cart"}, Exclude: []string{"buy"}},
		{Name: "engaged", Include: []string{"signup", ViewedPage}, Exclude: []string{"refund", "buy"}},
	},
}

var (
	propUAs = []string{
		"",
		"Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Safari/537.36",
		"Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:128.0) Gecko/20100101 Firefox/128.0",
		"Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1",
	}
	propGoals  = []string{"cart", "buy", "signup", "refund", "newsletter"}
	propValues = []string{"", "", "1", "2.50", "-0.75", "1000000.000001"}
	propTests  = []string{"cta", "price", "layout"}
	propPops   = []string{"True", "False", "a"}
)

// stream is a random multi-visitor record stream in offset order.
type stream struct {
	evs []event.Event
}

// genStream builds nVisitors visitors' streams and interleaves them.
func genStream(r *rand.Rand, nVisitors, perVisitor int) (per [][]event.Event) {
	// Start near a DST change in the configured zones (2026-03-08 US, 03-29 EU).
	start := int64(1772800000) * 1_000_000
	for v := 0; v < nVisitors; v++ {
		vid := fmt.Sprintf("v%03d", v)
		site := int64(r.IntN(2))
		ts := start + r.Int64N(40*24*3600*1_000_000)
		bot := r.IntN(4) == 0
		n := 1 + r.IntN(perVisitor)
		var evs []event.Event
		for i := 0; i < n; i++ {
			// Mostly small steps, sometimes hours or days.
			switch r.IntN(10) {
			case 0:
				ts += r.Int64N(3 * 24 * 3600 * 1_000_000)
			case 1, 2:
				ts += r.Int64N(2 * 3600 * 1_000_000)
			default:
				ts += r.Int64N(60 * 1_000_000)
			}
			ev := event.Event{TS: ts, VID: vid, SiteID: site}
			switch k := r.IntN(20); {
			case k < 9:
				ev.Type = event.TypePage
				ev.URL, ev.Method = "/", "GET"
				ev.UserAgent = propUAs[r.IntN(len(propUAs))]
			case k < 14:
				ev.Type = event.TypeGoal
				ev.Name = propGoals[r.IntN(len(propGoals))]
				ev.Value = propValues[r.IntN(len(propValues))]
				if ev.Value != "" {
					ev.ValueType = []string{"S", "A", "I", "R"}[r.IntN(4)]
					ev.ValueFormat = "N"
				}
			case k < 18:
				ev.Type = event.TypeSplit
				ev.Test = propTests[r.IntN(len(propTests))]
				ev.Selected = propPops[r.IntN(len(propPops))]
			default:
				if bot {
					ev.Type = event.TypePage
				} else {
					ev.Type = event.TypePixel
				}
			}
			evs = append(evs, ev)
		}
		per = append(per, evs)
	}
	return per
}

func interleave(r *rand.Rand, per [][]event.Event) []event.Event {
	idx := make([]int, len(per))
	var live []int
	total := 0
	for i, p := range per {
		if len(p) > 0 {
			live = append(live, i)
			total += len(p)
		}
	}
	out := make([]event.Event, 0, total)
	for len(live) > 0 {
		j := r.IntN(len(live))
		v := live[j]
		out = append(out, per[v][idx[v]])
		idx[v]++
		if idx[v] == len(per[v]) {
			live = append(live[:j], live[j+1:]...)
		}
	}
	return out
}

// run applies evs[from:to] to states, counted at and above mark, into tot.
func run(t *testing.T, eng *Engine, states map[string]*State, evs []event.Event, from, to, mark int, tot *totals) {
	t.Helper()
	out := NewOutput()
	for i := from; i < to; i++ {
		ev := &evs[i]
		st := states[ev.VID]
		if st == nil {
			st = NewState()
			states[ev.VID] = st
		}
		eng.Apply(st, ev, i >= mark, out)
		if i%37 == 0 { // flush in batches, as the consumer does
			tot.merge(out)
			out.Reset()
		}
	}
	tot.merge(out)
}

// roundTrip serializes and decodes every state.
func roundTrip(t *testing.T, states map[string]*State) map[string]*State {
	t.Helper()
	out := make(map[string]*State, len(states))
	for vid, st := range states {
		b, err := st.MarshalBinary()
		if err != nil {
			t.Fatalf("marshal %s: %v", vid, err)
		}
		ns := NewState()
		if err := ns.UnmarshalBinary(b); err != nil {
			t.Fatalf("unmarshal %s: %v", vid, err)
		}
		b2, _ := ns.MarshalBinary()
		if string(b) != string(b2) {
			t.Fatalf("state of %s does not re-encode identically", vid)
		}
		out[vid] = ns
	}
	return out
}

func onePass(t *testing.T, eng *Engine, evs []event.Event) *totals {
	tot := newTotals()
	run(t, eng, map[string]*State{}, evs, 0, len(evs), 0, tot)
	return tot
}

const propSeeds = 5

func TestPropertySplitResume(t *testing.T) {
	eng, err := New(propConfig)
	if err != nil {
		t.Fatal(err)
	}
	for seed := uint64(1); seed <= propSeeds; seed++ {
		r := rand.New(rand.NewPCG(seed, 42))
		evs := interleave(r, genStream(r, 30, 60))
		want := onePass(t, eng, evs)
		if len(want.counters) == 0 {
			t.Fatal("generator produced no counters")
		}
		for trial := 0; trial < 5; trial++ {
			cut := r.IntN(len(evs) + 1)
			states := map[string]*State{}
			got := newTotals()
			run(t, eng, states, evs, 0, cut, 0, got)
			states = roundTrip(t, states)
			run(t, eng, states, evs, cut, len(evs), 0, got)
			sameTotals(t, want, got, fmt.Sprintf("seed %d cut %d/%d", seed, cut, len(evs)))
		}
	}
}

func TestPropertyInterleaving(t *testing.T) {
	eng, err := New(propConfig)
	if err != nil {
		t.Fatal(err)
	}
	for seed := uint64(1); seed <= propSeeds; seed++ {
		r := rand.New(rand.NewPCG(seed, 7))
		per := genStream(r, 30, 60)
		var seq []event.Event
		for _, p := range per {
			seq = append(seq, p...)
		}
		want := onePass(t, eng, seq)
		for trial := 0; trial < 5; trial++ {
			got := onePass(t, eng, interleave(r, per))
			sameTotals(t, want, got, fmt.Sprintf("seed %d interleaving %d", seed, trial))
		}
	}
}

// TestPropertyReplay is DESIGN's recovery rule: states were flushed at s,
// counters up to c ≥ s; after a crash the worker reloads the states of s and
// replays from s, dropping deltas below c.
func TestPropertyReplay(t *testing.T) {
	eng, err := New(propConfig)
	if err != nil {
		t.Fatal(err)
	}
	for seed := uint64(1); seed <= propSeeds; seed++ {
		r := rand.New(rand.NewPCG(seed, 99))
		evs := interleave(r, genStream(r, 30, 60))
		want := onePass(t, eng, evs)
		for trial := 0; trial < 5; trial++ {
			s := r.IntN(len(evs) + 1)
			c := s + r.IntN(len(evs)-s+1)
			got := newTotals()
			states := map[string]*State{}
			run(t, eng, states, evs, 0, s, 0, got)
			saved := roundTrip(t, states)
			run(t, eng, states, evs, s, c, 0, got) // counted, then lost states
			run(t, eng, saved, evs, s, len(evs), c, got)
			sameTotals(t, want, got, fmt.Sprintf("seed %d s=%d c=%d n=%d", seed, s, c, len(evs)))
		}
	}
}

// TestChangedIsExact: Apply reports a change whenever the serialized state
// changed (a cache must write such a state back), and reports none for
// records that leave it as it was (repeated pages in one hour, etc.).
func TestChangedIsExact(t *testing.T) {
	eng, err := New(propConfig)
	if err != nil {
		t.Fatal(err)
	}
	r := rand.New(rand.NewPCG(5, 5))
	evs := interleave(r, genStream(r, 20, 80))
	states := map[string]*State{}
	out := NewOutput()
	unchanged := 0
	for i := range evs {
		ev := &evs[i]
		st := states[ev.VID]
		if st == nil {
			st = NewState()
			states[ev.VID] = st
		}
		before, _ := st.MarshalBinary()
		changed := eng.Apply(st, ev, true, out)
		after, _ := st.MarshalBinary()
		if !changed && string(before) != string(after) {
			t.Fatalf("record %d (%v): state changed but Apply reported none", i, ev.Type)
		}
		if !changed {
			unchanged++
		}
	}
	if unchanged == 0 {
		t.Error("every record reported a change")
	}
}

// TestEngineShared: one Engine serves several partition workers at once
// (its bucket, value and user-agent memos are shared); run with -race.
func TestEngineShared(t *testing.T) {
	eng, err := New(propConfig)
	if err != nil {
		t.Fatal(err)
	}
	r := rand.New(rand.NewPCG(3, 3))
	per := genStream(r, 40, 40)
	want := onePass(t, eng, interleave(r, per))
	parts := [2][][]event.Event{per[:20], per[20:]}
	results := make([]*totals, 2)
	done := make(chan int)
	for p := range parts {
		go func() {
			// No t.Fatal off the test goroutine: run never fails for these.
			tot := newTotals()
			states, out := map[string]*State{}, NewOutput()
			for _, ev := range interleave(rand.New(rand.NewPCG(uint64(p), 1)), parts[p]) {
				st := states[ev.VID]
				if st == nil {
					st = NewState()
					states[ev.VID] = st
				}
				eng.Apply(st, &ev, true, out)
			}
			tot.merge(out)
			results[p] = tot
			done <- p
		}()
	}
	<-done
	<-done
	got := newTotals()
	for _, tot := range results {
		for k, d := range tot.counters {
			out := NewOutput()
			out.Counters[k] = &Delta{Count: d.Count, Value: d.Value}
			got.merge(out)
		}
		out := NewOutput()
		for n, g := range tot.goals {
			out.Goals[n] = g
		}
		for n, tm := range tot.tests {
			tm := tm
			out.Tests[n] = &tm
		}
		got.merge(out)
	}
	sameTotals(t, want, got, "two workers sharing an Engine")
}
