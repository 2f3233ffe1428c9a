package store

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/shopspring/decimal"

	"github.com/manhattan-go/manhattan/event"
	"github.com/manhattan-go/manhattan/reconcile"
	"github.com/manhattan-go/manhattan/schema"
)

func TestMigrateIdempotent(t *testing.T) {
	ms, err := schema.Migrations()
	must(t, err, "migrations")
	latest := ms[len(ms)-1].Version
	eachStore(t, func(t *testing.T, s Store, u string) {
		ctx := context.Background()
		must(t, s.Migrate(ctx), "second Migrate")
		v, err := s.(*tables).SchemaVersion(ctx)
		must(t, err, "SchemaVersion")
		if v != latest {
			t.Fatalf("schema version %d, want %d", v, latest)
		}
		var rows int64
		var dummy int64
		must(t, s.(*tables).b.query(ctx, s.(*tables).sql(sqlSchemaVersion), nil, []any{&dummy, &rows}, nop), "count versions")
		if rows != int64(len(ms)) {
			t.Fatalf("schema_version has %d rows after two migrations, want %d", rows, len(ms))
		}
		// A reopened store sees the same schema and migrates as a no-op.
		s2, err := Open(ctx, u)
		must(t, err, "reopen")
		defer s2.Close()
		must(t, s2.Migrate(ctx), "Migrate on reopened store")
		must(t, s2.Ping(ctx), "Ping")
		m, err := s2.Marks(ctx, 0)
		must(t, err, "Marks")
		if m.Found {
			t.Fatalf("fresh store has marks %+v", m)
		}
	})
}

func TestOpenErrors(t *testing.T) {
	ctx := context.Background()
	for _, u := range []string{
		"mysql://x/y",
		"clickhouse://127.0.0.1:1/bad-name",
		"clickhouse://127.0.0.1:1/a`b",
		"chdb:///tmp/x?database=1abc",
		"chdb:///tmp/x?database=a;DROP",
		"chdb:///tmp/x?foo=1",
	} {
		if s, err := Open(ctx, u); err == nil {
			s.Close()
			t.Errorf("Open(%q) succeeded, want an error", u)
		}
	}
}

func dec(s string) decimal.Decimal { return decimal.RequireFromString(s) }

func ckey(kind reconcile.Kind, site int64, goal, test, pop, rollup, bucket string) reconcile.CounterKey {
	return reconcile.CounterKey{Kind: kind, Site: site, Goal: goal, Test: test, Population: pop, Rollup: rollup, Bucket: bucket}
}

func TestFlushMarksAndQueries(t *testing.T) {
	eachStore(t, func(t *testing.T, s Store, _ string) {
		ctx := context.Background()
		site1 := int64(1)
		b1 := &Batch{
			Partition: 3, From: 0, To: 10,
			Counters: map[reconcile.CounterKey]*reconcile.Delta{
				ckey(reconcile.KindConversion, 0, "buy", "", "", "all", ""):             {Count: 2, Value: dec("0.1")},
				ckey(reconcile.KindConversion, 1, "buy", "", "", "all", ""):             {Count: 1, Value: dec("0.2")},
				ckey(reconcile.KindConversion, 0, "buy", "", "", "day", "2026-12-01"):   {Count: 1, Value: dec("0.1")},
				ckey(reconcile.KindConversion, 0, "buy", "", "", "day", "2026-12-02"):   {Count: 1, Value: dec("0")},
				ckey(reconcile.KindImpression, 0, "", "t", "True", "all", ""):           {Count: 5},
				ckey(reconcile.KindImpression, 0, "", "t", "False", "all", ""):          {Count: 4},
				ckey(reconcile.KindVariantConversion, 0, "buy", "t", "True", "all", ""): {Count: 1, Value: dec("0.1")},
			},
			Goals:  map[string]reconcile.GoalMeta{"buy": {Name: "buy", ValueType: "S", ValueFormat: "C", TS: 200}},
			Tests:  map[string]*reconcile.TestMeta{"t": {Name: "t", First: 100, Last: 300, Populations: []string{"False", "True"}}},
			States: []State{{VID: "aa", Version: 10, Data: []byte{1, 2}}, {VID: "bb", Version: 10, Data: []byte{3}}},
		}
		must(t, s.Flush(ctx, b1), "flush 1")
		b2 := &Batch{
			Partition: 3, From: 10, To: 25,
			Counters: map[reconcile.CounterKey]*reconcile.Delta{
				ckey(reconcile.KindConversion, 0, "buy", "", "", "all", ""):   {Count: 1, Value: dec("0.2")},
				ckey(reconcile.KindConversion, 0, "other", "", "", "all", ""): {Count: -1},
			},
			Goals: map[string]reconcile.GoalMeta{
				"buy":   {Name: "buy", ValueType: "A", ValueFormat: "N", TS: 50}, // earlier: wins
				"other": {Name: "other", TS: 400},
			},
			Tests: map[string]*reconcile.TestMeta{
				"t":  {Name: "t", First: 50, Last: 250, Populations: []string{"Maybe"}},
				"t2": {Name: "t2", First: 60, Last: 500, Populations: []string{"x"}},
			},
			States: []State{{VID: "aa", Version: 25, Data: []byte{9}}},
		}
		must(t, s.Flush(ctx, b2), "flush 2")
		// another partition does not disturb p3's marks
		must(t, s.Flush(ctx, &Batch{Partition: 4, From: 0, To: 7}), "flush p4")

		m, err := s.Marks(ctx, 3)
		must(t, err, "marks")
		if m != (Marks{HWC: 25, HWS: 25, Found: true}) {
			t.Errorf("marks of p3 = %+v, want 25/25", m)
		}
		m, _ = s.Marks(ctx, 4)
		if m != (Marks{HWC: 7, HWS: 7, Found: true}) {
			t.Errorf("marks of p4 = %+v, want 7/7", m)
		}
		m, _ = s.Marks(ctx, 5)
		if m.Found || m.HWC != 0 || m.HWS != 0 {
			t.Errorf("marks of p5 = %+v, want none", m)
		}

		got, err := s.LoadStates(ctx, []string{"aa", "bb", "cc"})
		must(t, err, "load states")
		if len(got) != 2 || string(got["aa"]) != "\x09" || string(got["bb"]) != "\x03" {
			t.Errorf("states = %q", got)
		}

		check := func(q CounterQuery, count int64, value string) {
			t.Helper()
			tot, err := s.Counter(ctx, q)
			must(t, err, "counter %+v", q)
			if tot.Count != count || !tot.Value.Equal(dec(value)) {
				t.Errorf("Counter(%+v) = %d, %s; want %d, %s", q, tot.Count, tot.Value, count, value)
			}
		}
		check(CounterQuery{Kind: reconcile.KindConversion, Goal: "buy"}, 4, "0.5") // exact: 0.1+0.2+0.2
		check(CounterQuery{Kind: reconcile.KindConversion, Goal: "buy", Site: &site1}, 1, "0.2")
		check(CounterQuery{Kind: reconcile.KindConversion, Goal: "buy", Rollup: "day"}, 2, "0.1")
		check(CounterQuery{Kind: reconcile.KindConversion, Goal: "buy", Rollup: "day", Bucket: "2026-12-02"}, 1, "0")
		check(CounterQuery{Kind: reconcile.KindConversion, Goal: "other"}, -1, "0")
		check(CounterQuery{Kind: reconcile.KindImpression, Test: "t", Population: "True"}, 5, "0")
		check(CounterQuery{Kind: reconcile.KindImpression, Test: "t"}, 9, "0")
		check(CounterQuery{Kind: reconcile.KindVariantConversion, Goal: "buy", Test: "t", Population: "True"}, 1, "0.1")
		check(CounterQuery{Kind: reconcile.KindConversion, Goal: "nope"}, 0, "0")
		check(CounterQuery{}, 4+(-1)+9+1, "0.6") // every kind but offset, rollup all

		series, err := s.Series(ctx, CounterQuery{Kind: reconcile.KindConversion, Goal: "buy", Rollup: "day"}, "2026-12-02", "")
		must(t, err, "series")
		if len(series) != 1 || series[0].Bucket != "2026-12-02" || series[0].Count != 1 {
			t.Errorf("series = %+v", series)
		}
		series, _ = s.Series(ctx, CounterQuery{Kind: reconcile.KindConversion, Goal: "buy", Rollup: "day"}, "", "")
		if len(series) != 2 || series[0].Bucket != "2026-12-01" || series[1].Bucket != "2026-12-02" {
			t.Errorf("full series = %+v", series)
		}

		pops, err := s.Populations(ctx, CounterQuery{Test: "t"})
		must(t, err, "populations")
		if len(pops) != 2 || pops[0].Population != "False" || pops[0].Count != 4 || pops[1].Population != "True" || pops[1].Count != 5 {
			t.Errorf("populations = %+v", pops)
		}

		goals, err := s.Goals(ctx)
		must(t, err, "goals")
		if len(goals) != 2 || goals[0] != (reconcile.GoalMeta{Name: "buy", ValueType: "A", ValueFormat: "N", TS: 50}) || goals[1].Name != "other" {
			t.Errorf("goals = %+v", goals)
		}
		g, ok, err := s.Goal(ctx, "buy")
		must(t, err, "goal")
		if !ok || g.ValueType != "A" {
			t.Errorf("goal buy = %+v %v", g, ok)
		}
		if _, ok, _ := s.Goal(ctx, "missing"); ok {
			t.Errorf("goal missing found")
		}

		tests, err := s.Tests(ctx)
		must(t, err, "tests")
		if len(tests) != 2 || tests[0].Name != "t2" || tests[1].Name != "t" {
			t.Fatalf("tests = %+v", tests)
		}
		if tt := tests[1]; tt.First != 50 || tt.Last != 300 || len(tt.Populations) != 3 || tt.Populations[0] != "False" || tt.Populations[2] != "True" {
			t.Errorf("test t = %+v", tt)
		}
		tm, ok, err := s.Test(ctx, "t2")
		must(t, err, "test")
		if !ok || tm.Last != 500 || len(tm.Populations) != 1 {
			t.Errorf("test t2 = %+v %v", tm, ok)
		}
		if _, ok, _ := s.Test(ctx, "missing"); ok {
			t.Errorf("test missing found")
		}
	})
}

// TestOneInsertOnePart checks the atomicity the flush protocol relies on: a
// big InsertCounters or InsertStates lands as a single part.
func TestOneInsertOnePart(t *testing.T) {
	eachStore(t, func(t *testing.T, s Store, _ string) {
		ctx := context.Background()
		tb := s.(*tables)
		const n = 200000
		b := &Batch{Partition: 2, From: 0, To: n, Counters: map[reconcile.CounterKey]*reconcile.Delta{}}
		for i := 0; i < n; i++ {
			b.Counters[ckey(reconcile.KindConversion, int64(i), "g", "", "", "all", "")] = &reconcile.Delta{Count: 1, Value: dec("0.5")}
			b.States = append(b.States, State{VID: fmt.Sprintf("%040x", i), Version: n, Data: []byte("\n\n")})
		}
		must(t, s.InsertCounters(ctx, b), "insert counters")
		must(t, s.InsertStates(ctx, b), "insert states")
		dbName := strings.Trim(tb.db, "`")
		for _, table := range []string{"counters", "visitor_state"} {
			var parts, rows int64
			err := tb.b.query(ctx, `SELECT toInt64(count()), toInt64(sum(rows)) FROM system.parts WHERE database = {db:String} AND table = {t:String} AND active`,
				[]param{{"db", dbName}, {"t", table}}, []any{&parts, &rows}, nop)
			must(t, err, "read parts")
			if parts != 1 || rows != n+1 {
				t.Errorf("%s: %d rows in %d parts, want %d rows in one part", table, rows, parts, n+1)
			}
		}
		tot, err := s.Counter(ctx, CounterQuery{Kind: reconcile.KindConversion, Goal: "g"})
		must(t, err, "counter")
		if tot.Count != n || !tot.Value.Equal(dec("100000")) {
			t.Errorf("total %+v", tot)
		}
	})
}

// TestMarksNeverMoveBack: a replay flush that stops below hw_c (To < From)
// writes states and moves hw_s, but leaves hw_c where it was.
func TestMarksNeverMoveBack(t *testing.T) {
	eachStore(t, func(t *testing.T, s Store, _ string) {
		ctx := context.Background()
		must(t, s.Flush(ctx, &Batch{Partition: 0, From: 0, To: 10}), "flush 0→10")
		must(t, s.InsertCounters(ctx, &Batch{Partition: 0, From: 10, To: 20}), "counters 10→20") // then a crash
		m, err := s.Marks(ctx, 0)
		must(t, err, "marks")
		if m != (Marks{HWC: 20, HWS: 10, Found: true}) {
			t.Fatalf("after crash: %+v, want hw_c 20, hw_s 10", m)
		}
		must(t, s.Flush(ctx, &Batch{Partition: 0, From: 20, To: 15, States: []State{{VID: "ab", Version: 15, Data: []byte("s")}}}), "replay flush")
		m, _ = s.Marks(ctx, 0)
		if m != (Marks{HWC: 20, HWS: 15, Found: true}) {
			t.Fatalf("after replay flush: %+v, want hw_c 20, hw_s 15", m)
		}
		must(t, s.Flush(ctx, &Batch{Partition: 0, From: 20, To: 30}), "flush 20→30")
		m, _ = s.Marks(ctx, 0)
		if m != (Marks{HWC: 30, HWS: 30, Found: true}) {
			t.Fatalf("after catching up: %+v, want 30/30", m)
		}
		bad := &Batch{Partition: 0, From: 30, To: 31, Counters: map[reconcile.CounterKey]*reconcile.Delta{
			{Kind: reconcile.KindOffset}: {Count: 5}}}
		if err := s.InsertCounters(ctx, bad); err == nil {
			t.Error("an offset counter from the caller was accepted")
		}
		huge := &Batch{Partition: 0, From: 30, To: 31, Counters: map[reconcile.CounterKey]*reconcile.Delta{
			ckey(reconcile.KindConversion, 0, "g", "", "", "all", ""): {Count: 1, Value: dec("1e30")}}}
		if err := s.InsertCounters(ctx, huge); err == nil {
			t.Error("a value beyond Decimal(38, 10) was accepted")
		}
		if m, _ = s.Marks(ctx, 0); m.HWC != 30 {
			t.Errorf("refused inserts moved hw_c to %d", m.HWC)
		}
	})
}

// The browser rollup keeps visitors without a known user agent in bucket "":
// BucketSet asks for exactly that bucket, while an empty Bucket alone means
// every bucket.
func TestEmptyBucketFilter(t *testing.T) {
	eachStore(t, func(t *testing.T, s Store, _ string) {
		ctx := context.Background()
		must(t, s.Flush(ctx, &Batch{
			Partition: 0, From: 0, To: 3,
			Counters: map[reconcile.CounterKey]*reconcile.Delta{
				ckey(reconcile.KindConversion, 0, "viewed page", "", "", "browsers", ""):       {Count: 1},
				ckey(reconcile.KindConversion, 0, "viewed page", "", "", "browsers", "Chrome"): {Count: 2},
			},
		}), "flush")
		for _, c := range []struct {
			q    CounterQuery
			want int64
		}{
			{CounterQuery{Kind: reconcile.KindConversion, Goal: "viewed page", Rollup: "browsers"}, 3},
			{CounterQuery{Kind: reconcile.KindConversion, Goal: "viewed page", Rollup: "browsers", BucketSet: true}, 1},
			{CounterQuery{Kind: reconcile.KindConversion, Goal: "viewed page", Rollup: "browsers", Bucket: "Chrome"}, 2},
		} {
			tot, err := s.Counter(ctx, c.q)
			must(t, err, "counter %+v", c.q)
			if tot.Count != c.want {
				t.Errorf("Counter(%+v) = %d, want %d", c.q, tot.Count, c.want)
			}
		}
	})
}

// TestEventsInsertInChunks: an events insert larger than a chunk lands
// whole, every row with its own values, and a second insert reusing the
// pooled columns writes its own rows, not the first one's.
func TestEventsInsertInChunks(t *testing.T) {
	eachStore(t, func(t *testing.T, s Store, _ string) {
		ctx := context.Background()
		tb := s.(*tables)
		insert := func(p int32, n int, url string) {
			b := &Batch{Partition: p}
			for i := range n {
				b.Records = append(b.Records, Record{Partition: p, Offset: int64(i), Event: &event.Event{
					Type: event.TypePage, TS: 1700000000000000 + int64(i), VID: fmt.Sprintf("%040x", i),
					Method: "GET", URL: fmt.Sprintf("%s/%d", url, i),
				}})
			}
			must(t, s.InsertEvents(ctx, b), "insert %d events", n)
		}
		const n = 2*eventsChunk + 17
		insert(1, n, "/a")
		insert(2, eventsChunk-1, "/b")
		for _, c := range []struct {
			p   int32
			n   int
			url string
		}{{1, n, "/a"}, {2, eventsChunk - 1, "/b"}} {
			var rows, distinct, wrong int64
			err := tb.b.query(ctx, tb.sql(`SELECT toInt64(count()), toInt64(uniqExact(offset)),
				toInt64(countIf(url != concat({url:String}, '/', toString(offset)) OR ts != 1700000000000000 + offset))
				FROM {db}.events WHERE partition = {p:Int32}`),
				[]param{{"url", c.url}, {"p", c.p}}, []any{&rows, &distinct, &wrong}, nop)
			must(t, err, "read events of partition %d", c.p)
			if rows != int64(c.n) || distinct != int64(c.n) || wrong != 0 {
				t.Errorf("partition %d: %d rows, %d distinct offsets, %d with another row's url; want %d, %d, 0", c.p, rows, distinct, wrong, c.n, c.n)
			}
		}
	})
}
