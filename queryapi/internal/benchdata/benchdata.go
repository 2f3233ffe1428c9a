// Package benchdata generates a deterministic, realistic data set for the
// query API benchmarks: visitors with page views, pixels, two split tests and
// goals of every value type, run through the reconciliation engine and
// written with store.Flush exactly as the consumer writes.
package benchdata

import (
	"context"
	"encoding/hex"
	"fmt"
	"math/rand/v2"
	"strconv"

	"github.com/manhattan-go/manhattan/event"
	"github.com/manhattan-go/manhattan/reconcile"
	"github.com/manhattan-go/manhattan/store"
)

// Names in the data set.
const (
	TestCTA     = "cta colour"   // True / False
	TestPricing = "pricing page" // a / b / c
	GoalSignup  = "signup"
	GoalBuy     = "purchase"   // S, currency
	GoalRating  = "rating"     // A
	GoalPerVis  = "per visit"  // I
	GoalNews    = "newsletter" // no value
	Days        = 30
	Start       = int64(1764547200) // 2025-12-01T00:00:00Z
	Partitions  = 4
)

// Rollups used for the data set.
var Rollups = []reconcile.Rollup{
	{Name: "all", Kind: reconcile.RollupAll},
	{Name: "utc_day", Kind: reconcile.RollupDay, Timezone: "UTC"},
	{Name: "utc_hour", Kind: reconcile.RollupHour, Timezone: "UTC"},
}

// Summary is what Generate wrote.
type Summary struct {
	Events, Visitors, Flushes int64
}

// Generate writes about n events (whole visitors) to st, seeded by seed.
// progress, if not nil, is called after each flush.
func Generate(ctx context.Context, st store.Store, n int64, seed uint64, progress func(Summary)) (Summary, error) {
	eng, err := reconcile.New(reconcile.Config{Rollups: Rollups})
	if err != nil {
		return Summary{}, fmt.Errorf("benchdata: engine: %w", err)
	}
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	var sum Summary
	type part struct {
		next    int64
		out     *reconcile.Output
		records []store.Record
		states  []store.State
	}
	parts := make([]*part, Partitions)
	for i := range parts {
		parts[i] = &part{out: reconcile.NewOutput()}
	}
	flush := func(p int32) error {
		pt := parts[p]
		if len(pt.records) == 0 {
			return nil
		}
		from := pt.records[0].Offset
		b := &store.Batch{Partition: p, From: from, To: pt.next, Records: pt.records,
			Counters: pt.out.Counters, Goals: pt.out.Goals, Tests: pt.out.Tests, States: pt.states}
		if err := st.Flush(ctx, b); err != nil {
			return fmt.Errorf("benchdata: flush partition %d: %w", p, err)
		}
		sum.Flushes++
		pt.out.Reset()
		pt.records, pt.states = pt.records[:0], pt.states[:0]
		if progress != nil {
			progress(sum)
		}
		return nil
	}
	const batch = 50000
	// Visitors spread evenly over the days; each visitor's events are
	// contiguous in its partition (the key-ordered stream the consumer sees).
	expected := n / 10
	if expected < 1 {
		expected = 1
	}
	var vidBytes [20]byte
	var evs []event.Event
	for sum.Events < n {
		if err := ctx.Err(); err != nil {
			return sum, err
		}
		for i := range vidBytes {
			vidBytes[i] = byte(rng.Uint32())
		}
		vid := hex.EncodeToString(vidBytes[:])
		site := int64(rng.IntN(3))
		ts := (Start + sum.Visitors*Days*86400/expected%(Days*86400)) * 1_000_000
		step := func() int64 { ts += int64(1+rng.IntN(30)) * 1_000_000; return ts }
		ua := "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Safari/537.36"
		page := func(url string) event.Event {
			return event.Event{Type: event.TypePage, TS: step(), VID: vid, SiteID: site, IP: "203.0.113.9", Method: "GET", URL: url, UserAgent: ua}
		}
		// A new slice per visitor: the batch's records point at these events.
		evs = []event.Event{page("/")}
		human := rng.Float64() > 0.05
		if human {
			evs = append(evs, event.Event{Type: event.TypePixel, TS: step(), VID: vid, SiteID: site})
		}
		cta := "False"
		if rng.IntN(2) == 0 {
			cta = "True"
		}
		pricing := [...]string{"a", "b", "c"}[rng.IntN(3)]
		evs = append(evs,
			event.Event{Type: event.TypeSplit, TS: step(), VID: vid, SiteID: site, Test: TestCTA, Selected: cta},
			event.Event{Type: event.TypeSplit, TS: step(), VID: vid, SiteID: site, Test: TestPricing, Selected: pricing})
		for k := rng.IntN(9); k > 0; k-- {
			evs = append(evs, page("/p/"+strconv.Itoa(rng.IntN(50))))
		}
		goal := func(name, value, vt, vf string) {
			evs = append(evs, event.Event{Type: event.TypeGoal, TS: step(), VID: vid, SiteID: site, Name: name, Value: value, ValueType: vt, ValueFormat: vf})
		}
		pSignup := 0.10
		if cta == "True" {
			pSignup = 0.12
		}
		if rng.Float64() < pSignup {
			goal(GoalSignup, "", "", "")
		}
		if rng.Float64() < 0.03+0.01*float64(pricing[0]-'a') {
			goal(GoalBuy, strconv.Itoa(5+rng.IntN(200))+"."+strconv.Itoa(10+rng.IntN(90)), "S", "C")
		}
		if rng.Float64() < 0.05 {
			goal(GoalNews, "", "", "")
		}
		if rng.Float64() < 0.02 {
			goal(GoalRating, strconv.Itoa(1+rng.IntN(5)), "A", "N")
		}
		if rng.Float64() < 0.02 {
			goal(GoalPerVis, "1.5", "I", "C")
		}

		p := int32(sum.Visitors % Partitions)
		pt := parts[p]
		st := reconcile.NewState()
		for i := range evs {
			eng.Apply(st, &evs[i], true, pt.out)
			pt.records = append(pt.records, store.Record{Partition: p, Offset: pt.next, Event: &evs[i]})
			pt.next++
		}
		data, err := st.MarshalBinary()
		if err != nil {
			return sum, fmt.Errorf("benchdata: state: %w", err)
		}
		pt.states = append(pt.states, store.State{VID: vid, Version: pt.next, Data: data})
		sum.Events += int64(len(evs))
		sum.Visitors++
		if len(pt.records) >= batch {
			if err := flush(p); err != nil {
				return sum, err
			}
		}
	}
	for p := range parts {
		if err := flush(int32(p)); err != nil {
			return sum, err
		}
	}
	return sum, nil
}
