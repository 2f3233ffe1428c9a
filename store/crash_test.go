package store

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"reflect"
	"sort"
	"testing"

	"github.com/shopspring/decimal"

	"github.com/manhattan-go/manhattan/event"
	"github.com/manhattan-go/manhattan/reconcile"
)

// The crash tests drive the real reconcile engine the way the consumer does
// (load a fetched batch's states in one query, apply, flush every N records,
// restart from Marks and replay from hw_s without counting below hw_c) and
// kill the worker after each step of a flush. Whatever the crashes, what
// ClickHouse ends up holding must equal a clean run's.

var crashCfg = reconcile.Config{
	Rollups: []reconcile.Rollup{
		{Name: "all", Kind: reconcile.RollupAll},
		{Name: "day", Kind: reconcile.RollupDay, Timezone: "UTC"},
		{Name: "browser", Kind: reconcile.RollupBrowser},
	},
	ComplexGoals: []reconcile.ComplexGoal{{Name: "combo", Include: []string{"signup", "buy"}, Exclude: []string{"refund"}}},
}

// genLog builds a deterministic log of nParts partitions.
func genLog(nParts, visitors, perVisitor int) [][]event.Event {
	r := rand.New(rand.NewPCG(42, 7))
	logs := make([][]event.Event, nParts)
	uas := []string{"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36",
		"Mozilla/5.0 (X11; Linux x86_64; rv:121.0) Gecko/20100101 Firefox/121.0", ""}
	goals := []struct{ name, value, vt, vf string }{
		{"signup", "", "", ""}, {"buy", "19.99", "S", "C"}, {"buy", "0.01", "S", "C"}, {"refund", "", "", ""}, {"rate", "0.3333333333", "R", "P"},
	}
	ts := int64(1_764_000_000_000_000)
	type pending struct {
		vid string
		n   int
	}
	var vs []pending
	for i := 0; i < visitors; i++ {
		vs = append(vs, pending{vid: fmt.Sprintf("%040x", r.Uint64()), n: perVisitor})
	}
	for len(vs) > 0 {
		i := r.IntN(len(vs))
		v := &vs[i]
		p := int(v.vid[len(v.vid)-1]) % nParts
		ts += r.Int64N(3_000_000_000) // up to 50 minutes: days change
		ev := event.Event{TS: ts, VID: v.vid, SiteID: int64(r.IntN(2))}
		switch k := r.IntN(10); {
		case k < 3:
			ev.Type, ev.UserAgent, ev.URL, ev.Method = event.TypePage, uas[r.IntN(len(uas))], "/x", "GET"
		case k < 5:
			ev.Type = event.TypePixel
		case k < 8:
			g := goals[r.IntN(len(goals))]
			ev.Type, ev.Name, ev.Value, ev.ValueType, ev.ValueFormat = event.TypeGoal, g.name, g.value, g.vt, g.vf
		default:
			ev.Type, ev.Test = event.TypeSplit, []string{"color", "layout"}[r.IntN(2)]
			ev.Selected = []string{"True", "False"}[r.IntN(2)]
		}
		logs[p] = append(logs[p], ev)
		if v.n--; v.n == 0 {
			vs = append(vs[:i], vs[i+1:]...)
		}
	}
	return logs
}

var errCrash = errors.New("injected crash")

// worker is one partition's consumer, as the consumer package runs it.
type worker struct {
	s     Store
	eng   *reconcile.Engine
	p     int32
	log   []event.Event
	cache *reconcile.Cache
	out   *reconcile.Output
	next  int64 // next offset to read
	hwc   int64 // records below are already counted
	mark  int64 // From of the next batch: the stored hw_c
	recs  []Record
}

func startWorker(ctx context.Context, t *testing.T, s Store, p int32, log []event.Event) *worker {
	eng, err := reconcile.New(crashCfg)
	must(t, err, "engine")
	cache, err := reconcile.NewCache(30) // below the visitor count: states get evicted and reloaded
	must(t, err, "cache")
	w := &worker{s: s, eng: eng, p: p, log: log, cache: cache, out: reconcile.NewOutput()}
	m, err := s.Marks(ctx, p)
	must(t, err, "marks")
	if m.Found {
		if m.HWS > m.HWC {
			t.Fatalf("partition %d: hw_s %d > hw_c %d", p, m.HWS, m.HWC)
		}
		w.next, w.hwc, w.mark = m.HWS, m.HWC, m.HWC
	}
	return w
}

func (w *worker) done() bool { return w.next >= int64(len(w.log)) }

// process applies the next n records, loading the batch's missing states in
// one query.
func (w *worker) process(ctx context.Context, t *testing.T, n int) {
	end := min(w.next+int64(n), int64(len(w.log)))
	batch := w.log[w.next:end]
	vids := make([]string, len(batch))
	for i := range batch {
		vids[i] = batch[i].VID
		// Refresh recency first: Missing does not, so adding the missing
		// states could otherwise evict a cached one this batch needs.
		w.cache.Get(vids[i])
	}
	if missing := w.cache.Missing(vids); len(missing) > 0 {
		loaded, err := w.s.LoadStates(ctx, missing)
		must(t, err, "load states")
		for _, vid := range missing {
			st := reconcile.NewState()
			if data, ok := loaded[vid]; ok {
				must(t, st.UnmarshalBinary(data), "unmarshal state of %s", vid)
			}
			w.cache.Add(vid, st)
		}
	}
	for i := range batch {
		off := w.next + int64(i)
		st, ok := w.cache.Get(batch[i].VID)
		if !ok {
			t.Fatalf("state of %s not cached", batch[i].VID)
		}
		if w.eng.Apply(st, &batch[i], off >= w.hwc, w.out) {
			w.cache.MarkDirty(batch[i].VID)
		}
		w.recs = append(w.recs, Record{Partition: w.p, Offset: off, Event: &batch[i]})
	}
	w.next = end
}

// flush runs the flush steps, stopping with errCrash after crashAfter of
// them (-1: no crash).
func (w *worker) flush(ctx context.Context, t *testing.T, crashAfter int) error {
	b := &Batch{Partition: w.p, From: w.mark, To: w.next, Records: w.recs,
		Counters: w.out.Counters, Goals: w.out.Goals, Tests: w.out.Tests}
	for _, d := range w.cache.Dirty() {
		data, err := d.State.MarshalBinary()
		must(t, err, "marshal")
		b.States = append(b.States, State{VID: d.VID, Version: w.next, Data: data})
	}
	steps := []func(context.Context, *Batch) error{w.s.InsertEvents, w.s.InsertCounters, w.s.UpsertMeta, w.s.InsertStates}
	for i, step := range steps {
		if i == crashAfter {
			return errCrash
		}
		must(t, step(ctx, b), "flush step %d", i+1)
	}
	if crashAfter == len(steps) {
		return errCrash // between flushes: everything written, memory lost
	}
	w.cache.MarkFlushed()
	w.out.Reset()
	w.recs = nil
	w.mark = max(w.mark, w.next)
	return nil
}

// run consumes every partition to the end. crash(p, flushNo) says after how
// many steps the flushNo-th flush of partition p crashes (-1: none); after a
// crash the worker restarts from the store with batch size restartBatch.
func run(ctx context.Context, t *testing.T, s Store, logs [][]event.Event, batch, restartBatch int, crash func(p, flushNo int) int) (crashes int) {
	for p := range logs {
		w := startWorker(ctx, t, s, int32(p), logs[p])
		size := batch
		for flushNo := 0; !w.done(); flushNo++ {
			w.process(ctx, t, size)
			if err := w.flush(ctx, t, crash(p, flushNo)); err != nil {
				crashes++
				w = startWorker(ctx, t, s, int32(p), logs[p])
				size = restartBatch
			}
		}
	}
	return crashes
}

type counterRow struct {
	Kind, Goal, Test, Pop, Rollup, Bucket string
	Site, Count                           int64
	Value                                 string
}

// snapshot is everything a query can see.
type snapshot struct {
	Counters []counterRow
	Goals    []reconcile.GoalMeta
	Tests    []reconcile.TestMeta
	Events   int64
	States   map[string]string
}

func takeSnapshot(ctx context.Context, t *testing.T, s Store, logs [][]event.Event) snapshot {
	tb := s.(*tables)
	var snap snapshot
	var r counterRow
	var v decimal.Decimal
	err := tb.b.query(ctx, tb.sql(`SELECT kind, goal, test, population, rollup, bucket, site, toInt64(sum(count)), sum(value)
FROM {db}.counters WHERE kind != 'offset'
GROUP BY kind, goal, test, population, rollup, bucket, site
ORDER BY kind, goal, test, population, rollup, bucket, site`), nil,
		[]any{&r.Kind, &r.Goal, &r.Test, &r.Pop, &r.Rollup, &r.Bucket, &r.Site, &r.Count, &v}, func() error {
			r.Value = v.String()
			if r.Count != 0 || !v.IsZero() {
				snap.Counters = append(snap.Counters, r)
			}
			return nil
		})
	must(t, err, "read counters")
	snap.Goals, err = s.Goals(ctx)
	must(t, err, "goals")
	snap.Tests, err = s.Tests(ctx)
	must(t, err, "tests")
	var dummy int64
	must(t, tb.b.query(ctx, tb.sql(`SELECT toInt64(uniqExact(partition, offset)), toInt64(count()) FROM {db}.events`), nil,
		[]any{&snap.Events, &dummy}, nop), "count events")
	var vids []string
	for _, l := range logs {
		for _, e := range l {
			vids = append(vids, e.VID)
		}
	}
	states, err := s.LoadStates(ctx, vids)
	must(t, err, "load states")
	snap.States = map[string]string{}
	for k, v := range states {
		snap.States[k] = string(v)
	}
	return snap
}

// expected is the engine's result in one pass, without any store.
func expected(t *testing.T, logs [][]event.Event) []counterRow {
	eng, err := reconcile.New(crashCfg)
	must(t, err, "engine")
	out := reconcile.NewOutput()
	for _, l := range logs {
		states := map[string]*reconcile.State{}
		for i := range l {
			st := states[l[i].VID]
			if st == nil {
				st = reconcile.NewState()
				states[l[i].VID] = st
			}
			eng.Apply(st, &l[i], true, out)
		}
	}
	var rows []counterRow
	for k, d := range out.Counters {
		if d.Count == 0 && d.Value.IsZero() {
			continue
		}
		v, err := scaledValue(d.Value)
		must(t, err, "scale")
		rows = append(rows, counterRow{Kind: k.Kind.String(), Goal: k.Goal, Test: k.Test, Pop: k.Population, Rollup: k.Rollup,
			Bucket: k.Bucket, Site: k.Site, Count: d.Count, Value: v.String()})
	}
	sort.Slice(rows, func(i, j int) bool {
		a, b := rows[i], rows[j]
		return fmt.Sprint(a.Kind, "\x00", a.Goal, "\x00", a.Test, "\x00", a.Pop, "\x00", a.Rollup, "\x00", a.Bucket, "\x00", a.Site) <
			fmt.Sprint(b.Kind, "\x00", b.Goal, "\x00", b.Test, "\x00", b.Pop, "\x00", b.Rollup, "\x00", b.Bucket, "\x00", b.Site)
	})
	return rows
}

func diffCounters(t *testing.T, label string, got, want []counterRow) {
	t.Helper()
	gm := map[counterRow]bool{}
	for _, r := range got {
		gm[r] = true
	}
	wm := map[counterRow]bool{}
	for _, r := range want {
		wm[r] = true
	}
	n := 0
	for _, r := range want {
		if !gm[r] && n < 10 {
			t.Errorf("%s: missing %+v", label, r)
			n++
		}
	}
	for _, r := range got {
		if !wm[r] && n < 10 {
			t.Errorf("%s: unexpected %+v", label, r)
			n++
		}
	}
	if len(got) != len(want) {
		t.Errorf("%s: %d counter rows, want %d", label, len(got), len(want))
	}
}

func TestCrashRecovery(t *testing.T) {
	logs := genLog(2, 60, 5)
	want := expected(t, logs)
	kinds := map[string]bool{}
	for _, r := range want {
		kinds[r.Kind] = true
	}
	if len(kinds) != 3 {
		t.Fatalf("generated log exercises kinds %v, want all three", kinds)
	}
	const batch = 23
	scenarios := []struct {
		name         string
		restartBatch int
		crash        func(p, flushNo int) int
	}{
		// every step position in turn, at every flush
		{"each step", batch, func(p, f int) int { return (f + p) % 6 }},
		// counters written, states not: every restart replays below hw_c,
		// then crashes again on its first flush (To < hw_c for small batches)
		{"after counters, small replays", 11, func(p, f int) int {
			if f < 4 {
				return 2
			}
			return -1
		}},
		{"after events only", 29, func(p, f int) int { return map[bool]int{true: 1, false: -1}[f%2 == 0] }},
		{"between flushes", 17, func(p, f int) int { return map[bool]int{true: 4, false: -1}[f%3 == 1] }},
	}
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel() // one waits on the server, the other runs in-process
			ctx := context.Background()
			clean, _ := openStore(t, b.url)
			if n := run(ctx, t, clean, logs, batch, batch, func(int, int) int { return -1 }); n != 0 {
				t.Fatalf("clean run crashed %d times", n)
			}
			ref := takeSnapshot(ctx, t, clean, logs)
			diffCounters(t, "clean run vs engine", ref.Counters, want)
			total := int64(len(logs[0]) + len(logs[1]))
			if ref.Events != total {
				t.Errorf("clean run stored %d distinct events, want %d", ref.Events, total)
			}
			for i := range logs {
				m, err := clean.Marks(ctx, int32(i))
				must(t, err, "marks")
				if m.HWC != int64(len(logs[i])) || m.HWS != m.HWC {
					t.Errorf("clean marks of %d = %+v, want %d", i, m, len(logs[i]))
				}
			}
			for _, sc := range scenarios {
				t.Run(sc.name, func(t *testing.T) {
					s, _ := openStore(t, b.url)
					crashes := run(ctx, t, s, logs, batch, sc.restartBatch, sc.crash)
					if crashes == 0 {
						t.Fatal("scenario injected no crash")
					}
					got := takeSnapshot(ctx, t, s, logs)
					diffCounters(t, fmt.Sprintf("after %d crashes", crashes), got.Counters, ref.Counters)
					if !reflect.DeepEqual(got.Goals, ref.Goals) {
						t.Errorf("goals %+v, want %+v", got.Goals, ref.Goals)
					}
					if !reflect.DeepEqual(got.Tests, ref.Tests) {
						t.Errorf("tests %+v, want %+v", got.Tests, ref.Tests)
					}
					if got.Events != ref.Events {
						t.Errorf("%d distinct events, want %d", got.Events, ref.Events)
					}
					if !reflect.DeepEqual(got.States, ref.States) {
						t.Errorf("final visitor states differ from the clean run's (%d vs %d)", len(got.States), len(ref.States))
					}
					for i := range logs {
						m, err := s.Marks(ctx, int32(i))
						must(t, err, "marks")
						if m.HWC != int64(len(logs[i])) || m.HWS != m.HWC {
							t.Errorf("marks of %d = %+v, want %d", i, m, len(logs[i]))
						}
					}
				})
			}
		})
	}
}
